-- Reports: counts and sums per hour (UTC, ms since the epoch at the hour's start),
-- kept as the history grows by the leader's rollup duty, which reads the history after
-- `seq` of report_cursor and moves the cursor in the same transaction as the buckets.
-- report_hours is per channel, tier at entry and topic ('' for none); report_agent_hours
-- per agent, apart, so a report by tier reads a few rows an hour, not one per agent.
CREATE TABLE report_hours (
    hour              BIGINT NOT NULL,
    channel           TEXT NOT NULL,
    tier              TEXT NOT NULL,
    topic             TEXT NOT NULL,
    received          BIGINT NOT NULL DEFAULT 0,
    answered          BIGINT NOT NULL DEFAULT 0,
    within_target     BIGINT NOT NULL DEFAULT 0,
    answer_ms         BIGINT NOT NULL DEFAULT 0,
    abandoned         BIGINT NOT NULL DEFAULT 0,
    abandoned_wait_ms BIGINT NOT NULL DEFAULT 0,
    completed         BIGINT NOT NULL DEFAULT 0,
    handling_ms       BIGINT NOT NULL DEFAULT 0,
    transfers         BIGINT NOT NULL DEFAULT 0,
    callbacks         BIGINT NOT NULL DEFAULT 0,
    csat_count        BIGINT NOT NULL DEFAULT 0,
    csat_sum          BIGINT NOT NULL DEFAULT 0,
    -- Answered contacts whose tier had a service-level target: the service level's base.
    targeted          BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, channel, tier, topic)
);

-- The same measures per hour and agent ('' for what no agent did: arrivals, abandons,
-- callbacks).
CREATE TABLE report_agent_hours (
    hour              BIGINT NOT NULL,
    agent             TEXT NOT NULL,
    received          BIGINT NOT NULL DEFAULT 0,
    answered          BIGINT NOT NULL DEFAULT 0,
    within_target     BIGINT NOT NULL DEFAULT 0,
    answer_ms         BIGINT NOT NULL DEFAULT 0,
    abandoned         BIGINT NOT NULL DEFAULT 0,
    abandoned_wait_ms BIGINT NOT NULL DEFAULT 0,
    completed         BIGINT NOT NULL DEFAULT 0,
    handling_ms       BIGINT NOT NULL DEFAULT 0,
    transfers         BIGINT NOT NULL DEFAULT 0,
    callbacks         BIGINT NOT NULL DEFAULT 0,
    csat_count        BIGINT NOT NULL DEFAULT 0,
    csat_sum          BIGINT NOT NULL DEFAULT 0,
    -- Answered contacts whose tier had a service-level target: the service level's base.
    targeted          BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, agent)
);

CREATE TABLE report_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO report_cursor (id, seq) VALUES (1, 0);
