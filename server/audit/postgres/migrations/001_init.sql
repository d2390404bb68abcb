-- Decision records of every replica's chain. body is the record's canonical
-- body (audit.Entry.Body: the JCS JSON its hash covers, hash left out), kept
-- as bytea so that no encoding conversion can change a byte the hash covers;
-- convert_from(body, 'UTF8')::jsonb reads it as JSON. The other columns are
-- indexes derived from body; Chain checks they still agree with it.
-- Identifiers compare bytewise (COLLATE "C"), as Go sorts them, whatever the
-- database's locale: page tokens and chain lists depend on the order.
CREATE TABLE records (
    decision_id       text COLLATE "C" PRIMARY KEY,
    chain_id          text COLLATE "C" NOT NULL,
    seq               bigint  NOT NULL,
    kind              integer NOT NULL,
    evaluated_at      bigint  NOT NULL, -- unix nanoseconds
    actor_id          text    NOT NULL,
    action            text    NOT NULL,
    resource_type     text    NOT NULL,
    resource_id       text    NOT NULL,
    effect            integer NOT NULL,
    bundle_revision   text    NOT NULL,
    workflow_id       text    NOT NULL,
    idempotency_key   text    NOT NULL,
    -- audit.IdempotencyScope of the record: the caller's name; '' without a key.
    idempotency_scope text    NOT NULL,
    hash              bytea   NOT NULL,
    body              bytea   NOT NULL,
    UNIQUE (chain_id, seq)
);

-- Every List filter: its column, then time.
CREATE INDEX records_time          ON records (evaluated_at, decision_id);
CREATE INDEX records_actor         ON records (actor_id, evaluated_at);
CREATE INDEX records_action        ON records (action, evaluated_at);
CREATE INDEX records_resource_type ON records (resource_type, evaluated_at);
CREATE INDEX records_resource_id   ON records (resource_id, evaluated_at);
CREATE INDEX records_effect        ON records (effect, evaluated_at);
CREATE INDEX records_bundle        ON records (bundle_revision, evaluated_at);
CREATE INDEX records_workflow      ON records (workflow_id, evaluated_at) WHERE workflow_id <> '';

-- One decision per (scope, key) across every chain, so across every replica
-- writing to this database; replay markers (kind 2) repeat the key.
CREATE UNIQUE INDEX records_idempotency ON records (idempotency_scope, idempotency_key)
    WHERE idempotency_key <> '' AND kind = 1;

-- Reason codes of each record, for the reason_code filter.
CREATE TABLE record_reasons (
    code        text NOT NULL,
    decision_id text COLLATE "C" NOT NULL REFERENCES records (decision_id),
    PRIMARY KEY (code, decision_id)
);

-- The head of each chain, moved in the same transaction as its records, so
-- Verify can tell a truncated tail from a short chain.
CREATE TABLE chain_heads (
    chain_id text COLLATE "C" PRIMARY KEY,
    seq      bigint NOT NULL,
    hash     bytea  NOT NULL
);

-- Activated bundles by revision, content-addressed by the SHA-256 of data.
CREATE TABLE bundles (
    revision     text   PRIMARY KEY,
    digest       text   NOT NULL,
    data         bytea  NOT NULL,
    activated_at bigint NOT NULL
);

-- Written by Ping to prove the database takes write transactions.
CREATE TABLE heartbeat (
    id integer PRIMARY KEY CHECK (id = 1),
    at bigint  NOT NULL
);
