-- The id of the key this log's payload hashes are keyed with
-- (audit.PayloadKey.ID: the first 16 bytes of HMAC-SHA-256(key,
-- "tollgate-payload-key-id")), bound by the first replica that starts with a
-- key. Every replica writing to this database must be given the same key file;
-- a start with another key is refused, since retries of the logged decisions
-- would no longer be recognised. The id names the key without revealing it.
CREATE TABLE payload_key (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    key_id   BYTEA   NOT NULL,
    bound_at BIGINT  NOT NULL -- unix nanoseconds
);
