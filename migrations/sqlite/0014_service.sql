-- Service commitments. A contact taken while its calendar was closed waits for the
-- opening (opens_at); a complaint's contacts share one owner and deadline.
ALTER TABLE interactions ADD COLUMN opens_at BIGINT;
ALTER TABLE interactions ADD COLUMN complaint_id TEXT;

-- Each contact's targets (first response, next response, resolution), counted in its
-- calendar's open time: budget_ms of open time from started_at (less spent_ms spent
-- before a pause). due_at is NULL while it is to be worked out (a next response just
-- begun, a resolution resumed at resumed_at after a pause at paused_at).
-- state: pending, warned, paused, met, breached, cancelled.
CREATE TABLE interaction_deadlines (
    interaction_id TEXT NOT NULL REFERENCES interactions(id),
    target         TEXT NOT NULL,
    channel        TEXT NOT NULL,
    calendar       TEXT,
    budget_ms      BIGINT,
    warn_ms        BIGINT NOT NULL DEFAULT 0,
    started_at     BIGINT NOT NULL,
    spent_ms       BIGINT NOT NULL DEFAULT 0,
    due_at         BIGINT,
    warn_at        BIGINT,
    state          TEXT NOT NULL,
    paused_at      BIGINT,
    resumed_at     BIGINT,
    met_at         BIGINT,
    breached_at    BIGINT,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (interaction_id, target)
);
CREATE INDEX interaction_deadlines_due ON interaction_deadlines (state, due_at);

-- Complaints: a named owner, responsible until it is resolved, across contacts and
-- channels. state: open, warned, breached, resolved.
CREATE TABLE complaints (
    id             TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL REFERENCES customers(id),
    topic          TEXT NOT NULL,
    owner_agent_id TEXT,
    opened_at      BIGINT NOT NULL,
    due_at         BIGINT NOT NULL,
    warn_at        BIGINT NOT NULL,
    state          TEXT NOT NULL,
    resolved_at    BIGINT,
    resolved_by    TEXT,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX complaints_customer ON complaints (customer_id, state);
CREATE INDEX complaints_due ON complaints (state, due_at);

-- Callbacks: a phone contact whose caller is called back when its turn comes. source:
-- requested (asked for in the queue), missed (a missed call), api. state: waiting,
-- dialling, done, failed.
CREATE TABLE callbacks (
    interaction_id TEXT PRIMARY KEY REFERENCES interactions(id),
    number         TEXT NOT NULL,
    source         TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    state          TEXT NOT NULL,
    last_result    TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Satisfaction: one answer per contact (score 1 to 5), with what it is reported by.
CREATE TABLE satisfaction (
    interaction_id  TEXT PRIMARY KEY REFERENCES interactions(id),
    customer_id     TEXT NOT NULL,
    answered_by     TEXT NOT NULL,
    score           INTEGER NOT NULL,
    comment         TEXT,
    agent_id        TEXT,
    tier            TEXT NOT NULL,
    topic           TEXT,
    channel         TEXT NOT NULL,
    answered_at     BIGINT NOT NULL
);
CREATE INDEX satisfaction_answered ON satisfaction (answered_at);

-- An agent away for days, and who takes their owned customers and complaints meanwhile.
ALTER TABLE agents ADD COLUMN absent_until BIGINT;
ALTER TABLE agents ADD COLUMN substitute_id TEXT;
