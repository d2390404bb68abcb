-- Fewer index pages per appended record (issue 17): record_reasons was two
-- B-trees, its primary key (code, decision_id) and record_reasons_time
-- (code, evaluated_at), so every reason code of every record was inserted
-- twice. Keyed (code, evaluated_at, decision_id) it is one: the key serves
-- the reason_code filter with and without a time range, and stays unique
-- per (code, decision_id), since a decision has one evaluated_at, so
-- INSERT OR IGNORE still drops a code a record lists twice.
--
-- Its foreign key is declared checked at commit. Append used to ask for that
-- with PRAGMA defer_foreign_keys in every transaction, and a flag pragma
-- expires every prepared statement of the connection: each append parsed
-- all of its statements again.
CREATE TABLE record_reasons_one_tree (
    code         TEXT    NOT NULL,
    evaluated_at INTEGER NOT NULL, -- unix nanoseconds, the record's
    decision_id  TEXT    NOT NULL REFERENCES records (decision_id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (code, evaluated_at, decision_id)
) WITHOUT ROWID;
INSERT INTO record_reasons_one_tree (code, evaluated_at, decision_id)
    SELECT code, evaluated_at, decision_id FROM record_reasons;
DROP TABLE record_reasons;
ALTER TABLE record_reasons_one_tree RENAME TO record_reasons;
