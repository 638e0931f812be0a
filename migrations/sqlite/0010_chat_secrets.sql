-- Chat resume secrets were written whole into each chat's `chat_started` event, where
-- agents and the API could read them and take over the visitor's side of the chat. They
-- are removed, so those secrets stop working (a chat started since keeps only a digest,
-- privately). This is the one change ever made to the append-only history: its guard is
-- lifted for this statement alone, in this migration's transaction.
DROP TRIGGER history_no_update;
UPDATE history SET data = json_remove(data, '$.resume_token')
 WHERE kind = 'chat_started' AND json_valid(data) AND json_extract(data, '$.resume_token') IS NOT NULL;
CREATE TRIGGER history_no_update BEFORE UPDATE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
UPDATE channel_events SET data = json_remove(data, '$.resume_token')
 WHERE kind = 'chat_started' AND json_valid(data) AND json_extract(data, '$.resume_token') IS NOT NULL;
