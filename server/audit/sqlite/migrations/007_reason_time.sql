-- The reason_code filter of List with a time range (issue 15): record_reasons
-- gets each record's evaluated_at and an index on (code, evaluated_at), so a
-- reason over a range is a range scan instead of every record with the code.
-- SQLite cannot add a NOT NULL column without a default, so the table is
-- rebuilt from records; run again, it rebuilds the same table.
CREATE TABLE record_reasons_by_time (
    code         TEXT    NOT NULL,
    decision_id  TEXT    NOT NULL REFERENCES records (decision_id),
    evaluated_at INTEGER NOT NULL, -- unix nanoseconds, the record's
    PRIMARY KEY (code, decision_id)
) WITHOUT ROWID;
INSERT INTO record_reasons_by_time (code, decision_id, evaluated_at)
    SELECT rr.code, rr.decision_id, r.evaluated_at FROM record_reasons rr JOIN records r ON r.decision_id = rr.decision_id;
DROP TABLE record_reasons;
ALTER TABLE record_reasons_by_time RENAME TO record_reasons;
CREATE INDEX record_reasons_time ON record_reasons (code, evaluated_at);
