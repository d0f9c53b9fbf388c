-- On PostgreSQL this makes the counters' statement-level triggers cheaper (see
-- 014_counter_triggers.pg.sql). SQLite's counters are row triggers of plain SQL, planned
-- once with their statement: nothing to do here.
SELECT 1;
