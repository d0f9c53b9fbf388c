-- Event Stream: integrations, their logs, deliveries (the work queue) and attempts; the
-- alerts and tasks tables the alerting half extends.
CREATE TABLE integrations (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    id              TEXT NOT NULL,
    type            TEXT NOT NULL,           -- permanent | temporary
    start_at        INTEGER,
    end_at          INTEGER,
    state           TEXT NOT NULL,           -- active | paused | stopped
    paused_at       INTEGER,
    events          TEXT NOT NULL,           -- JSON array of subscriptions
    ordering        TEXT NOT NULL,           -- entity | none
    target_type     TEXT NOT NULL,           -- webhook | s3
    target          TEXT NOT NULL,           -- JSON; secrets sealed (AES-256-GCM)
    signing_secret  TEXT,                    -- sealed
    max_in_flight   INTEGER NOT NULL,
    failing_since   INTEGER,                 -- first failed attempt since the last success
    failing_count   INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER,
    lag_alerted_at  INTEGER,                 -- set while a lag alert stands
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX integrations_end ON integrations (end_at) WHERE end_at IS NOT NULL AND state <> 'stopped';

CREATE TABLE integration_logs (
    tenant_id      TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    id             TEXT NOT NULL,
    action         TEXT NOT NULL,            -- started | stopped | updated | deleted
    reason         TEXT NOT NULL,
    actor          TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, integration_id, id)
);

-- One row per (event, integration). States: waiting (an earlier event of the same entity
-- is unfinished), held (integration paused), pending (due at next_attempt_at), in_flight
-- (leased), and the final succeeded | failed | rejected | skipped.
CREATE TABLE deliveries (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    integration_id   TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    entity_key       TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    first_attempt_at INTEGER,
    last_attempt_at  INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    lease_owner      TEXT,
    lease_until      INTEGER,
    batch_id         TEXT,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX deliveries_queue ON deliveries (tenant_id, integration_id, state, next_attempt_at);
CREATE INDEX deliveries_event ON deliveries (tenant_id, integration_id, event_id);
CREATE INDEX deliveries_entity ON deliveries (tenant_id, integration_id, entity_key, id)
    WHERE state IN ('waiting', 'held', 'pending', 'in_flight');
-- Retention never purges an event with an unfinished delivery: this answers that quickly.
CREATE INDEX deliveries_unfinished_event ON deliveries (tenant_id, event_id)
    WHERE state IN ('waiting', 'held', 'pending', 'in_flight');
-- The claim index of due work across tenants (DESIGN.md: the one exception to tenant-first).
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at)
    WHERE state IN ('pending', 'in_flight');

CREATE TABLE delivery_attempts (
    tenant_id     TEXT NOT NULL,
    delivery_id   TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    node_id       TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    status        INTEGER,
    error         TEXT,
    response_body TEXT,
    PRIMARY KEY (tenant_id, delivery_id, attempt)
);

CREATE TABLE tasks (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    connection  TEXT,
    entity_id   TEXT,
    status      TEXT NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    details     TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX tasks_connection ON tasks (tenant_id, connection, kind, id);

CREATE TABLE alerts (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    event       TEXT NOT NULL,
    category    TEXT NOT NULL,
    connection  TEXT,
    entity_id   TEXT,
    task_id     TEXT,
    message     TEXT NOT NULL,
    details     TEXT,
    occurred_at INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    resolved_at INTEGER,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX alerts_event ON alerts (tenant_id, event, id);
CREATE INDEX alerts_connection ON alerts (tenant_id, connection, id);
CREATE INDEX alerts_task ON alerts (tenant_id, task_id);
