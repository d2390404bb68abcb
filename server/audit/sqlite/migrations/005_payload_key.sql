-- The id of the key this log's payload hashes are keyed with
-- (audit.PayloadKey.ID: the first 16 bytes of HMAC-SHA-256(key,
-- "tollgate-payload-key-id")), bound by the first start with a key. A start
-- with another key, or with a lost key file, is refused, since retries of the
-- logged decisions would no longer be recognised. The id names the key without
-- revealing it; the key itself is kept apart from the database. IF NOT EXISTS:
-- a file whose user_version was set back (as migration tests do) keeps its binding.
CREATE TABLE IF NOT EXISTS payload_key (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    key_id   BLOB    NOT NULL,
    bound_at INTEGER NOT NULL -- unix nanoseconds
);
