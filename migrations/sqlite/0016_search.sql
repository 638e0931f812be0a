-- Search (GET /api/search): conversations by any part of their words, customers by any
-- part of their name or identities, Chinese included, so nothing is split at spaces:
-- FTS5's trigram tokenizer indexes every run of three characters. Triggers keep every
-- index current in the transaction that writes the row; this migration builds them for
-- the rows already stored. The history stays append-only: its trigger only reads the row
-- just appended.

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
CREATE TRIGGER interaction_holders_insert AFTER INSERT ON interactions
WHEN new.agent_id IS NOT NULL AND new.state IN ('assigned', 'completed')
BEGIN
    INSERT OR IGNORE INTO interaction_holders (agent_id, interaction_id, customer_id)
    VALUES (new.agent_id, new.id, new.customer_id);
END;
CREATE TRIGGER interaction_holders_update AFTER UPDATE OF state, agent_id ON interactions
WHEN new.agent_id IS NOT NULL AND new.state IN ('assigned', 'completed')
BEGIN
    INSERT OR IGNORE INTO interaction_holders (agent_id, interaction_id, customer_id)
    VALUES (new.agent_id, new.id, new.customer_id);
END;

-- The messages each agent may search, newest first by seq: those of every interaction it
-- has held, whenever written. An agent's search reads its own here when a word is in too
-- many messages of others to look up in the index.
CREATE TABLE search_held (
    agent_id TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (agent_id, seq)
) WITHOUT ROWID;
CREATE TRIGGER search_held_holder AFTER INSERT ON interaction_holders
BEGIN
    INSERT OR IGNORE INTO search_held (agent_id, seq)
    SELECT new.agent_id, seq FROM history
    WHERE interaction_id = new.interaction_id
      AND kind IN ('interaction_received', 'email_received', 'email_sent', 'chat', 'note',
                   'transferred', 'completed');
END;

INSERT OR IGNORE INTO interaction_holders (agent_id, interaction_id, customer_id)
SELECT agent_id, id, customer_id FROM interactions
WHERE agent_id IS NOT NULL AND state IN ('assigned', 'completed');
-- Those who held one before it moved on: the history names them.
INSERT OR IGNORE INTO interaction_holders (agent_id, interaction_id, customer_id)
SELECT json_extract(h.data, '$.agent_id'), i.id, i.customer_id
FROM history h JOIN interactions i ON i.id = h.interaction_id
WHERE h.kind = 'assigned' AND json_valid(h.data) AND json_type(h.data, '$.agent_id') = 'text';
INSERT OR IGNORE INTO interaction_holders (agent_id, interaction_id, customer_id)
SELECT json_extract(h.data, '$.to'), i.id, i.customer_id
FROM history h JOIN interactions i ON i.id = h.interaction_id
WHERE h.kind = 'moved' AND json_valid(h.data) AND json_type(h.data, '$.to') = 'text';

-- The words of a conversation, one document per history event, numbered by its seq: an
-- interaction's subject and body (with `interaction_received`), mail in and out, chat
-- messages both ways, internal notes, the note of a hand-over and the notes of a
-- completion. Each is read up to its first 20,000 characters.
CREATE VIEW search_documents AS
SELECT h.seq, h.interaction_id, h.kind, h.occurred_at,
       substr(CASE
           WHEN h.kind = 'interaction_received' THEN
               (SELECT trim(coalesce(i.subject, '') || char(10) || coalesce(i.body, ''))
                FROM interactions i WHERE i.id = h.interaction_id)
           WHEN NOT json_valid(h.data) THEN NULL
           WHEN h.kind = 'transferred' THEN
               CASE WHEN json_type(h.data, '$.note') = 'text' THEN json_extract(h.data, '$.note') END
           WHEN h.kind = 'completed' THEN
               CASE WHEN json_type(h.data, '$.notes') = 'text' THEN json_extract(h.data, '$.notes') END
           WHEN json_type(h.data, '$.text') = 'text' THEN json_extract(h.data, '$.text')
       END, 1, 20000) AS text
FROM history h
WHERE h.kind IN ('interaction_received', 'email_received', 'email_sent', 'chat', 'note',
                 'transferred', 'completed')
  AND h.interaction_id IS NOT NULL;

-- The index of those documents. Contentless: the words stay in the history and the
-- interactions, the index holds only their trigrams; its rowid is the event's seq.
CREATE VIRTUAL TABLE search_index USING fts5(text, content='', tokenize='trigram');
CREATE TRIGGER search_index_add AFTER INSERT ON history
WHEN new.kind IN ('interaction_received', 'email_received', 'email_sent', 'chat', 'note',
                  'transferred', 'completed')
  AND new.interaction_id IS NOT NULL
BEGIN
    INSERT INTO search_index (rowid, text)
    SELECT seq, text FROM search_documents WHERE seq = new.seq AND text <> '';
    INSERT OR IGNORE INTO search_held (agent_id, seq)
    SELECT agent_id, new.seq FROM interaction_holders WHERE interaction_id = new.interaction_id;
END;
INSERT INTO search_index (rowid, text)
SELECT seq, text FROM search_documents WHERE text <> '';

-- Customers' names and identities (emails, phone numbers, CRM ids; not chat visitors'
-- random ids), one term a row: the trigram index finds any part of three characters or
-- more, the NOCASE index the terms that begin with a shorter query.
CREATE TABLE search_customer_terms (
    id          INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL COLLATE NOCASE
);
CREATE INDEX search_customer_terms_customer ON search_customer_terms(customer_id);
CREATE INDEX search_customer_terms_text ON search_customer_terms(text);
CREATE VIRTUAL TABLE search_customers USING fts5(
    text, content='search_customer_terms', content_rowid='id', tokenize='trigram'
);
CREATE TRIGGER search_customer_terms_insert AFTER INSERT ON search_customer_terms
BEGIN
    INSERT INTO search_customers (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER search_customer_terms_delete AFTER DELETE ON search_customer_terms
BEGIN
    INSERT INTO search_customers (search_customers, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER search_customer_terms_update AFTER UPDATE ON search_customer_terms
BEGIN
    INSERT INTO search_customers (search_customers, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO search_customers (rowid, text) VALUES (new.id, new.text);
END;

CREATE TRIGGER customers_search_insert AFTER INSERT ON customers
WHEN new.name IS NOT NULL AND new.name <> ''
BEGIN
    INSERT INTO search_customer_terms (customer_id, kind, text) VALUES (new.id, 'name', new.name);
END;
CREATE TRIGGER customers_search_rename AFTER UPDATE OF name ON customers
WHEN new.name IS NOT old.name
BEGIN
    DELETE FROM search_customer_terms WHERE customer_id = old.id AND kind = 'name';
    INSERT INTO search_customer_terms (customer_id, kind, text)
    SELECT new.id, 'name', new.name WHERE new.name IS NOT NULL AND new.name <> '';
END;
CREATE TRIGGER customers_search_delete AFTER DELETE ON customers
BEGIN
    DELETE FROM search_customer_terms WHERE customer_id = old.id;
END;
CREATE TRIGGER customer_identities_search_insert AFTER INSERT ON customer_identities
WHEN new.kind <> 'visitor_id'
BEGIN
    INSERT INTO search_customer_terms (customer_id, kind, text)
    VALUES (new.customer_id, new.kind, new.value);
END;
CREATE TRIGGER customer_identities_search_delete AFTER DELETE ON customer_identities
WHEN old.kind <> 'visitor_id'
BEGIN
    DELETE FROM search_customer_terms
    WHERE customer_id = old.customer_id AND kind = old.kind AND text = old.value COLLATE BINARY;
END;
-- A merge moves identities to the surviving customer.
CREATE TRIGGER customer_identities_search_update AFTER UPDATE ON customer_identities
WHEN old.kind <> 'visitor_id'
BEGIN
    UPDATE search_customer_terms SET customer_id = new.customer_id, kind = new.kind, text = new.value
    WHERE customer_id = old.customer_id AND kind = old.kind AND text = old.value COLLATE BINARY;
END;
INSERT INTO search_customer_terms (customer_id, kind, text)
SELECT id, 'name', name FROM customers WHERE name IS NOT NULL AND name <> '';
INSERT INTO search_customer_terms (customer_id, kind, text)
SELECT customer_id, kind, value FROM customer_identities WHERE kind <> 'visitor_id';
