-- Idempotency keys are unique per caller, not globally: a second caller
-- sending the same key makes its own decision instead of taking over the
-- first caller's (issue 11). idempotency_scope is audit.IdempotencyScope of
-- the record: the caller's name, the text of its caller field before the
-- first " (mtls)", " (token)" or " (open)"; '' without a key. Like every
-- other column it is derived from the body, and Chain checks it still agrees.
ALTER TABLE records ADD COLUMN idempotency_scope TEXT NOT NULL DEFAULT '';

-- Existing keyed rows get their scope from the caller stored in their body,
-- by the same rule (instr and substr count characters alike).
WITH callers AS (
    SELECT decision_id, coalesce(json_extract(body, '$.caller'), '') AS caller
    FROM records WHERE idempotency_key <> ''
), cuts AS (
    SELECT decision_id, caller, min(
        coalesce(nullif(instr(caller, ' (mtls)'), 0), 1099511627776),
        coalesce(nullif(instr(caller, ' (token)'), 0), 1099511627776),
        coalesce(nullif(instr(caller, ' (open)'), 0), 1099511627776)) AS at
    FROM callers
)
UPDATE records SET idempotency_scope = (
    SELECT CASE WHEN at = 1099511627776 THEN '' ELSE substr(caller, 1, at - 1) END
    FROM cuts WHERE cuts.decision_id = records.decision_id)
WHERE idempotency_key <> '';

-- One decision per (scope, key); replay markers (kind 2) repeat the key.
DROP INDEX records_idempotency;
CREATE UNIQUE INDEX records_idempotency ON records (idempotency_scope, idempotency_key) WHERE idempotency_key <> '' AND kind = 1;
