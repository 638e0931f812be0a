-- The customer's data under the admins' control: erasure, export and retention.

-- An erased customer keeps an anonymous record: its id and when it was erased (its
-- interactions keep channel, tier, times, states and agents, for the counts).
ALTER TABLE customers ADD COLUMN erased_at BIGINT;

-- Each command of the outbox names the interaction it is about, so a customer's commands
-- (replies with their text, numbers to call back) are found without reading every payload.
ALTER TABLE outbox ADD COLUMN interaction_id TEXT;
UPDATE outbox SET interaction_id = json_extract(payload, '$.interaction_id')
 WHERE json_valid(payload) AND json_type(payload) = 'object';
CREATE INDEX outbox_interaction ON outbox(interaction_id);

-- A customer's interactions, found without reading them all (erasure, export, the
-- customer's open matters).
CREATE INDEX interactions_customer ON interactions(customer_id, created_at);

-- Retention reads the history by time.
CREATE INDEX history_occurred ON history(occurred_at, seq);
-- Erasure finds the events of other customers' histories that name the one erased (an
-- identity two customers named, an address typed in a chat), and channel events kept
-- without a contact: a few rows each, so these partial indexes stay small.
CREATE INDEX history_cross_references ON history(kind)
 WHERE kind IN ('possible_duplicate', 'email_claimed');
CREATE INDEX channel_events_unlinked ON channel_events(channel) WHERE interaction_id IS NULL;

-- Retention, per channel: the content older than done_before has been removed, except
-- from contacts then in progress, which are listed in retention_deferred until they end.
CREATE TABLE retention_state (
    channel      TEXT PRIMARY KEY,
    done_before  BIGINT NOT NULL,
    last_run_at  BIGINT NOT NULL,
    last_removed BIGINT NOT NULL
);
CREATE TABLE retention_deferred (
    interaction_id TEXT PRIMARY KEY,
    channel        TEXT NOT NULL,
    before         BIGINT NOT NULL
);

-- The history and the audit trail stay append-only (0001, 0005), with one controlled
-- exception: a redaction, made only by erasure and retention while their transaction
-- holds a row of this table (inserted and deleted within it, so no other transaction
-- ever sees one). A history event may then only lose members of its data, which is marked
-- {"redacted": "erasure" | "retention"}: every other column, and every member kept, stays
-- as it was. An audit entry may only have its before and after replaced by the erasure
-- marker. Deletes are refused as before.
CREATE TABLE redacting (
    purpose TEXT PRIMARY KEY CHECK (purpose IN ('erasure', 'retention'))
);

DROP TRIGGER history_no_update;
CREATE TRIGGER history_no_update BEFORE UPDATE ON history
WHEN NOT (
    NEW.seq = OLD.seq AND NEW.customer_id = OLD.customer_id
    AND NEW.interaction_id IS OLD.interaction_id AND NEW.kind = OLD.kind
    AND NEW.occurred_at = OLD.occurred_at AND NEW.actor = OLD.actor
    AND json_valid(NEW.data) AND json_type(NEW.data) = 'object'
    AND json_valid(OLD.data) AND json_type(OLD.data) = 'object'
    AND json_extract(NEW.data, '$.redacted') IN (SELECT purpose FROM redacting)
    AND NOT EXISTS (
        SELECT 1 FROM json_each(NEW.data) AS n
        WHERE n.key <> 'redacted' AND NOT EXISTS (
            SELECT 1 FROM json_each(OLD.data) AS o
            WHERE o.key = n.key AND o.type = n.type AND o.value IS n.value))
)
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;

DROP TRIGGER audit_no_update;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
WHEN NOT (
    EXISTS (SELECT 1 FROM redacting WHERE purpose = 'erasure')
    AND NEW.seq = OLD.seq AND NEW.occurred_at = OLD.occurred_at AND NEW.actor = OLD.actor
    AND NEW.action = OLD.action AND NEW.target_kind = OLD.target_kind
    AND NEW.target_id IS OLD.target_id
    AND (NEW.before IS OLD.before OR NEW.before = '{"redacted":"erasure"}')
    AND (NEW.after IS OLD.after OR NEW.after = '{"redacted":"erasure"}')
)
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
