/* Event log queries. Publishing runs on the writer thread; reads on HTTP threads. */
#include "store/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/strmap.h"
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

/* Keys of the maps below: fields joined by \x1f, which no tenant id or entity name holds
 * (the last field may be anything). */
static void key2(struct buf *b, const char *a, const char *c)
{
    buf_reset(b);
    buf_printf(b, "%s\x1f%s", a, c);
}

/* Client ids already stored: marks those events duplicates of the stored rows. */
struct found_ctx {
    struct event_item *items;
    struct strmap *by_client; /* tenant \x1f client id -> the first item with it */
    struct buf key;
};

static enum err found_client(struct db_stmt *st, void *arg)
{
    struct found_ctx *f = arg;
    key2(&f->key, db_col_text(st, 0), db_col_text(st, 1));
    size_t i;
    if (strmap_get(f->by_client, f->key.data, &i)) {
        struct event_in *ev = f->items[i].ev;
        snprintf(ev->id, sizeof ev->id, "%s", db_col_text(st, 2));
        ev->sequence = db_col_int(st, 3);
        ev->published_at = db_col_int(st, 4);
        ev->duplicate = true;
    }
    return ERR_OK;
}

static enum err find_clients(struct db *db, struct event_item *items, const size_t *which, size_t n,
                             struct strmap *by_client)
{
    struct db_rows r;
    db_rows_init(&r, "tt");
    for (size_t k = 0; k < n; k++) {
        db_rows_text(&r, items[which[k]].tenant);
        db_rows_text(&r, items[which[k]].ev->client_id);
    }
    struct found_ctx f = {.items = items, .by_client = by_client, .key = BUF_INIT};
    enum err rc = db_rows_run(db,
                              "SELECT e.tenant_id, e.client_id, e.id, e.sequence, e.published_at "
                              "FROM ({ROWS}) AS v JOIN events e ON e.tenant_id = v.column1 AND "
                              "e.client_id = v.column2 WHERE e.client_id IS NOT NULL",
                              &r, found_client, &f, NULL);
    buf_cleanup(&f.key);
    db_rows_cleanup(&r);
    return rc;
}

/* The sequence upsert's answer: the last number handed out per entity. */
struct seq_ctx {
    struct strmap *by_entity; /* tenant \x1f entity \x1f entity id -> index into last */
    int64_t *last;
    struct buf key;
};

static enum err got_sequence(struct db_stmt *st, void *arg)
{
    struct seq_ctx *s = arg;
    buf_reset(&s->key);
    buf_printf(&s->key, "%s\x1f%s\x1f%s", db_col_text(st, 0), db_col_text(st, 1),
               db_col_text(st, 2));
    size_t k;
    if (strmap_get(s->by_entity, s->key.data, &k))
        s->last[k] = db_col_int(st, 3);
    return ERR_OK;
}

struct entity_seq {
    size_t first;  /* the item that introduced the entity */
    int64_t count; /* events of it in this call */
    int64_t next;  /* the next number to hand out */
};

struct entity_order {
    const struct event_item *items;
    const struct entity_seq *es;
};

static int cmp_entity(const void *a, const void *b, void *arg)
{
    const struct entity_order *o = arg;
    const struct event_item *p = &o->items[o->es[*(const size_t *)a].first];
    const struct event_item *q = &o->items[o->es[*(const size_t *)b].first];
    int c = strcmp(p->tenant, q->tenant);
    if (!c)
        c = strcmp(p->ev->entity, q->ev->entity);
    if (!c)
        c = strcmp(p->ev->entity_id, q->ev->entity_id);
    return c;
}

/* Takes count numbers per entity with one upsert (entities in a fixed order, so nodes
 * that upsert overlapping entities lock their rows in the same order). */
static enum err take_sequences(struct db *db, struct event_item *items, struct entity_seq *es,
                               size_t nes)
{
    size_t *ord = xcalloc(nes, sizeof *ord);
    for (size_t k = 0; k < nes; k++)
        ord[k] = k;
    struct entity_order eo = {.items = items, .es = es};
    qsort_r(ord, nes, sizeof *ord, cmp_entity, &eo);
    struct strmap by_entity = STRMAP_INIT;
    struct db_rows r;
    db_rows_init(&r, "ttti");
    struct buf key = BUF_INIT;
    for (size_t o = 0; o < nes; o++) {
        size_t k = ord[o];
        const struct event_item *it = &items[es[k].first];
        buf_reset(&key);
        buf_printf(&key, "%s\x1f%s\x1f%s", it->tenant, it->ev->entity, it->ev->entity_id);
        strmap_add(&by_entity, key.data, k, NULL);
        db_rows_text(&r, it->tenant);
        db_rows_text(&r, it->ev->entity);
        db_rows_text(&r, it->ev->entity_id);
        db_rows_int(&r, es[k].count);
    }
    buf_cleanup(&key);
    free(ord);
    int64_t *last = xcalloc(nes ? nes : 1, sizeof *last);
    struct seq_ctx sc = {.by_entity = &by_entity, .last = last, .key = BUF_INIT};
    enum err rc = db_rows_run(
        db,
        "INSERT INTO entity_sequences (tenant_id, entity, entity_id, last_sequence) {ROWS} "
        "ON CONFLICT (tenant_id, entity, entity_id) DO UPDATE SET last_sequence = "
        "entity_sequences.last_sequence + excluded.last_sequence RETURNING tenant_id, entity, "
        "entity_id, last_sequence",
        &r, got_sequence, &sc, NULL);
    for (size_t k = 0; k < nes && rc == ERR_OK; k++) {
        if (last[k] < es[k].count) /* every entity must have answered */
            rc = ERR_STORAGE;
        es[k].next = last[k] - es[k].count + 1;
    }
    buf_cleanup(&sc.key);
    free(last);
    db_rows_cleanup(&r);
    strmap_cleanup(&by_entity);
    return rc;
}

/* The ids the insert took (RETURNING), when client ids could have collided. */
static enum err inserted_id(struct db_stmt *st, void *arg)
{
    strmap_add(arg, db_col_text(st, 0), 0, NULL);
    return ERR_OK;
}

/* SQLite: the per-minute event counters of /v1/stats (stats_minutes) for the events a
 * publish inserted, one upsert per tenant and minute instead of a row trigger per event
 * (migration 017). An event is inserted unless it is a duplicate (of a stored event, or of
 * an earlier one of the call: dup_of). PostgreSQL's statement trigger counts them. */
static enum err count_events(struct db *db, const struct event_item *items, size_t n,
                             const size_t *dup_of)
{
    struct minute_count {
        const char *tenant;
        int64_t minute, n;
    } *g = xcalloc(n ? n : 1, sizeof *g);
    size_t ng = 0;
    struct strmap at = STRMAP_INIT;
    struct buf key = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const struct event_in *ev = items[i].ev;
        if (dup_of[i] || ev->duplicate)
            continue;
        int64_t minute = ev->published_at / 60000;
        buf_reset(&key);
        buf_printf(&key, "%s\x1f%lld", items[i].tenant, (long long)minute);
        size_t k;
        if (strmap_add(&at, key.data, ng, &k))
            g[k = ng++] = (struct minute_count){.tenant = items[i].tenant, .minute = minute};
        g[k].n++;
    }
    struct db_rows r;
    db_rows_init(&r, "tii");
    for (size_t k = 0; k < ng; k++) {
        db_rows_text(&r, g[k].tenant);
        db_rows_int(&r, g[k].minute);
        db_rows_int(&r, g[k].n);
    }
    enum err rc = db_rows_run(db,
                              "INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n) "
                              "SELECT column1, column2, 'events', 0, column3 FROM ({ROWS}) "
                              "WHERE true ON CONFLICT (tenant_id, minute, kind, shard) DO "
                              "UPDATE SET n = n + excluded.n",
                              &r, NULL, NULL, NULL);
    db_rows_cleanup(&r);
    buf_cleanup(&key);
    strmap_cleanup(&at);
    free(g);
    return rc;
}

enum err store_events_publish_many(struct db *db, struct event_item *items, size_t n)
{
    enum err rc = ERR_OK;
    struct strmap by_client = STRMAP_INIT, by_entity = STRMAP_INIT;
    struct buf key = BUF_INIT;
    size_t *dup_of = xcalloc(n ? n : 1, sizeof *dup_of); /* i + 1 of the earlier twin, or 0 */
    size_t *with_client = xcalloc(n ? n : 1, sizeof *with_client), nclient = 0;
    struct entity_seq *es = xcalloc(n ? n : 1, sizeof *es);
    size_t *entity_of = xcalloc(n ? n : 1, sizeof *entity_of), nes = 0;
    /* Client ids: the earlier event of this call with the same id, or a stored one. */
    for (size_t i = 0; i < n; i++) {
        struct event_in *ev = items[i].ev;
        ev->duplicate = false;
        if (!ev->client_id)
            continue;
        key2(&key, items[i].tenant, ev->client_id);
        size_t first;
        if (!strmap_add(&by_client, key.data, i, &first))
            dup_of[i] = first + 1;
        else
            with_client[nclient++] = i;
    }
    if (nclient && (rc = find_clients(db, items, with_client, nclient, &by_client)) != ERR_OK)
        goto out;
    /* Sequences: how many numbers each entity takes. */
    for (size_t i = 0; i < n; i++) {
        struct event_in *ev = items[i].ev;
        if (ev->duplicate || dup_of[i])
            continue;
        buf_reset(&key);
        buf_printf(&key, "%s\x1f%s\x1f%s", items[i].tenant, ev->entity, ev->entity_id);
        size_t k;
        if (strmap_add(&by_entity, key.data, nes, &k)) {
            k = nes++;
            es[k].first = i;
        }
        es[k].count++;
        entity_of[i] = k;
    }
    if (nes == 0)
        goto twins;
    if ((rc = take_sequences(db, items, es, nes)) != ERR_OK)
        goto out;
    int64_t now = time_now_ms();
    struct db_rows r;
    db_rows_init(&r, "ttttttiiit");
    for (size_t i = 0; i < n; i++) {
        struct event_in *ev = items[i].ev;
        if (ev->duplicate || dup_of[i])
            continue;
        ev->sequence = es[entity_of[i]].next++;
        id_new("evt", now, ev->id);
        id_time(ev->id, &ev->published_at);
        db_rows_text(&r, items[i].tenant);
        db_rows_text(&r, ev->id);
        db_rows_text(&r, ev->client_id);
        db_rows_text(&r, ev->type);
        db_rows_text(&r, ev->entity);
        db_rows_text(&r, ev->entity_id);
        db_rows_int(&r, ev->sequence);
        db_rows_int(&r, ev->occurred_at >= 0 ? ev->occurred_at : ev->published_at);
        db_rows_int(&r, ev->published_at);
        db_rows_text(&r, ev->payload);
    }
    if (nclient) {
        /* Another node may have stored one of these client ids meanwhile (PostgreSQL):
         * the insert skips it, and the event is that node's duplicate (its sequence
         * number is skipped). */
        struct strmap ids = STRMAP_INIT;
        rc = db_rows_run(db,
                         "INSERT INTO events (tenant_id, id, client_id, type, entity, entity_id, "
                         "sequence, occurred_at, published_at, payload) {ROWS} ON CONFLICT DO "
                         "NOTHING RETURNING id",
                         &r, inserted_id, &ids, NULL);
        size_t again = 0, dummy;
        for (size_t k = 0; k < nclient && rc == ERR_OK; k++) {
            struct event_in *ev = items[with_client[k]].ev;
            if (!ev->duplicate && !strmap_get(&ids, ev->id, &dummy))
                with_client[again++] = with_client[k];
        }
        strmap_cleanup(&ids);
        if (rc == ERR_OK && again) {
            rc = find_clients(db, items, with_client, again, &by_client);
            for (size_t k = 0; k < again && rc == ERR_OK; k++)
                if (!items[with_client[k]].ev->duplicate)
                    rc = ERR_STORAGE; /* neither inserted nor found */
        }
    } else {
        int64_t changed = 0;
        rc = db_rows_run(db,
                         "INSERT INTO events (tenant_id, id, client_id, type, entity, entity_id, "
                         "sequence, occurred_at, published_at, payload) {ROWS}",
                         &r, NULL, NULL, &changed);
        if (rc == ERR_OK && changed != (int64_t)db_rows_count(&r))
            rc = ERR_STORAGE;
    }
    db_rows_cleanup(&r);
    if (rc == ERR_OK && db_kind(db) == DB_SQLITE)
        rc = count_events(db, items, n, dup_of);
    if (rc != ERR_OK)
        goto out;
twins:
    /* A repeat of an earlier event of this call takes its id. */
    for (size_t i = 0; i < n; i++) {
        if (!dup_of[i])
            continue;
        const struct event_in *first = items[dup_of[i] - 1].ev;
        struct event_in *ev = items[i].ev;
        snprintf(ev->id, sizeof ev->id, "%s", first->id);
        ev->sequence = first->sequence;
        ev->published_at = first->published_at;
        ev->duplicate = true;
    }
out:
    free(dup_of);
    free(with_client);
    free(es);
    free(entity_of);
    buf_cleanup(&key);
    strmap_cleanup(&by_client);
    strmap_cleanup(&by_entity);
    return rc;
}

enum err store_event_publish(struct db *db, const char *tenant, struct event_in *ev)
{
    struct event_item it = {.tenant = tenant, .ev = ev};
    return store_events_publish_many(db, &it, 1);
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
