-- The core: customers and their identities, value data, interactions (the durable
-- queue is the interactions in state 'queued'), and the append-only history.
-- Times are milliseconds since the Unix epoch; money is in cents.

CREATE TABLE customers (
    id                   TEXT PRIMARY KEY,
    name                 TEXT,
    explicit_tier        TEXT,
    lifetime_value_cents BIGINT,
    merged_into          TEXT REFERENCES customers(id),
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX customers_merged_into ON customers(merged_into);

CREATE TABLE customer_identities (
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX customer_identities_customer ON customer_identities(customer_id);

CREATE TABLE purchases (
    customer_id  TEXT NOT NULL REFERENCES customers(id),
    purchase_ref TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    purchased_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, purchase_ref)
);

CREATE TABLE interactions (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    customer_id     TEXT NOT NULL REFERENCES customers(id),
    tier            TEXT NOT NULL,
    tier_source     TEXT NOT NULL,
    tier_reason     TEXT NOT NULL,
    topic           TEXT,
    subject         TEXT,
    body            TEXT,
    state           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (idempotency_key, channel)
);
CREATE INDEX interactions_state ON interactions(state, created_at);

CREATE TABLE history (
    seq            BIGSERIAL PRIMARY KEY,
    customer_id    TEXT NOT NULL,
    interaction_id TEXT,
    kind           TEXT NOT NULL,
    occurred_at    BIGINT NOT NULL,
    actor          TEXT NOT NULL,
    data           TEXT NOT NULL
);
CREATE INDEX history_customer ON history(customer_id, seq);
CREATE INDEX history_interaction ON history(interaction_id, seq);

-- The history is a record, not a working table: it is only ever appended to.
CREATE FUNCTION history_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'history is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON history
FOR EACH ROW EXECUTE FUNCTION history_append_only();
