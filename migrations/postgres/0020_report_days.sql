-- Reports by agent and by team over days and weeks read days, not hours: the same
-- measures and presence time per agent and local day of the centre's time zone
-- (api.report_time_zone), `day` being the UTC instant (ms) of its local midnight. Kept
-- by the leader's rollup in the same transaction as the hours; report_days_state names
-- the zone they were built for, and while `built_to` is set they are being rebuilt from
-- the hourly tables (the days from `built_to` on are not there yet).
CREATE TABLE report_agent_days (
    day               BIGINT NOT NULL,
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
    targeted          BIGINT NOT NULL DEFAULT 0,
    wrap_ups          BIGINT NOT NULL DEFAULT 0,
    wrap_up_ms        BIGINT NOT NULL DEFAULT 0,
    sla_contacts      BIGINT NOT NULL DEFAULT 0,
    sla_met           BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, agent)
);
CREATE TABLE report_presence_days (
    day    BIGINT NOT NULL,
    agent  TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    ms     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, agent, status, reason)
);
-- No zone yet: the leader's rollup builds the days from the hours at its next pass.
CREATE TABLE report_days_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    zone     TEXT NOT NULL,
    built_to BIGINT
);
INSERT INTO report_days_state (id, zone, built_to) VALUES (1, '', 0);
