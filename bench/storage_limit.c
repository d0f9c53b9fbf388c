/* The storage limit of DESIGN.md's ingest target: how many events per second the database
 * itself takes when the same event rows, plus one delivery row each, go into the same
 * schema (Sluice's own migrations, so the same indexes) with the same settings (Sluice's
 * own SQLite driver: WAL, synchronous=FULL), 1,000 events per transaction, with no HTTP,
 * no JSON and no routing in the way.
 *
 * On PostgreSQL the rows go in with COPY (the database's fastest path; DESIGN.md allows the
 * faster of multi-row INSERT and COPY), over a libpq connection of its own, after Sluice's
 * migrations created the schema.
 *
 * Usage: storage_limit DB_URL [SECONDS]
 *   DB_URL   sqlite:PATH (a new file) or postgres://… (an empty database)
 *   SECONDS  how long to insert (default 10)
 * Prints one JSON object: {"storage_limit_events_per_s", "events", "seconds", "per_txn"}. */
#include <libpq-fe.h>
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

static int fail(struct db *db, const char *what)
{
    fprintf(stderr, "storage_limit: %s: %s\n", what, db ? db_errmsg(db) : "");
    return 1;
}

/* One event and its delivery row, as the publish path writes them for an event that
 * matches one integration. */
static enum err insert_one(struct db *db, const char *payload, long i, int64_t now)
{
    char evt[ID_MAX], dlv[ID_MAX], entity_id[32], key[48];
    id_new("evt", now, evt);
    id_new("dlv", now, dlv);
    snprintf(entity_id, sizeof entity_id, "ORD-%ld", i % 1000000);
    snprintf(key, sizeof key, "order/%s", entity_id);
    struct db_stmt *st = db_stmt(
        db, "INSERT INTO events (tenant_id, id, client_id, type, entity, entity_id, sequence, "
            "occurred_at, published_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING");
    db_bind_text(st, 1, "bench");
    db_bind_text(st, 2, evt);
    db_bind_null(st, 3);
    db_bind_text(st, 4, "order.created");
    db_bind_text(st, 5, "order");
    db_bind_text(st, 6, entity_id);
    db_bind_int(st, 7, i + 1);
    db_bind_int(st, 8, now);
    db_bind_int(st, 9, now);
    db_bind_text(st, 10, payload);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    st = db_stmt(db, "INSERT INTO deliveries (tenant_id, id, integration_id, event_id, "
                     "entity_key, state, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, "
                     "?, ?)");
    db_bind_text(st, 1, "bench");
    db_bind_text(st, 2, dlv);
    db_bind_text(st, 3, "erp");
    db_bind_text(st, 4, evt);
    db_bind_text(st, 5, key);
    db_bind_text(st, 6, "pending");
    db_bind_int(st, 7, now);
    db_bind_int(st, 8, now);
    return db_run(st);
}

static bool pg_ok(PGconn *c, PGresult *r, ExecStatusType want, const char *what)
{
    bool ok = PQresultStatus(r) == want;
    if (!ok)
        fprintf(stderr, "storage_limit: %s: %s", what, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

/* COPY of one table's rows (text format, already escaped) inside the open transaction. */
static bool pg_copy(PGconn *c, const char *sql, const struct buf *rows)
{
    if (!pg_ok(c, PQexec(c, sql), PGRES_COPY_IN, "COPY"))
        return false;
    if (PQputCopyData(c, rows->data, (int)rows->len) != 1 || PQputCopyEnd(c, NULL) != 1) {
        fprintf(stderr, "storage_limit: COPY data: %s", PQerrorMessage(c));
        return false;
    }
    return pg_ok(c, PQgetResult(c), PGRES_COMMAND_OK, "COPY end");
}

/* PostgreSQL: transactions of PER_TXN events by COPY, for secs seconds. Returns the count
 * of events, or -1. */
static long pg_run(const char *url, double secs, int64_t *elapsed_ns)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "storage_limit: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    char pad[421];
    memset(pad, 'x', 420);
    pad[420] = '\0';
    struct buf ev = {0}, dl = {0};
    long n = 0;
    int64_t t0 = time_mono_ns(), limit = (int64_t)(secs * 1e9);
    *elapsed_ns = 0;
    bool ok = true;
    while (ok && *elapsed_ns < limit) {
        buf_reset(&ev);
        buf_reset(&dl);
        int64_t now = time_now_ms();
        for (int k = 0; k < PER_TXN; k++, n++) {
            char evt[ID_MAX], dlv[ID_MAX];
            id_new("evt", now, evt);
            id_new("dlv", now, dlv);
            long e = n % 1000000;
            buf_printf(&ev,
                       "bench\t%s\t\\N\torder.created\torder\tORD-%ld\t%ld\t%lld\t%lld\t"
                       "{\"n\":%d,\"note\":\"%s\"}\n",
                       evt, e, n + 1, (long long)now, (long long)now, k + 1, pad);
            buf_printf(&dl, "bench\t%s\terp\t%s\torder/ORD-%ld\tpending\t%lld\t%lld\n", dlv,
                       evt, e, (long long)now, (long long)now);
        }
        ok = pg_ok(c, PQexec(c, "BEGIN"), PGRES_COMMAND_OK, "BEGIN") &&
             pg_copy(c,
                     "COPY events (tenant_id, id, client_id, type, entity, entity_id, sequence, "
                     "occurred_at, published_at, payload) FROM STDIN",
                     &ev) &&
             pg_copy(c,
                     "COPY deliveries (tenant_id, id, integration_id, event_id, entity_key, "
                     "state, next_attempt_at, created_at) FROM STDIN",
                     &dl) &&
             pg_ok(c, PQexec(c, "COMMIT"), PGRES_COMMAND_OK, "COMMIT");
        *elapsed_ns = time_mono_ns() - t0;
    }
    buf_cleanup(&ev);
    buf_cleanup(&dl);
    PQfinish(c);
    return ok ? n : -1;
}

int main(int argc, char **argv)
{
    bool pg = argc >= 2 && (!strncmp(argv[1], "postgres://", 11) ||
                            !strncmp(argv[1], "postgresql://", 13));
    if (argc < 2 || argc > 3 || (strncmp(argv[1], "sqlite:", 7) != 0 && !pg)) {
        fprintf(stderr, "usage: storage_limit sqlite:PATH|postgres://URL [SECONDS]\n");
        return 2;
    }
    double secs = argc == 3 ? atof(argv[2]) : 10;
    if (!(secs > 0 && secs <= 3600)) {
        fprintf(stderr, "storage_limit: SECONDS must be in (0, 3600], got %s\n", argv[2]);
        return 2;
    }
    log_configure("warn", "text");
    char err[256];
    struct db *db = NULL;
    if (db_open(argv[1], &db, err, sizeof err) != ERR_OK) {
        fprintf(stderr, "storage_limit: %s\n", err);
        return 1;
    }
    if (store_migrate(db, err, sizeof err) != ERR_OK) {
        fprintf(stderr, "storage_limit: %s\n", err);
        db_close(db);
        return 1;
    }
    /* The same ~500-byte event the ingest benchmark publishes (bench/publish.lua). */
    char payload[600];
    char pad[421];
    memset(pad, 'x', 420);
    pad[420] = '\0';
    int64_t now = time_now_ms();
    struct db_stmt *st = db_stmt(db, "INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)");
    db_bind_text(st, 1, "bench");
    db_bind_text(st, 2, "Bench");
    db_bind_int(st, 3, now);
    if (db_run(st) != ERR_OK) {
        int r = fail(db, "cannot create the tenant");
        db_close(db);
        return r;
    }
    long n = 0;
    int64_t t0 = time_mono_ns(), limit = (int64_t)(secs * 1e9), elapsed = 0;
    if (pg) {
        db_close(db);
        n = pg_run(argv[1], secs, &elapsed);
        if (n < 0)
            return 1;
        limit = 0; /* done */
    }
    while (elapsed < limit) {
        if (db_begin(db) != ERR_OK) {
            int r = fail(db, "begin");
            db_close(db);
            return r;
        }
        now = time_now_ms();
        for (int k = 0; k < PER_TXN; k++, n++) {
            snprintf(payload, sizeof payload, "{\"n\":%d,\"note\":\"%s\"}", k + 1, pad);
            if (insert_one(db, payload, n, now) != ERR_OK) {
                int r = fail(db, "insert");
                db_close(db);
                return r;
            }
        }
        if (db_commit(db) != ERR_OK) {
            int r = fail(db, "commit");
            db_close(db);
            return r;
        }
        elapsed = time_mono_ns() - t0;
    }
    if (!pg)
        db_close(db);
    double s = (double)elapsed / 1e9;
    printf("{\"storage_limit_events_per_s\": %.0f, \"events\": %ld, \"seconds\": %.2f, "
           "\"per_txn\": %d, \"method\": \"%s\"}\n",
           (double)n / s, n, s, PER_TXN, pg ? "COPY" : "INSERT");
    return 0;
}
