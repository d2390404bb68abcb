-- Fewer index pages per appended record (issue 17): record_reasons had two
-- B-tree indexes, its primary key (code, decision_id) and record_reasons_time
-- (code, evaluated_at), so every reason code of every record was inserted into
-- both. Keyed (code, evaluated_at, decision_id) one index serves the
-- reason_code filter with and without a time range, and the key stays unique
-- per (code, decision_id), since a decision has one evaluated_at, so
-- insertReasons' ON CONFLICT DO NOTHING still drops a code listed twice.
ALTER TABLE record_reasons DROP CONSTRAINT IF EXISTS record_reasons_pkey;
ALTER TABLE record_reasons ADD CONSTRAINT record_reasons_pkey PRIMARY KEY (code, evaluated_at, decision_id);
DROP INDEX IF EXISTS record_reasons_time;
