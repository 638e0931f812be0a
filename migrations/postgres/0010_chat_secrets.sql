-- Chat resume secrets were written whole into each chat's `chat_started` event, where
-- agents and the API could read them and take over the visitor's side of the chat. They
-- are removed, so those secrets stop working (a chat started since keeps only a digest,
-- privately). This is the one change ever made to the append-only history: its guard is
-- lifted for this statement alone, in this migration's transaction.
ALTER TABLE history DISABLE TRIGGER history_append_only;
UPDATE history SET data = (data::jsonb - 'resume_token')::text
 WHERE kind = 'chat_started' AND data::jsonb ? 'resume_token';
ALTER TABLE history ENABLE TRIGGER history_append_only;
UPDATE channel_events SET data = (data::jsonb - 'resume_token')::text
 WHERE kind = 'chat_started' AND data::jsonb ? 'resume_token';
