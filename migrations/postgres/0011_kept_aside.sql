-- What a channel event says, as a digest, for events that carry a message (an email):
-- the same event key with the same digest is the message delivered again; with another
-- digest it is another message reusing the key (a sender reusing a Message-ID).
ALTER TABLE channel_events ADD COLUMN fingerprint TEXT;

-- Messages a channel kept aside instead of making contacts of them (an auto-reply or a
-- bounce that answers no conversation, mail with no usable sender, mail that cannot be
-- read), kept whole, once per key, for supervisors to see and to turn into contacts.
CREATE TABLE kept_aside (
    id             TEXT PRIMARY KEY,
    channel        TEXT NOT NULL,
    aside_key      TEXT NOT NULL,
    fingerprint    TEXT,
    reason         TEXT NOT NULL,
    detail         TEXT NOT NULL,
    sender         TEXT,
    subject        TEXT,
    preview        TEXT,
    size           BIGINT NOT NULL,
    raw            BYTEA,
    received_at    BIGINT NOT NULL,
    interaction_id TEXT,
    contact_by     TEXT,
    contact_at     BIGINT,
    UNIQUE (channel, aside_key)
);
CREATE INDEX kept_aside_received ON kept_aside(channel, received_at);

-- Mail kept aside before this table existed was recorded only as a channel event with no
-- interaction: listed here too (without its bytes, which were not kept).
INSERT INTO kept_aside (id, channel, aside_key, reason, detail, sender, subject, size, received_at)
SELECT md5(event_key)::uuid::text,
       channel, event_key,
       CASE kind
           WHEN 'email_auto_reply' THEN 'auto_reply'
           WHEN 'email_bounce' THEN 'bounce'
           WHEN 'email_loop' THEN 'loop'
           ELSE CASE
               WHEN (data::json ->> 'reason') = 'the message has no sender (From)' THEN 'no_sender'
               WHEN (data::json ->> 'reason') LIKE 'customer.%' THEN 'bad_sender'
               ELSE 'unreadable'
           END
       END,
       COALESCE((data::json ->> 'reason'), kind), (data::json ->> 'from'), (data::json ->> 'subject'), 0, at
FROM channel_events
WHERE channel = 'email' AND interaction_id IS NULL
  AND kind IN ('email_unroutable', 'email_auto_reply', 'email_bounce', 'email_loop');
