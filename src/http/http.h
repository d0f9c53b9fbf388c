/* The HTTP layer: the request model handlers see, response helpers, and the server.
 *
 * A handler runs on one of libmicrohttpd's pool threads once the whole body has arrived
 * and authentication has passed. It either answers at once (http_json, http_problem...) or
 * defers to the writer with http_defer(): the connection is suspended, the job commits in
 * the next group commit, and the handler's finish() builds the answer on an HTTP thread.
 * Everything a request allocates is freed when it completes (http_req_free). */
#ifndef SLUICE_HTTP_HTTP_H
#define SLUICE_HTTP_HTTP_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "store/store.h"

#define HTTP_MAX_BODY (8u * 1024 * 1024)
#define HTTP_MAX_PARAMS 4
#define HTTP_MAX_HEADERS 8 /* extra response headers a handler may add */

/* Permissions of API keys (API.md). *_MANAGE implies the matching *_VIEW. */
enum perm {
    PERM_EVENTS_PUBLISH = 1u << 0,
    PERM_TOOLS_VIEW = 1u << 1,
    PERM_TOOLS_MANAGE = 1u << 2,
    PERM_ALERTS_REPORT = 1u << 3,
    PERM_ALERTS_VIEW = 1u << 4,
    PERM_ALERTS_MANAGE = 1u << 5,
};

/* Who a request acts as. */
struct auth {
    bool admin;
    char tenant[72];
    char key_id[48];
    char key_name[136];
    unsigned perms; /* expanded: manage implies view */
};

enum route_auth {
    AUTH_NONE,  /* health, metrics, console */
    AUTH_ADMIN, /* the admin token only */
    AUTH_KEY,   /* a tenant key holding any bit of route.perms (0: any key) */
    AUTH_ANY,   /* a tenant key or the admin token (/v1/me) */
};

struct http_req;
struct list_spec;
typedef void (*http_handler)(struct http_req *req);

struct route {
    const char *method;
    const char *pattern; /* "/v1/events/{}": {} matches one non-empty segment */
    enum route_auth auth;
    unsigned perms;
    http_handler handler;
    const struct list_spec *list; /* GET lists: the spec the one list helper serves */
};

struct http_req {
    void *conn; /* struct MHD_Connection */
    char method[8];
    char *path;
    struct buf body;
    bool too_big;
    const struct route *route;
    int route_index;
    char *params[HTTP_MAX_PARAMS];
    struct auth auth;
    int64_t start_ns;

    /* response */
    int status;
    char *resp;
    size_t resp_len;
    const char *content_type;
    char *extra_headers[HTTP_MAX_HEADERS]; /* "Name: value" */
    bool responded;

    /* deferred work */
    _Atomic int state; /* written by the writer thread on completion */
    bool deferred;     /* http_defer() was called during dispatch */
    struct store_job job;
    enum err (*defer_run)(struct db *db, void *ctx);
    void (*blocking_work)(void *ctx);
    void (*finish)(struct http_req *req);
    void *ctx;
    void (*ctx_free)(void *ctx);
};

/* Path parameter i (0-based, in pattern order). */
const char *http_param(const struct http_req *req, int i);
/* Query-string value, or NULL. */
const char *http_query(const struct http_req *req, const char *name);
/* Calls fn(ctx, name, value, len) for every query-string argument in order (value NULL for
 * a bare "?name"; len is the decoded length, more than strlen(value) when it holds a NUL),
 * until fn returns false. */
void http_query_each(const struct http_req *req,
                     bool (*fn)(void *ctx, const char *name, const char *value, size_t len),
                     void *ctx);
/* Request header value, or NULL. */
const char *http_header(const struct http_req *req, const char *name);

/* Parses the body as a JSON object or array; on failure answers 415/400 and returns
 * false. *out is owned by the caller. */
bool http_body_json(struct http_req *req, json_t **out);

/* Answers with v (stolen) as JSON. */
void http_json(struct http_req *req, int status, json_t *v);
/* Answers with a raw body (copied). */
void http_raw(struct http_req *req, int status, const char *content_type, const char *body,
              size_t len);
/* Answers 204 No Content. */
void http_no_content(struct http_req *req);
/* Adds a response header "Name: value" (copied); aborts past HTTP_MAX_HEADERS (a bug). */
void http_add_header(struct http_req *req, const char *name, const char *value);
/* RFC 9457 problem responses. errors (stolen, may be NULL) becomes the "errors" member. */
void http_problem(struct http_req *req, int status, const char *detail, json_t *errors);
/* Answers with the status of rc from the one error table (problem.c). */
void http_problem_err(struct http_req *req, enum err rc, const char *detail);
/* 422 with the collected validation errors (taken from v). */
void http_problem_verrs(struct http_req *req, struct verrs *v);
/* The status code for an error (the one table). */
int http_status_for(enum err rc);

/* Runs run(db, ctx) in the next group commit; then finish(req) builds the answer (on an
 * HTTP thread) reading req->job.rc. ctx_free (may be NULL) frees ctx when the request ends.
 * wake: STORE_WAKE_* bits for the engines. May also be called from the finish() of an
 * earlier deferral (one request, two steps: a blocking check, then the write). */
void http_defer(struct http_req *req, enum err (*run)(struct db *db, void *ctx),
                void (*finish)(struct http_req *req), void *ctx, void (*ctx_free)(void *ctx),
                unsigned wake);

/* http_defer whose job belongs to a store_group: consecutive requests of the group commit
 * with a few set-based statements (its run_many reads each job's ctx with http_job_ctx). */
void http_defer_group(struct http_req *req, const struct store_group *group,
                      enum err (*run)(struct db *db, void *ctx),
                      void (*finish)(struct http_req *req), void *ctx, void (*ctx_free)(void *ctx),
                      unsigned wake);
/* The ctx given to http_defer*() of the request whose job this is (writer thread). */
void *http_job_ctx(const struct store_job *job);

/* For slow outbound I/O (the test actions): suspends the connection and runs work(ctx) on
 * a thread of its own, so no HTTP thread waits on a remote server; then finish(req) builds
 * the answer on an HTTP thread. work must not touch the database. With too many such
 * requests in progress answers 503 at once instead (and frees ctx). */
void http_defer_blocking(struct http_req *req, void (*work)(void *ctx),
                         void (*finish)(struct http_req *req), void *ctx,
                         void (*ctx_free)(void *ctx));

/* Writes the acting key as "key:<name>" (log and timeline actors) into out. */
void http_actor(const struct http_req *req, char *out, size_t n);

/* The calling thread's read connection, or NULL after answering 503 (storage unavailable). */
struct db *http_reader(struct http_req *req);

/* Parses an RFC 3339 query parameter into *ms (left as is when absent); 400 when invalid. */
bool http_query_time(struct http_req *req, const char *name, int64_t *ms);

/* The server. http_listen binds the listen socket (--listen) and is called first, before
 * anything is created on disk, so a taken address fails start-up cleanly and names the
 * address asked for; http_start then serves on it (binding itself if http_listen was not
 * called). */
enum err http_listen(const struct config *cfg, char *errmsg, size_t errlen);
enum err http_start(const struct config *cfg, const struct route *routes, char *errmsg,
                    size_t errlen);
/* Stops accepting, waits for deferred requests to finish, stops the server. */
void http_stop(void);
/* The bound port (useful with --listen ...:0). */
int http_port(void);

/* Authentication (auth.c): fills req->auth from the Authorization header. ERR_AUTH when
 * missing or unknown, ERR_STORAGE when keys cannot be read. */
enum err http_authenticate(struct http_req *req);
/* Forgets every API key kept by http_authenticate (a key was revoked): call after the
 * revocation committed and before answering. */
void http_auth_forget(void);
/* Parses a permission name; 0 when unknown. */
unsigned perm_parse(const char *name);
/* Appends the permission names of mask (unexpanded) to arr. */
void perm_to_json(unsigned mask, json_t *arr);
/* Adds the implied view permissions. */
unsigned perm_expand(unsigned mask);

#endif
