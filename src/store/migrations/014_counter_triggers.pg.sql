-- The counters' triggers (migration 008), cheaper: each is one INSERT … ON CONFLICT per
-- counter table, straight from the transition tables, inside the PL/pgSQL function, whose
-- statements keep their plans for the session. Before, every trigger built arrays and
-- called SQL functions, which PostgreSQL plans again on every call: on a claim of a
-- delivery or two (a change that moves no counter at all) the trigger took more than half
-- of the statement's time. The counts are the same as before: +1 per new row, -1 per old
-- row, summed per key, zero sums not written.
CREATE OR REPLACE FUNCTION sluice_deliveries_counted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO delivery_counts (tenant_id, integration_id, status, shard, n)
            SELECT tenant_id, integration_id,
                   CASE WHEN state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN state ELSE 'pending' END,
                   pg_backend_pid() % 1024, COUNT(*)
            FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (tenant_id, integration_id, status, shard) DO UPDATE SET n = delivery_counts.n + excluded.n;
        INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
            SELECT tenant_id, finished_at / 60000, state, pg_backend_pid() % 1024, COUNT(*)
            FROM new_rows WHERE state IN ('succeeded', 'failed', 'rejected') AND finished_at IS NOT NULL
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = stats_minutes.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO delivery_counts (tenant_id, integration_id, status, shard, n)
            SELECT tenant_id, integration_id,
                   CASE WHEN state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN state ELSE 'pending' END,
                   pg_backend_pid() % 1024, -COUNT(*)
            FROM old_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (tenant_id, integration_id, status, shard) DO UPDATE SET n = delivery_counts.n + excluded.n;
        INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
            SELECT tenant_id, finished_at / 60000, state, pg_backend_pid() % 1024, -COUNT(*)
            FROM old_rows WHERE state IN ('succeeded', 'failed', 'rejected') AND finished_at IS NOT NULL
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = stats_minutes.n + excluded.n;
    ELSE
        -- A row's status class or finish that changed: -1 for its old key, +1 for its new.
        INSERT INTO delivery_counts (tenant_id, integration_id, status, shard, n)
            SELECT tenant_id, integration_id, status, pg_backend_pid() % 1024, SUM(n) FROM (
                SELECT tenant_id, integration_id,
                       CASE WHEN state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN state ELSE 'pending' END AS status,
                       -1 AS n
                FROM old_rows
                UNION ALL
                SELECT tenant_id, integration_id,
                       CASE WHEN state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN state ELSE 'pending' END,
                       1
                FROM new_rows) AS c
            GROUP BY 1, 2, 3 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT (tenant_id, integration_id, status, shard) DO UPDATE SET n = delivery_counts.n + excluded.n;
        INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
            SELECT tenant_id, minute, kind, pg_backend_pid() % 1024, SUM(n) FROM (
                SELECT tenant_id, finished_at / 60000 AS minute, state AS kind, -1 AS n
                FROM old_rows WHERE state IN ('succeeded', 'failed', 'rejected') AND finished_at IS NOT NULL
                UNION ALL
                SELECT tenant_id, finished_at / 60000, state, 1
                FROM new_rows WHERE state IN ('succeeded', 'failed', 'rejected') AND finished_at IS NOT NULL) AS c
            GROUP BY 1, 2, 3 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = stats_minutes.n + excluded.n;
    END IF;
    RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION sluice_events_counted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
            SELECT tenant_id, published_at / 60000, 'events', pg_backend_pid() % 1024, COUNT(*)
            FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
            ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = stats_minutes.n + excluded.n;
    ELSE
        INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
            SELECT tenant_id, published_at / 60000, 'events', pg_backend_pid() % 1024, -COUNT(*)
            FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
            ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = stats_minutes.n + excluded.n;
    END IF;
    RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION sluice_alerts_counted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
            SELECT tenant_id, created_at / 60000, 'alerts', pg_backend_pid() % 1024, COUNT(*)
            FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
            ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = stats_minutes.n + excluded.n;
    ELSE
        INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
            SELECT tenant_id, created_at / 60000, 'alerts', pg_backend_pid() % 1024, -COUNT(*)
            FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
            ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = stats_minutes.n + excluded.n;
    END IF;
    RETURN NULL;
END $f$;

DROP FUNCTION sluice_count_deliveries(delivery_counts[]);
DROP FUNCTION sluice_count_stats(stats_minutes[]);
