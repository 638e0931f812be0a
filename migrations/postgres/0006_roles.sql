-- Roles: what a person may do. An agent works the contacts offered to it; a supervisor
-- also watches the live queue and every agent, moves work and sets agents away; an admin
-- also changes rules, agents, customers and tiers.
ALTER TABLE agents ADD COLUMN role TEXT NOT NULL DEFAULT 'agent';
