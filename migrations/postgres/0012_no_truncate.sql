-- The history and the audit trail refuse updates and deletes row by row (0001, 0005), but
-- TRUNCATE removes rows without a row trigger firing: it is refused too, by a statement
-- trigger. (SQLite has no TRUNCATE; a DELETE of every row fires its row triggers.)
CREATE TRIGGER history_no_truncate BEFORE TRUNCATE ON history
FOR EACH STATEMENT EXECUTE FUNCTION history_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
