-- Alerting: policies (with their monitored events and channels), issues grouping alerts,
-- the issue timeline, notification channels and notifications (the notifier's queue).
-- The policy index of each node rebuilds when tenants.alert_version moves.
ALTER TABLE tenants ADD COLUMN alert_version BIGINT NOT NULL DEFAULT 0;

CREATE INDEX alerts_category ON alerts (tenant_id, category, id);
CREATE INDEX alerts_entity ON alerts (tenant_id, entity_id, id);
CREATE INDEX tasks_kind ON tasks (tenant_id, kind, id);
CREATE INDEX tasks_work ON tasks (tenant_id, kind, connection, entity_id);

CREATE TABLE notification_channels (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,            -- email
    addresses  TEXT NOT NULL,            -- JSON array
    batching   TEXT NOT NULL,            -- immediate | 5m | 15m | 30m | 1h | 1d
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE alert_policies (
    tenant_id         TEXT NOT NULL,
    id                TEXT NOT NULL,
    name              TEXT NOT NULL,
    enabled           BIGINT NOT NULL,
    group_by          TEXT NOT NULL,     -- JSON array
    auto_close_after  BIGINT,           -- ms; NULL: never
    close_on_recovery BIGINT NOT NULL,
    notify_on         TEXT NOT NULL,     -- JSON array
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE policy_monitored_events (
    tenant_id   TEXT NOT NULL,
    policy_id   TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    event       TEXT NOT NULL,           -- exact failure event or "category.*"
    connections TEXT NOT NULL,           -- JSON array; [] = every connection
    PRIMARY KEY (tenant_id, policy_id, seq)
);

CREATE TABLE policy_channels (
    tenant_id  TEXT NOT NULL,
    policy_id  TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, policy_id, channel_id)
);
CREATE INDEX policy_channels_channel ON policy_channels (tenant_id, channel_id);

CREATE TABLE issues (
    tenant_id         TEXT NOT NULL,
    id                TEXT NOT NULL,
    policy_id         TEXT NOT NULL,
    group_key         TEXT NOT NULL,
    group_json        TEXT NOT NULL,
    title             TEXT NOT NULL,
    status            TEXT NOT NULL,     -- open | acknowledged | closed
    alert_count       BIGINT NOT NULL DEFAULT 0,
    opened_at         BIGINT NOT NULL,
    last_alert_at     BIGINT NOT NULL,
    acknowledged_at   BIGINT,
    closed_at         BIGINT,
    close_reason      TEXT,              -- manual | auto | recovered
    previous_issue_id TEXT,
    auto_close_at     BIGINT,
    fold_timeline_id  TEXT,              -- the alert_added entry later alerts fold into
    PRIMARY KEY (tenant_id, id)
);
-- Exactly one open or acknowledged issue per (policy, group key), on every node.
CREATE UNIQUE INDEX issues_open_key ON issues (tenant_id, policy_id, group_key)
    WHERE status IN ('open', 'acknowledged');
CREATE INDEX issues_status ON issues (tenant_id, status, id);
CREATE INDEX issues_policy ON issues (tenant_id, policy_id, id);
CREATE INDEX issues_last_key ON issues (tenant_id, policy_id, group_key, id);
-- The auto-close claim across tenants (like deliveries_due, the exception to tenant-first).
CREATE INDEX issues_auto_close ON issues (auto_close_at)
    WHERE status IN ('open', 'acknowledged') AND auto_close_at IS NOT NULL;

CREATE TABLE issue_alerts (
    tenant_id TEXT NOT NULL,
    issue_id  TEXT NOT NULL,
    alert_id  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, issue_id, alert_id)
);
CREATE INDEX issue_alerts_alert ON issue_alerts (tenant_id, alert_id);

CREATE TABLE issue_timeline (
    tenant_id TEXT NOT NULL,
    issue_id  TEXT NOT NULL,
    id        TEXT NOT NULL,
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    detail    TEXT,
    count     BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, issue_id, id)
);

-- One row per mail: an immediate notification, or a channel's digest for one window.
-- States: pending (due at due_at), sending (leased), sent, failed.
CREATE TABLE notifications (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    channel_id       TEXT NOT NULL,
    window_start     BIGINT NOT NULL,
    batched          BIGINT NOT NULL,
    state            TEXT NOT NULL,
    due_at           BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    first_attempt_at BIGINT,
    last_error       TEXT,
    lease_owner      TEXT,
    lease_until      BIGINT,
    recipients       TEXT,
    subject          TEXT,
    sent_at          BIGINT,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX notifications_window ON notifications (tenant_id, channel_id, window_start);
CREATE INDEX notifications_list ON notifications (tenant_id, state, id);
CREATE INDEX notifications_due ON notifications (state, due_at)
    WHERE state IN ('pending', 'sending');

CREATE TABLE notification_items (
    tenant_id       TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    issue_id        TEXT NOT NULL,
    kind            TEXT NOT NULL,       -- opened | closed | test
    at              BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, notification_id, issue_id, kind)
);
