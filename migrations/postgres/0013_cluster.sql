-- Several nodes on one database (see docs/cluster.md). The router's lead: one row, its
-- epoch bumped by every new leader (the fence every router write checks), and who holds
-- it. The nodes alive, each writing when it was last seen. Secrets every node shares
-- (the cluster's own, for calls between nodes; the admin token's digest).
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
