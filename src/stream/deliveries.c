/* The deliveries and delivery_attempts tables: every write to them is here. Writer thread
 * only (asserted), except deliveries_render_metrics (any thread, its own read connection).
 * See deliveries.h for the states. */
#include "stream/deliveries.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strmap.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "store/store.h"

static void bind_status(struct db_stmt *st, int i, long status)
{
    if (status)
        db_bind_int(st, i, status);
    else
        db_bind_null(st, i);
}

/* The entities of the look-up below that have an unfinished delivery already. */
static enum err unfinished_key(struct db_stmt *st, void *arg)
{
    struct buf key = BUF_INIT;
    buf_printf(&key, "%s\x1f%s\x1f%s", db_col_text(st, 0), db_col_text(st, 1), db_col_text(st, 2));
    strmap_add(arg, key.data, 0, NULL);
    buf_cleanup(&key);
    return ERR_OK;
}

/* Rows counted per integration, in the order first seen: the set-based counters of
 * migration 017 (SQLite), one upsert per integration rather than a row trigger per row. */
struct tally {
    struct tally_group {
        char tenant[72];
        char integration[72];
        int64_t n;
    } * g;
    size_t n, cap;
    struct strmap at; /* tenant \x1f integration -> index in g */
    struct buf key;
};
#define TALLY_INIT                                                                                 \
    {                                                                                              \
        .at = STRMAP_INIT, .key = BUF_INIT                                                         \
    }

static void tally_add(struct tally *t, const char *tenant, const char *integration)
{
    buf_reset(&t->key);
    buf_printf(&t->key, "%s\x1f%s", tenant, integration);
    size_t i;
    if (!strmap_get(&t->at, t->key.data, &i)) {
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 4;
            t->g = xrealloc(t->g, t->cap * sizeof *t->g);
        }
        i = t->n++;
        snprintf(t->g[i].tenant, sizeof t->g[i].tenant, "%s", tenant);
        snprintf(t->g[i].integration, sizeof t->g[i].integration, "%s", integration);
        t->g[i].n = 0;
        strmap_add(&t->at, t->key.data, i, NULL);
    }
    t->g[i].n++;
}

static void tally_cleanup(struct tally *t)
{
    free(t->g);
    strmap_cleanup(&t->at);
    buf_cleanup(&t->key);
}

/* SQLite: delivery_counts for the deliveries a publish inserted (every one unfinished:
 * the pending class). PostgreSQL's statement trigger counts them. */
static enum err count_inserted(struct db *db, const struct delivery_new *d, size_t n)
{
    struct tally t = TALLY_INIT;
    for (size_t i = 0; i < n; i++)
        tally_add(&t, d[i].tenant, d[i].integration);
    struct db_rows r;
    db_rows_init(&r, "tti");
    for (size_t k = 0; k < t.n; k++) {
        db_rows_text(&r, t.g[k].tenant);
        db_rows_text(&r, t.g[k].integration);
        db_rows_int(&r, t.g[k].n);
    }
    enum err rc = db_rows_run(db,
                              "INSERT INTO delivery_counts (tenant_id, integration_id, status, "
                              "shard, n) SELECT column1, column2, 'pending', 0, column3 FROM "
                              "({ROWS}) WHERE true ON CONFLICT (tenant_id, integration_id, "
                              "status, shard) DO UPDATE SET n = n + excluded.n",
                              &r, NULL, NULL, NULL);
    db_rows_cleanup(&r);
    tally_cleanup(&t);
    return rc;
}

enum err deliveries_insert_many(struct db *db, const struct delivery_new *d, size_t n)
{
    assert(store_is_writer());
    enum err rc = ERR_OK;
    char(*keys)[400] = xcalloc(n ? n : 1, sizeof *keys);
    const char **state = xcalloc(n ? n : 1, sizeof *state);
    struct strmap seen = STRMAP_INIT, busy = STRMAP_INIT;
    struct buf k3 = BUF_INIT;
    struct db_rows look;
    db_rows_init(&look, "ttt");
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], sizeof keys[i], "%s/%s", d[i].entity, d[i].entity_id);
        state[i] = d[i].paused ? "held" : "pending";
        if (!d[i].entity_order)
            continue;
        buf_reset(&k3);
        buf_printf(&k3, "%s\x1f%s\x1f%s", d[i].tenant, d[i].integration, keys[i]);
        if (!strmap_add(&seen, k3.data, i, NULL)) {
            state[i] = "waiting"; /* behind an earlier one of this call */
            continue;
        }
        db_rows_text(&look, d[i].tenant);
        db_rows_text(&look, d[i].integration);
        db_rows_text(&look, keys[i]);
    }
    /* Entity ordering: is an unfinished delivery of the entity there already? On PostgreSQL
     * with several nodes the unfinished rows found are share-locked, so an outcome finishing
     * the predecessor on another node either commits first (this read then skips it, and the
     * row goes in pending) or waits for this commit (and its promotion then sees the row
     * waiting). Without the lock both miss each other and the row waits forever. The
     * look-up is a lateral subquery per entity, so it is an index scan of that entity's
     * unfinished rows (deliveries_entity) whatever the statistics say: as a join
     * the planner hashed a scan of every unfinished delivery, and kept that plan as the
     * table grew (2.9 s per group commit at 25,000 pending). It locks the entity's newest
     * unfinished row only: that is the one a new row waits behind (an older one finishing
     * changes nothing for it), and locking all of them wrote a row lock into each of the
     * hundreds an entity holds while its integration is paused (0.11 of the storage limit
     * on the grown database). */
    rc = db_rows_run(
        db,
        db_kind(db) == DB_PG
            ? "SELECT d.tenant_id, d.integration_id, d.entity_key FROM ({ROWS}) AS v CROSS "
              "JOIN LATERAL (SELECT x.tenant_id, x.integration_id, x.entity_key FROM "
              "deliveries x WHERE x.tenant_id = v.column1 AND x.integration_id = v.column2 "
              "AND x.entity_key = v.column3 AND x.state IN " DELIVERIES_UNFINISHED
              " ORDER BY x.id DESC LIMIT 1 FOR SHARE) AS d"
            : "SELECT v.column1, v.column2, v.column3 FROM ({ROWS}) AS v WHERE "
              "EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant_id = v.column1 AND "
              "d.integration_id = v.column2 AND d.entity_key = v.column3 AND "
              "d.state IN " DELIVERIES_UNFINISHED ")",
        &look, unfinished_key, &busy, NULL);
    db_rows_cleanup(&look);
    if (rc != ERR_OK || n == 0)
        goto out;
    struct db_rows r;
    db_rows_init(&r, "ttttttii");
    bool due = false;
    for (size_t i = 0; i < n; i++) {
        size_t first;
        if (d[i].entity_order && strcmp(state[i], "waiting")) {
            buf_reset(&k3);
            buf_printf(&k3, "%s\x1f%s\x1f%s", d[i].tenant, d[i].integration, keys[i]);
            if (strmap_get(&busy, k3.data, &first))
                state[i] = "waiting";
        }
        char id[ID_MAX];
        id_new("dlv", d[i].now, id);
        db_rows_text(&r, d[i].tenant);
        db_rows_text(&r, id);
        db_rows_text(&r, d[i].integration);
        db_rows_text(&r, d[i].event_id);
        db_rows_text(&r, keys[i]);
        db_rows_text(&r, state[i]);
        db_rows_int(&r, d[i].now);
        db_rows_int(&r, d[i].now);
        due |= !strcmp(state[i], "pending");
    }
    int64_t changed = 0;
    rc = db_rows_run(db,
                     "INSERT INTO deliveries (tenant_id, id, integration_id, event_id, "
                     "entity_key, state, next_attempt_at, created_at) {ROWS}",
                     &r, NULL, NULL, &changed);
    if (rc == ERR_OK && changed != (int64_t)n)
        rc = ERR_STORAGE;
    if (rc == ERR_OK && db_kind(db) == DB_SQLITE)
        rc = count_inserted(db, d, n);
    db_rows_cleanup(&r);
    if (rc == ERR_OK && due)
        store_wake(STORE_WAKE_DELIVER);
out:
    buf_cleanup(&k3);
    strmap_cleanup(&seen);
    strmap_cleanup(&busy);
    free(keys);
    free(state);
    return rc;
}

enum err deliveries_insert(struct db *db, const char *tenant, const char *integration, bool paused,
                           bool entity_order, const char *event_id, const char *entity,
                           const char *entity_id, int64_t now)
{
    struct delivery_new d = {.tenant = tenant,
                             .integration = integration,
                             .event_id = event_id,
                             .entity = entity,
                             .entity_id = entity_id,
                             .paused = paused,
                             .entity_order = entity_order,
                             .now = now};
    return deliveries_insert_many(db, &d, 1);
}

/* Scale-out (PostgreSQL): another node's transaction holds the integration row (its claim
 * or an outcome, until its commit). Waiting for it inside this transaction, which may hold
 * other rows, is how nodes deadlock: the claim gives way instead and is tried again shortly
 * (next_due). ERR_NOT_FOUND when the row is gone. */
#define CLAIM_BUSY_RETRY_MS 10
#define CLAIM_FULL_RETRY_MS 100
static enum err claim_busy(struct db *db, const char *tenant, const char *integration, int64_t now,
                           int64_t *next_due)
{
    struct db_stmt *st = db_stmt(db, "SELECT 1 FROM integrations WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    enum err rc = db_next(st);
    db_release(db);
    if (rc == ERR_OK)
        *next_due = now + CLAIM_BUSY_RETRY_MS;
    return rc == ERR_OK ? ERR_OK : rc == ERR_DONE ? ERR_NOT_FOUND : rc;
}

enum err deliveries_claim(struct db *db, const char *tenant, const char *integration,
                          const char *node, int64_t lease_ms, int limit, struct claimed **out,
                          int *n, int64_t *next_due)
{
    assert(store_is_writer());
    *out = NULL;
    *n = 0;
    *next_due = -1;
    int64_t now = time_now_ms();
    const int asked = limit;
    /* Lock the integration row (PostgreSQL) so concurrent nodes count in-flight rows one at
     * a time; read its state and concurrency limit. */
    struct db_stmt *st =
        db_kind(db) == DB_PG
            ? db_stmt(db, "SELECT state, max_in_flight FROM integrations WHERE tenant_id = ? AND "
                          "id = ? FOR UPDATE SKIP LOCKED")
            : db_stmt(db, "SELECT state, max_in_flight FROM integrations WHERE tenant_id = ? AND "
                          "id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    enum err rc = db_next(st);
    if (rc == ERR_DONE && db_kind(db) == DB_PG)
        return claim_busy(db, tenant, integration, now, next_due);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    bool paused = !strcmp(db_col_text(st, 0), "paused");
    int64_t max = db_col_int(st, 1);
    db_release(db);
    if (paused)
        return ERR_OK;
    st = db_stmt(db, "SELECT COUNT(*) FROM deliveries WHERE tenant_id = ? AND integration_id = ? "
                     "AND state = 'in_flight'");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    if ((rc = db_next(st)) != ERR_OK)
        return rc == ERR_DONE ? ERR_STORAGE : rc;
    int64_t free_slots = max - db_col_int(st, 0);
    db_release(db);
    if (free_slots < limit)
        limit = (int)free_slots;
    if (limit > 0) {
        /* On PostgreSQL the due ids are an array the subquery fills once (an InitPlan),
         * then looked up by primary key: as "id IN (subquery)" the cached generic plan,
         * made while the table was small, was a nested loop that ran the subquery again
         * for every delivery of the tenant. */
#define CLAIM_SQL(in_open, in_close)                                                               \
    "UPDATE deliveries SET state = 'in_flight', lease_owner = ?, lease_until = ?, attempts = "     \
    "attempts + 1, last_attempt_at = ? WHERE tenant_id = ? AND id " in_open                        \
    "SELECT id FROM deliveries WHERE tenant_id = ? AND integration_id = ? AND state = "            \
    "'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?" in_close             \
    " RETURNING id, event_id, attempts"
        st = db_stmt(db, db_kind(db) == DB_PG ? CLAIM_SQL("= ANY(ARRAY(", "))")
                                              : CLAIM_SQL("IN (", ")"));
#undef CLAIM_SQL
        db_bind_text(st, 1, node);
        db_bind_int(st, 2, now + lease_ms);
        db_bind_int(st, 3, now);
        db_bind_text(st, 4, tenant);
        db_bind_text(st, 5, tenant);
        db_bind_text(st, 6, integration);
        db_bind_int(st, 7, now);
        db_bind_int(st, 8, limit);
        struct claimed *c = xcalloc((size_t)limit, sizeof *c);
        while ((rc = db_next(st)) == ERR_OK && *n < limit) {
            snprintf(c[*n].delivery_id, ID_MAX, "%s", db_col_text(st, 0));
            snprintf(c[*n].event_id, ID_MAX, "%s", db_col_text(st, 1));
            c[*n].attempt = (int)db_col_int(st, 2);
            (*n)++;
        }
        if (rc != ERR_DONE && rc != ERR_OK) {
            free(c);
            *n = 0;
            return rc;
        }
        db_release(db);
        *out = c;
    }
    /* Every slot the caller asked for was filled: more may be due, and it claims again as
     * soon as one of them frees, so the next due time is not needed now (-1). */
    if (asked > 0 && *n == asked)
        return ERR_OK;
    /* The first entry of the queue index (deliveries_queue): no scan of the backlog. */
    st = db_stmt(db, "SELECT next_attempt_at FROM deliveries WHERE tenant_id = ? AND "
                     "integration_id = ? AND state = 'pending' ORDER BY next_attempt_at LIMIT 1");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    rc = db_next(st);
    if (rc == ERR_OK && !db_col_null(st, 0))
        *next_due = db_col_int(st, 0);
    db_release(db);
    /* Due work, but every slot is held (by other nodes: this one asked for free ones): a
     * slot another node frees is that node's to reuse at once; this one looks again soon
     * instead of claiming in a loop. */
    if (free_slots <= 0 && *next_due >= 0 && *next_due <= now)
        *next_due = now + CLAIM_FULL_RETRY_MS;
    return rc == ERR_OK || rc == ERR_DONE ? ERR_OK : rc;
}

enum err deliveries_record_attempt(struct db *db, const struct attempt_outcome *o)
{
    assert(store_is_writer());
    struct db_stmt *st = db_stmt(
        db, "INSERT INTO delivery_attempts (tenant_id, delivery_id, attempt, node_id, started_at, "
            "duration_ms, status, error, response_body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING");
    db_bind_text(st, 1, o->tenant);
    db_bind_text(st, 2, o->delivery_id);
    db_bind_int(st, 3, o->attempt);
    db_bind_text(st, 4, o->node);
    db_bind_int(st, 5, o->started_at);
    db_bind_int(st, 6, o->duration_ms);
    bind_status(st, 7, o->status);
    db_bind_text(st, 8, o->error);
    db_bind_text(st, 9, o->body);
    return db_run(st);
}

enum err deliveries_leased(struct db *db, const struct attempt_outcome *o,
                           struct delivery_leased *out)
{
    assert(store_is_writer());
    struct db_stmt *st = db_stmt(
        db, "SELECT d.entity_key, d.first_attempt_at, i.state, i.ordering FROM deliveries d JOIN "
            "integrations i ON i.tenant_id = d.tenant_id AND i.id = d.integration_id WHERE "
            "d.tenant_id = ? AND d.id = ? AND d.state = 'in_flight' AND d.lease_owner = ?");
    db_bind_text(st, 1, o->tenant);
    db_bind_text(st, 2, o->delivery_id);
    db_bind_text(st, 3, o->node);
    enum err rc = db_next(st);
    if (rc == ERR_OK) {
        snprintf(out->entity_key, sizeof out->entity_key, "%s", db_col_text(st, 0));
        /* The first attempt's start, on the clock failing_since uses. */
        out->first_attempt_at = db_col_null(st, 1) ? o->started_at : db_col_int(st, 1);
        out->paused = !strcmp(db_col_text(st, 2), "paused");
        /* Only entity ordering (fixed at creation) ever leaves deliveries waiting. */
        out->entity_order = !strcmp(db_col_text(st, 3), "entity");
    }
    db_release(db);
    return rc;
}

static enum err finished_counts(struct db *db, const char *tenant, const char *integration,
                                const char *state, int64_t now, int64_t n);

enum err deliveries_finish(struct db *db, const struct attempt_outcome *o, const char *state,
                           int64_t now)
{
    assert(store_is_writer());
    struct db_stmt *st = db_stmt(
        db, "UPDATE deliveries SET state = ?, finished_at = ?, last_status = ?, last_error = ?, "
            "lease_owner = NULL, lease_until = NULL, first_attempt_at = COALESCE(first_attempt_at, "
            "?) WHERE tenant_id = ? AND id = ? AND lease_owner IS NOT NULL");
    db_bind_text(st, 1, state);
    db_bind_int(st, 2, now);
    bind_status(st, 3, o->status);
    db_bind_text(st, 4, o->error);
    db_bind_int(st, 5, o->started_at);
    db_bind_text(st, 6, o->tenant);
    db_bind_text(st, 7, o->delivery_id);
    enum err rc = db_run(st);
    if (rc == ERR_OK && db_kind(db) == DB_SQLITE && db_changes(st) > 0)
        rc = finished_counts(db, o->tenant, o->integration, state, now, db_changes(st));
    return rc;
}

enum err deliveries_retry(struct db *db, const struct attempt_outcome *o, bool paused, int64_t due)
{
    assert(store_is_writer());
    struct db_stmt *st =
        db_stmt(db, "UPDATE deliveries SET state = ?, next_attempt_at = ?, last_status = ?, "
                    "last_error = ?, lease_owner = NULL, lease_until = NULL, "
                    "first_attempt_at = COALESCE(first_attempt_at, ?) WHERE tenant_id = ? "
                    "AND id = ?");
    db_bind_text(st, 1, paused ? "held" : "pending");
    db_bind_int(st, 2, due);
    bind_status(st, 3, o->status);
    db_bind_text(st, 4, o->error);
    db_bind_int(st, 5, o->started_at);
    db_bind_text(st, 6, o->tenant);
    db_bind_text(st, 7, o->delivery_id);
    return db_run(st);
}

enum err deliveries_promote_next(struct db *db, const char *tenant, const char *integration,
                                 const char *entity_key, bool paused)
{
    assert(store_is_writer());
    struct db_stmt *st =
        db_stmt(db, "SELECT id FROM deliveries WHERE tenant_id = ? AND "
                    "integration_id = ? AND entity_key = ? AND state IN " DELIVERIES_UNFINISHED
                    " ORDER BY id LIMIT 1");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    db_bind_text(st, 3, entity_key);
    enum err rc = db_next(st);
    if (rc == ERR_DONE)
        return ERR_OK;
    if (rc != ERR_OK)
        return rc;
    char id[ID_MAX];
    snprintf(id, sizeof id, "%s", db_col_text(st, 0));
    db_release(db);
    st = db_stmt(db, "UPDATE deliveries SET state = ? WHERE tenant_id = ? AND id = ? AND "
                     "state = 'waiting'");
    db_bind_text(st, 1, paused ? "held" : "pending");
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, id);
    return db_run(st);
}

enum err deliveries_record_attempts(struct db *db, const struct attempt_outcome *o, size_t n)
{
    assert(store_is_writer());
    struct db_rows r;
    db_rows_init(&r, "ttitiiitt");
    for (size_t i = 0; i < n; i++) {
        db_rows_text(&r, o[i].tenant);
        db_rows_text(&r, o[i].delivery_id);
        db_rows_int(&r, o[i].attempt);
        db_rows_text(&r, o[i].node);
        db_rows_int(&r, o[i].started_at);
        db_rows_int(&r, o[i].duration_ms);
        if (o[i].status)
            db_rows_int(&r, o[i].status);
        else
            db_rows_text(&r, NULL);
        db_rows_text(&r, o[i].error);
        db_rows_text(&r, o[i].body);
    }
    enum err rc = db_rows_run(db,
                              "INSERT INTO delivery_attempts (tenant_id, delivery_id, attempt, "
                              "node_id, started_at, duration_ms, status, error, response_body) "
                              "{ROWS} ON CONFLICT DO NOTHING",
                              &r, NULL, NULL, NULL);
    db_rows_cleanup(&r);
    return rc;
}

struct leased_ctx {
    const struct attempt_outcome *o;
    struct delivery_leased *out;
    bool *leased;
    struct strmap *by_id; /* tenant \x1f delivery id \x1f node -> index */
    struct buf key;
};

static enum err leased_row(struct db_stmt *st, void *arg)
{
    struct leased_ctx *c = arg;
    buf_reset(&c->key);
    buf_printf(&c->key, "%s\x1f%s\x1f%s", db_col_text(st, 0), db_col_text(st, 1),
               db_col_text(st, 2));
    size_t i;
    if (!strmap_get(c->by_id, c->key.data, &i))
        return ERR_OK;
    struct delivery_leased *d = &c->out[i];
    snprintf(d->entity_key, sizeof d->entity_key, "%s", db_col_text(st, 3));
    d->first_attempt_at = db_col_null(st, 4) ? c->o[i].started_at : db_col_int(st, 4);
    d->paused = !strcmp(db_col_text(st, 5), "paused");
    d->entity_order = !strcmp(db_col_text(st, 6), "entity");
    c->leased[i] = true;
    return ERR_OK;
}

enum err deliveries_leased_many(struct db *db, const struct attempt_outcome *o, size_t n,
                                struct delivery_leased *out, bool *leased)
{
    assert(store_is_writer());
    struct strmap by_id = STRMAP_INIT;
    struct db_rows r;
    db_rows_init(&r, "ttt");
    struct buf key = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        leased[i] = false;
        buf_reset(&key);
        buf_printf(&key, "%s\x1f%s\x1f%s", o[i].tenant, o[i].delivery_id, o[i].node);
        if (!strmap_add(&by_id, key.data, i, NULL))
            continue; /* a later outcome of the same delivery and node: see below */
        db_rows_text(&r, o[i].tenant);
        db_rows_text(&r, o[i].delivery_id);
        db_rows_text(&r, o[i].node);
    }
    struct leased_ctx c = {.o = o, .out = out, .leased = leased, .by_id = &by_id, .key = BUF_INIT};
    enum err rc = db_rows_run(
        db,
        "SELECT d.tenant_id, d.id, d.lease_owner, d.entity_key, d.first_attempt_at, i.state, "
        "i.ordering FROM ({ROWS}) AS v JOIN deliveries d ON d.tenant_id = v.column1 AND d.id = "
        "v.column2 JOIN integrations i ON i.tenant_id = d.tenant_id AND i.id = "
        "d.integration_id WHERE d.state = 'in_flight' AND d.lease_owner = v.column3",
        &r, leased_row, &c, NULL);
    /* A later outcome of the same delivery and node in the call (an earlier attempt's)
     * stays stale (leased false): alone, it would find the row moved on by the first. */
    buf_cleanup(&c.key);
    buf_cleanup(&key);
    db_rows_cleanup(&r);
    strmap_cleanup(&by_id);
    return rc;
}

/* A row an outcome statement finished (RETURNING tenant_id, integration_id), tallied. */
static enum err finished_row(struct db_stmt *st, void *arg)
{
    tally_add(arg, db_col_text(st, 0), db_col_text(st, 1));
    return ERR_OK;
}

enum err deliveries_finish_many(struct db *db, const struct attempt_outcome *o, const bool *pick,
                                size_t n, const char *state, int64_t now)
{
    assert(store_is_writer());
    struct db_rows r;
    db_rows_init(&r, "ttiitti");
    for (size_t i = 0; i < n; i++) {
        if (pick && !pick[i])
            continue;
        db_rows_text(&r, o[i].tenant);
        db_rows_text(&r, o[i].delivery_id);
        db_rows_int(&r, now);
        if (o[i].status)
            db_rows_int(&r, o[i].status);
        else
            db_rows_text(&r, NULL);
        db_rows_text(&r, o[i].error);
        db_rows_text(&r, state);
        db_rows_int(&r, o[i].started_at);
    }
    /* On SQLite the rows come back, to be counted per integration (finished_counts). */
#define FINISH_SQL(returning)                                                                      \
    "UPDATE deliveries SET state = v.column6, finished_at = v.column3, last_status = "             \
    "v.column4, last_error = v.column5, lease_owner = NULL, lease_until = NULL, "                  \
    "first_attempt_at = COALESCE(deliveries.first_attempt_at, v.column7) FROM ({ROWS}) AS v "      \
    "WHERE deliveries.tenant_id = v.column1 AND deliveries.id = v.column2 AND "                    \
    "deliveries.lease_owner IS NOT NULL" returning
    bool sqlite = db_kind(db) == DB_SQLITE;
    struct tally t = TALLY_INIT;
    enum err rc =
        sqlite
            ? db_rows_run(db,
                          FINISH_SQL(" RETURNING deliveries.tenant_id, deliveries.integration_id"),
                          &r, finished_row, &t, NULL)
            : db_rows_run(db, FINISH_SQL(""), &r, NULL, NULL, NULL);
#undef FINISH_SQL
    for (size_t k = 0; rc == ERR_OK && k < t.n; k++)
        rc = finished_counts(db, t.g[k].tenant, t.g[k].integration, state, now, t.g[k].n);
    tally_cleanup(&t);
    db_rows_cleanup(&r);
    return rc;
}

enum err deliveries_promote_next_many(struct db *db, const struct entity_next *e, size_t n)
{
    assert(store_is_writer());
    if (n == 1)
        return deliveries_promote_next(db, e[0].tenant, e[0].integration, e[0].entity_key,
                                       e[0].paused);
    struct db_rows r;
    db_rows_init(&r, "ttti");
    for (size_t i = 0; i < n; i++) {
        db_rows_text(&r, e[i].tenant);
        db_rows_text(&r, e[i].integration);
        db_rows_text(&r, e[i].entity_key);
        db_rows_int(&r, e[i].paused);
    }
    /* For each entity, its oldest unfinished delivery (by id: routing order), if waiting. */
    enum err rc = db_rows_run(
        db,
        "UPDATE deliveries SET state = CASE WHEN x.paused = 1 THEN 'held' ELSE 'pending' END "
        "FROM (SELECT v.column1 AS t, v.column4 AS paused, (SELECT d.id FROM deliveries d "
        "WHERE d.tenant_id = v.column1 AND d.integration_id = v.column2 AND d.entity_key = "
        "v.column3 AND d.state IN " DELIVERIES_UNFINISHED " ORDER BY d.id LIMIT 1) AS nid FROM "
        "({ROWS}) AS v) AS x WHERE deliveries.tenant_id = x.t AND deliveries.id = x.nid AND "
        "deliveries.state = 'waiting'",
        &r, NULL, NULL, NULL);
    db_rows_cleanup(&r);
    return rc;
}

enum err deliveries_hold(struct db *db, const char *tenant, const char *integration)
{
    assert(store_is_writer());
    struct db_stmt *st = db_stmt(db, "UPDATE deliveries SET state = 'held' WHERE tenant_id = ? "
                                     "AND integration_id = ? AND state = 'pending'");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    return db_run(st);
}

enum err deliveries_resume(struct db *db, const char *tenant, const char *integration,
                           int64_t paused_at, bool skip, int64_t *skipped)
{
    assert(store_is_writer());
    int64_t now = time_now_ms();
    *skipped = 0;
    struct db_stmt *st;
    if (skip) {
        st = db_stmt(db, "UPDATE deliveries SET state = 'skipped', finished_at = ? WHERE "
                         "tenant_id = ? AND integration_id = ? AND state IN ('held', 'waiting', "
                         "'pending')");
        db_bind_int(st, 1, now);
        db_bind_text(st, 2, tenant);
        db_bind_text(st, 3, integration);
        enum err rc = db_run(st);
        *skipped = db_changes(st);
        return rc;
    }
    int64_t shift = paused_at >= 0 && now > paused_at ? now - paused_at : 0;
    st = db_stmt(db, "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, "
                     "first_attempt_at = first_attempt_at + ? WHERE tenant_id = ? AND "
                     "integration_id = ? AND state = 'held'");
    db_bind_int(st, 1, now);
    db_bind_int(st, 2, shift);
    db_bind_text(st, 3, tenant);
    db_bind_text(st, 4, integration);
    store_wake(STORE_WAKE_DELIVER);
    return db_run(st);
}

enum err deliveries_release_leases(struct db *db, const char *node, bool all, int64_t *n)
{
    assert(store_is_writer());
#define RELEASE                                                                                    \
    "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until = NULL, "            \
    "first_attempt_at = COALESCE(first_attempt_at, last_attempt_at) WHERE state = 'in_flight' "    \
    "AND batch_id IS NULL"
    struct db_stmt *st;
    if (node) {
        st = db_stmt(db, RELEASE " AND lease_owner = ?");
        db_bind_text(st, 1, node);
    } else if (all) {
        st = db_stmt(db, RELEASE);
    } else {
        st = db_stmt(db, RELEASE " AND lease_until < ?");
        db_bind_int(st, 1, time_now_ms());
    }
#undef RELEASE
    enum err rc = db_run(st);
    int64_t changed = db_changes(st);
    if (n)
        *n = changed;
    if (rc == ERR_OK && changed > 0)
        store_wake(STORE_WAKE_DELIVER);
    return rc;
}

enum err deliveries_join_batch(struct db *db, const char *tenant, const char *integration,
                               const char *batch_id, const char *const *ids, int n, bool *joined)
{
    assert(store_is_writer());
    /* One statement for every member: the ids go in as one JSON array. On SQLite the unary
     * '+' keeps the planner on the primary key (tenant_id, id) for the list; without it it
     * walks the integration's queue index and tests each row against the list. */
    struct buf arr = BUF_INIT;
    buf_putc(&arr, '[');
    for (int i = 0; i < n; i++) {
        buf_printf(&arr, "%s\"%s\"", i ? "," : "", ids[i]); /* ids are [a-z0-9_] */
        joined[i] = false;
    }
    buf_putc(&arr, ']');
    struct db_stmt *st =
        db_kind(db) == DB_PG
            ? db_stmt(db, "UPDATE deliveries SET batch_id = ?, state = 'in_flight' WHERE "
                          "tenant_id = ? AND integration_id = ? AND batch_id IS NULL AND state IN "
                          "('pending', 'waiting') AND id IN (SELECT jsonb_array_elements_text(?"
                          "::jsonb)) RETURNING id")
            : db_stmt(db, "UPDATE deliveries SET batch_id = ?, state = 'in_flight' WHERE "
                          "tenant_id = ? AND +integration_id = ? AND +batch_id IS NULL AND +state "
                          "IN ('pending', 'waiting') AND id IN (SELECT value FROM json_each(?)) "
                          "RETURNING id");
    db_bind_text(st, 1, batch_id);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, integration);
    db_bind_text(st, 4, arr.data);
    struct strmap at = STRMAP_INIT;
    for (int i = 0; i < n; i++)
        strmap_add(&at, ids[i], (size_t)i, NULL);
    enum err rc;
    size_t k;
    while ((rc = db_next(st)) == ERR_OK)
        if (strmap_get(&at, db_col_text(st, 0), &k))
            joined[k] = true;
    db_release(db);
    strmap_cleanup(&at);
    buf_cleanup(&arr);
    return rc == ERR_DONE ? ERR_OK : rc;
}

/* SQLite: the counters of n deliveries of an integration that an outcome just moved from
 * unfinished to state at now, once per statement rather than per row. The row triggers skip
 * both kinds of row counted here: S3 batch members (migration 011) and leased webhook
 * deliveries (migration 017); PostgreSQL's statement triggers count every row. */
static enum err finished_counts(struct db *db, const char *tenant, const char *integration,
                                const char *state, int64_t now, int64_t n)
{
    struct db_stmt *st = db_stmt(db, "UPDATE delivery_counts SET n = n - ? WHERE tenant_id = ? "
                                     "AND integration_id = ? AND status = 'pending' AND shard = 0");
    db_bind_int(st, 1, n);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, integration);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    st = db_stmt(db, "INSERT INTO delivery_counts (tenant_id, integration_id, status, shard, n) "
                     "VALUES (?, ?, ?, 0, ?) ON CONFLICT (tenant_id, integration_id, status, "
                     "shard) DO UPDATE SET n = n + excluded.n");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    db_bind_text(st, 3, state);
    db_bind_int(st, 4, n);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    /* The per-minute outcome counters (/v1/stats) count these three, as the triggers do. */
    if (strcmp(state, "succeeded") && strcmp(state, "failed") && strcmp(state, "rejected"))
        return ERR_OK;
    st = db_stmt(db, "INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n) VALUES (?, "
                     "?, ?, 0, ?) ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET n = "
                     "n + excluded.n");
    db_bind_text(st, 1, tenant);
    db_bind_int(st, 2, now / 60000);
    db_bind_text(st, 3, state);
    db_bind_int(st, 4, n);
    return db_run(st);
}

enum err deliveries_batch_attempt(struct db *db, const struct batch_attempt *a, const char *state,
                                  int64_t now)
{
    assert(store_is_writer());
    struct db_stmt *st;
    int i = 1;
    if (state) {
        st = db_stmt(db, "UPDATE deliveries SET state = ?, finished_at = ?, attempts = ?, "
                         "first_attempt_at = COALESCE(first_attempt_at, ?), last_attempt_at = ?, "
                         "last_status = ?, last_error = ? WHERE tenant_id = ? AND integration_id = "
                         "? AND batch_id = ? AND state IN " DELIVERIES_UNFINISHED);
        db_bind_text(st, i++, state);
        db_bind_int(st, i++, now);
    } else {
        st = db_stmt(db, "UPDATE deliveries SET attempts = ?, first_attempt_at = "
                         "COALESCE(first_attempt_at, ?), last_attempt_at = ?, last_status = ?, "
                         "last_error = ? WHERE tenant_id = ? AND integration_id = ? AND batch_id "
                         "= ? AND state IN " DELIVERIES_UNFINISHED);
    }
    db_bind_int(st, i++, a->attempt);
    db_bind_int(st, i++, a->started_at);
    db_bind_int(st, i++, a->started_at);
    bind_status(st, i++, a->status);
    db_bind_text(st, i++, a->error);
    db_bind_text(st, i++, a->tenant);
    db_bind_text(st, i++, a->integration);
    db_bind_text(st, i, a->batch_id);
    enum err rc = db_run(st);
    if (rc == ERR_OK && state && db_kind(db) == DB_SQLITE && db_changes(st) > 0)
        rc = finished_counts(db, a->tenant, a->integration, state, now, db_changes(st));
    return rc;
}

enum err deliveries_purge(struct db *db, const char *tenant, int64_t before, int limit, int64_t *n)
{
    assert(store_is_writer());
    *n = 0;
    char floor[ID_MAX];
    id_floor("dlv", before, floor);
    /* Delivery ids are time-ordered, so "created before" is a primary-key range. */
    struct db_stmt *st = db_stmt(
        db, "DELETE FROM delivery_attempts WHERE tenant_id = ? AND delivery_id IN (SELECT id "
            "FROM deliveries WHERE tenant_id = ? AND id < ? AND state IN ('succeeded', 'failed', "
            "'rejected', 'skipped') LIMIT ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, floor);
    db_bind_int(st, 4, limit);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    st = db_stmt(db, "DELETE FROM deliveries WHERE tenant_id = ? AND id IN (SELECT id FROM "
                     "deliveries WHERE tenant_id = ? AND id < ? AND state IN ('succeeded', "
                     "'failed', 'rejected', 'skipped') LIMIT ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, floor);
    db_bind_int(st, 4, limit);
    if ((rc = db_run(st)) == ERR_OK)
        *n = db_changes(st);
    return rc;
}

enum err deliveries_delete_integration(struct db *db, const char *tenant, const char *integration)
{
    assert(store_is_writer());
    struct db_stmt *st = db_stmt(db, "DELETE FROM delivery_attempts WHERE tenant_id = ? AND "
                                     "delivery_id IN (SELECT id FROM deliveries WHERE tenant_id "
                                     "= ? AND integration_id = ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, integration);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    st = db_stmt(db, "DELETE FROM deliveries WHERE tenant_id = ? AND integration_id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    return db_run(st);
}

void deliveries_render_metrics(struct buf *out)
{
    struct db *db = store_reader();
    if (!db)
        return;
    /* A family is written only when its query read every row: a storage error leaves it out
     * rather than exporting part of it as if it were all. */
    struct db_stmt *st =
        db_stmt(db, "SELECT state, COUNT(*) FROM deliveries WHERE state IN " DELIVERIES_UNFINISHED
                    " GROUP BY state");
    const char *states[] = {"waiting", "held", "pending", "in_flight"};
    int64_t counts[4] = {0};
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK)
        for (int i = 0; i < 4; i++)
            if (!strcmp(db_col_text(st, 0), states[i]))
                counts[i] = db_col_int(st, 1);
    if (rc == ERR_DONE) {
        buf_puts(out, "# HELP sluice_deliveries Unfinished deliveries by state.\n"
                      "# TYPE sluice_deliveries gauge\n");
        for (int i = 0; i < 4; i++)
            buf_printf(out, "sluice_deliveries{state=\"%s\"} %lld\n", states[i],
                       (long long)counts[i]);
    }
    st = db_stmt(db, "SELECT tenant_id, integration_id, MIN(created_at) FROM deliveries WHERE "
                     "state IN " DELIVERIES_UNFINISHED " GROUP BY tenant_id, integration_id");
    int64_t now = time_now_ms();
    struct buf ages;
    buf_init(&ages);
    while ((rc = db_next(st)) == ERR_OK)
        buf_printf(&ages,
                   "sluice_delivery_oldest_pending_age_seconds{tenant=\"%s\",integration=\"%s\"} "
                   "%.3f\n",
                   db_col_text(st, 0), db_col_text(st, 1),
                   (double)(now - db_col_int(st, 2)) / 1000.0);
    if (rc == ERR_DONE) {
        buf_puts(out, "# HELP sluice_delivery_oldest_pending_age_seconds Age of the oldest "
                      "unfinished delivery per integration.\n"
                      "# TYPE sluice_delivery_oldest_pending_age_seconds gauge\n");
        buf_append(out, ages.data ? ages.data : "", ages.len);
    }
    buf_cleanup(&ages);
    db_release(db);
}
