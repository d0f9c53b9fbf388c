-- Foundation: settings, tenants, API keys, the event catalog and the event log.
-- Times are integer milliseconds since the Unix epoch. Every tenant table's primary key
-- starts with tenant_id (DESIGN.md: the door to distributing by tenant stays open).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    config_version INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);

CREATE TABLE api_keys (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL,
    key_hint     TEXT NOT NULL,
    permissions  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- Authentication looks a key up by its hash before the tenant is known.
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);

CREATE TABLE event_types (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    entity      TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE events (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    client_id    TEXT,
    type         TEXT NOT NULL,
    entity       TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    occurred_at  INTEGER NOT NULL,
    published_at INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX events_client_id ON events (tenant_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX events_type ON events (tenant_id, type, id);
CREATE INDEX events_entity ON events (tenant_id, entity_id, id);

-- The last sequence number handed out per domain entity (DESIGN.md: counted at publish).
CREATE TABLE entity_sequences (
    tenant_id     TEXT NOT NULL,
    entity        TEXT NOT NULL,
    entity_id     TEXT NOT NULL,
    last_sequence INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, entity, entity_id)
);
