-- Reads at scale (the console at a million events): an index for each filter of an
-- integration's View Events, and counters kept as the rows change instead of counted at
-- read time (an integration's stats, /v1/stats). The SQLite file has the same shape.
--
-- instr(haystack, needle) as SQLite has it, so one query text serves both databases.
CREATE FUNCTION instr(text, text) RETURNS integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS 'SELECT strpos($1, $2)';
-- A delivery's status class (succeeded | failed | rejected | skipped, and pending for every
-- unfinished state), then the newest first. Queries repeat this exact expression.
CREATE INDEX deliveries_status ON deliveries (tenant_id, integration_id,
    (CASE WHEN state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN state ELSE 'pending' END), id);
-- The Domain Entity ID filter: entity_key is "<entity>/<entity id>" and an entity never
-- holds a slash.
CREATE INDEX deliveries_entity_id ON deliveries (tenant_id, integration_id,
    substr(entity_key, instr(entity_key, '/') + 1), id);

-- An integration's rejected events, newest rejection first (the rejected-events view).
CREATE INDEX deliveries_rejected ON deliveries (tenant_id, integration_id, finished_at, id)
    WHERE state = 'rejected';
-- The oldest unfinished delivery of a tenant (/v1/stats' oldest_pending_at): one seek.
CREATE INDEX deliveries_unfinished_created ON deliveries (tenant_id, created_at)
    WHERE state IN ('waiting', 'held', 'pending', 'in_flight');

-- Deliveries per integration and status class; per minute (unix ms / 60000) events
-- published, alerts created and deliveries finished (kind: events | alerts | succeeded |
-- failed | rejected). shard: each writing connection (backend) adds to its own rows, so
-- nodes never wait on each other's counter rows; reads sum the shards.
CREATE TABLE delivery_counts (
    tenant_id      TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    status         TEXT NOT NULL,
    shard          INTEGER NOT NULL,
    n              BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, integration_id, status, shard)
);
CREATE TABLE stats_minutes (
    tenant_id TEXT NOT NULL,
    minute    BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    shard     INTEGER NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, minute, kind, shard)
);

INSERT INTO delivery_counts (tenant_id, integration_id, status, shard, n)
    SELECT tenant_id, integration_id,
           CASE WHEN state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN state ELSE 'pending' END,
           0, COUNT(*)
    FROM deliveries GROUP BY 1, 2, 3;
INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
    SELECT tenant_id, published_at / 60000, 'events', 0, COUNT(*) FROM events GROUP BY 1, 2;
INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
    SELECT tenant_id, created_at / 60000, 'alerts', 0, COUNT(*) FROM alerts GROUP BY 1, 2;
INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
    SELECT tenant_id, finished_at / 60000, state, 0, COUNT(*) FROM deliveries
    WHERE state IN ('succeeded', 'failed', 'rejected') AND finished_at IS NOT NULL GROUP BY 1, 2, 3;

-- Statement-level triggers with transition tables: one aggregated upsert per statement
-- (the writer's statements are set-based), not one per row. A trigger hands every changed
-- row as a counter row of n = -1 (the old row) or +1 (the new one); these functions add the
-- net change per key, keys in a fixed order.
CREATE FUNCTION sluice_count_stats(d stats_minutes[]) RETURNS void LANGUAGE sql AS $f$
    INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
        SELECT tenant_id, minute, kind, pg_backend_pid() % 1024, SUM(n)
        FROM unnest(d) GROUP BY 1, 2, 3 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = stats_minutes.n + excluded.n;
$f$;
CREATE FUNCTION sluice_count_deliveries(d delivery_counts[]) RETURNS void LANGUAGE sql AS $f$
    INSERT INTO delivery_counts (tenant_id, integration_id, status, shard, n)
        SELECT tenant_id, integration_id, status, pg_backend_pid() % 1024, SUM(n)
        FROM unnest(d) GROUP BY 1, 2, 3 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (tenant_id, integration_id, status, shard) DO UPDATE SET n = delivery_counts.n + excluded.n;
$f$;

CREATE FUNCTION sluice_events_counted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM sluice_count_stats(ARRAY(SELECT
            ROW(tenant_id, published_at / 60000, 'events', 0, 1)::stats_minutes FROM new_rows));
    ELSE
        PERFORM sluice_count_stats(ARRAY(SELECT
            ROW(tenant_id, published_at / 60000, 'events', 0, -1)::stats_minutes FROM old_rows));
    END IF;
    RETURN NULL;
END $f$;
CREATE TRIGGER events_count_ins AFTER INSERT ON events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_events_counted();
CREATE TRIGGER events_count_del AFTER DELETE ON events REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_events_counted();

CREATE FUNCTION sluice_alerts_counted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM sluice_count_stats(ARRAY(SELECT
            ROW(tenant_id, created_at / 60000, 'alerts', 0, 1)::stats_minutes FROM new_rows));
    ELSE
        PERFORM sluice_count_stats(ARRAY(SELECT
            ROW(tenant_id, created_at / 60000, 'alerts', 0, -1)::stats_minutes FROM old_rows));
    END IF;
    RETURN NULL;
END $f$;
CREATE TRIGGER alerts_count_ins AFTER INSERT ON alerts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_alerts_counted();
CREATE TRIGGER alerts_count_del AFTER DELETE ON alerts REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_alerts_counted();

-- One function for the three events of deliveries (a transition table the event does not
-- have is never read).
CREATE FUNCTION sluice_deliveries_counted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM sluice_count_deliveries(ARRAY(SELECT
            ROW(tenant_id, integration_id, CASE WHEN state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN state ELSE 'pending' END, 0, 1)::delivery_counts
            FROM new_rows));
        PERFORM sluice_count_stats(ARRAY(SELECT
            ROW(tenant_id, finished_at / 60000, state, 0, 1)::stats_minutes
            FROM new_rows WHERE state IN ('succeeded', 'failed', 'rejected') AND finished_at IS NOT NULL));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM sluice_count_deliveries(ARRAY(SELECT
            ROW(tenant_id, integration_id, CASE WHEN state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN state ELSE 'pending' END, 0, -1)::delivery_counts
            FROM old_rows));
        PERFORM sluice_count_stats(ARRAY(SELECT
            ROW(tenant_id, finished_at / 60000, state, 0, -1)::stats_minutes
            FROM old_rows WHERE state IN ('succeeded', 'failed', 'rejected') AND finished_at IS NOT NULL));
    ELSE
        PERFORM sluice_count_deliveries(ARRAY(
            SELECT ROW(tenant_id, integration_id, CASE WHEN state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN state ELSE 'pending' END, 0, -1)::delivery_counts
            FROM old_rows
            UNION ALL
            SELECT ROW(tenant_id, integration_id, CASE WHEN state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN state ELSE 'pending' END, 0, 1)::delivery_counts
            FROM new_rows));
        PERFORM sluice_count_stats(ARRAY(
            SELECT ROW(tenant_id, finished_at / 60000, state, 0, -1)::stats_minutes
            FROM old_rows WHERE state IN ('succeeded', 'failed', 'rejected') AND finished_at IS NOT NULL
            UNION ALL
            SELECT ROW(tenant_id, finished_at / 60000, state, 0, 1)::stats_minutes
            FROM new_rows WHERE state IN ('succeeded', 'failed', 'rejected') AND finished_at IS NOT NULL));
    END IF;
    RETURN NULL;
END $f$;
CREATE TRIGGER deliveries_count_ins AFTER INSERT ON deliveries REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_deliveries_counted();
CREATE TRIGGER deliveries_count_upd AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_deliveries_counted();
CREATE TRIGGER deliveries_count_del AFTER DELETE ON deliveries REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_deliveries_counted();
