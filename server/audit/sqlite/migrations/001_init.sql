-- Decision records. body is the record's protojson form (proto field names,
-- hash included): the source of truth that Get, List and Verify decode, and
-- queryable with SQLite's JSON functions. The other columns are
-- indexes derived from body; Chain checks they still agree with it.
CREATE TABLE records (
    decision_id     TEXT    PRIMARY KEY,
    chain_id        TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    kind            INTEGER NOT NULL,
    evaluated_at    INTEGER NOT NULL, -- unix nanoseconds
    actor_id        TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    resource_type   TEXT    NOT NULL,
    resource_id     TEXT    NOT NULL,
    effect          INTEGER NOT NULL,
    bundle_revision TEXT    NOT NULL,
    workflow_id     TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    hash            BLOB    NOT NULL,
    body            TEXT    NOT NULL,
    UNIQUE (chain_id, seq)
);

CREATE INDEX records_time     ON records (evaluated_at, decision_id);
CREATE INDEX records_actor    ON records (actor_id, evaluated_at, decision_id);
CREATE INDEX records_action   ON records (action, evaluated_at, decision_id);
CREATE INDEX records_resource ON records (resource_type, resource_id, evaluated_at, decision_id);
CREATE INDEX records_effect   ON records (effect, evaluated_at, decision_id);
CREATE INDEX records_bundle   ON records (bundle_revision, evaluated_at, decision_id);
CREATE INDEX records_workflow ON records (workflow_id, evaluated_at, decision_id) WHERE workflow_id <> '';
-- One decision per idempotency key; replay markers (kind 2) repeat the key.
CREATE UNIQUE INDEX records_idempotency ON records (idempotency_key) WHERE idempotency_key <> '' AND kind = 1;

-- Reason codes of each record, for the reason_code filter.
CREATE TABLE record_reasons (
    code        TEXT NOT NULL,
    decision_id TEXT NOT NULL REFERENCES records (decision_id),
    PRIMARY KEY (code, decision_id)
) WITHOUT ROWID;

-- The head of each chain, moved in the same transaction as its records, so
-- Verify can tell a truncated tail from a short chain.
CREATE TABLE chain_heads (
    chain_id TEXT    PRIMARY KEY,
    seq      INTEGER NOT NULL,
    hash     BLOB    NOT NULL
);

-- Activated bundles by revision, content-addressed by the SHA-256 of data.
CREATE TABLE bundles (
    revision     TEXT    PRIMARY KEY,
    digest       TEXT    NOT NULL,
    data         BLOB    NOT NULL,
    activated_at INTEGER NOT NULL
);

-- Written by Ping to prove the database takes write transactions.
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
