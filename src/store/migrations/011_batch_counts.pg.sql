-- S3 batch outcomes keep the counters set-based (see 011_batch_counts.sqlite.sql). On
-- PostgreSQL the counter triggers of migration 008 are statement-level with transition
-- tables, so a batch's outcome already counts once per statement: nothing changes here.
SELECT 1;
