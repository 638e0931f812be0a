-- Routing: who holds an interaction, and how it ended.
ALTER TABLE interactions ADD COLUMN agent_id TEXT;
ALTER TABLE interactions ADD COLUMN disposition TEXT;
ALTER TABLE interactions ADD COLUMN notes TEXT;
CREATE INDEX interactions_agent ON interactions(agent_id, state);
