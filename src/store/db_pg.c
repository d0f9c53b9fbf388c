/* PostgreSQL driver for the facade (libpq): named prepared statements, text parameters
 * whose types the server infers, whole results fetched per execution. One connection per
 * thread. Connection URLs may hold a password: it is never copied into messages. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "store/db.h"

struct pg_handle {
    char name[24];
};

struct pg_conn {
    PGconn *conn;
    unsigned seq;
};

static enum err result_error(struct db *db, PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    struct pg_conn *pc = db->conn;
    if (!msg || !*msg)
        msg = PQerrorMessage(pc->conn);
    snprintf(db->errmsg, sizeof db->errmsg, "postgres: %s", msg);
    char *nl = strchr(db->errmsg, '\n');
    if (nl)
        *nl = '\0';
    if (state && !strcmp(state, "23505"))
        return ERR_CONFLICT;
    /* deadlock_detected, serialization_failure: see db_lock_victim() */
    if (state && (!strcmp(state, "40P01") || !strcmp(state, "40001")))
        db->lock_victim = true;
    return ERR_STORAGE;
}

static void quiet(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res;
}

static enum err pg_open(struct db *db, const char *url, char *errmsg, size_t errlen)
{
    PGconn *conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *m = PQerrorMessage(conn);
        snprintf(errmsg, errlen, "cannot connect to PostgreSQL: %.*s", (int)strcspn(m, "\n"), m);
        PQfinish(conn);
        return ERR_STORAGE;
    }
    PQsetNoticeReceiver(conn, quiet, NULL);
    struct pg_conn *pc = xcalloc(1, sizeof *pc);
    pc->conn = conn;
    db->conn = pc;
    PGresult *r = PQexec(conn, "SET synchronous_commit = on; SET client_min_messages = warning");
    PQclear(r);
    return ERR_OK;
}

static void pg_close(struct db *db)
{
    struct pg_conn *pc = db->conn;
    PQfinish(pc->conn);
    free(pc);
}

static enum err pg_exec(struct db *db, const char *sql)
{
    struct pg_conn *pc = db->conn;
    PGresult *res = PQexec(pc->conn, sql);
    ExecStatusType s = PQresultStatus(res);
    enum err rc = ERR_OK;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        rc = result_error(db, res);
    } else if (!strcmp(sql, "COMMIT") && !strcmp(PQcmdStatus(res), "ROLLBACK")) {
        /* A COMMIT of a transaction an earlier error aborted rolls it back "successfully". */
        snprintf(db->errmsg, sizeof db->errmsg,
                 "postgres: the transaction was aborted by an earlier error; nothing committed");
        rc = ERR_STORAGE;
    }
    PQclear(res);
    return rc;
}

/* Rewrites "?" placeholders (outside quotes) as $1, $2, ...; counts them. */
static char *translate(const char *sql, int *n)
{
    struct buf b = BUF_INIT;
    int count = 0;
    char quote = 0;
    for (const char *p = sql; *p; p++) {
        if (quote) {
            if (*p == quote)
                quote = 0;
            buf_putc(&b, *p);
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
            buf_putc(&b, *p);
        } else if (*p == '?') {
            buf_printf(&b, "$%d", ++count);
        } else {
            buf_putc(&b, *p);
        }
    }
    *n = count;
    return buf_steal(&b);
}

static void *pg_prepare(struct db *db, const char *sql, int *nparams)
{
    struct pg_conn *pc = db->conn;
    struct pg_handle *h = xcalloc(1, sizeof *h);
    snprintf(h->name, sizeof h->name, "s%u", ++pc->seq);
    char *text = translate(sql, nparams);
    PGresult *res = PQprepare(pc->conn, h->name, text, 0, NULL);
    free(text);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        result_error(db, res);
        PQclear(res);
        free(h);
        return NULL;
    }
    PQclear(res);
    return h;
}

static void pg_finalize(struct db *db, void *handle)
{
    struct pg_handle *h = handle;
    if (!h)
        return;
    struct pg_conn *pc = db->conn;
    if (PQstatus(pc->conn) == CONNECTION_OK) {
        char sql[64];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", h->name);
        PQclear(PQexec(pc->conn, sql));
    }
    free(h);
}

static enum err pg_next(struct db_stmt *st)
{
    struct pg_conn *pc = st->db->conn;
    if (!st->executed) {
        st->executed = true;
        const char *small[16] = {0};
        int n = st->nparams < st->nalloc ? st->nparams : st->nalloc;
        const char **vals = n <= 16 ? small : xmalloc((size_t)n * sizeof *vals);
        for (int i = 0; i < n; i++)
            vals[i] = st->params[i].text;
        struct pg_handle *h = st->handle;
        PGresult *res = PQexecPrepared(pc->conn, h->name, n, vals, NULL, NULL, 0);
        if (vals != small)
            free(vals);
        ExecStatusType s = PQresultStatus(res);
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
            enum err rc = result_error(st->db, res);
            PQclear(res);
            return rc;
        }
        const char *ct = PQcmdTuples(res);
        st->changes = ct && *ct ? strtoll(ct, NULL, 10) : 0;
        st->result = res;
        st->row = 0;
    } else {
        st->row++;
    }
    return st->row < PQntuples(st->result) ? ERR_OK : ERR_DONE;
}

static void pg_reset(struct db_stmt *st)
{
    PQclear(st->result);
    st->result = NULL;
}

static const char *pg_col_text(struct db_stmt *st, int i)
{
    if (!st->result || PQgetisnull(st->result, st->row, i))
        return NULL;
    return PQgetvalue(st->result, st->row, i);
}

static int64_t pg_col_int(struct db_stmt *st, int i)
{
    const char *s = pg_col_text(st, i);
    if (!s)
        return 0;
    if (*s == 't')
        return 1; /* boolean */
    if (*s == 'f')
        return 0;
    return strtoll(s, NULL, 10);
}

static bool pg_col_null(struct db_stmt *st, int i)
{
    return !st->result || PQgetisnull(st->result, st->row, i);
}

static int64_t pg_changes(struct db_stmt *st)
{
    return st->changes;
}

static bool pg_broken(struct db *db)
{
    struct pg_conn *pc = db->conn;
    return PQstatus(pc->conn) != CONNECTION_OK;
}

static bool pg_aborted(struct db *db)
{
    struct pg_conn *pc = db->conn;
    return PQtransactionStatus(pc->conn) == PQTRANS_INERROR;
}

static enum err pg_reconnect(struct db *db)
{
    struct pg_conn *pc = db->conn;
    PQreset(pc->conn);
    if (PQstatus(pc->conn) != CONNECTION_OK) {
        result_error(db, NULL);
        return ERR_STORAGE;
    }
    PQsetNoticeReceiver(pc->conn, quiet, NULL);
    /* A new session: the settings pg_open made are gone with the old one. */
    PQclear(PQexec(pc->conn, "SET synchronous_commit = on; SET client_min_messages = warning"));
    return ERR_OK;
}

static int pg_socket(struct db *db)
{
    struct pg_conn *pc = db->conn;
    return PQstatus(pc->conn) == CONNECTION_OK ? PQsocket(pc->conn) : -1;
}

static enum err pg_notifications(struct db *db,
                                 void (*fn)(const char *channel, const char *payload, void *ud),
                                 void *ud)
{
    struct pg_conn *pc = db->conn;
    if (!PQconsumeInput(pc->conn)) {
        result_error(db, NULL);
        return ERR_STORAGE;
    }
    PGnotify *n;
    while ((n = PQnotifies(pc->conn))) {
        fn(n->relname, n->extra ? n->extra : "", ud);
        PQfreemem(n);
    }
    return PQstatus(pc->conn) == CONNECTION_OK ? ERR_OK : ERR_STORAGE;
}

const struct db_driver db_pg_driver = {
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .next = pg_next,
    .reset = pg_reset,
    .col_text = pg_col_text,
    .col_int = pg_col_int,
    .col_null = pg_col_null,
    .changes = pg_changes,
    .broken = pg_broken,
    .aborted = pg_aborted,
    .reconnect = pg_reconnect,
    .socket = pg_socket,
    .notifications = pg_notifications,
    .begin_sql = "BEGIN",
};
