-- S3 targets: one row per batch of an S3 integration. Exactly one batch per integration is
-- open (events append to it; membership is deliveries.batch_id = s3_batches.id, which the
-- events view turns into the object key); closing fixes the object key and makes the batch
-- due for upload; uploaded and failed are final.
CREATE TABLE s3_batches (
    tenant_id          TEXT NOT NULL,
    id                 TEXT NOT NULL,           -- s3b_<ulid>
    integration_id     TEXT NOT NULL,
    seq                INTEGER NOT NULL,        -- per integration, 1, 2, 3...
    state              TEXT NOT NULL,           -- open | closing | uploaded | failed
    bytes              INTEGER NOT NULL DEFAULT 0,  -- uncompressed JSON Lines
    count              INTEGER NOT NULL DEFAULT 0,
    first_published_at INTEGER,
    object_key         TEXT,
    compression        TEXT,
    object_bytes       INTEGER,                 -- as stored (after compression)
    opened_at          INTEGER NOT NULL,
    closed_at          INTEGER,
    uploaded_at        INTEGER,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER,
    first_attempt_at   INTEGER,
    last_attempt_at    INTEGER,
    last_status        INTEGER,
    last_error         TEXT,
    upload_id          TEXT,                    -- multipart upload in progress (to abort)
    lease_owner        TEXT,
    lease_until        INTEGER,
    task_id            TEXT,                    -- the s3_upload task once an alert was recorded
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX s3_batches_seq ON s3_batches (tenant_id, integration_id, seq);
CREATE UNIQUE INDEX s3_batches_open ON s3_batches (tenant_id, integration_id)
    WHERE state = 'open';
CREATE INDEX s3_batches_due ON s3_batches (tenant_id, integration_id, next_attempt_at)
    WHERE state = 'closing';
CREATE INDEX deliveries_batch ON deliveries (tenant_id, integration_id, batch_id)
    WHERE batch_id IS NOT NULL;

CREATE TABLE s3_batch_attempts (
    tenant_id   TEXT NOT NULL,
    batch_id    TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    node_id     TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status      INTEGER,
    error       TEXT,
    PRIMARY KEY (tenant_id, batch_id, attempt)
);
