-- The tables of several nodes on one database (PostgreSQL; see docs/cluster.md). SQLite
-- runs one node, and keeps the same schema so a store moves between the two unchanged.
CREATE TABLE cluster_leader (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    epoch  BIGINT NOT NULL,
    node   TEXT,
    url    TEXT,
    since  BIGINT
);
INSERT INTO cluster_leader (id, epoch) VALUES (1, 0);

CREATE TABLE cluster_nodes (
    node       TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL,
    role       TEXT NOT NULL
);

CREATE TABLE cluster_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
