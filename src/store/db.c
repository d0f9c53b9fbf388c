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
    for (int i = 0; i < st->nparams && i < st->nalloc; i++)
        param_clear(&st->params[i]);
}

/* Room for the statement's parameters (after a prepare, which sets nparams). */
static void params_fit(struct db_stmt *st)
{
    if (st->nparams <= st->nalloc)
        return;
    st->params = xrealloc(st->params, (size_t)st->nparams * sizeof *st->params);
    memset(st->params + st->nalloc, 0, (size_t)(st->nparams - st->nalloc) * sizeof *st->params);
    st->nalloc = st->nparams;
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
            free(st->params);
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
            if (!st->handle) { /* an earlier prepare failed (e.g. connection lost): retry */
                st->handle = db->drv->prepare(db, st->sql, &st->nparams);
                params_fit(st);
            }
            return st;
        }
    struct db_stmt *st = xcalloc(1, sizeof *st);
    st->db = db;
    st->sql = xstrdup(sql);
    st->row = -1;
    st->handle = db->drv->prepare(db, sql, &st->nparams);
    params_fit(st);
    /* A failed prepare leaves handle NULL; db_next then reports the stored error. */
    st->next = db->stmts[b];
    db->stmts[b] = st;
    return st;
}

void db_bind_text(struct db_stmt *st, int i, const char *s)
{
    if (i < 1 || i > st->nparams)
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

void db_bind_text_take(struct db_stmt *st, int i, char *s)
{
    if (i < 1 || i > st->nparams) {
        free(s);
        return;
    }
    struct db_param *p = &st->params[i - 1];
    param_clear(p);
    p->text = s;
    p->heap = s != NULL;
}

void db_bind_int(struct db_stmt *st, int i, int64_t v)
{
    if (i < 1 || i > st->nparams)
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

bool db_txn_aborted(struct db *db)
{
    return db->drv->aborted && db->drv->aborted(db);
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
    db->lock_victim = false;
    return db_exec(db, db->drv->begin_sql);
}

bool db_lock_victim(const struct db *db)
{
    return db->lock_victim;
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

/* --- set-based statements --------------------------------------------------------------- */

void db_rows_init(struct db_rows *r, const char *types)
{
    memset(r, 0, sizeof *r);
    r->types = types;
    r->ncols = (int)strlen(types);
}

static struct db_rows_val *rows_push(struct db_rows *r)
{
    if (r->nvals == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->vals = xrealloc(r->vals, r->cap * sizeof *r->vals);
    }
    struct db_rows_val *v = &r->vals[r->nvals++];
    v->kind = 0;
    return v;
}

void db_rows_text(struct db_rows *r, const char *s)
{
    struct db_rows_val *v = rows_push(r);
    if (!s)
        return;
    v->kind = 't';
    v->off = r->data.len;
    buf_append(&r->data, s, strlen(s) + 1);
}

void db_rows_int(struct db_rows *r, int64_t n)
{
    struct db_rows_val *v = rows_push(r);
    v->kind = 'i';
    v->num = n;
}

void db_rows_opt_int(struct db_rows *r, int64_t n)
{
    if (n < 0)
        rows_push(r);
    else
        db_rows_int(r, n);
}

size_t db_rows_count(const struct db_rows *r)
{
    return r->ncols ? r->nvals / (size_t)r->ncols : 0;
}

void db_rows_reset(struct db_rows *r)
{
    buf_reset(&r->data);
    r->nvals = 0;
}

void db_rows_cleanup(struct db_rows *r)
{
    buf_cleanup(&r->data);
    free(r->vals);
    r->vals = NULL;
    r->nvals = r->cap = 0;
}

static const char *rows_text(const struct db_rows *r, const struct db_rows_val *v)
{
    return r->data.data + v->off;
}

/* sql with "{ROWS}" replaced by rows_sql. */
static char *rows_subst(const char *sql, const char *rows_sql)
{
    const char *at = strstr(sql, "{ROWS}");
    struct buf b = BUF_INIT;
    if (!at) {
        buf_puts(&b, sql);
        return buf_steal(&b);
    }
    buf_append(&b, sql, (size_t)(at - sql));
    buf_puts(&b, rows_sql);
    buf_puts(&b, at + 6);
    return buf_steal(&b);
}

static enum err rows_exec(struct db_stmt *st, enum err (*each)(struct db_stmt *, void *), void *arg,
                          int64_t *changes)
{
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK)
        if (each && (rc = each(st, arg)) != ERR_OK)
            break;
    if (rc == ERR_DONE) {
        rc = ERR_OK;
        if (changes)
            *changes += db_changes(st);
    }
    stmt_reset(st); /* RETURNING rows read: end the statement, free the values now */
    return rc;
}

/* PostgreSQL: one array literal per column ('{"a",NULL,"b"}', '{1,NULL,2}'). */
static enum err rows_run_pg(struct db *db, const char *sql, const struct db_rows *r,
                            enum err (*each)(struct db_stmt *, void *), void *arg, int64_t *changes)
{
    size_t n = db_rows_count(r);
    struct buf src = BUF_INIT;
    buf_puts(&src, "SELECT * FROM unnest(");
    for (int c = 0; c < r->ncols; c++)
        buf_printf(&src, "%s?::%s[]", c ? ", " : "", r->types[c] == 'i' ? "bigint" : "text");
    buf_puts(&src, ") AS vv(");
    for (int c = 0; c < r->ncols; c++)
        buf_printf(&src, "%scolumn%d", c ? ", " : "", c + 1);
    buf_puts(&src, ")");
    char *text = rows_subst(sql, src.data);
    buf_cleanup(&src);
    struct db_stmt *st = db_stmt(db, text);
    free(text);
    for (int c = 0; c < r->ncols; c++) {
        struct buf a = BUF_INIT;
        buf_putc(&a, '{');
        for (size_t i = 0; i < n; i++) {
            const struct db_rows_val *v = &r->vals[i * (size_t)r->ncols + (size_t)c];
            if (i)
                buf_putc(&a, ',');
            if (!v->kind) {
                buf_puts(&a, "NULL");
            } else if (v->kind == 'i') {
                buf_printf(&a, "%" PRId64, v->num);
            } else {
                buf_putc(&a, '"');
                for (const char *p = rows_text(r, v); *p; p++) {
                    if (*p == '"' || *p == '\\')
                        buf_putc(&a, '\\');
                    buf_putc(&a, *p);
                }
                buf_putc(&a, '"');
            }
        }
        buf_putc(&a, '}');
        db_bind_text_take(st, c + 1, buf_steal(&a));
    }
    return rows_exec(st, each, arg, changes);
}

enum err db_rows_run(struct db *db, const char *sql, const struct db_rows *r,
                     enum err (*each)(struct db_stmt *st, void *arg), void *arg, int64_t *changes)
{
    if (changes)
        *changes = 0;
    size_t n = db_rows_count(r);
    if (n == 0)
        return ERR_OK;
    if (db->kind == DB_PG)
        return rows_run_pg(db, sql, r, each, arg, changes);
    /* SQLite: chunks of a power-of-two number of rows, at most DB_ROWS_CHUNK and under
     * SQLite's own limit of 32766 parameters. */
    size_t most = DB_ROWS_CHUNK;
    while (most > 1 && most * (size_t)r->ncols > 32766)
        most /= 2;
    size_t at = 0;
    enum err rc = ERR_OK;
    while (at < n && rc == ERR_OK) {
        size_t k = most;
        while (k > n - at)
            k /= 2;
        struct buf src = BUF_INIT;
        buf_puts(&src, "VALUES ");
        for (size_t i = 0; i < k; i++) {
            buf_puts(&src, i ? ", (" : "(");
            for (int c = 0; c < r->ncols; c++)
                buf_puts(&src, c ? ", ?" : "?");
            buf_putc(&src, ')');
        }
        char *text = rows_subst(sql, src.data);
        buf_cleanup(&src);
        struct db_stmt *st = db_stmt(db, text);
        free(text);
        int p = 1;
        for (size_t i = at; i < at + k; i++)
            for (int c = 0; c < r->ncols; c++, p++) {
                const struct db_rows_val *v = &r->vals[i * (size_t)r->ncols + (size_t)c];
                if (v->kind == 'i')
                    db_bind_int(st, p, v->num);
                else
                    db_bind_text(st, p, v->kind ? rows_text(r, v) : NULL);
            }
        int64_t ch = 0;
        rc = rows_exec(st, each, arg, &ch);
        if (changes)
            *changes += ch;
        at += k;
    }
    return rc;
}
