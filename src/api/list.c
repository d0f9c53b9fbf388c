/* The list helper: validates a list request (limit, cursor, filters, nothing else), reads
 * one page plus one row through db_query, expands the items, and answers
 * {"data": [...], "next_cursor": ...} or one problem. See list.h for the contract.
 *
 * Runs on HTTP threads, on the thread's read connection. The cursor key is written once
 * at start-up (api_init, before the server accepts requests) and only read afterwards. */
#include "api/list.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/id.h"
#include "core/timeutil.h"
#include "core/xalloc.h"

/* Longer is not one of ours: three key parts of the longest key text (128 characters, each
 * escaped as \u00XX in JSON at worst), base64url, and the MAC stay below it. */
#define CURSOR_MAX 4096
#define CURSOR_MAC 16 /* bytes of HMAC-SHA256 kept */
#define TEXT_MAX 256  /* longest LP_TEXT value */

static unsigned char g_cursor_key[SHA256_LEN];

void list_cursor_key(const unsigned char master[32])
{
    static const char label[] = "sluice list cursors v1";
    crypto_hmac_sha256(master, 32, label, sizeof label - 1, g_cursor_key);
}

static void cursor_mac(const char *list, const char *tenant, const char *payload,
                       unsigned char out[SHA256_LEN])
{
    struct buf b = BUF_INIT;
    buf_puts(&b, list);
    buf_append(&b, "", 1); /* NUL separators: no part can contain one */
    buf_puts(&b, tenant);
    buf_append(&b, "", 1);
    buf_puts(&b, payload);
    crypto_hmac_sha256(g_cursor_key, sizeof g_cursor_key, b.data, b.len, out);
    buf_cleanup(&b);
}

char *list_cursor_encode(const char *list, const char *tenant, const char *const *key, int n)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(key[i] ? key[i] : ""));
    char *payload = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    unsigned char mac[SHA256_LEN];
    cursor_mac(list, tenant, payload, mac);
    char *p = base64url_encode((const unsigned char *)payload, strlen(payload));
    char *m = base64url_encode(mac, CURSOR_MAC);
    char *out = xasprintf("%s.%s", p, m);
    free(payload);
    free(p);
    free(m);
    return out;
}

enum err list_cursor_decode(const char *cursor, const char *list, const char *tenant, int n,
                            char **key)
{
    for (int i = 0; i < n; i++)
        key[i] = NULL;
    const char *dot = strchr(cursor, '.');
    if (!dot || strlen(cursor) > CURSOR_MAX)
        return ERR_INVALID;
    char *p64 = xstrndup(cursor, (size_t)(dot - cursor));
    unsigned char *payload = NULL, *mac = NULL;
    size_t plen = 0, mlen = 0;
    enum err rc = ERR_INVALID;
    json_t *arr = NULL;
    if (base64url_decode(p64, &payload, &plen) != ERR_OK ||
        base64url_decode(dot + 1, &mac, &mlen) != ERR_OK || mlen != CURSOR_MAC ||
        memchr(payload, '\0', plen))
        goto out;
    char *text = xstrndup((const char *)payload, plen);
    unsigned char want[SHA256_LEN];
    cursor_mac(list, tenant, text, want);
    unsigned char diff = 0;
    for (size_t i = 0; i < CURSOR_MAC; i++)
        diff |= (unsigned char)(want[i] ^ mac[i]);
    if (diff == 0)
        arr = json_loads(text, 0, NULL);
    free(text);
    if (!json_is_array(arr) || (int)json_array_size(arr) != n)
        goto out;
    for (int i = 0; i < n; i++)
        if (!json_is_string(json_array_get(arr, (size_t)i)))
            goto out;
    for (int i = 0; i < n; i++)
        key[i] = xstrdup(json_string_value(json_array_get(arr, (size_t)i)));
    rc = ERR_OK;
out:
    json_decref(arr);
    free(p64);
    free(payload);
    free(mac);
    return rc;
}

/* --- answering ------------------------------------------------------------------------ */

/* 400 naming the query parameter. */
static void bad_param(struct http_req *req, const char *name, const char *message)
{
    char field[128], detail[400];
    snprintf(field, sizeof field, "%s", name);
    utf8_scrub(field); /* the name is the client's bytes; the answer is JSON */
    snprintf(detail, sizeof detail, "%s: %s", field, message);
    json_t *e = json_pack("[{s:s,s:s}]", "field", field, "message", message);
    http_problem(req, 400, detail, e);
}

enum err list_fail(struct list_ctx *c, enum err rc, const char *not_found)
{
    http_problem_err(c->req, rc, rc == ERR_NOT_FOUND ? not_found : NULL);
    return rc;
}

const char *list_value(const struct list_ctx *c, const char *name)
{
    const struct list_param *p = c->spec->params;
    for (int i = 0; p && p[i].name; i++)
        if (!strcmp(p[i].name, name))
            return c->values[i];
    return NULL;
}

enum err list_strings(struct db_stmt *st, json_t *arr)
{
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK)
        json_array_append_new(arr, json_string(db_col_text(st, 0)));
    return rc == ERR_DONE ? ERR_OK : rc;
}

void list_push(struct list_ctx *c, json_t *item, const char *const *key)
{
    if (c->nitems == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->keys = xrealloc(c->keys, c->cap * (size_t)c->nkey * sizeof *c->keys);
    }
    for (int k = 0; k < c->nkey; k++)
        c->keys[c->nitems * (size_t)c->nkey + (size_t)k] = xstrdup(key[k] ? key[k] : "");
    json_array_append_new(c->items, item);
    c->nitems++;
}

static void ctx_cleanup(struct list_ctx *c)
{
    for (size_t i = 0; i < c->nitems * (size_t)c->nkey; i++)
        free(c->keys[i]);
    free(c->keys);
    for (int k = 0; k < LIST_KEY_MAX; k++)
        free(c->key[k]);
    json_decref(c->items);
}

/* --- the request's query string --------------------------------------------------------- */

struct scan {
    struct list_ctx *c;
    const char *bad;     /* the first parameter at fault */
    const char *message; /* what is wrong with it */
    const char *limit, *cursor;
    bool seen[LIST_PARAMS_MAX];
    bool seen_limit, seen_cursor;
};

static bool scan_arg(void *arg, const char *name, const char *value, size_t len)
{
    struct scan *s = arg;
    const struct list_param *p = s->c->spec->params;
    bool *seen = NULL;
    const char **dst = NULL;
    if (!strcmp(name, "limit")) {
        seen = &s->seen_limit;
        dst = &s->limit;
    } else if (!strcmp(name, "cursor")) {
        seen = &s->seen_cursor;
        dst = &s->cursor;
    } else {
        for (int i = 0; p && p[i].name; i++)
            if (!strcmp(p[i].name, name)) {
                seen = &s->seen[i];
                dst = &s->c->values[i];
            }
    }
    if (!seen) {
        s->bad = name;
        s->message = "is not a parameter of this list";
        return false;
    }
    if (*seen) {
        s->bad = name;
        s->message = "is given more than once";
        return false;
    }
    *seen = true;
    if (!value || !*value) {
        s->bad = name;
        s->message = "must not be empty";
        return false;
    }
    if (strlen(value) != len) {
        s->bad = name;
        s->message = "must not contain a NUL character";
        return false;
    }
    *dst = value;
    return true;
}

static bool id_valid(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    int64_t t;
    return !strncmp(s, prefix, n) && s[n] == '_' && id_time(s, &t) == ERR_OK;
}

/* Checks one filter value; returns NULL when good, else what is wrong. */
static const char *check_value(struct list_ctx *c, int i)
{
    const struct list_param *p = &c->spec->params[i];
    const char *v = c->values[i];
    switch (p->kind) {
    case LP_TEXT:
        return strlen(v) > TEXT_MAX ? "must be at most 256 characters" : NULL;
    case LP_ID:
        return id_valid(v, p->arg) ? NULL : "is not an id of the right kind";
    case LP_FROM:
    case LP_TO:
        return time_parse(v, &c->times[i]) == ERR_OK
                   ? NULL
                   : "must be an RFC 3339 date-time such as 2026-11-22T10:15:30Z";
    case LP_ENUM:
        for (int k = 0; p->values[k]; k++)
            if (!strcmp(p->values[k], v))
                return NULL;
        return "is not one of the accepted values";
    }
    return "is not accepted";
}

/* Parses and checks the query string; answers 400 and returns false when it is wrong. */
static bool parse_query(struct list_ctx *c)
{
    struct scan s = {.c = c};
    http_query_each(c->req, scan_arg, &s);
    if (s.bad) {
        bad_param(c->req, s.bad, s.message);
        return false;
    }
    c->limit = LIST_LIMIT_DEFAULT;
    if (s.limit) {
        size_t n = strlen(s.limit);
        long v = n <= 4 && strspn(s.limit, "0123456789") == n ? strtol(s.limit, NULL, 10) : 0;
        if (v < 1 || v > LIST_LIMIT_MAX) {
            bad_param(c->req, "limit", "must be a whole number from 1 to 1000");
            return false;
        }
        c->limit = (int)v;
    }
    const struct list_param *p = c->spec->params;
    int64_t from = -1;
    for (int i = 0; p && p[i].name; i++) {
        if (!c->values[i])
            continue;
        const char *wrong = check_value(c, i);
        if (wrong && p[i].kind == LP_ENUM) {
            char m[300] = "must be one of";
            for (int k = 0; p[i].values[k]; k++)
                snprintf(m + strlen(m), sizeof m - strlen(m), "%s %s", k ? "," : "",
                         p[i].values[k]);
            bad_param(c->req, p[i].name, m);
            return false;
        }
        if (wrong) {
            bad_param(c->req, p[i].name, wrong);
            return false;
        }
        if (p[i].kind == LP_FROM)
            from = c->times[i];
        if (p[i].kind == LP_TO) {
            if (from >= 0 && c->times[i] <= from) {
                bad_param(c->req, p[i].name, "must be later than from");
                return false;
            }
        }
    }
    if (s.cursor &&
        list_cursor_decode(s.cursor, c->spec->name, c->tenant, c->nkey, c->key) != ERR_OK) {
        bad_param(c->req, "cursor", "is not a cursor this server gave for this list");
        return false;
    }
    c->has_cursor = s.cursor != NULL;
    return true;
}

/* --- reading -------------------------------------------------------------------------- */

static void bind_key_part(struct db_query *q, const struct list_ctx *c, int part)
{
    if (c->spec->key_types[part] == 'i')
        db_query_arg_int(q, strtoll(c->key[part], NULL, 10));
    else
        db_query_arg(q, c->key[part]);
}

/* Appends the filters given to q. */
static void add_filters(struct db_query *q, struct list_ctx *c)
{
    const struct list_param *p = c->spec->params;
    for (int i = 0; p && p[i].name; i++) {
        const char *v = c->values[i];
        if (!v)
            continue;
        switch (p[i].kind) {
        case LP_ENUM:
            if (p[i].clauses) {
                for (int k = 0; p[i].values[k]; k++)
                    if (!strcmp(p[i].values[k], v))
                        db_query_sql(q, p[i].clauses[k]); /* a literal of the spec */
                break;
            }
            db_query_where(q, p[i].sql, v);
            break;
        case LP_TEXT:
        case LP_ID:
            db_query_where(q, p[i].sql, v);
            break;
        case LP_FROM:
        case LP_TO: {
            bool from = p[i].kind == LP_FROM;
            if (p[i].arg) {
                if (from)
                    db_query_since(q, p[i].sql, p[i].arg, c->times[i]);
                else
                    db_query_before(q, p[i].sql, p[i].arg, c->times[i]);
            } else {
                char clause[160];
                snprintf(clause, sizeof clause, " AND %s %s ?", p[i].sql, from ? ">=" : "<");
                db_query_where_int(q, clause, c->times[i]);
            }
            break;
        }
        }
    }
}

static enum err read_sql(struct db *db, struct list_ctx *c)
{
    const struct list_spec *s = c->spec;
    struct db_query q;
    db_query_init(&q, s->select);
    for (const char *b = s->binds; b && *b; b++)
        db_query_arg(&q, *b == 'T' ? c->tenant : http_param(c->req, *b - '0'));
    add_filters(&q, c);
    if (c->has_cursor) {
        db_query_sql(&q, s->after);
        for (const char *a = s->after_parts; *a; a++)
            bind_key_part(&q, c, *a - '0');
    }
    char tail[400];
    snprintf(tail, sizeof tail, "%s LIMIT ?", s->order);
    struct db_stmt *st;
    enum err rc = db_query_stmt(db, &q, tail, c->limit + 1, &st);
    if (rc != ERR_OK)
        return rc;
    while ((rc = db_next(st)) == ERR_OK) {
        const char *key[LIST_KEY_MAX];
        for (int k = 0; k < c->nkey; k++)
            key[k] = db_col_text(st, s->key_cols[k]);
        list_push(c, s->row(st), key);
    }
    db_release(db);
    return rc == ERR_DONE ? ERR_OK : rc;
}

void api_list(struct http_req *req)
{
    const struct list_spec *s = req->route->list;
    assert(s); /* the route table pairs api_list with a spec */
    for (int i = 0; s->params && s->params[i].name; i++)
        assert(i < LIST_PARAMS_MAX);
    struct list_ctx c = {.req = req, .spec = s, .items = json_array()};
    c.tenant = req->auth.admin ? "" : req->auth.tenant;
    c.nkey = s->key_types ? (int)strlen(s->key_types) : 0;
    struct db *db;
    if (!parse_query(&c) || !(db = http_reader(req)))
        goto out;
    if (s->parent && s->parent(db, &c) != ERR_OK)
        goto out;
    enum err rc = s->fetch ? s->fetch(db, &c) : read_sql(db, &c);
    /* The page: the first limit items; one more means more rows exist. */
    bool more = rc == ERR_OK && c.nitems > (size_t)c.limit;
    size_t keep = more ? (size_t)c.limit : c.nitems;
    json_t *data = json_array();
    for (size_t i = 0; i < keep && rc == ERR_OK; i++) {
        json_t *item = json_array_get(c.items, i);
        enum err e = s->expand ? s->expand(db, &c, item) : ERR_OK;
        if (e == ERR_OK)
            json_array_append(data, item);
        else if (e != ERR_DONE)
            rc = e;
    }
    db_release(db);
    if (rc != ERR_OK) {
        json_decref(data);
        http_problem_err(req, rc, NULL);
        goto out;
    }
    json_t *next = json_null();
    if (more) {
        const char *const *last = (const char *const *)&c.keys[(keep - 1) * (size_t)c.nkey];
        char *cur = list_cursor_encode(s->name, c.tenant, last, c.nkey);
        json_decref(next);
        next = json_string(cur);
        free(cur);
    }
    http_json(req, 200, json_pack("{s:o,s:o}", "data", data, "next_cursor", next));
out:
    ctx_cleanup(&c);
}
