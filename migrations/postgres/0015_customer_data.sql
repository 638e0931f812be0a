-- The customer's data under the admins' control: erasure, export and retention.

-- An erased customer keeps an anonymous record: its id and when it was erased (its
-- interactions keep channel, tier, times, states and agents, for the counts).
ALTER TABLE customers ADD COLUMN erased_at BIGINT;

-- Each command of the outbox names the interaction it is about, so a customer's commands
-- (replies with their text, numbers to call back) are found without reading every payload.
ALTER TABLE outbox ADD COLUMN interaction_id TEXT;
UPDATE outbox SET interaction_id = payload::jsonb ->> 'interaction_id'
 WHERE jsonb_typeof(payload::jsonb) = 'object';
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

-- The history and the audit trail stay append-only (0001, 0005, 0012), with one
-- controlled exception: a redaction, made only by erasure and retention while their
-- transaction has set switchboard.redacting (SET LOCAL: it ends with the transaction). A
-- history event may then only lose members of its data, which is marked {"redacted":
-- "erasure" | "retention"}: every other column, and everything kept, stays as it was. An
-- audit entry may only have its before and after replaced by the erasure marker. Deletes
-- are refused as before, and TRUNCATE by the statement triggers of 0012.
CREATE FUNCTION history_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND current_setting('switchboard.redacting', true) IN ('erasure', 'retention')
       AND NEW.seq = OLD.seq AND NEW.customer_id = OLD.customer_id
       AND NEW.interaction_id IS NOT DISTINCT FROM OLD.interaction_id AND NEW.kind = OLD.kind
       AND NEW.occurred_at = OLD.occurred_at AND NEW.actor = OLD.actor
       AND jsonb_typeof(NEW.data::jsonb) = 'object' AND jsonb_typeof(OLD.data::jsonb) = 'object'
       AND (NEW.data::jsonb ->> 'redacted') = current_setting('switchboard.redacting', true)
       AND (NEW.data::jsonb - 'redacted') <@ OLD.data::jsonb
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'history is append-only';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER history_append_only ON history;
CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON history
FOR EACH ROW EXECUTE FUNCTION history_guard();

CREATE FUNCTION audit_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND current_setting('switchboard.redacting', true) = 'erasure'
       AND NEW.seq = OLD.seq AND NEW.occurred_at = OLD.occurred_at AND NEW.actor = OLD.actor
       AND NEW.action = OLD.action AND NEW.target_kind = OLD.target_kind
       AND NEW.target_id IS NOT DISTINCT FROM OLD.target_id
       AND (NEW.before IS NOT DISTINCT FROM OLD.before OR NEW.before = '{"redacted":"erasure"}')
       AND (NEW.after IS NOT DISTINCT FROM OLD.after OR NEW.after = '{"redacted":"erasure"}')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER audit_append_only ON audit;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION audit_guard();
