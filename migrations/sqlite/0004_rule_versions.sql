-- Routing rules, versioned: every change is a new version, kept with who made it and
-- when; the active rules are the newest version.
CREATE TABLE routing_rules (
    version    BIGINT PRIMARY KEY,
    document   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    comment    TEXT,
    created_at BIGINT NOT NULL
);
