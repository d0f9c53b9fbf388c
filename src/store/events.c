/* Event log queries. Publishing runs on the writer thread; reads on HTTP threads. */
#include "store/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/timeutil.h"
#include "core/xalloc.h"

void event_in_cleanup(struct event_in *ev)
{
    free(ev->client_id);
    free(ev->type);
    free(ev->entity_id);
    free(ev->payload);
    ev->client_id = ev->type = ev->entity_id = ev->payload = NULL;
}

static enum err next_sequence(struct db *db, const char *tenant, const struct event_in *ev,
                              int64_t *seq)
{
    struct db_stmt *st =
        db_stmt(db, "INSERT INTO entity_sequences (tenant_id, entity, entity_id, last_sequence) "
                    "VALUES (?, ?, ?, 1) ON CONFLICT (tenant_id, entity, entity_id) "
                    "DO UPDATE SET last_sequence = entity_sequences.last_sequence + 1 "
                    "RETURNING last_sequence");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, ev->entity);
    db_bind_text(st, 3, ev->entity_id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_STORAGE : rc;
    *seq = db_col_int(st, 0);
    return ERR_OK;
}

static enum err find_client_id(struct db *db, const char *tenant, struct event_in *ev)
{
    struct db_stmt *st =
        db_stmt(db, "SELECT id, sequence, published_at FROM events WHERE tenant_id = ? AND "
                    "client_id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, ev->client_id);
    enum err rc = db_next(st);
    if (rc == ERR_OK) {
        snprintf(ev->id, sizeof ev->id, "%s", db_col_text(st, 0));
        ev->sequence = db_col_int(st, 1);
        ev->published_at = db_col_int(st, 2);
        ev->duplicate = true;
    }
    return rc;
}

enum err store_event_publish(struct db *db, const char *tenant, struct event_in *ev)
{
    enum err rc;
    ev->duplicate = false;
    if (ev->client_id) {
        rc = find_client_id(db, tenant, ev);
        if (rc == ERR_OK)
            return ERR_OK;
        if (rc != ERR_DONE)
            return rc;
    }
    if ((rc = next_sequence(db, tenant, ev, &ev->sequence)) != ERR_OK)
        return rc;
    id_new("evt", time_now_ms(), ev->id);
    id_time(ev->id, &ev->published_at);
    struct db_stmt *st = db_stmt(
        db, "INSERT INTO events (tenant_id, id, client_id, type, entity, entity_id, sequence, "
            "occurred_at, published_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, ev->id);
    db_bind_text(st, 3, ev->client_id);
    db_bind_text(st, 4, ev->type);
    db_bind_text(st, 5, ev->entity);
    db_bind_text(st, 6, ev->entity_id);
    db_bind_int(st, 7, ev->sequence);
    db_bind_int(st, 8, ev->occurred_at >= 0 ? ev->occurred_at : ev->published_at);
    db_bind_int(st, 9, ev->published_at);
    db_bind_text(st, 10, ev->payload);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    if (db_changes(st) == 0 && ev->client_id) {
        /* Another node stored the same client id first (PostgreSQL, several nodes). The
         * sequence number taken above is skipped; the event is a duplicate. */
        rc = find_client_id(db, tenant, ev);
        return rc == ERR_OK ? ERR_OK : rc == ERR_DONE ? ERR_STORAGE : rc;
    }
    return ERR_OK;
}

json_t *store_event_row(struct db_stmt *st)
{
    json_t *o = json_object();
    json_set_str(o, "id", db_col_text(st, 0));
    json_set_str(o, "client_id", db_col_text(st, 1));
    json_set_str(o, "type", db_col_text(st, 2));
    json_set_str(o, "entity", db_col_text(st, 3));
    json_set_str(o, "entity_id", db_col_text(st, 4));
    json_object_set_new(o, "sequence", json_integer(db_col_int(st, 5)));
    json_set_time(o, "occurred_at", db_col_int(st, 6));
    json_set_time(o, "published_at", db_col_int(st, 7));
    const char *p = db_col_text(st, 8);
    json_t *payload = p ? json_loads(p, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(o, "payload", payload ? payload : json_object());
    return o;
}

enum err store_event_get(struct db *db, const char *tenant, const char *id, json_t **out)
{
    struct db_stmt *st =
        db_stmt(db, "SELECT " STORE_EVENT_COLS " FROM events WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc == ERR_OK)
        *out = store_event_row(st);
    return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
}

enum err store_events_purge(struct db *db, const char *tenant, int64_t before, int limit,
                            int64_t *n)
{
    *n = 0;
    char floor[ID_MAX];
    id_floor("evt", before, floor);
    struct db_stmt *st = db_stmt(
        db, "DELETE FROM events WHERE tenant_id = ? AND id IN (SELECT e.id FROM events e WHERE "
            "e.tenant_id = ? AND e.id < ? AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE "
            "d.tenant_id = e.tenant_id AND d.event_id = e.id AND d.state IN ('waiting', 'held', "
            "'pending', 'in_flight')) LIMIT ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, floor);
    db_bind_int(st, 4, limit);
    enum err rc = db_run(st);
    if (rc == ERR_OK)
        *n = db_changes(st);
    return rc;
}
