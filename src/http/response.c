/* Response helpers and RFC 9457 problem details, with the one error-to-status table.
 * Runs on HTTP threads; touches only the request it is given. */
#include <assert.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "core/xalloc.h"
#include "http/http.h"

static const struct {
    int status;
    const char *slug;
    const char *title;
} problems[] = {
    {400, "malformed", "Malformed request"},
    {401, "unauthorized", "Missing or unknown API key"},
    {403, "forbidden", "Permission missing"},
    {404, "not-found", "Not found"},
    {405, "method-not-allowed", "Method not allowed"},
    {409, "conflict", "Conflict"},
    {413, "too-large", "Request body too large"},
    {415, "unsupported-media-type", "Content-Type must be application/json"},
    {422, "validation", "Validation failed"},
    {429, "rate-limited", "Too many requests"},
    {500, "internal", "Internal server error"},
    {503, "unavailable", "Service unavailable"},
};

int http_status_for(enum err rc)
{
    switch (rc) {
    case ERR_OK:
    case ERR_DONE:
        return 200;
    case ERR_INVALID:
        return 422;
    case ERR_MALFORMED:
        return 400;
    case ERR_NOT_FOUND:
        return 404;
    case ERR_CONFLICT:
        return 409;
    case ERR_TOO_BIG:
        return 413;
    case ERR_AUTH:
        return 401;
    case ERR_FORBIDDEN:
        return 403;
    case ERR_STORAGE:
    case ERR_SHUTDOWN:
    case ERR_IO:
        return 503;
    case ERR_NOMEM:
    case ERR_INTERNAL:
        return 500;
    }
    return 500;
}

const char *http_param(const struct http_req *req, int i)
{
    return i >= 0 && i < HTTP_MAX_PARAMS ? req->params[i] : NULL;
}

const char *http_query(const struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_iter {
    bool (*fn)(void *ctx, const char *name, const char *value, size_t len);
    void *ctx;
};

static enum MHD_Result query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    (void)key_size;
    struct query_iter *it = cls;
    return it->fn(it->ctx, key, value, value_size) ? MHD_YES : MHD_NO;
}

void http_query_each(const struct http_req *req,
                     bool (*fn)(void *ctx, const char *name, const char *value, size_t len),
                     void *ctx)
{
    struct query_iter it = {fn, ctx};
    MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, query_iter, &it);
}

const char *http_header(const struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void http_raw(struct http_req *req, int status, const char *content_type, const char *body,
              size_t len)
{
    free(req->resp);
    req->resp = xmalloc(len + 1);
    memcpy(req->resp, body, len);
    req->resp[len] = '\0';
    req->resp_len = len;
    req->status = status;
    req->content_type = content_type;
    req->responded = true;
}

void http_json(struct http_req *req, int status, json_t *v)
{
    free(req->resp);
    req->resp = json_dumps(v, JSON_COMPACT);
    req->resp_len = strlen(req->resp);
    req->status = status;
    req->content_type = "application/json";
    req->responded = true;
    json_decref(v);
}

void http_no_content(struct http_req *req)
{
    free(req->resp);
    req->resp = NULL;
    req->resp_len = 0;
    req->status = 204;
    req->content_type = NULL;
    req->responded = true;
}

void http_add_header(struct http_req *req, const char *name, const char *value)
{
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        if (!req->extra_headers[i]) {
            req->extra_headers[i] = xasprintf("%s: %s", name, value);
            return;
        }
    assert(!"more response headers than HTTP_MAX_HEADERS");
}

/* A JSON string of s with invalid UTF-8 replaced: problem text may quote the request's own
 * bytes (a method, a path, a query parameter), and jansson refuses invalid UTF-8. */
static json_t *json_text(const char *s)
{
    char *c = xstrdup(s);
    utf8_scrub(c);
    json_t *j = json_string(c);
    free(c);
    return j;
}

void http_problem(struct http_req *req, int status, const char *detail, json_t *errors)
{
    const char *slug = "error", *title = "Error";
    for (size_t i = 0; i < sizeof problems / sizeof problems[0]; i++)
        if (problems[i].status == status) {
            slug = problems[i].slug;
            title = problems[i].title;
        }
    char type[128];
    snprintf(type, sizeof type, "https://sluice.dev/problems/%s", slug);
    json_t *p = json_pack("{s:s,s:s,s:i}", "type", type, "title", title, "status", status);
    json_object_set_new(p, "detail", json_text(detail ? detail : title));
    if (errors)
        json_object_set_new(p, "errors", errors);
    if (req->path)
        json_object_set_new(p, "instance", json_text(req->path));
    http_json(req, status, p);
    req->content_type = "application/problem+json";
}

void http_problem_err(struct http_req *req, enum err rc, const char *detail)
{
    int status = http_status_for(rc);
    if (!detail && rc == ERR_STORAGE)
        detail = "the database is unavailable; nothing was accepted";
    if (!detail && rc == ERR_SHUTDOWN)
        detail = "the server is shutting down; nothing was accepted";
    http_problem(req, status, detail, NULL);
}

void http_problem_verrs(struct http_req *req, struct verrs *v)
{
    json_t *errs = v->list;
    v->list = json_array();
    const char *first = "the request is invalid";
    char detail[600];
    json_t *e0 = json_array_get(errs, 0);
    if (e0) {
        const char *field = json_string_value(json_object_get(e0, "field"));
        const char *msg = json_string_value(json_object_get(e0, "message"));
        if (field && *field)
            snprintf(detail, sizeof detail, "%s: %s", field, msg);
        else
            snprintf(detail, sizeof detail, "%s", msg);
        first = detail;
    }
    http_problem(req, 422, first, errs);
}

bool http_body_json(struct http_req *req, json_t **out)
{
    const char *ct = http_header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
        http_problem(req, 415, "send the body as application/json", NULL);
        return false;
    }
    char msg[256];
    const char *body = req->body.data ? req->body.data : "";
    if (json_parse(body, req->body.len, out, msg, sizeof msg) != ERR_OK) {
        http_problem(req, 400, msg, NULL);
        return false;
    }
    return true;
}

void http_actor(const struct http_req *req, char *out, size_t n)
{
    snprintf(out, n, "key:%s", req->auth.key_name);
}

struct db *http_reader(struct http_req *req)
{
    struct db *db = store_reader();
    if (!db)
        http_problem_err(req, ERR_STORAGE, NULL);
    return db;
}

bool http_query_time(struct http_req *req, const char *name, int64_t *ms)
{
    const char *s = http_query(req, name);
    if (!s)
        return true;
    if (time_parse(s, ms) != ERR_OK) {
        char d[160];
        snprintf(d, sizeof d, "%s must be an RFC 3339 date-time such as 2026-11-22T10:15:30Z",
                 name);
        json_t *e =
            json_pack("[{s:s,s:s}]", "field", name, "message", "must be an RFC 3339 date-time");
        http_problem(req, 400, d, e);
        return false;
    }
    return true;
}
