-- S3 batch outcomes keep the counters set-based. A batch's members (deliveries with a
-- batch_id) are finished only by the batch's outcome (deliveries_batch_attempt: one UPDATE
-- for the whole batch), which now adds its counts to delivery_counts and stats_minutes
-- itself, once per batch. The two update triggers of migration 008 therefore skip rows
-- that belong to a batch; with them, a 25 MB batch of ~37k members ran ~4 statements of
-- trigger program per member (about 60 % of the outcome's time).
DROP TRIGGER deliveries_count_upd;
DROP TRIGGER deliveries_finished_upd;
CREATE TRIGGER deliveries_count_upd AFTER UPDATE OF finished_at ON deliveries
WHEN new.batch_id IS NULL
 AND (CASE WHEN old.state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN old.state ELSE 'pending' END)
  <> (CASE WHEN new.state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN new.state ELSE 'pending' END)
BEGIN
    UPDATE delivery_counts SET n = n - 1 WHERE tenant_id = old.tenant_id
        AND integration_id = old.integration_id AND shard = 0
        AND status = (CASE WHEN old.state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN old.state ELSE 'pending' END);
    INSERT INTO delivery_counts (tenant_id, integration_id, status, shard, n)
        VALUES (new.tenant_id, new.integration_id,
                CASE WHEN new.state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN new.state ELSE 'pending' END,
                0, 1)
        ON CONFLICT (tenant_id, integration_id, status, shard) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_finished_upd AFTER UPDATE OF finished_at ON deliveries
WHEN new.batch_id IS NULL
 AND (old.state IS NOT new.state OR old.finished_at IS NOT new.finished_at)
 AND ((old.state IN ('succeeded', 'failed', 'rejected') AND old.finished_at IS NOT NULL)
   OR (new.state IN ('succeeded', 'failed', 'rejected') AND new.finished_at IS NOT NULL))
BEGIN
    UPDATE stats_minutes SET n = n - 1 WHERE tenant_id = old.tenant_id
        AND minute = old.finished_at / 60000 AND kind = old.state AND shard = 0
        AND old.state IN ('succeeded', 'failed', 'rejected') AND old.finished_at IS NOT NULL;
    INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
        SELECT new.tenant_id, new.finished_at / 60000, new.state, 0, 1
        WHERE new.state IN ('succeeded', 'failed', 'rejected') AND new.finished_at IS NOT NULL
        ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = n + 1;
END;
