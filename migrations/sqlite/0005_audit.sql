-- The audit trail: every change an admin or agent makes, with who, when, what, and the
-- record before and after. Like the history, it is only ever appended to.
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
