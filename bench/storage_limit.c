/* The storage limits of DESIGN.md's performance targets: how fast the database itself takes
 * the rows Sluice writes, with no HTTP, no JSON and no routing in the way, on Sluice's own
 * schema (its migrations, so the same indexes) and settings (Sluice's own database driver
 * opens the connection: on SQLite WAL, synchronous=FULL and the same page cache; on
 * PostgreSQL synchronous_commit=on). Single-threaded; one process at a time.
 *
 * Modes (what one "unit" is, 1,000 units per transaction):
 *   default      an event and its delivery rows (--deliveries K per event: the second one
 *                is a `waiting` row of a paused, entity-ordered integration, as the grown
 *                benchmark's server writes), the ingest targets' limit;
 *   --lifecycle  the same insert, then the claim (one set-based UPDATE per 1,000, as
 *                Sluice claims) and the outcome (the rows made `succeeded` and an attempt
 *                row each), each step its own transaction: an event's whole database life,
 *                the webhook target's limit;
 *   --alerts     an alert row and its alert-to-issue links (the bench's 10 policies and
 *                their groupings, computed here the way Sluice matches them), plus one
 *                UPDATE per issue the transaction touched: the alerting target's limit.
 * On SQLite the rows go in by prepared multi-row INSERTs, on PostgreSQL by COPY and by
 * multi-row INSERT, half the time each, and the faster counts (DESIGN.md: "the faster of
 * multi-row INSERT and COPY in that run").
 *
 * Growing a database (--fill N, before measuring; --fill-only N to only grow one, e.g. the
 * server's own database while the server is stopped): N events published over the last
 * 24 h for --entities E domain entities, each with a finished delivery of --integration
 * (succeeded, one in 1,000 rejected, each with its attempt row) and, with --held ID, a
 * delivery of that paused entity-ordered integration (the first of each entity `held`, the
 * rest `waiting`); entity_sequences follows. Filling runs with synchronous off (it is set-up,
 * not a measurement) and measuring with the driver's settings again.
 *
 * Usage: storage_limit DB_URL [SECONDS] [--lifecycle|--alerts] [--deliveries K]
 *                      [--entities E] [--fill N | --fill-only N] [--tenant T]
 *                      [--integration ID] [--held ID]
 *   DB_URL   sqlite:PATH or postgres://… (the database must exist on PostgreSQL)
 *   SECONDS  how long to measure (default 10)
 * Prints one JSON object on stdout. */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/id.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/db.h"
#include "store/store.h"

#define PER_TXN 1000
#define MAX_COLS 20

static struct {
    const char *url;
    bool pg;
    double secs;
    enum { MODE_EVENTS, MODE_LIFECYCLE, MODE_ALERTS } mode;
    int deliveries;
    long entities;
    long fill;
    bool fill_only;
    const char *tenant, *integration, *held;
} opt = {.secs = 10, .deliveries = 1, .entities = 1000000, .tenant = "bench", .integration = "erp"};

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "storage_limit: %s: %s\n", what, msg ? msg : "");
    exit(1);
}

/* --- rows: a batch of rows of one table, values kept as text -------------------------- */

struct table {
    const char *name;
    const char *cols;  /* "a, b, c" */
    const char *types; /* per column: 't' text, 'i' integer */
};

static const struct table T_EVENTS = {
    "events",
    "tenant_id, id, client_id, type, entity, entity_id, sequence, occurred_at, published_at, "
    "payload",
    "tttttiiiit"};
static const struct table T_DELIVERIES = {
    "deliveries",
    "tenant_id, id, integration_id, event_id, entity_key, state, attempts, next_attempt_at, "
    "first_attempt_at, last_attempt_at, last_status, created_at, finished_at",
    "ttttttiiiiiii"};
static const struct table T_ATTEMPTS = {
    "delivery_attempts",
    "tenant_id, delivery_id, attempt, node_id, started_at, duration_ms, status, error, "
    "response_body",
    "ttitiiitt"};
static const struct table T_ALERTS = {"alerts",
                                      "tenant_id, id, event, category, connection, entity_id, "
                                      "task_id, message, details, occurred_at, created_at",
                                      "tttttttttii"};
static const struct table T_LINKS = {"issue_alerts", "tenant_id, issue_id, alert_id", "ttt"};

struct rows {
    const struct table *t;
    int ncols;
    struct buf data;   /* NUL-terminated values */
    size_t *off;       /* per value: offset into data, or (size_t)-1 for NULL */
    size_t nvals, cap; /* values so far */
};

static void rows_init(struct rows *r, const struct table *t)
{
    memset(r, 0, sizeof *r);
    r->t = t;
    r->ncols = (int)strlen(t->types);
}

static void rows_reset(struct rows *r)
{
    buf_reset(&r->data);
    r->nvals = 0;
}

static size_t rows_n(const struct rows *r)
{
    return r->nvals / (size_t)r->ncols;
}

static void val_push(struct rows *r, size_t off)
{
    if (r->nvals == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 4096;
        r->off = realloc(r->off, r->cap * sizeof *r->off);
        if (!r->off)
            die("memory", "");
    }
    r->off[r->nvals++] = off;
}

static void val_s(struct rows *r, const char *s)
{
    if (!s) {
        val_push(r, (size_t)-1);
        return;
    }
    size_t off = r->data.len;
    buf_append(&r->data, s, strlen(s) + 1);
    val_push(r, off);
}

static void val_i(struct rows *r, int64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    val_s(r, tmp);
}

static const char *val_at(const struct rows *r, size_t k)
{
    return r->off[k] == (size_t)-1 ? NULL : r->data.data + r->off[k];
}

/* --- SQLite: prepared multi-row INSERTs ----------------------------------------------- */

static sqlite3 *sq; /* the facade's connection handle (same settings as Sluice's) */

static void sq_exec(const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(sq, sql, NULL, NULL, &msg) != SQLITE_OK)
        die(sql, msg);
}

static sqlite3_stmt *sq_prepare(const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(sq, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        die("prepare", sqlite3_errmsg(sq));
    return st;
}

static void sq_insert(const struct rows *r)
{
    size_t n = rows_n(r), chunk = 32000 / (size_t)r->ncols;
    if (chunk > 500)
        chunk = 500;
    for (size_t at = 0; at < n; at += chunk) {
        size_t k = n - at < chunk ? n - at : chunk;
        struct buf sql = BUF_INIT;
        buf_printf(&sql, "INSERT INTO %s (%s) VALUES ", r->t->name, r->t->cols);
        for (size_t i = 0; i < k; i++) {
            buf_puts(&sql, i ? ", (" : "(");
            for (int c = 0; c < r->ncols; c++)
                buf_puts(&sql, c ? ", ?" : "?");
            buf_puts(&sql, ")");
        }
        /* Cached per (table, row count): every full chunk reuses one statement. */
        static struct {
            const struct table *t;
            size_t k;
            sqlite3_stmt *st;
        } cache[16];
        sqlite3_stmt *st = NULL;
        for (int i = 0; i < 16 && cache[i].t; i++)
            if (cache[i].t == r->t && cache[i].k == k)
                st = cache[i].st;
        if (!st) {
            st = sq_prepare(sql.data);
            for (int i = 0; i < 16; i++)
                if (!cache[i].t) {
                    cache[i].t = r->t;
                    cache[i].k = k;
                    cache[i].st = st;
                    break;
                }
        }
        buf_cleanup(&sql);
        int p = 1;
        for (size_t i = 0; i < k; i++)
            for (int c = 0; c < r->ncols; c++, p++) {
                const char *v = val_at(r, (at + i) * (size_t)r->ncols + (size_t)c);
                if (!v)
                    sqlite3_bind_null(st, p);
                else if (r->t->types[c] == 'i')
                    sqlite3_bind_int64(st, p, strtoll(v, NULL, 10));
                else
                    sqlite3_bind_text(st, p, v, -1, SQLITE_STATIC);
            }
        if (sqlite3_step(st) != SQLITE_DONE)
            die("insert", sqlite3_errmsg(sq));
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

/* --- PostgreSQL: COPY or multi-row INSERT --------------------------------------------- */

static PGconn *pg;

static void pg_exec(const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        die(sql, PQerrorMessage(pg));
    PQclear(res);
}

static void pg_copy(const struct rows *r)
{
    char sql[512];
    snprintf(sql, sizeof sql, "COPY %s (%s) FROM STDIN", r->t->name, r->t->cols);
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        die("COPY", PQerrorMessage(pg));
    PQclear(res);
    struct buf line = BUF_INIT;
    size_t n = rows_n(r);
    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < r->ncols; c++) {
            const char *v = val_at(r, i * (size_t)r->ncols + (size_t)c);
            if (c)
                buf_putc(&line, '\t');
            if (!v)
                buf_puts(&line, "\\N");
            else
                for (const char *p = v; *p; p++) { /* COPY text escapes */
                    if (*p == '\\' || *p == '\t' || *p == '\n' || *p == '\r')
                        buf_putc(&line, '\\');
                    buf_putc(&line, *p == '\t' ? 't' : *p == '\n' ? 'n' : *p == '\r' ? 'r' : *p);
                }
        }
        buf_putc(&line, '\n');
    }
    if (PQputCopyData(pg, line.data ? line.data : "", (int)line.len) != 1 ||
        PQputCopyEnd(pg, NULL) != 1)
        die("COPY data", PQerrorMessage(pg));
    buf_cleanup(&line);
    res = PQgetResult(pg);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die("COPY end", PQerrorMessage(pg));
    PQclear(res);
    while ((res = PQgetResult(pg)))
        PQclear(res);
}

static void pg_insert(const struct rows *r)
{
    size_t n = rows_n(r), chunk = 60000 / (size_t)r->ncols;
    if (chunk > 1000)
        chunk = 1000;
    for (size_t at = 0; at < n; at += chunk) {
        size_t k = n - at < chunk ? n - at : chunk;
        struct buf sql = BUF_INIT;
        buf_printf(&sql, "INSERT INTO %s (%s) VALUES ", r->t->name, r->t->cols);
        int p = 1;
        for (size_t i = 0; i < k; i++) {
            buf_puts(&sql, i ? ", (" : "(");
            for (int c = 0; c < r->ncols; c++, p++)
                buf_printf(&sql, c ? ", $%d" : "$%d", p);
            buf_puts(&sql, ")");
        }
        /* Prepared once per (table, row count). */
        static struct {
            const struct table *t;
            size_t k;
            char name[16];
        } cache[16];
        static int nprep;
        const char *name = NULL;
        for (int i = 0; i < nprep; i++)
            if (cache[i].t == r->t && cache[i].k == k)
                name = cache[i].name;
        if (!name && nprep < 16) {
            snprintf(cache[nprep].name, sizeof cache[nprep].name, "ins%d", nprep);
            PGresult *res = PQprepare(pg, cache[nprep].name, sql.data, 0, NULL);
            if (PQresultStatus(res) != PGRES_COMMAND_OK)
                die("prepare", PQerrorMessage(pg));
            PQclear(res);
            cache[nprep].t = r->t;
            cache[nprep].k = k;
            name = cache[nprep++].name;
        }
        const char **vals = malloc(k * (size_t)r->ncols * sizeof *vals);
        for (size_t i = 0; i < k * (size_t)r->ncols; i++)
            vals[i] = val_at(r, at * (size_t)r->ncols + i);
        PGresult *res =
            name ? PQexecPrepared(pg, name, (int)(k * (size_t)r->ncols), vals, NULL, NULL, 0)
                 : PQexecParams(pg, sql.data, (int)(k * (size_t)r->ncols), NULL, vals, NULL, NULL,
                                0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            die("insert", PQerrorMessage(pg));
        PQclear(res);
        free(vals);
        buf_cleanup(&sql);
    }
}

static bool use_copy; /* PostgreSQL: COPY now, else multi-row INSERT */

static void flush(struct rows *r)
{
    if (rows_n(r) == 0)
        return;
    if (!opt.pg)
        sq_insert(r);
    else if (use_copy)
        pg_copy(r);
    else
        pg_insert(r);
    rows_reset(r);
}

static void txn_begin(void)
{
    if (opt.pg)
        pg_exec("BEGIN");
    else
        sq_exec("BEGIN IMMEDIATE");
}

static void txn_commit(void)
{
    if (opt.pg)
        pg_exec("COMMIT");
    else
        sq_exec("COMMIT");
}

/* --- the rows Sluice writes ----------------------------------------------------------- */

static char pad[421];

static void add_event(struct rows *ev, const char *id, long entity, long seq, int64_t t, int n)
{
    char eid[32], payload[600];
    snprintf(eid, sizeof eid, "ORD-%ld", entity);
    snprintf(payload, sizeof payload, "{\"n\":%d,\"note\":\"%s\"}", n, pad);
    val_s(ev, opt.tenant);
    val_s(ev, id);
    val_s(ev, NULL);
    val_s(ev, "order.created");
    val_s(ev, "order");
    val_s(ev, eid);
    val_i(ev, seq);
    val_i(ev, t);
    val_i(ev, t);
    val_s(ev, payload);
}

/* A delivery row; finished: succeeded (or rejected) with its attempt time. */
static void add_delivery(struct rows *dl, const char *id, const char *integration,
                         const char *event_id, long entity, const char *state, int64_t t,
                         bool finished)
{
    char key[48];
    snprintf(key, sizeof key, "order/ORD-%ld", entity);
    val_s(dl, opt.tenant);
    val_s(dl, id);
    val_s(dl, integration);
    val_s(dl, event_id);
    val_s(dl, key);
    val_s(dl, state);
    val_i(dl, finished ? 1 : 0);
    val_i(dl, t);
    if (finished) {
        val_i(dl, t + 3);
        val_i(dl, t + 3);
        val_i(dl, !strcmp(state, "succeeded") ? 200 : 400);
    } else {
        val_s(dl, NULL);
        val_s(dl, NULL);
        val_s(dl, NULL);
    }
    val_i(dl, t);
    if (finished)
        val_i(dl, t + 5);
    else
        val_s(dl, NULL);
}

static void add_attempt(struct rows *at, const char *delivery_id, int64_t t, int status)
{
    val_s(at, opt.tenant);
    val_s(at, delivery_id);
    val_i(at, 1);
    val_s(at, "bench");
    val_i(at, t);
    val_i(at, 2);
    val_i(at, status);
    val_s(at, NULL);
    val_s(at, status == 200 ? "ok" : "{\"error\":\"no such order\"}");
}

static void exec_sql(const char *sql)
{
    if (opt.pg)
        pg_exec(sql);
    else
        sq_exec(sql);
}

/* SQLite: the read counters Sluice keeps set-based (migration 017: its publishes and
 * outcomes count once per integration and minute, not by row triggers), kept the same way
 * here so the limit writes what Sluice writes. PostgreSQL's statement triggers count. */
static void sq_count(const char *table, const char *key, const char *kind, long n)
{
    if (opt.pg)
        return;
    char sql[512];
    if (!strcmp(table, "delivery_counts"))
        snprintf(sql, sizeof sql,
                 "INSERT INTO delivery_counts (tenant_id, integration_id, status, shard, n) "
                 "VALUES ('%.64s', '%.64s', '%s', 0, %ld) ON CONFLICT (tenant_id, "
                 "integration_id, status, shard) DO UPDATE SET n = n + excluded.n",
                 opt.tenant, key, kind, n);
    else
        snprintf(sql, sizeof sql,
                 "INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n) VALUES ('%.64s', "
                 "%s, '%s', 0, %ld) ON CONFLICT (tenant_id, minute, kind, shard) DO UPDATE SET "
                 "n = n + excluded.n",
                 opt.tenant, key, kind, n);
    exec_sql(sql);
}

/* SQLite, after a fill: every counter recounted from the rows (the fill inserts finished
 * and unfinished rows of many minutes at once). */
static void sq_recount(void)
{
    if (opt.pg)
        return;
    txn_begin();
    exec_sql("DELETE FROM delivery_counts");
    exec_sql("INSERT INTO delivery_counts (tenant_id, integration_id, status, shard, n) SELECT "
             "tenant_id, integration_id, CASE WHEN state IN ('succeeded', 'failed', 'rejected', "
             "'skipped') THEN state ELSE 'pending' END AS status, 0, COUNT(*) FROM deliveries "
             "GROUP BY tenant_id, integration_id, status");
    exec_sql("DELETE FROM stats_minutes WHERE kind <> 'alerts'");
    exec_sql("INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n) SELECT tenant_id, "
             "published_at / 60000 AS m, 'events', 0, COUNT(*) FROM events GROUP BY tenant_id, m");
    exec_sql("INSERT INTO stats_minutes (tenant_id, minute, kind, shard, n) SELECT tenant_id, "
             "finished_at / 60000 AS m, state, 0, COUNT(*) FROM deliveries WHERE state IN "
             "('succeeded', 'failed', 'rejected') AND finished_at IS NOT NULL GROUP BY "
             "tenant_id, m, state");
    txn_commit();
}

/* Grows the database by opt.fill events (see the top of the file). */
static void fill(void)
{
    if (opt.pg)
        pg_exec("SET synchronous_commit = off");
    else
        sq_exec("PRAGMA synchronous = OFF");
    use_copy = true;
    struct rows ev, dl, at;
    rows_init(&ev, &T_EVENTS);
    rows_init(&dl, &T_DELIVERIES);
    rows_init(&at, &T_ATTEMPTS);
    int64_t now = time_now_ms(), start = now - 24 * 3600 * 1000LL;
    long per_txn = 20000;
    for (long i = 0; i < opt.fill; i += per_txn) {
        txn_begin();
        for (long k = i; k < i + per_txn && k < opt.fill; k++) {
            int64_t t =
                start + (int64_t)((double)k * (double)(now - start - 60000) / (double)opt.fill);
            long entity = k % opt.entities + 1, seq = k / opt.entities + 1;
            char evt[ID_MAX], dlv[ID_MAX];
            id_new("evt", t, evt);
            add_event(&ev, evt, entity, seq, t, (int)(k % 1000));
            bool rejected = k % 1000 == 999;
            id_new("dlv", t, dlv);
            add_delivery(&dl, dlv, opt.integration, evt, entity,
                         rejected ? "rejected" : "succeeded", t, true);
            add_attempt(&at, dlv, t + 3, rejected ? 400 : 200);
            if (opt.held) {
                id_new("dlv", t, dlv);
                add_delivery(&dl, dlv, opt.held, evt, entity, k < opt.entities ? "held" : "waiting",
                             t, false);
            }
        }
        flush(&ev);
        flush(&dl);
        flush(&at);
        txn_commit();
    }
    /* The sequences the fill handed out. */
    txn_begin();
    char sql[512];
    for (long e = 0; e < opt.entities && e < opt.fill; e++) {
        long last = opt.fill / opt.entities + (e < opt.fill % opt.entities ? 1 : 0);
        snprintf(sql, sizeof sql,
                 "INSERT INTO entity_sequences (tenant_id, entity, entity_id, last_sequence) "
                 "VALUES ('%.64s', 'order', 'ORD-%ld', %ld) ON CONFLICT (tenant_id, entity, "
                 "entity_id) DO UPDATE SET last_sequence = excluded.last_sequence",
                 opt.tenant, e + 1, last);
        exec_sql(sql);
    }
    txn_commit();
    sq_recount();
    if (opt.pg) {
        pg_exec("ANALYZE");
        pg_exec("SET synchronous_commit = on");
    } else {
        sq_exec("PRAGMA synchronous = FULL");
    }
    free(ev.off);
    free(dl.off);
    free(at.off);
    buf_cleanup(&ev.data);
    buf_cleanup(&dl.data);
    buf_cleanup(&at.data);
}

/* --- measuring ------------------------------------------------------------------------ */

static long next_seq;
static uint64_t rng = 88172645463325252ULL;

/* The entity of the next measured event: uniformly random among --entities, as the
 * benchmark's load picks them (bench/publish.lua), so the entity indexes take their rows
 * at as many places as the server's do. */
static long next_entity(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (long)(rng % (uint64_t)opt.entities) + 1;
}

/* One transaction of PER_TXN events and their deliveries (all pending, or pending and
 * waiting). ids gets the delivery ids of opt.integration when not NULL. */
static void insert_txn(struct rows *ev, struct rows *dl, char (*ids)[ID_MAX])
{
    int64_t now = time_now_ms();
    for (int k = 0; k < PER_TXN; k++) {
        char evt[ID_MAX], dlv[ID_MAX];
        long entity = next_entity();
        id_new("evt", now, evt);
        add_event(ev, evt, entity, 1000 + next_seq++, now, k + 1);
        id_new("dlv", now, dlv);
        if (ids)
            memcpy(ids[k], dlv, ID_MAX);
        add_delivery(dl, dlv, opt.integration, evt, entity, "pending", now, false);
        if (opt.deliveries > 1) {
            id_new("dlv", now, dlv);
            add_delivery(dl, dlv, opt.held ? opt.held : "erp-held", evt, entity, "waiting", now,
                         false);
        }
    }
    txn_begin();
    flush(ev);
    flush(dl);
    char minute[24];
    snprintf(minute, sizeof minute, "%lld", (long long)(now / 60000));
    sq_count("stats_minutes", minute, "events", PER_TXN);
    sq_count("delivery_counts", opt.integration, "pending", PER_TXN);
    if (opt.deliveries > 1)
        sq_count("delivery_counts", opt.held ? opt.held : "erp-held", "pending", PER_TXN);
    txn_commit();
}

/* The claim (one statement for PER_TXN rows, like deliveries_claim) and the outcome (every
 * claimed row succeeded, one statement, plus an attempt row each), each its own
 * transaction. */
static void lifecycle_txns(char (*ids)[ID_MAX], struct rows *at)
{
    int64_t now = time_now_ms();
    char sql[1024];
    txn_begin();
    snprintf(
        sql, sizeof sql,
        "UPDATE deliveries SET state = 'in_flight', lease_owner = 'bench', lease_until = "
        "%lld, attempts = attempts + 1, last_attempt_at = %lld WHERE tenant_id = '%.64s' AND "
        "id IN (SELECT id FROM deliveries WHERE tenant_id = '%.64s' AND integration_id = '%.64s' "
        "AND state = 'pending' AND next_attempt_at <= %lld ORDER BY next_attempt_at, id "
        "LIMIT %d)",
        (long long)(now + 30000), (long long)now, opt.tenant, opt.tenant, opt.integration,
        (long long)now, PER_TXN);
    exec_sql(sql);
    txn_commit();
    now = time_now_ms();
    txn_begin();
    struct buf up = BUF_INIT;
    buf_printf(&up,
               "UPDATE deliveries SET state = 'succeeded', finished_at = %lld, last_status = 200, "
               "last_error = NULL, lease_owner = NULL, lease_until = NULL, first_attempt_at = "
               "COALESCE(first_attempt_at, %lld) WHERE tenant_id = '%.64s' AND id IN (",
               (long long)now, (long long)now, opt.tenant);
    for (int k = 0; k < PER_TXN; k++) {
        buf_printf(&up, k ? ", '%s'" : "'%s'", ids[k]);
        add_attempt(at, ids[k], now, 200);
    }
    buf_puts(&up, ")");
    exec_sql(up.data);
    buf_cleanup(&up);
    char minute[24];
    snprintf(minute, sizeof minute, "%lld", (long long)(now / 60000));
    sq_count("delivery_counts", opt.integration, "pending", -PER_TXN);
    sq_count("delivery_counts", opt.integration, "succeeded", PER_TXN);
    sq_count("stats_minutes", minute, "succeeded", PER_TXN);
    flush(at);
    txn_commit();
}

/* The bench's alerts and policies (bench/alerting.py): 5 failure events on 7 connections,
 * 10 policies, policy p monitors CATEGORIES[p % 5] and order.import_failed, grouped by
 * GROUPINGS[p % 3]. */
static const char *const EVENTS[] = {"order.import_failed", "order.export_failed",
                                     "shipment.export_failed", "inventory.sync_failed",
                                     "return.refund_failed"};
static const char *const CATEGORIES[] = {"order", "shipment", "inventory", "return",
                                         "purchase_order"};
#define NPOLICIES 10
#define NISSUES (NPOLICIES * 5 * 7)

static char issue_ids[NISSUES][ID_MAX]; /* policy * 35 + event * 7 + connection (as grouped) */

static int issue_slot(int p, int e, int c)
{
    int g = p % 3; /* [] | [event] | [event, connection] */
    return p * 35 + (g == 0 ? 0 : g == 1 ? e * 7 : e * 7 + c);
}

static bool policy_matches(int p, int e)
{
    char cat[32];
    snprintf(cat, sizeof cat, "%s", EVENTS[e]);
    *strchr(cat, '.') = '\0';
    return !strcmp(cat, CATEGORIES[p % 5]) || e == 0;
}

static void alerts_setup(void)
{
    int64_t now = time_now_ms();
    char sql[1024];
    txn_begin();
    for (int p = 0; p < NPOLICIES; p++)
        for (int e = 0; e < 5; e++)
            for (int c = 0; c < 7; c++) {
                int s = issue_slot(p, e, c);
                if (issue_ids[s][0])
                    continue;
                id_new("iss", now, issue_ids[s]);
                snprintf(sql, sizeof sql,
                         "INSERT INTO issues (tenant_id, id, policy_id, group_key, group_json, "
                         "title, status, alert_count, opened_at, last_alert_at) VALUES ('%.64s', "
                         "'%.40s', 'pol_%d', 'g%d', '{}', 'bench', 'open', 0, %lld, %lld)",
                         opt.tenant, issue_ids[s], p, s, (long long)now, (long long)now);
                exec_sql(sql);
            }
    txn_commit();
}

static long alert_seq;

/* One transaction of PER_TXN alerts; returns the links written. */
static long alerts_txn(struct rows *al, struct rows *ln)
{
    int64_t now = time_now_ms();
    static long touched[NISSUES];
    memset(touched, 0, sizeof touched);
    long links = 0;
    for (int k = 0; k < PER_TXN; k++, alert_seq++) {
        int e = (int)(alert_seq % 5), c = (int)(alert_seq % 7);
        char id[ID_MAX], conn[16], entity[24];
        id_new("alr", now, id);
        snprintf(conn, sizeof conn, "conn-%d", c);
        snprintf(entity, sizeof entity, "E%ld", alert_seq);
        char cat[32];
        snprintf(cat, sizeof cat, "%s", EVENTS[e]);
        *strchr(cat, '.') = '\0';
        val_s(al, opt.tenant);
        val_s(al, id);
        val_s(al, EVENTS[e]);
        val_s(al, cat);
        val_s(al, conn);
        val_s(al, entity);
        val_s(al, NULL);
        val_s(al, "the thing failed with a moderately long message");
        val_s(al, NULL);
        val_i(al, now);
        val_i(al, now);
        for (int p = 0; p < NPOLICIES; p++) {
            if (!policy_matches(p, e))
                continue;
            int s = issue_slot(p, e, c);
            touched[s]++;
            val_s(ln, opt.tenant);
            val_s(ln, issue_ids[s]);
            val_s(ln, id);
            links++;
        }
    }
    txn_begin();
    flush(al);
    flush(ln);
    char sql[512];
    for (int s = 0; s < NISSUES; s++) {
        if (!touched[s])
            continue;
        snprintf(sql, sizeof sql,
                 "UPDATE issues SET alert_count = alert_count + %ld, last_alert_at = %lld WHERE "
                 "tenant_id = '%.64s' AND id = '%.40s'",
                 touched[s], (long long)now, opt.tenant, issue_ids[s]);
        exec_sql(sql);
    }
    txn_commit();
    return links;
}

/* Runs the mode for secs seconds; returns units (events or alerts) done. */
static long measure(double secs, double *elapsed, long *links, double *delivery_secs)
{
    struct rows ev, dl, at, al, ln;
    rows_init(&ev, &T_EVENTS);
    rows_init(&dl, &T_DELIVERIES);
    rows_init(&at, &T_ATTEMPTS);
    rows_init(&al, &T_ALERTS);
    rows_init(&ln, &T_LINKS);
    char(*ids)[ID_MAX] = calloc(PER_TXN, ID_MAX);
    long n = 0;
    int64_t t0 = time_mono_ns(), limit = (int64_t)(secs * 1e9), el = 0, dl_ns = 0;
    while (el < limit) {
        if (opt.mode == MODE_ALERTS) {
            *links += alerts_txn(&al, &ln);
        } else {
            insert_txn(&ev, &dl, opt.mode == MODE_LIFECYCLE ? ids : NULL);
            if (opt.mode == MODE_LIFECYCLE) {
                int64_t d0 = time_mono_ns();
                lifecycle_txns(ids, &at);
                dl_ns += time_mono_ns() - d0;
            }
        }
        n += PER_TXN;
        el = time_mono_ns() - t0;
    }
    *elapsed = (double)el / 1e9;
    *delivery_secs = (double)dl_ns / 1e9;
    free(ids);
    struct rows *all[] = {&ev, &dl, &at, &al, &ln};
    for (int i = 0; i < 5; i++) {
        free(all[i]->off);
        buf_cleanup(&all[i]->data);
    }
    return n;
}

static long count_rows(const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
    long n = -1;
    if (opt.pg) {
        PGresult *res = PQexec(pg, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
    } else {
        sqlite3_stmt *st = sq_prepare(sql);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = (long)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return n;
}

static void usage(void)
{
    fprintf(stderr, "usage: storage_limit sqlite:PATH|postgres://URL [SECONDS] [--lifecycle|"
                    "--alerts] [--deliveries K] [--entities E] [--fill N|--fill-only N] "
                    "[--tenant T] [--integration ID] [--held ID]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    opt.url = argv[1];
    opt.pg = !strncmp(opt.url, "postgres://", 11) || !strncmp(opt.url, "postgresql://", 13);
    if (!opt.pg && strncmp(opt.url, "sqlite:", 7) != 0)
        usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--lifecycle"))
            opt.mode = MODE_LIFECYCLE;
        else if (!strcmp(a, "--alerts"))
            opt.mode = MODE_ALERTS;
        else if (!strcmp(a, "--deliveries") && v)
            opt.deliveries = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--entities") && v)
            opt.entities = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--fill") && v)
            opt.fill = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--fill-only") && v) {
            opt.fill = strtol(argv[++i], NULL, 10);
            opt.fill_only = true;
        } else if (!strcmp(a, "--tenant") && v)
            opt.tenant = argv[++i];
        else if (!strcmp(a, "--integration") && v)
            opt.integration = argv[++i];
        else if (!strcmp(a, "--held") && v)
            opt.held = argv[++i];
        else if (a[0] != '-' && i == 2)
            opt.secs = strtod(a, NULL);
        else
            usage();
    }
    if (!(opt.secs > 0 && opt.secs <= 3600) || opt.entities < 1 || opt.deliveries < 1 ||
        opt.deliveries > 2 || opt.fill < 0)
        usage();
    log_configure("warn", "text");
    memset(pad, 'x', 420);
    rng ^= (uint64_t)time_now_ms();
    char err[256] = "";
    struct db *db = NULL;
    if (db_open(opt.url, &db, err, sizeof err) != ERR_OK)
        die("open", err);
    if (store_migrate(db, err, sizeof err) != ERR_OK)
        die("migrate", err);
    if (opt.pg) {
        pg = PQconnectdb(opt.url);
        if (PQstatus(pg) != CONNECTION_OK)
            die("connect", PQerrorMessage(pg));
        pg_exec("SET synchronous_commit = on; SET client_min_messages = warning");
    } else {
        sq = db->conn; /* the driver's handle: its PRAGMAs are Sluice's */
    }
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO tenants (id, name, created_at) VALUES ('%.64s', 'Bench', %lld) ON "
             "CONFLICT DO NOTHING",
             opt.tenant, (long long)time_now_ms());
    exec_sql(sql);
    int64_t f0 = time_mono_ns();
    if (opt.fill > 0)
        fill();
    double fill_secs = (double)(time_mono_ns() - f0) / 1e9;
    if (opt.fill_only) {
        printf("{\"filled_events\": %ld, \"seconds\": %.1f}\n", opt.fill, fill_secs);
        goto out;
    }
    long events_before = count_rows("events");
    if (opt.mode == MODE_ALERTS)
        alerts_setup();
    /* SQLite: one pass with its multi-row INSERTs. PostgreSQL: COPY, then multi-row
     * INSERT, half the time each; the faster counts. */
    double el1 = 0, el2 = 0, ds1 = 0, ds2 = 0;
    long links1 = 0, links2 = 0, n1 = 0, n2 = 0;
    use_copy = true;
    n1 = measure(opt.pg ? opt.secs / 2 : opt.secs, &el1, &links1, &ds1);
    if (opt.pg) {
        use_copy = false;
        n2 = measure(opt.secs / 2, &el2, &links2, &ds2);
    }
    double r1 = (double)n1 / el1, r2 = n2 ? (double)n2 / el2 : 0;
    bool second = opt.pg && r2 > r1;
    double rate = second ? r2 : r1;
    const char *method = !opt.pg ? "INSERT" : second ? "INSERT" : "COPY";
    struct buf out = BUF_INIT;
    buf_printf(&out, "{\"events_before\": %ld, \"seconds\": %.2f, \"per_txn\": %d, ", events_before,
               el1 + el2, PER_TXN);
    if (opt.fill)
        buf_printf(&out, "\"fill_seconds\": %.1f, ", fill_secs);
    if (opt.pg)
        buf_printf(&out, "\"copy_per_s\": %.0f, \"insert_per_s\": %.0f, ", r1, r2);
    buf_printf(&out, "\"method\": \"%s\", ", method);
    if (opt.mode == MODE_ALERTS) {
        long links = second ? links2 : links1, n = second ? n2 : n1;
        buf_printf(&out, "\"links_per_alert\": %.2f, \"storage_limit_alerts_per_s\": %.0f}",
                   (double)links / (double)n, rate);
    } else if (opt.mode == MODE_LIFECYCLE) {
        double ds = second ? ds2 : ds1;
        long n = second ? n2 : n1;
        buf_printf(&out,
                   "\"delivery_only_events_per_s\": %.0f, \"lifecycle_limit_events_per_s\": %.0f}",
                   (double)n / ds, rate);
    } else {
        buf_printf(&out, "\"deliveries_per_event\": %d, \"storage_limit_events_per_s\": %.0f}",
                   opt.deliveries, rate);
    }
    printf("%s\n", out.data);
    buf_cleanup(&out);
out:
    if (pg)
        PQfinish(pg);
    db_close(db);
    return 0;
}
