/* The database facade: one small SQL interface over two drivers (SQLite, PostgreSQL).
 *
 * SQL is written once, with "?" placeholders (translated to $n for PostgreSQL) in the
 * common dialect of SQLite >= 3.35 and PostgreSQL >= 12: INSERT ... ON CONFLICT,
 * RETURNING, partial indexes. Times are integer milliseconds since the epoch.
 *
 * A connection belongs to one thread at a time. Statements are prepared once per
 * connection and cached by their SQL text, so SQL assembled from a bounded set of
 * fragments is prepared once too; never put values into SQL text: bind them. */
#ifndef SLUICE_STORE_DB_H
#define SLUICE_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/id.h"

enum db_kind { DB_SQLITE, DB_PG };

struct db;
struct db_stmt;

/* Opens a connection: "sqlite:PATH" or "postgres://..."/"postgresql://...". On failure
 * writes a one-line reason (no password) to errmsg. Caller frees with db_close(). */
enum err db_open(const char *url, struct db **out, char *errmsg, size_t errlen);
void db_close(struct db *db);
enum db_kind db_kind(const struct db *db);

/* Runs SQL without parameters or results (several statements allowed). */
enum err db_exec(struct db *db, const char *sql);

/* Returns the connection's prepared statement for sql, reset and with no bindings. Owned by
 * the connection; valid until the next db_stmt() of the same sql. */
struct db_stmt *db_stmt(struct db *db, const char *sql);
/* Bind parameter i (1-based). Strings are copied. */
void db_bind_text(struct db_stmt *st, int i, const char *s); /* NULL binds NULL */
/* Binds s (malloc'd, or NULL) without copying it: the statement frees it. */
void db_bind_text_take(struct db_stmt *st, int i, char *s);
void db_bind_int(struct db_stmt *st, int i, int64_t v);
void db_bind_null(struct db_stmt *st, int i);
/* Binds v, or NULL when v < 0: for optional times and durations kept as -1 in C. */
void db_bind_opt_int(struct db_stmt *st, int i, int64_t v);
/* Executes on the first call, then advances: ERR_OK when a row is available, ERR_DONE when
 * there are no more, ERR_CONFLICT on a unique violation, ERR_STORAGE otherwise. */
enum err db_next(struct db_stmt *st);
/* Executes a statement that returns no rows (or ignores them). */
enum err db_run(struct db_stmt *st);
/* Column access for the current row (0-based). Text is valid until the next db_next. */
const char *db_col_text(struct db_stmt *st, int i); /* NULL for SQL NULL */
int64_t db_col_int(struct db_stmt *st, int i);
bool db_col_null(struct db_stmt *st, int i);
/* The column's integer, or -1 for SQL NULL (the counterpart of db_bind_opt_int). */
int64_t db_col_opt_int(struct db_stmt *st, int i);

/* A list query with optional conditions (the API's filters): each condition is appended
 * with its value, so the binds always follow the SQL. Text values are read by
 * db_query_stmt(), so they must live until then. Every list endpoint builds its SQL this way.
 * The builder has fixed room (DB_QUERY_MAX_ARGS values, DB_QUERY_MAX_FLOORS time bounds);
 * going past it is a bug that must not widen the query, so it marks the query broken and
 * db_query_stmt() then fails with ERR_INTERNAL instead of running it. */
#define DB_QUERY_MAX_ARGS 16
#define DB_QUERY_MAX_FLOORS 4
struct db_query_value {
    const char *text; /* NULL binds NULL unless is_int */
    int64_t num;
    bool is_int;
};
struct db_query {
    struct buf sql;
    struct db_query_value args[DB_QUERY_MAX_ARGS];
    int nargs;
    char floors[DB_QUERY_MAX_FLOORS][ID_MAX]; /* id_floor() values of since/before */
    int nfloors;
    bool overflow; /* a value or bound did not fit: the query must not run */
};
/* Starts with sql, whose own "?" are bound by db_query_arg() in order. */
void db_query_init(struct db_query *q, const char *sql);
/* The value of the next "?" already in the SQL (text, or an integer). */
void db_query_arg(struct db_query *q, const char *value);
void db_query_arg_int(struct db_query *q, int64_t value);
/* Appends clause (with one "?") bound to value; nothing when value is NULL. */
void db_query_where(struct db_query *q, const char *clause, const char *value);
/* Appends clause (with one "?") bound to an integer value. */
void db_query_where_int(struct db_query *q, const char *clause, int64_t value);
/* Appends SQL text that binds nothing (a fixed fragment chosen by the code, never input). */
void db_query_sql(struct db_query *q, const char *fragment);
/* Appends "AND <id_col> >= ?" (since) or "< ?" (before) with the smallest id of `prefix`
 * at time ms (ids are time-ordered); nothing when ms < 0. */
void db_query_since(struct db_query *q, const char *id_col, const char *prefix, int64_t ms);
void db_query_before(struct db_query *q, const char *id_col, const char *prefix, int64_t ms);
/* Appends tail (ending in "LIMIT ?"), prepares, binds every value then limit into *out, and
 * frees the SQL text. ERR_INTERNAL (logged, nothing run) when the builder overflowed. */
enum err db_query_stmt(struct db *db, struct db_query *q, const char *tail, int64_t limit,
                       struct db_stmt **out);
/* Rows changed by the last executed statement. */
int64_t db_changes(struct db_stmt *st);

/* Set-based statements: many rows of values bound at once, so a group commit costs a few
 * statements per kind of row, not a few per row. The rows are a relation with columns
 * column1, column2, ... that a statement's SQL names "{ROWS}": "INSERT INTO t (a, b)
 * {ROWS} ...", or "... FROM ({ROWS}) AS v WHERE t.id = v.column1". On SQLite "{ROWS}"
 * becomes multi-row VALUES (one statement per chunk of up to DB_ROWS_CHUNK rows, in
 * power-of-two sizes so few statement texts are prepared); on PostgreSQL one array
 * parameter per column, "SELECT * FROM unnest(?::text[], ?::bigint[]) AS
 * vv(column1, column2)": one statement for any number of rows. */
#define DB_ROWS_CHUNK 256
struct db_rows_val {
    size_t off; /* text: offset into data */
    int64_t num;
    unsigned char kind; /* 0 NULL, 't' text, 'i' integer */
};
struct db_rows {
    const char *types; /* one character per column: 't' text, 'i' integer */
    int ncols;
    struct buf data; /* the text values, each NUL-terminated */
    struct db_rows_val *vals;
    size_t nvals, cap;
};
void db_rows_init(struct db_rows *r, const char *types);
/* Appends the next value of the current row (rows are filled column by column). */
void db_rows_text(struct db_rows *r, const char *s); /* NULL appends NULL */
void db_rows_int(struct db_rows *r, int64_t v);
void db_rows_opt_int(struct db_rows *r, int64_t v); /* v < 0 appends NULL */
/* Complete rows so far. */
size_t db_rows_count(const struct db_rows *r);
void db_rows_reset(struct db_rows *r);
void db_rows_cleanup(struct db_rows *r);
/* Runs sql with "{ROWS}" standing for r (see above); nothing when r has no rows. each (may
 * be NULL) is called for every row the statement returns (RETURNING) and stops the run
 * when it returns an error. *changes (may be NULL) gets the rows changed. */
enum err db_rows_run(struct db *db, const char *sql, const struct db_rows *r,
                     enum err (*each)(struct db_stmt *st, void *arg), void *arg, int64_t *changes);

/* The last error message of the connection, for logs (never contains secrets). */
const char *db_errmsg(struct db *db);
/* True when the connection is unusable (PostgreSQL server gone). */
bool db_broken(struct db *db);
/* True when the open transaction can only be rolled back (PostgreSQL: a statement of it
 * failed; its COMMIT would roll it back). */
bool db_txn_aborted(struct db *db);
/* Reconnects a broken connection (dropping cached statements); ERR_OK when usable. */
enum err db_ensure(struct db *db);

/* PostgreSQL LISTEN/NOTIFY, for a connection that listens (run "LISTEN name" with db_exec):
 * the socket to wait on for notifications (-1: none, SQLite or broken), and every
 * notification that has arrived, each passed to fn (channel and payload valid during the
 * call). ERR_STORAGE when the connection broke. SQLite has no notifications: ERR_OK. */
int db_socket(struct db *db);
enum err db_notifications(struct db *db,
                          void (*fn)(const char *channel, const char *payload, void *ud), void *ud);

/* Resets every statement still holding results, ending SQLite read snapshots. Call when a
 * request or batch is done with the connection (commit does it itself). */
void db_release(struct db *db);

/* Transactions. db_begin takes the write lock at once on SQLite (BEGIN IMMEDIATE). */
enum err db_begin(struct db *db);
/* True when a statement since db_begin was chosen as a deadlock's victim or failed to
 * serialize (PostgreSQL): the transaction must be rolled back whole and tried again. */
bool db_lock_victim(const struct db *db);
enum err db_commit(struct db *db);
void db_rollback(struct db *db);
enum err db_savepoint(struct db *db);
void db_rollback_savepoint(struct db *db);
enum err db_release_savepoint(struct db *db);

/* Driver interface, implemented by db_sqlite.c and db_pg.c. */
struct db_driver {
    enum err (*open)(struct db *db, const char *url, char *errmsg, size_t errlen);
    void (*close)(struct db *db);
    enum err (*exec)(struct db *db, const char *sql);
    void *(*prepare)(struct db *db, const char *sql, int *nparams);
    void (*finalize)(struct db *db, void *handle);
    enum err (*next)(struct db_stmt *st);
    void (*reset)(struct db_stmt *st);
    const char *(*col_text)(struct db_stmt *st, int i);
    int64_t (*col_int)(struct db_stmt *st, int i);
    bool (*col_null)(struct db_stmt *st, int i);
    int64_t (*changes)(struct db_stmt *st);
    bool (*broken)(struct db *db);
    bool (*aborted)(struct db *db); /* NULL: a failed statement never aborts the transaction */
    enum err (*reconnect)(struct db *db);
    int (*socket)(struct db *db); /* NULL: no notifications */
    enum err (*notifications)(struct db *db,
                              void (*fn)(const char *channel, const char *payload, void *ud),
                              void *ud);
    const char *begin_sql;
};

/* The most values a db_query (a list's filters) binds. A statement itself binds any
 * number (its params are allocated for what it has). */
#define DB_MAX_PARAMS 64

#define DB_PARAM_INLINE 48 /* ids, names and numbers fit without an allocation */

struct db_param {
    char *text; /* NULL: SQL NULL; else inline or (owned) on the heap */
    int64_t ival;
    bool is_int;
    bool heap; /* text was allocated and is freed on the next bind or reset */
    char inline_text[DB_PARAM_INLINE];
};

struct db_stmt {
    struct db *db;
    char *sql;    /* owned copy: the cache key */
    void *handle; /* driver's prepared statement */
    int nparams;
    struct db_param *params; /* nparams of them (room for nalloc) */
    int nalloc;
    bool executed;
    void *result; /* driver's result state */
    int row;
    int64_t changes;
    struct db_stmt *next;        /* cache chain */
    struct db_stmt *active_next; /* executed, not yet reset */
    bool active;
};

#define DB_STMT_BUCKETS 256

struct db {
    enum db_kind kind;
    const struct db_driver *drv;
    void *conn;
    char errmsg[256];
    struct db_stmt *stmts[DB_STMT_BUCKETS];
    int savepoint_depth;
    struct db_stmt *active; /* statements executed since their last reset */
    int wal_pages;          /* SQLite, with db_watch_wal: frames in the WAL after the last commit */
    /* A statement of the current transaction lost to another (PostgreSQL: deadlock or
     * serialization failure). Rolling back to a savepoint does not free the locks the
     * transaction took before it, so only the whole transaction can make way. */
    bool lock_victim;
};

/* SQLite: this connection's commits no longer checkpoint the WAL (someone else does, on
 * another connection: store.c's checkpointer); db_wal_pages says how many frames the WAL
 * holds after its last commit. PostgreSQL: no-op, and 0. */
void db_watch_wal(struct db *db);
int db_wal_pages(const struct db *db);

extern const struct db_driver db_sqlite_driver;
extern const struct db_driver db_pg_driver;

/* Drops every cached statement (after a reconnect). Used by drivers. */
void db_forget_statements(struct db *db);

#endif
