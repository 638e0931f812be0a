-- Agents: the people who answer contacts. Their login token is kept only as its
-- SHA-256 (tokens are 256 random bits, so a fast digest is enough). A customer may have
-- an owner: the account manager their contacts go to first.

CREATE TABLE agents (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    email        TEXT,
    extension    TEXT,
    level        BIGINT NOT NULL,
    skills       TEXT NOT NULL,
    capacity     TEXT,
    token_sha256 TEXT NOT NULL UNIQUE,
    active       BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX agents_extension ON agents(extension) WHERE extension IS NOT NULL AND active = 1;

ALTER TABLE customers ADD COLUMN owner_agent_id TEXT REFERENCES agents(id);
