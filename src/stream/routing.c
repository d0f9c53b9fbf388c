/* The per-tenant subscription index and delivery insertion. Writer thread only: the cache
 * needs no lock because only the writer reads or writes it. */
#include "stream/routing.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/id.h"
#include "core/strmap.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "store/store.h"
#include "stream/deliveries.h"
#include "stream/integrations.h"

struct sub {
    char id[72];
    bool paused;
    bool entity_order;
    int64_t start_at, end_at;
    json_t *patterns;
};

struct routing_tenant {
    char tenant[72];
    int64_t version;
    uint64_t txn; /* the writer's transaction it was loaded in (store_txn) */
    struct sub *subs;
    int n;
    struct routing_tenant *next;
};

static struct routing_tenant *g_cache;

static void free_subs(struct routing_tenant *rt)
{
    for (int i = 0; i < rt->n; i++)
        json_decref(rt->subs[i].patterns);
    free(rt->subs);
    rt->subs = NULL;
    rt->n = 0;
}

void routing_cleanup(void)
{
    while (g_cache) {
        struct routing_tenant *next = g_cache->next;
        free_subs(g_cache);
        free(g_cache);
        g_cache = next;
    }
}

static enum err load_subs(struct db *db, struct routing_tenant *rt)
{
    free_subs(rt);
    struct db_stmt *st = db_stmt(db, "SELECT id, state, ordering, start_at, end_at, events FROM "
                                     "integrations WHERE tenant_id = ? AND state <> 'stopped'");
    db_bind_text(st, 1, rt->tenant);
    enum err rc;
    int cap = 0;
    while ((rc = db_next(st)) == ERR_OK) {
        if (rt->n == cap) {
            cap = cap ? 2 * cap : 8;
            rt->subs = xrealloc(rt->subs, (size_t)cap * sizeof *rt->subs);
        }
        struct sub *s = &rt->subs[rt->n++];
        snprintf(s->id, sizeof s->id, "%s", db_col_text(st, 0));
        s->paused = !strcmp(db_col_text(st, 1), "paused");
        s->entity_order = !strcmp(db_col_text(st, 2), "entity");
        s->start_at = db_col_opt_int(st, 3);
        s->end_at = db_col_opt_int(st, 4);
        s->patterns = json_loads(db_col_text(st, 5), 0, NULL);
        if (!s->patterns)
            s->patterns = json_array();
    }
    return rc == ERR_DONE ? ERR_OK : rc;
}

/* The writer rolled back (store_on_rollback): an index loaded in that transaction may hold
 * a configuration version it wrote, which is undone and may come back with other content
 * (another node's change): load it again on next use. */
static void routing_rolled_back(void)
{
    for (struct routing_tenant *rt = g_cache; rt; rt = rt->next)
        if (rt->txn == store_txn())
            rt->version = -1;
}

enum err routing_prepare(struct db *db, const char *tenant, struct routing_tenant **out)
{
    assert(store_is_writer());
    static bool hooked;
    if (!hooked) {
        store_on_rollback(routing_rolled_back);
        hooked = true;
    }
    struct db_stmt *st = db_stmt(db, "SELECT config_version FROM tenants WHERE id = ?");
    db_bind_text(st, 1, tenant);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    int64_t version = db_col_int(st, 0);
    struct routing_tenant *rt = g_cache;
    while (rt && strcmp(rt->tenant, tenant))
        rt = rt->next;
    if (!rt) {
        rt = xcalloc(1, sizeof *rt);
        snprintf(rt->tenant, sizeof rt->tenant, "%s", tenant);
        rt->version = -1;
        rt->next = g_cache;
        g_cache = rt;
    }
    if (rt->version != version) {
        if ((rc = load_subs(db, rt)) != ERR_OK) {
            rt->version = -1;
            return rc;
        }
        rt->version = version;
        rt->txn = store_txn();
    }
    *out = rt;
    return ERR_OK;
}

enum err routing_route_many(struct db *db, const struct route_item *items, size_t n, int *routed)
{
    size_t cap = 0, nd = 0;
    struct delivery_new *d = NULL;
    /* The cached state may be a resume behind (made on another node): held rows are only
     * written on the integration row's word, read once per call under a share lock. A
     * cached "active" that is stale writes pending rows, which no claim takes while the
     * integration is paused. */
    struct strmap held = STRMAP_INIT; /* tenant \x1f integration -> paused (0/1) */
    struct buf key = BUF_INIT;
    enum err rc = ERR_OK;
    for (size_t k = 0; k < n; k++) {
        struct routing_tenant *rt = items[k].rt;
        const struct event_in *ev = items[k].ev;
        int count = 0;
        for (int i = 0; i < rt->n; i++) {
            struct sub *s = &rt->subs[i];
            if (!integration_selects(s->patterns, s->start_at, s->end_at, ev->type, ev->entity,
                                     ev->published_at))
                continue; /* past its end date (the scheduler stops it), before its start... */
            bool paused = s->paused;
            if (paused) {
                size_t v;
                buf_reset(&key);
                buf_printf(&key, "%s\x1f%s", rt->tenant, s->id);
                if (strmap_get(&held, key.data, &v)) {
                    paused = v != 0;
                } else {
                    rc = integration_paused_locked(db, rt->tenant, s->id, &paused);
                    if (rc != ERR_OK)
                        goto out;
                    strmap_add(&held, key.data, paused ? 1 : 0, NULL);
                }
            }
            if (nd == cap) {
                cap = cap ? 2 * cap : 64;
                d = xrealloc(d, cap * sizeof *d);
            }
            d[nd++] = (struct delivery_new){.tenant = rt->tenant,
                                            .integration = s->id,
                                            .event_id = ev->id,
                                            .entity = ev->entity,
                                            .entity_id = ev->entity_id,
                                            .paused = paused,
                                            .entity_order = s->entity_order,
                                            .now = ev->published_at};
            count++;
        }
        if (routed)
            routed[k] = count;
    }
    rc = nd ? deliveries_insert_many(db, d, nd) : ERR_OK;
out:
    strmap_cleanup(&held);
    buf_cleanup(&key);
    free(d);
    return rc;
}

enum err routing_route(struct db *db, struct routing_tenant *rt, const struct event_in *ev,
                       int *routed)
{
    struct route_item it = {.rt = rt, .ev = ev};
    return routing_route_many(db, &it, 1, routed);
}

enum err routing_backfill(struct db *db, const char *tenant, const char *integration_id,
                          const char *events_json, bool entity_order, int64_t from, int64_t to,
                          int64_t *n)
{
    assert(store_is_writer());
    json_t *patterns = json_loads(events_json, 0, NULL);
    if (!patterns)
        return ERR_INTERNAL;
    char lo[ID_MAX], hi[ID_MAX];
    id_floor("evt", from, lo);
    id_floor("evt", to, hi);
    /* Read the matching ids first: the insert loop reuses statements. */
    struct db_stmt *st = db_stmt(db, "SELECT id, type, entity, entity_id FROM events WHERE "
                                     "tenant_id = ? AND id >= ? AND id < ? ORDER BY id");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, lo);
    db_bind_text(st, 3, hi);
    struct row {
        char id[ID_MAX];
        char *entity, *entity_id;
    } *rows = NULL;
    size_t count = 0, cap = 0;
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK) {
        if (!integration_events_match(patterns, db_col_text(st, 1), db_col_text(st, 2)))
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            rows = xrealloc(rows, cap * sizeof *rows);
        }
        snprintf(rows[count].id, ID_MAX, "%s", db_col_text(st, 0));
        rows[count].entity = xstrdup(db_col_text(st, 2));
        rows[count].entity_id = xstrdup(db_col_text(st, 3));
        count++;
    }
    if (rc == ERR_DONE)
        rc = ERR_OK;
    int64_t now = time_now_ms();
    /* Set-based, in id order: a few statements per chunk of rows, not one per row. */
    enum { CHUNK = 500 };
    struct delivery_new *d = xcalloc(count < CHUNK ? count + 1 : CHUNK, sizeof *d);
    for (size_t i = 0; i < count && rc == ERR_OK; i += CHUNK) {
        size_t m = count - i < CHUNK ? count - i : CHUNK;
        for (size_t k = 0; k < m; k++)
            d[k] = (struct delivery_new){.tenant = tenant,
                                         .integration = integration_id,
                                         .event_id = rows[i + k].id,
                                         .entity = rows[i + k].entity,
                                         .entity_id = rows[i + k].entity_id,
                                         .entity_order = entity_order,
                                         .now = now};
        rc = deliveries_insert_many(db, d, m);
    }
    free(d);
    for (size_t i = 0; i < count; i++) {
        free(rows[i].entity);
        free(rows[i].entity_id);
    }
    free(rows);
    json_decref(patterns);
    *n = (int64_t)count;
    return rc;
}
