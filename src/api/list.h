/* The one contract of every GET list, and the one helper that serves it (list.c).
 *
 * A list is declared, not written: a struct list_spec names the query parameters it takes
 * (its filters), the SQL it reads and the order of its rows, how a row becomes JSON, and
 * optionally how an item is completed with further reads (expand) or where rows come from
 * when they are not one SQL query (fetch, for the small built-in catalogs). The route
 * table points a GET route at its spec and at api_list(), which then does everything the
 * contract promises, the same way for every list:
 *
 *   - ?limit= is a whole number from 1 to 1000 (default 100); anything else is a 400;
 *   - ?cursor= is opaque: a signed token naming the list, the tenant and the key of the
 *     last row the previous page showed. A cursor the server did not give (or gave for
 *     another list or tenant) is a 400;
 *   - next_cursor is set exactly when more rows exist (one row more than the page is read);
 *   - a query parameter the list does not take, or one given twice, is a 400 naming it;
 *   - a filter value that is not what the filter takes is a 400 naming it;
 *   - a missing parent (the integration of /v1/integrations/{id}/logs...) is a 404;
 *   - a storage error anywhere, in the rows or in an item's expansion, is a 503 problem and
 *     never a 200 with part of the rows.
 *
 * Runs on HTTP threads, on the thread's read connection. Specs are static and read-only. */
#ifndef SLUICE_API_LIST_H
#define SLUICE_API_LIST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "store/db.h"

#define LIST_KEY_MAX 3     /* parts of a row's sort key (created_at, id...) */
#define LIST_PARAMS_MAX 12 /* filters of one list */
#define LIST_LIMIT_MAX 1000
#define LIST_LIMIT_DEFAULT 100

enum list_param_kind {
    LP_TEXT, /* a non-empty string of at most 256 bytes, bound to sql's "?" */
    LP_ENUM, /* one of values[]: clauses[i] appended as is, or else bound to sql's "?" */
    LP_ID,   /* a server id "<prefix>_<ULID>" (prefix in arg), bound to sql's "?" */
    LP_FROM, /* RFC 3339, inclusive: on an id column (arg: its prefix) or a time column */
    LP_TO,   /* RFC 3339, exclusive: likewise */
};

struct list_param {
    const char *name;
    enum list_param_kind kind;
    /* LP_TEXT, LP_ID, LP_ENUM without clauses: a clause with one "?" bound to the value.
     * LP_FROM, LP_TO: the column compared. */
    const char *sql;
    /* LP_ID: the id prefix ("tsk"). LP_FROM/LP_TO: the id prefix of an id column, or NULL
     * when the column holds milliseconds. */
    const char *arg;
    const char *const *values;  /* LP_ENUM: the accepted values, NULL-terminated */
    const char *const *clauses; /* LP_ENUM: optional fixed SQL per value, same order */
};

/* Filters, spelled out (designated initializers leave the rest zero). */
#define LIST_TEXT(n, clause)                                                                       \
    {                                                                                              \
        .name = (n), .kind = LP_TEXT, .sql = (clause)                                              \
    }
#define LIST_ID(n, clause, prefix)                                                                 \
    {                                                                                              \
        .name = (n), .kind = LP_ID, .sql = (clause), .arg = (prefix)                               \
    }
#define LIST_ENUM(n, clause, vals)                                                                 \
    {                                                                                              \
        .name = (n), .kind = LP_ENUM, .sql = (clause), .values = (vals)                            \
    }
#define LIST_ENUM_SQL(n, vals, sqls)                                                               \
    {                                                                                              \
        .name = (n), .kind = LP_ENUM, .values = (vals), .clauses = (sqls)                          \
    }
#define LIST_FROM_ID(col, prefix)                                                                  \
    {                                                                                              \
        .name = "from", .kind = LP_FROM, .sql = (col), .arg = (prefix)                             \
    }
#define LIST_TO_ID(col, prefix)                                                                    \
    {                                                                                              \
        .name = "to", .kind = LP_TO, .sql = (col), .arg = (prefix)                                 \
    }
#define LIST_FROM_MS(col)                                                                          \
    {                                                                                              \
        .name = "from", .kind = LP_FROM, .sql = (col)                                              \
    }
#define LIST_TO_MS(col)                                                                            \
    {                                                                                              \
        .name = "to", .kind = LP_TO, .sql = (col)                                                  \
    }
#define LIST_END                                                                                   \
    {                                                                                              \
        .name = NULL                                                                               \
    }

/* The common order of a list: newest first by a server id column (ids sort by creation
 * time), the id being result column key_col. Expands to the spec's keyset members. */
#define LIST_NEWEST_FIRST(col, key_col)                                                            \
    .after = " AND " col " < ?", .after_parts = "0", .order = " ORDER BY " col " DESC",            \
    .key_cols = {key_col}, .key_types = "s"

struct list_ctx;

struct list_spec {
    const char *name;                /* scope of its cursors, e.g. "alerts" */
    const struct list_param *params; /* filters, ended by {NULL}; may be NULL */
    /* 404 (or 503) when the parent named by the path is not there; NULL: no parent. Answers
     * through list_fail() and returns its error. */
    enum err (*parent)(struct db *db, struct list_ctx *c);

    /* Rows from SQL: select ends in a WHERE clause the filters extend with " AND ...". */
    const char *select;
    const char *binds; /* what select's "?" take in order: 'T' tenant, '0'-'3' path params */
    /* The keyset condition "rows after the cursor", its "?" bound to the parts of the
     * cursor's key in the order after_parts names them ("001": part 0, part 0, part 1). */
    const char *after;
    const char *after_parts;
    const char *order; /* " ORDER BY ..." (with any GROUP BY before it) */
    /* The row's sort key: its columns in the result, and each part's type ('i' integer,
     * 's' text). The order must be total: the last part is unique. */
    int key_cols[LIST_KEY_MAX];
    const char *key_types;
    json_t *(*row)(struct db_stmt *st); /* one result row as JSON (new reference) */

    /* Rows from elsewhere (small catalogs): pushes up to c->limit + 1 items after the
     * cursor, in order, with list_push(). Instead of select. */
    enum err (*fetch)(struct db *db, struct list_ctx *c);

    /* Completes an item with further reads after the page's rows are read: ERR_OK, ERR_DONE
     * to drop it (it went away meanwhile), anything else fails the whole list. May be NULL. */
    enum err (*expand)(struct db *db, struct list_ctx *c, json_t *item);
};

/* One list request being served (owned by api_list, valid during its callbacks). */
struct list_ctx {
    struct http_req *req;
    const struct list_spec *spec;
    const char *tenant; /* "" for the admin's lists */
    int limit;
    /* The decoded cursor: the key parts of the last row of the previous page. */
    bool has_cursor;
    int nkey;
    char *key[LIST_KEY_MAX];
    /* The filters' values, by index in spec->params (NULL when absent), and times in ms. */
    const char *values[LIST_PARAMS_MAX];
    int64_t times[LIST_PARAMS_MAX];
    /* The page being built: items and their sort keys (one more than limit when more
     * rows exist). */
    json_t *items;
    char **keys; /* nkey strings per item, owned */
    size_t nitems, cap;
};

/* The handler of every list route: route->list is its spec. */
void api_list(struct http_req *req);

/* For fetch(): adds an item (stolen) with its key parts (copied, key_types' count). */
void list_push(struct list_ctx *c, json_t *item, const char *const *key);
/* The value of the filter named name, or NULL when not given. */
const char *list_value(const struct list_ctx *c, const char *name);
/* For expand(): appends column 0 of every row of st (executed here) to arr as strings;
 * the storage error, never a short array. */
enum err list_strings(struct db_stmt *st, json_t *arr);
/* For parent(): answers the problem for rc (detail for 404) and returns rc. */
enum err list_fail(struct list_ctx *c, enum err rc, const char *not_found);

/* Cursors, exposed for the unit tests: encodes key parts for (list, tenant) into a new
 * string (free()), and decodes one back into key (strings to free()); ERR_INVALID for
 * anything this server did not make for that list and tenant. Key material comes from
 * list_cursor_key(), derived from the master key so every node accepts every node's
 * cursors. */
void list_cursor_key(const unsigned char master[32]);
char *list_cursor_encode(const char *list, const char *tenant, const char *const *key, int n);
enum err list_cursor_decode(const char *cursor, const char *list, const char *tenant, int n,
                            char **key);

#endif
