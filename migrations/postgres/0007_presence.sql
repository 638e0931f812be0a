-- Agents' presence over time (available, away, offline), appended by the router each
-- time it changes: the shifts the replay simulator puts back on duty.
CREATE TABLE agent_presence (
    seq      BIGSERIAL PRIMARY KEY,
    agent_id TEXT NOT NULL,
    status   TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX agent_presence_at ON agent_presence(at);
CREATE INDEX agent_presence_agent ON agent_presence(agent_id, at);

-- The simulator reads the interactions that arrived in a window.
CREATE INDEX interactions_created ON interactions(created_at);
