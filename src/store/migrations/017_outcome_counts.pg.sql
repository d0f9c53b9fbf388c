-- Webhook outcomes keep the counters set-based on SQLite (see
-- 017_outcome_counts.sqlite.sql). On PostgreSQL the counter triggers are statement-level
-- with transition tables (migrations 008 and 014), so an outcome already counts once per
-- statement: nothing changes here.
SELECT 1;
