-- Search (GET /api/search): conversations by any part of their words, customers by any
-- part of their name or identities, Chinese included, so nothing is split at spaces:
-- pg_trgm's GIN indexes hold every run of three characters (of a database whose
-- LC_CTYPE is a UTF-8 locale, such as C.UTF-8 or en_US.UTF-8; pg_trgm is a trusted
-- extension, so the database's owner may create it). Triggers keep every index current
-- in the transaction that writes the row; this migration builds them for the rows
-- already stored. The history stays append-only: its trigger only reads the row just
-- appended.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Who has held each interaction (assigned to them, by an offer accepted, a supervisor's
-- move or a transfer), with its customer: an agent's searches find these and their
-- customers, and no others.
CREATE TABLE interaction_holders (
    agent_id       TEXT NOT NULL,
    interaction_id TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    PRIMARY KEY (agent_id, interaction_id)
);
CREATE INDEX interaction_holders_interaction ON interaction_holders(interaction_id);
CREATE INDEX interaction_holders_customer ON interaction_holders(agent_id, customer_id);
CREATE FUNCTION interaction_holders_add() RETURNS trigger AS $$
BEGIN
    INSERT INTO interaction_holders (agent_id, interaction_id, customer_id)
    VALUES (NEW.agent_id, NEW.id, NEW.customer_id)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER interaction_holders_insert AFTER INSERT ON interactions FOR EACH ROW
WHEN (NEW.agent_id IS NOT NULL AND NEW.state IN ('assigned', 'completed'))
EXECUTE FUNCTION interaction_holders_add();
CREATE TRIGGER interaction_holders_update AFTER UPDATE OF state, agent_id ON interactions FOR EACH ROW
WHEN (NEW.agent_id IS NOT NULL AND NEW.state IN ('assigned', 'completed'))
EXECUTE FUNCTION interaction_holders_add();

-- The messages each agent may search, newest first by seq: those of every interaction it
-- has held, whenever written. An agent's search reads its own here when a word is in too
-- many messages of others to look up in the index.
CREATE TABLE search_held (
    agent_id TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (agent_id, seq)
);
CREATE FUNCTION search_held_holder() RETURNS trigger AS $$
BEGIN
    INSERT INTO search_held (agent_id, seq)
    SELECT NEW.agent_id, seq FROM history
    WHERE interaction_id = NEW.interaction_id
      AND kind IN ('interaction_received', 'email_received', 'email_sent', 'chat', 'note',
                   'transferred', 'completed')
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER search_held_holder AFTER INSERT ON interaction_holders FOR EACH ROW
EXECUTE FUNCTION search_held_holder();

-- The history's data as JSON, or NULL where it is not JSON PostgreSQL can hold (a \u0000
-- escape): what cannot be read is left out of the index, never refused.
CREATE FUNCTION search_json(data TEXT) RETURNS jsonb AS $$
BEGIN
    RETURN data::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$ LANGUAGE plpgsql IMMUTABLE;

INSERT INTO interaction_holders (agent_id, interaction_id, customer_id)
SELECT agent_id, id, customer_id FROM interactions
WHERE agent_id IS NOT NULL AND state IN ('assigned', 'completed')
ON CONFLICT DO NOTHING;
-- Those who held one before it moved on: the history names them.
INSERT INTO interaction_holders (agent_id, interaction_id, customer_id)
SELECT who, id, customer_id FROM (
    SELECT CASE h.kind WHEN 'assigned' THEN search_json(h.data) ->> 'agent_id'
                       ELSE search_json(h.data) ->> 'to' END AS who, i.id, i.customer_id
    FROM history h JOIN interactions i ON i.id = h.interaction_id
    WHERE h.kind IN ('assigned', 'moved')
) named
WHERE who IS NOT NULL
ON CONFLICT DO NOTHING;

-- The words of a conversation, one document per history event, numbered by its seq: an
-- interaction's subject and body (with `interaction_received`), mail in and out, chat
-- messages both ways, internal notes, the note of a hand-over and the notes of a
-- completion. Each is read up to its first 20,000 characters.
CREATE VIEW search_documents AS
SELECT h.seq, h.interaction_id, h.kind, h.occurred_at,
       left(CASE h.kind
           WHEN 'interaction_received' THEN
               (SELECT btrim(coalesce(i.subject, '') || E'\n' || coalesce(i.body, ''))
                FROM interactions i WHERE i.id = h.interaction_id)
           WHEN 'transferred' THEN search_json(h.data) ->> 'note'
           WHEN 'completed' THEN search_json(h.data) ->> 'notes'
           ELSE search_json(h.data) ->> 'text'
       END, 20000) AS text
FROM history h
WHERE h.kind IN ('interaction_received', 'email_received', 'email_sent', 'chat', 'note',
                 'transferred', 'completed')
  AND h.interaction_id IS NOT NULL;

-- The index of those documents: each one's text beside the event's seq and its
-- interaction, under a trigram GIN index.
CREATE TABLE search_index (
    seq            BIGINT PRIMARY KEY,
    interaction_id TEXT NOT NULL,
    text           TEXT NOT NULL
);
CREATE FUNCTION search_index_add() RETURNS trigger AS $$
BEGIN
    INSERT INTO search_index (seq, interaction_id, text)
    SELECT seq, interaction_id, text FROM search_documents WHERE seq = NEW.seq AND text <> '';
    INSERT INTO search_held (agent_id, seq)
    SELECT agent_id, NEW.seq FROM interaction_holders WHERE interaction_id = NEW.interaction_id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER search_index_add AFTER INSERT ON history FOR EACH ROW
WHEN (NEW.kind IN ('interaction_received', 'email_received', 'email_sent', 'chat', 'note',
                   'transferred', 'completed')
      AND NEW.interaction_id IS NOT NULL)
EXECUTE FUNCTION search_index_add();
INSERT INTO search_index (seq, interaction_id, text)
SELECT seq, interaction_id, text FROM search_documents WHERE text <> '';
CREATE INDEX search_index_text ON search_index USING gin (text gin_trgm_ops);
-- An agent's search ANDs the word's candidates with its own interactions' messages
-- before reading any of them.
CREATE INDEX search_index_interaction ON search_index (interaction_id);

-- Customers' names and identities (emails, phone numbers, CRM ids; not chat visitors'
-- random ids): any part of three characters or more, or the beginning of a shorter one.
CREATE INDEX customers_name_search ON customers USING gin (name gin_trgm_ops);
CREATE INDEX customer_identities_search ON customer_identities USING gin (value gin_trgm_ops)
WHERE kind <> 'visitor_id';
