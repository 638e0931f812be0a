-- Reports, further measures: wrap-up (after-contact work) and service commitments met,
-- per hour beside the others; agents' time in each presence state, per hour.
ALTER TABLE report_hours ADD COLUMN wrap_ups BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_hours ADD COLUMN wrap_up_ms BIGINT NOT NULL DEFAULT 0;
-- Contacts completed that had service targets, and of them those with none breached.
ALTER TABLE report_hours ADD COLUMN sla_contacts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_hours ADD COLUMN sla_met BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_agent_hours ADD COLUMN wrap_ups BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_agent_hours ADD COLUMN wrap_up_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_agent_hours ADD COLUMN sla_contacts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_agent_hours ADD COLUMN sla_met BIGINT NOT NULL DEFAULT 0;

-- Why an agent went away, when it said (or a supervisor, or its missed offers, did).
ALTER TABLE agent_presence ADD COLUMN reason TEXT;

-- Time (ms) each agent spent in each presence state (available, away, offline) per hour,
-- away also per reason ('' for none given), kept from agent_presence after presence_seq:
-- a state's time is counted when it ends, split across the hours it spans; the state
-- each agent is in now waits in report_presence_open (and a report adds its time so far).
CREATE TABLE report_presence_hours (
    hour   BIGINT NOT NULL,
    agent  TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    ms     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, agent, status, reason)
);
CREATE TABLE report_presence_open (
    agent  TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    since  BIGINT NOT NULL
);
ALTER TABLE report_cursor ADD COLUMN presence_seq BIGINT NOT NULL DEFAULT 0;

-- The rollups kept so far lack the new measures: they are counted again from the
-- history, which the leader's rollup does from a cursor of 0.
DELETE FROM report_hours;
DELETE FROM report_agent_hours;
UPDATE report_cursor SET seq = 0, presence_seq = 0;
