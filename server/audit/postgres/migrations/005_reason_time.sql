-- The reason_code filter of List with a time range (issue 15): record_reasons
-- gets each record's evaluated_at and an index on (code, evaluated_at), so a
-- reason over a range is a range scan instead of every record with the code.
ALTER TABLE record_reasons ADD COLUMN IF NOT EXISTS evaluated_at bigint;
UPDATE record_reasons rr SET evaluated_at = r.evaluated_at FROM records r
    WHERE r.decision_id = rr.decision_id AND rr.evaluated_at IS NULL;
ALTER TABLE record_reasons ALTER COLUMN evaluated_at SET NOT NULL;
CREATE INDEX IF NOT EXISTS record_reasons_time ON record_reasons (code, evaluated_at);
