/* The facade's driver-independent part: statement cache, bindings, transactions.
 * A connection is used by one thread at a time. */
#include "store/db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"

enum err db_open(const char *url, struct db **out, char *errmsg, size_t errlen)
{
    struct db *db = xcalloc(1, sizeof *db);
    if (!strncmp(url, "sqlite:", 7)) {
        db->kind = DB_SQLITE;
        db->drv = &db_sqlite_driver;
    } else if (!strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13)) {
        db->kind = DB_PG;
        db->drv = &db_pg_driver;
    } else {
        snprintf(errmsg, errlen, "unsupported database URL (want sqlite:PATH or postgres://...)");
        free(db);
        return ERR_INVALID;
    }
    enum err rc = db->drv->open(db, url, errmsg, errlen);
    if (rc != ERR_OK) {
        free(db);
        return rc;
    }
    *out = db;
    return ERR_OK;
}

static void param_clear(struct db_param *p)
{
    if (p->heap)
        free(p->text);
    p->text = NULL;
    p->heap = false;
    p->is_int = false;
}

static void clear_params(struct db_stmt *st)
{
    for (int i = 0; i < st->nparams && i < DB_MAX_PARAMS; i++)
        param_clear(&st->params[i]);
}

static void stmt_reset(struct db_stmt *st)
{
    if (st->executed)
        st->db->drv->reset(st);
    st->executed = false;
    st->row = -1;
    st->changes = 0;
    clear_params(st);
}

void db_release(struct db *db)
{
    struct db_stmt *st = db->active;
    while (st) {
        struct db_stmt *next = st->active_next;
        st->active = false;
        st->active_next = NULL;
        if (st->executed) {
            st->db->drv->reset(st);
            st->executed = false;
        }
        st = next;
    }
    db->active = NULL;
}

void db_forget_statements(struct db *db)
{
    db_release(db);
    for (int b = 0; b < DB_STMT_BUCKETS; b++) {
        struct db_stmt *st = db->stmts[b];
        while (st) {
            struct db_stmt *next = st->next;
            stmt_reset(st);
            db->drv->finalize(db, st->handle);
            free(st->sql);
            free(st);
            st = next;
        }
        db->stmts[b] = NULL;
    }
}

void db_close(struct db *db)
{
    if (!db)
        return;
    db_forget_statements(db);
    db->drv->close(db);
    free(db);
}

enum db_kind db_kind(const struct db *db)
{
    return db->kind;
}

enum err db_exec(struct db *db, const char *sql)
{
    return db->drv->exec(db, sql);
}

static unsigned sql_hash(const char *sql)
{
    unsigned h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

struct db_stmt *db_stmt(struct db *db, const char *sql)
{
    unsigned b = sql_hash(sql) % DB_STMT_BUCKETS;
    for (struct db_stmt *st = db->stmts[b]; st; st = st->next)
        if (!strcmp(st->sql, sql)) {
            stmt_reset(st);
            if (!st->handle) /* an earlier prepare failed (e.g. connection lost): retry */
                st->handle = db->drv->prepare(db, st->sql, &st->nparams);
            return st;
        }
    struct db_stmt *st = xcalloc(1, sizeof *st);
    st->db = db;
    st->sql = xstrdup(sql);
    st->row = -1;
    st->handle = db->drv->prepare(db, sql, &st->nparams);
    /* A failed prepare leaves handle NULL; db_next then reports the stored error. */
    st->next = db->stmts[b];
    db->stmts[b] = st;
    return st;
}

void db_bind_text(struct db_stmt *st, int i, const char *s)
{
    if (i < 1 || i > DB_MAX_PARAMS)
        return;
    struct db_param *p = &st->params[i - 1];
    param_clear(p);
    if (!s)
        return;
    size_t n = strlen(s);
    if (n < DB_PARAM_INLINE) {
        memcpy(p->inline_text, s, n + 1);
        p->text = p->inline_text;
    } else {
        p->text = xmalloc(n + 1);
        memcpy(p->text, s, n + 1);
        p->heap = true;
    }
}

void db_bind_int(struct db_stmt *st, int i, int64_t v)
{
    if (i < 1 || i > DB_MAX_PARAMS)
        return;
    struct db_param *p = &st->params[i - 1];
    param_clear(p);
    snprintf(p->inline_text, sizeof p->inline_text, "%" PRId64, v); /* PostgreSQL's form */
    p->text = p->inline_text;
    p->ival = v;
    p->is_int = true;
}

void db_bind_null(struct db_stmt *st, int i)
{
    db_bind_text(st, i, NULL);
}

void db_bind_opt_int(struct db_stmt *st, int i, int64_t v)
{
    if (v < 0)
        db_bind_null(st, i);
    else
        db_bind_int(st, i, v);
}

enum err db_next(struct db_stmt *st)
{
    if (!st->handle)
        return ERR_STORAGE;
    if (!st->active) {
        st->active = true;
        st->active_next = st->db->active;
        st->db->active = st;
    }
    return st->db->drv->next(st);
}

enum err db_run(struct db_stmt *st)
{
    enum err rc = db_next(st);
    return rc == ERR_DONE ? ERR_OK : rc;
}

const char *db_col_text(struct db_stmt *st, int i)
{
    return st->db->drv->col_text(st, i);
}

int64_t db_col_int(struct db_stmt *st, int i)
{
    return st->db->drv->col_int(st, i);
}

bool db_col_null(struct db_stmt *st, int i)
{
    return st->db->drv->col_null(st, i);
}

int64_t db_col_opt_int(struct db_stmt *st, int i)
{
    return db_col_null(st, i) ? -1 : db_col_int(st, i);
}

int64_t db_changes(struct db_stmt *st)
{
    return st->db->drv->changes(st);
}

const char *db_errmsg(struct db *db)
{
    return db->errmsg;
}

bool db_broken(struct db *db)
{
    return db->drv->broken(db);
}

enum err db_ensure(struct db *db)
{
    if (!db->drv->broken(db))
        return ERR_OK;
    db_forget_statements(db);
    return db->drv->reconnect(db);
}

int db_socket(struct db *db)
{
    return db->drv->socket ? db->drv->socket(db) : -1;
}

enum err db_notifications(struct db *db,
                          void (*fn)(const char *channel, const char *payload, void *ud), void *ud)
{
    return db->drv->notifications ? db->drv->notifications(db, fn, ud) : ERR_OK;
}

enum err db_begin(struct db *db)
{
    db->savepoint_depth = 0;
    return db_exec(db, db->drv->begin_sql);
}

enum err db_commit(struct db *db)
{
    db_release(db);
    return db_exec(db, "COMMIT");
}

void db_rollback(struct db *db)
{
    db_release(db);
    db_exec(db, "ROLLBACK");
}

enum err db_savepoint(struct db *db)
{
    return db_exec(db, "SAVEPOINT sp");
}

void db_rollback_savepoint(struct db *db)
{
    db_release(db);
    db_exec(db, "ROLLBACK TO SAVEPOINT sp");
    db_exec(db, "RELEASE SAVEPOINT sp");
}

enum err db_release_savepoint(struct db *db)
{
    db_release(db);
    return db_exec(db, "RELEASE SAVEPOINT sp");
}

void db_query_init(struct db_query *q, const char *sql)
{
    q->sql = (struct buf)BUF_INIT;
    buf_puts(&q->sql, sql);
    q->nargs = q->nfloors = 0;
    q->overflow = false;
}

static struct db_query_value *query_slot(struct db_query *q)
{
    if (q->nargs == DB_QUERY_MAX_ARGS) {
        q->overflow = true;
        return NULL;
    }
    struct db_query_value *v = &q->args[q->nargs++];
    memset(v, 0, sizeof *v);
    return v;
}

void db_query_arg(struct db_query *q, const char *value)
{
    struct db_query_value *v = query_slot(q);
    if (v)
        v->text = value;
}

void db_query_arg_int(struct db_query *q, int64_t value)
{
    struct db_query_value *v = query_slot(q);
    if (v) {
        v->num = value;
        v->is_int = true;
    }
}

void db_query_where(struct db_query *q, const char *clause, const char *value)
{
    if (!value)
        return;
    buf_puts(&q->sql, clause);
    db_query_arg(q, value);
}

void db_query_where_int(struct db_query *q, const char *clause, int64_t value)
{
    buf_puts(&q->sql, clause);
    db_query_arg_int(q, value);
}

void db_query_sql(struct db_query *q, const char *fragment)
{
    buf_puts(&q->sql, fragment);
}

static void query_id_bound(struct db_query *q, const char *id_col, const char *op,
                           const char *prefix, int64_t ms)
{
    if (ms < 0)
        return;
    if (q->nfloors == DB_QUERY_MAX_FLOORS) {
        q->overflow = true;
        return;
    }
    char *floor = q->floors[q->nfloors++];
    id_floor(prefix, ms, floor);
    buf_printf(&q->sql, " AND %s %s ?", id_col, op);
    db_query_arg(q, floor);
}

void db_query_since(struct db_query *q, const char *id_col, const char *prefix, int64_t ms)
{
    query_id_bound(q, id_col, ">=", prefix, ms);
}

void db_query_before(struct db_query *q, const char *id_col, const char *prefix, int64_t ms)
{
    query_id_bound(q, id_col, "<", prefix, ms);
}

enum err db_query_stmt(struct db *db, struct db_query *q, const char *tail, int64_t limit,
                       struct db_stmt **out)
{
    *out = NULL;
    buf_puts(&q->sql, tail);
    if (q->overflow || q->nargs + 1 > DB_MAX_PARAMS) {
        log_error("db", "a list query needs more values than the builder holds (%d); not run: %s",
                  DB_QUERY_MAX_ARGS, q->sql.data);
        buf_cleanup(&q->sql);
        return ERR_INTERNAL;
    }
    struct db_stmt *st = db_stmt(db, q->sql.data);
    buf_cleanup(&q->sql);
    int i = 1;
    for (int k = 0; k < q->nargs; k++, i++) {
        if (q->args[k].is_int)
            db_bind_int(st, i, q->args[k].num);
        else
            db_bind_text(st, i, q->args[k].text);
    }
    db_bind_int(st, i, limit);
    *out = st;
    return ERR_OK;
}
