-- Events channels report about their contacts (a call answered, hung up), each recorded
-- once per event key: a retried webhook changes nothing. An event for a contact not
-- (yet) known is kept here without an interaction.
CREATE TABLE channel_events (
    channel        TEXT NOT NULL,
    event_key      TEXT NOT NULL,
    contact_key    TEXT NOT NULL,
    interaction_id TEXT,
    kind           TEXT NOT NULL,
    data           TEXT NOT NULL,
    at             BIGINT NOT NULL,
    PRIMARY KEY (channel, event_key)
);
CREATE INDEX channel_events_contact ON channel_events(channel, contact_key);

-- Commands for channels' external systems (tell the phone system which agent to ring),
-- stored before they are sent and retried until delivered: the outbox.
CREATE TABLE outbox (
    id           TEXT PRIMARY KEY,
    channel      TEXT NOT NULL,
    payload      TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    next_at      BIGINT,
    created_at   BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error   TEXT
);
CREATE INDEX outbox_due ON outbox(channel, next_at);
