-- Scale-out (src/sched/nodes.c): the nodes that share this database, the S3 batch writer of
-- each integration, and at most one pending digest per channel window across nodes.

-- One row per node id. A node writes its heartbeat (last_seen, on the database's clock)
-- every few seconds; one silent for longer than its own timeout_ms is dead, and any live
-- node gives its work back (released_at). A clean stop sets stopped_at.
CREATE TABLE nodes (
    id          TEXT PRIMARY KEY,
    incarnation TEXT NOT NULL,       -- a fresh id at every start of the node
    roles       TEXT NOT NULL,
    version     TEXT NOT NULL,
    host        TEXT NOT NULL,
    pid         BIGINT NOT NULL,
    timeout_ms  BIGINT NOT NULL,     -- the node's --node-timeout
    started_at  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    stopped_at  BIGINT,
    released_at BIGINT
);

-- The one node that appends to, closes and uploads an S3 integration's batches, under a
-- lease (deliver/s3_writer.c).
CREATE TABLE s3_writers (
    tenant_id      TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    node_id        TEXT NOT NULL,
    lease_until    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, integration_id)
);

-- Two nodes could each open a digest for the same window. Fold any such pair into the
-- first (its items move over), then let a unique index keep one pending digest per window.
INSERT INTO notification_items (tenant_id, notification_id, issue_id, kind, at)
SELECT i.tenant_id, f.first_id, i.issue_id, i.kind, i.at
FROM notification_items i
JOIN notifications n ON n.tenant_id = i.tenant_id AND n.id = i.notification_id
JOIN (SELECT tenant_id, channel_id, window_start, MIN(id) AS first_id FROM notifications
       WHERE batched = 1 AND state = 'pending' GROUP BY tenant_id, channel_id, window_start) f
  ON f.tenant_id = n.tenant_id AND f.channel_id = n.channel_id
 AND f.window_start = n.window_start
WHERE n.batched = 1 AND n.state = 'pending' AND n.id <> f.first_id
ON CONFLICT DO NOTHING;
DELETE FROM notification_items WHERE (tenant_id, notification_id) IN (
    SELECT n.tenant_id, n.id FROM notifications n
    WHERE n.batched = 1 AND n.state = 'pending' AND n.id <> (
        SELECT MIN(m.id) FROM notifications m
        WHERE m.tenant_id = n.tenant_id AND m.channel_id = n.channel_id
          AND m.window_start = n.window_start AND m.batched = 1 AND m.state = 'pending'));
DELETE FROM notifications WHERE (tenant_id, id) IN (
    SELECT n.tenant_id, n.id FROM notifications n
    WHERE n.batched = 1 AND n.state = 'pending' AND n.id <> (
        SELECT MIN(m.id) FROM notifications m
        WHERE m.tenant_id = n.tenant_id AND m.channel_id = n.channel_id
          AND m.window_start = n.window_start AND m.batched = 1 AND m.state = 'pending'));
CREATE UNIQUE INDEX notifications_window_pending ON notifications
    (tenant_id, channel_id, window_start) WHERE batched = 1 AND state = 'pending';
