-- Reads at scale (the console at a million events): an index for each filter of an
-- integration's View Events, and counters kept as the rows change instead of counted at
-- read time (an integration's stats, /v1/stats).
--
-- The status filter: a delivery's status class (succeeded | failed | rejected | skipped, and
-- pending for every unfinished state), then the newest first. The queries repeat this exact
-- expression so the planner uses the index.
CREATE INDEX deliveries_status ON deliveries (tenant_id, integration_id,
    (CASE WHEN state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN state ELSE 'pending' END), id);
-- The Domain Entity ID filter: entity_key is "<entity>/<entity id>" and an entity (the part
-- of an event type before the dot) never holds a slash, so the entity id is what follows the
-- first slash.
CREATE INDEX deliveries_entity_id ON deliveries (tenant_id, integration_id,
    substr(entity_key, instr(entity_key, '/') + 1), id);

-- An integration's rejected events, newest rejection first (the rejected-events view).
CREATE INDEX deliveries_rejected ON deliveries (tenant_id, integration_id, finished_at, id)
    WHERE state = 'rejected';
-- The oldest unfinished delivery of a tenant (/v1/stats' oldest_pending_at): one seek.
CREATE INDEX deliveries_unfinished_created ON deliveries (tenant_id, created_at)
    WHERE state IN ('waiting', 'held', 'pending', 'in_flight');

-- Deliveries per integration and status class (an integration's stats). shard is always 0
-- on SQLite (one writer); on PostgreSQL each writing connection has its own rows, so nodes
-- never wait on each other's counter rows. A read sums the shards.
CREATE TABLE delivery_counts (
    tenant_id      TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    status         TEXT NOT NULL,
    shard          INTEGER NOT NULL,
    n              INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, integration_id, status, shard)
);
-- Per minute (unix ms / 60000): events published, alerts created and deliveries finished
-- (kind: events | alerts | succeeded | failed | rejected), what /v1/stats sums per bucket.
CREATE TABLE stats_minutes (
    tenant_id TEXT NOT NULL,
    minute    INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    shard     INTEGER NOT NULL,
    n         INTEGER NOT NULL,
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

-- The triggers keep both tables exact through every write path (publish, claim, outcome,
-- pause and resume, redelivery, retention, deletion). Each fires only when a counted value
-- changes. The update triggers are declared on finished_at: every statement that moves a
-- delivery out of the pending class (succeeded, failed, rejected, skipped) sets finished_at,
-- and the statements that move deliveries within it (claims, batch joins, retries, holds,
-- resumes, lease returns) do not name it, so SQLite runs them with no trigger program and
-- no statement journal (with one, S3 batch joins ran about 3x slower).
CREATE TRIGGER events_count_ins AFTER INSERT ON events BEGIN
    INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
        VALUES (new.tenant_id, new.published_at / 60000, 'events', 0, 1)
        ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER events_count_del AFTER DELETE ON events BEGIN
    UPDATE stats_minutes SET n = n - 1 WHERE tenant_id = old.tenant_id
        AND minute = old.published_at / 60000 AND kind = 'events' AND shard = 0;
END;
CREATE TRIGGER alerts_count_ins AFTER INSERT ON alerts BEGIN
    INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
        VALUES (new.tenant_id, new.created_at / 60000, 'alerts', 0, 1)
        ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER alerts_count_del AFTER DELETE ON alerts BEGIN
    UPDATE stats_minutes SET n = n - 1 WHERE tenant_id = old.tenant_id
        AND minute = old.created_at / 60000 AND kind = 'alerts' AND shard = 0;
END;

CREATE TRIGGER deliveries_count_ins AFTER INSERT ON deliveries BEGIN
    INSERT INTO delivery_counts (tenant_id, integration_id, status, shard, n)
        VALUES (new.tenant_id, new.integration_id,
                CASE WHEN new.state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN new.state ELSE 'pending' END,
                0, 1)
        ON CONFLICT (tenant_id, integration_id, status, shard) DO UPDATE SET n = n + 1;
    INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n)
        SELECT new.tenant_id, new.finished_at / 60000, new.state, 0, 1
        WHERE new.state IN ('succeeded', 'failed', 'rejected') AND new.finished_at IS NOT NULL
        ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_count_upd AFTER UPDATE OF finished_at ON deliveries
WHEN (CASE WHEN old.state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN old.state ELSE 'pending' END)
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
WHEN (old.state IS NOT new.state OR old.finished_at IS NOT new.finished_at)
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
CREATE TRIGGER deliveries_count_del AFTER DELETE ON deliveries BEGIN
    UPDATE delivery_counts SET n = n - 1 WHERE tenant_id = old.tenant_id
        AND integration_id = old.integration_id AND shard = 0
        AND status = (CASE WHEN old.state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN old.state ELSE 'pending' END);
    UPDATE stats_minutes SET n = n - 1 WHERE tenant_id = old.tenant_id
        AND minute = old.finished_at / 60000 AND kind = old.state AND shard = 0
        AND old.state IN ('succeeded', 'failed', 'rejected') AND old.finished_at IS NOT NULL;
END;
