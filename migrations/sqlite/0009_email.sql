-- The agent a contact is offered to first: the one who handled the thread it continues
-- (a reply to a closed email conversation).
ALTER TABLE interactions ADD COLUMN preferred_agent_id TEXT;

-- Files that came with a contact (email attachments), stored within the size limit.
CREATE TABLE attachments (
    id             TEXT PRIMARY KEY,
    interaction_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size           BIGINT NOT NULL,
    data           BLOB,
    created_at     BIGINT NOT NULL
);
CREATE INDEX attachments_interaction ON attachments(interaction_id);

-- Where a channel has read up to in an external source (an IMAP mailbox's last UID).
CREATE TABLE channel_cursors (
    channel TEXT NOT NULL,
    name    TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (channel, name)
);
