/* SQLite driver for the facade: WAL, synchronous=FULL (an acknowledged write survives power
 * loss), busy timeout. One connection per thread; the writer thread holds the only one
 * that writes. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store/db.h"

static enum err fail(struct db *db, int rc)
{
    snprintf(db->errmsg, sizeof db->errmsg, "sqlite: %s", sqlite3_errmsg(db->conn));
    int ext = sqlite3_extended_errcode(db->conn);
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        return ERR_CONFLICT;
    (void)rc;
    return ERR_STORAGE;
}

/* Process-wide settings, before the library initializes: no memory statistics (they take
 * a global mutex on every allocation; nothing reads them), and no bulk allocation for a new
 * page cache. SQLite gives every page cache it creates an initial block of 20 pages; each
 * ephemeral table a statement opens (an IN list, a VALUES list in FROM, a sort) has a
 * page cache of its own, so the writer allocated, zeroed and freed ~90 KB several times per
 * group commit: a tenth of its time in page faults and madvise. Pages now come one at a
 * time, as needed. */
static void sq_configure(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

static enum err sq_open(struct db *db, const char *url, char *errmsg, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sq_configure);
    const char *path = url + strlen("sqlite:");
    sqlite3 *conn = NULL;
    int rc = sqlite3_open_v2(
        path, &conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(errmsg, errlen, "cannot open SQLite database %s: %s", path,
                 conn ? sqlite3_errmsg(conn) : sqlite3_errstr(rc));
        sqlite3_close(conn);
        return ERR_STORAGE;
    }
    db->conn = conn;
    sqlite3_busy_timeout(conn, 10000);
    char *msg = NULL;
    /* temp_store stays the default (files, in the OS page cache): with temp_store=MEMORY
     * the writer's savepoint sub-journal is an in-memory chunk list that SQLite walks from
     * its start at each statement savepoint, quadratic in a large group commit once
     * statements run triggers (migration 008's counters): S3 batching ran 4-13x slower. */
    rc = sqlite3_exec(conn,
                      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                      "PRAGMA foreign_keys=ON; PRAGMA cache_size=-65536;",
                      NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(errmsg, errlen, "cannot configure SQLite database %s: %s", path,
                 msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite3_close(conn);
        return ERR_STORAGE;
    }
    return ERR_OK;
}

/* Replaces SQLite's auto-checkpoint hook (wal_autocheckpoint is itself a WAL hook). */
static int wal_hook(void *arg, sqlite3 *conn, const char *name, int pages)
{
    (void)conn;
    (void)name;
    ((struct db *)arg)->wal_pages = pages;
    return SQLITE_OK;
}

void db_watch_wal(struct db *db)
{
    if (db->kind == DB_SQLITE)
        sqlite3_wal_hook(db->conn, wal_hook, db);
}

int db_wal_pages(const struct db *db)
{
    return db->kind == DB_SQLITE ? db->wal_pages : 0;
}

static void sq_close(struct db *db)
{
    sqlite3_close(db->conn);
}

static enum err sq_exec(struct db *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->conn, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(db->errmsg, sizeof db->errmsg, "sqlite: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        int ext = sqlite3_extended_errcode(db->conn);
        if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
            return ERR_CONFLICT;
        return ERR_STORAGE;
    }
    return ERR_OK;
}

static void *sq_prepare(struct db *db, const char *sql, int *nparams)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(db->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        snprintf(db->errmsg, sizeof db->errmsg, "sqlite prepare: %s", sqlite3_errmsg(db->conn));
        return NULL;
    }
    *nparams = sqlite3_bind_parameter_count(st);
    return st;
}

static void sq_finalize(struct db *db, void *handle)
{
    (void)db;
    sqlite3_finalize(handle);
}

static enum err sq_next(struct db_stmt *st)
{
    sqlite3_stmt *s = st->handle;
    if (!st->executed) {
        st->executed = true;
        for (int i = 0; i < st->nparams && i < st->nalloc; i++) {
            const struct db_param *p = &st->params[i];
            if (p->is_int)
                sqlite3_bind_int64(s, i + 1, p->ival);
            else if (p->text)
                sqlite3_bind_text(s, i + 1, p->text, -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(s, i + 1);
        }
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return ERR_OK;
    if (rc == SQLITE_DONE) {
        st->changes = sqlite3_stmt_readonly(s) ? 0 : sqlite3_changes64(st->db->conn);
        return ERR_DONE;
    }
    return fail(st->db, rc);
}

static void sq_reset(struct db_stmt *st)
{
    sqlite3_reset(st->handle);
    sqlite3_clear_bindings(st->handle);
}

static const char *sq_col_text(struct db_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st->handle, i);
}

static int64_t sq_col_int(struct db_stmt *st, int i)
{
    return sqlite3_column_int64(st->handle, i);
}

static bool sq_col_null(struct db_stmt *st, int i)
{
    return sqlite3_column_type(st->handle, i) == SQLITE_NULL;
}

static int64_t sq_changes(struct db_stmt *st)
{
    return st->changes;
}

static bool sq_broken(struct db *db)
{
    (void)db;
    return false;
}

static enum err sq_reconnect(struct db *db)
{
    (void)db;
    return ERR_OK;
}

const struct db_driver db_sqlite_driver = {
    .open = sq_open,
    .close = sq_close,
    .exec = sq_exec,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .next = sq_next,
    .reset = sq_reset,
    .col_text = sq_col_text,
    .col_int = sq_col_int,
    .col_null = sq_col_null,
    .changes = sq_changes,
    .broken = sq_broken,
    .reconnect = sq_reconnect,
    .begin_sql = "BEGIN IMMEDIATE",
};
