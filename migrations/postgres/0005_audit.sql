-- The audit trail: every change an admin or agent makes, with who, when, what, and the
-- record before and after. Like the history, it is only ever appended to.
CREATE TABLE audit (
    seq         BIGSERIAL PRIMARY KEY,
    occurred_at BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id   TEXT,
    before      TEXT,
    after       TEXT
);
CREATE INDEX audit_target ON audit(target_kind, target_id, seq);
CREATE INDEX audit_action ON audit(action, seq);
CREATE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION audit_append_only();
