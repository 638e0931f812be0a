-- Canned answers: prepared replies an agent inserts with a shortcut ("/refund" or
-- "::refund"). Shared ones (owner_agent_id NULL) are the admins', per team (a skill; NULL
-- for everyone) and language (NULL for any); personal ones are their agent's alone.
CREATE TABLE canned_answers (
    id             TEXT PRIMARY KEY,
    shortcut       TEXT NOT NULL,
    title          TEXT NOT NULL,
    body           TEXT NOT NULL,
    language       TEXT,
    team           TEXT,
    owner_agent_id TEXT REFERENCES agents(id),
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX canned_answers_owner ON canned_answers (owner_agent_id, shortcut);

-- Each agent's mail signature, added below a reply as it is begun.
ALTER TABLE agents ADD COLUMN signature TEXT;
