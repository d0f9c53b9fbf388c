/* The HTTP server on libmicrohttpd: an internal thread pool with epoll, body limits,
 * routing, authentication, deferral to the writer with suspend/resume, request metrics.
 *
 * Threads: the pool threads run the access handler; the writer thread resumes suspended
 * connections from job_done(). g.deferred counts suspended requests so shutdown waits for
 * their commits before stopping the daemon. The acceptor thread owns the listen socket: it
 * accepts and hands each connection to the daemon (MHD_add_connection). It takes no new
 * connection while --max-connections are open, and when accept() fails for want of
 * descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM) it waits until a connection closes or
 * 100 ms pass, instead of spinning on a listen socket that stays readable: new clients
 * wait in the backlog until the server has descriptors again. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "http/http.h"
#include "http/ratelimit.h"

enum req_state { REQ_NEW, REQ_BODY, REQ_SUSPENDED, REQ_RESUMED, REQ_DONE };

struct route_metrics {
    struct metric by_class[3]; /* 2xx/3xx, 4xx, 5xx */
    struct histogram latency;
    char *labels[4];
};

static struct {
    struct MHD_Daemon *daemon;
    const struct route *routes;
    int nroutes;
    struct route_metrics *rm;
    struct metric unmatched[3];
    _Atomic int deferred;
    bool closing;  /* under lock: http_stop has waited out the deferrals; no new ones */
    bool api_role; /* false: only the unauthenticated operational endpoints are served */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int port;
    int listen_fd; /* bound by http_listen() before anything else starts; -1: none */
    bool v6;
    /* The acceptor: its thread, the eventfd that wakes it (a connection closed, or stop),
     * the open connections it counts against max_conns, and the stop flag. */
    pthread_t acceptor;
    bool acceptor_running;
    int wake_fd;
    _Atomic int conns;
    int max_conns;
    _Atomic bool stopping;
    struct metric accept_waits;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .cond = PTHREAD_COND_INITIALIZER,
       .listen_fd = -1,
       .wake_fd = -1};

static const char *const class_names[] = {"2xx", "4xx", "5xx"};

static int status_class(int status)
{
    return status >= 500 ? 2 : status >= 400 ? 1 : 0;
}

/* --- routing ------------------------------------------------------------------------- */

/* Matches path against pattern, filling params; returns true on a match. */
static bool match(const char *pattern, const char *path, char **params)
{
    int np = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            size_t n = strcspn(s, "/");
            if (n == 0 || np >= HTTP_MAX_PARAMS)
                break; /* *p is '{': the params taken so far are freed below */
            params[np++] = xstrndup(s, n);
            s += n;
            p += 2;
        } else if (*p == *s) {
            p++;
            s++;
        } else {
            break; /* both non-empty: freed below */
        }
    }
    if (*p || *s) {
        for (int i = 0; i < np; i++) {
            free(params[i]);
            params[i] = NULL;
        }
        return false;
    }
    return true;
}

static void clear_params(struct http_req *req)
{
    for (int i = 0; i < HTTP_MAX_PARAMS; i++) {
        free(req->params[i]);
        req->params[i] = NULL;
    }
}

static void dispatch(struct http_req *req)
{
    char allow[128] = "";
    /* HEAD is answered by the GET route: libmicrohttpd sends the headers without the body. */
    bool head = !strcmp(req->method, "HEAD");
    for (int i = 0; i < g.nroutes; i++) {
        const struct route *r = &g.routes[i];
        if (!match(r->pattern, req->path, req->params))
            continue;
        if (strcmp(r->method, req->method) != 0 && !(head && !strcmp(r->method, "GET"))) {
            const char *m = !strcmp(r->method, "GET") ? "GET, HEAD" : r->method;
            if (!strstr(allow, m)) {
                size_t n = strlen(allow);
                snprintf(allow + n, sizeof allow - n, "%s%s", n ? ", " : "", m);
            }
            clear_params(req);
            continue;
        }
        req->route = r;
        req->route_index = i;
        break;
    }
    if (!req->route) {
        if (*allow) {
            char d[200];
            snprintf(d, sizeof d, "%s is not allowed here; allowed: %s", req->method, allow);
            http_problem(req, 405, d, NULL);
            http_add_header(req, "Allow", allow);
        } else {
            http_problem(req, 404, "no such resource", NULL);
        }
        return;
    }
    const struct route *r = req->route;
    if (r->auth != AUTH_NONE && !g.api_role) {
        http_problem(req, 503,
                     "this node runs without the api role (--roles); send API requests to a "
                     "node that has it",
                     NULL);
        return;
    }
    if (r->auth != AUTH_NONE) {
        enum err rc = http_authenticate(req);
        if (rc == ERR_AUTH) {
            http_problem(req, 401, "send Authorization: Bearer <API key or admin token>", NULL);
            http_add_header(req, "WWW-Authenticate", "Bearer");
            return;
        }
        if (rc != ERR_OK) {
            http_problem_err(req, rc, NULL);
            return;
        }
        int retry_after = 0;
        if (!req->auth.admin && !ratelimit_take(req->auth.key_id, time_now_ms(), &retry_after)) {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", retry_after);
            http_problem(req, 429, "this API key is over its request rate; retry later", NULL);
            http_add_header(req, "Retry-After", ra);
            return;
        }
        if (r->auth == AUTH_ADMIN && !req->auth.admin) {
            http_problem(req, 403, "this endpoint needs the admin token", NULL);
            return;
        }
        if (r->auth == AUTH_KEY && req->auth.admin) {
            http_problem(req, 403, "the admin token may only use /v1/admin/*; use a tenant API key",
                         NULL);
            return;
        }
        if (r->auth == AUTH_KEY && r->perms && !(req->auth.perms & r->perms)) {
            json_t *need = json_array();
            perm_to_json(r->perms, need);
            char *s = json_dumps(need, JSON_COMPACT);
            char d[256];
            snprintf(d, sizeof d, "this API key lacks the permission this needs (one of %s)", s);
            free(s);
            json_decref(need);
            http_problem(req, 403, d, NULL);
            return;
        }
    }
    r->handler(req);
}

/* --- deferral ------------------------------------------------------------------------ */

static enum err job_run(struct db *db, void *arg)
{
    struct http_req *req = arg;
    return req->defer_run(db, req->ctx);
}

static void job_done(void *arg, enum err rc)
{
    struct http_req *req = arg;
    req->job.rc = rc;
    req->state = REQ_RESUMED;
    MHD_resume_connection(req->conn);
    if (atomic_fetch_sub(&g.deferred, 1) == 1) {
        pthread_mutex_lock(&g.lock);
        pthread_cond_broadcast(&g.cond);
        pthread_mutex_unlock(&g.lock);
    }
}

/* Counts a deferral in g.deferred, unless the server is closing: then answers 503 (the
 * daemon must never stop with a suspended connection) and returns false. */
static bool defer_admit(struct http_req *req)
{
    pthread_mutex_lock(&g.lock);
    bool closing = g.closing;
    if (!closing)
        atomic_fetch_add(&g.deferred, 1);
    pthread_mutex_unlock(&g.lock);
    if (closing) {
        http_problem(req, 503, "the server is shutting down; retry on another node or later", NULL);
        http_add_header(req, "Connection", "close");
    }
    return !closing;
}

void http_defer(struct http_req *req, enum err (*run)(struct db *db, void *ctx),
                void (*finish)(struct http_req *req), void *ctx, void (*ctx_free)(void *ctx),
                unsigned wake)
{
    http_defer_group(req, NULL, run, finish, ctx, ctx_free, wake);
}

void *http_job_ctx(const struct store_job *job)
{
    const struct http_req *req = job->arg;
    return req->ctx;
}

void http_defer_group(struct http_req *req, const struct store_group *group,
                      enum err (*run)(struct db *db, void *ctx),
                      void (*finish)(struct http_req *req), void *ctx, void (*ctx_free)(void *ctx),
                      unsigned wake)
{
    req->finish = finish;
    req->ctx = ctx; /* freed with the request, whatever happens below */
    req->ctx_free = ctx_free;
    if (!defer_admit(req))
        return;
    req->defer_run = run;
    req->job.run = job_run;
    req->job.group = group;
    req->job.done = job_done;
    req->job.arg = req;
    req->job.wake = wake;
    req->deferred = true;
    req->state = REQ_SUSPENDED;
    /* Suspend first: the writer may finish the job before this thread returns. */
    MHD_suspend_connection(req->conn);
    store_submit(&req->job);
}

#define BLOCKING_MAX 32 /* outbound test actions in progress at once */
static _Atomic int blocking_running;

static void *blocking_main(void *arg)
{
    struct http_req *req = arg;
    pthread_setname_np(pthread_self(), "sluice-http-io");
    req->blocking_work(req->ctx);
    atomic_fetch_sub(&blocking_running, 1);
    job_done(req, ERR_OK);
    return NULL;
}

void http_defer_blocking(struct http_req *req, void (*work)(void *ctx),
                         void (*finish)(struct http_req *req), void *ctx,
                         void (*ctx_free)(void *ctx))
{
    req->finish = finish;
    req->ctx = ctx; /* freed with the request, whatever happens below */
    req->ctx_free = ctx_free;
    if (atomic_fetch_add(&blocking_running, 1) >= BLOCKING_MAX) {
        atomic_fetch_sub(&blocking_running, 1);
        http_problem(req, 503, "too many test actions are in progress; retry shortly", NULL);
        http_add_header(req, "Retry-After", "5");
        return;
    }
    if (!defer_admit(req)) { /* shutdown waits for the thread's answer once admitted */
        atomic_fetch_sub(&blocking_running, 1);
        return;
    }
    req->blocking_work = work;
    req->deferred = true;
    req->state = REQ_SUSPENDED;
    MHD_suspend_connection(req->conn);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, blocking_main, req);
    pthread_attr_destroy(&attr);
    if (rc != 0) { /* no thread to be had: do the work here after all */
        work(ctx);
        atomic_fetch_sub(&blocking_running, 1);
        job_done(req, ERR_OK);
    }
}

/* --- MHD callbacks ------------------------------------------------------------------- */

/* Seconds a 503 asks the client to wait when its handler named no Retry-After: the
 * database or the server is back within seconds or the client should look elsewhere. */
#define RETRY_AFTER_503 "2"

static enum MHD_Result queue(struct MHD_Connection *conn, struct http_req *req)
{
    if (!req->responded)
        http_problem(req, 500, "the handler produced no response", NULL);
    if (req->status == 503) { /* every 503 says when to come back (API contract) */
        bool has = false;
        for (int i = 0; i < HTTP_MAX_HEADERS && req->extra_headers[i]; i++)
            has |= !strncasecmp(req->extra_headers[i], "Retry-After:", 12);
        if (!has)
            http_add_header(req, "Retry-After", RETRY_AFTER_503);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        req->resp_len, req->resp ? req->resp : (char *)"", MHD_RESPMEM_MUST_COPY);
    if (req->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type);
    for (int i = 0; i < HTTP_MAX_HEADERS && req->extra_headers[i]; i++) {
        char *h = req->extra_headers[i], *colon = strchr(h, ':');
        if (!colon)
            continue;
        *colon = '\0';
        MHD_add_response_header(resp, h, colon + 2);
        *colon = ':';
    }
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)req->status, resp);
    MHD_destroy_response(resp);
    req->state = REQ_DONE;
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct http_req *req = *con_cls;
    if (!req) {
        req = xcalloc(1, sizeof *req);
        req->conn = conn;
        req->start_ns = time_mono_ns();
        req->route_index = -1;
        snprintf(req->method, sizeof req->method, "%s", method);
        req->path = xstrdup(url);
        *con_cls = req;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > HTTP_MAX_BODY) {
            http_problem(req, 413, "the request body is larger than 8 MiB", NULL);
            return queue(conn, req);
        }
        req->state = REQ_BODY;
        return MHD_YES;
    }
    if (req->state == REQ_BODY && *upload_size) {
        if (req->body.len + *upload_size > HTTP_MAX_BODY)
            req->too_big = true;
        else
            buf_append(&req->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->state == REQ_BODY) {
        if (req->too_big) {
            http_problem(req, 413, "the request body is larger than 8 MiB", NULL);
            return queue(conn, req);
        }
        dispatch(req);
        store_reader_release();
        /* Deferred: the answer is queued when the writer resumes the connection (which may
         * already have happened on the writer thread). */
        if (req->deferred)
            return MHD_YES;
        return queue(conn, req);
    }
    if (req->state == REQ_RESUMED) {
        req->deferred = false;
        if (req->finish)
            req->finish(req);
        store_reader_release();
        /* finish() deferred again (a write after a blocking check): the answer comes when
         * that second step resumes the connection. */
        if (req->deferred)
            return MHD_YES;
        return queue(conn, req);
    }
    if (req->state == REQ_SUSPENDED)
        return MHD_YES; /* spurious call while the commit is pending */
    return MHD_NO;
}

static void http_req_free(struct http_req *req)
{
    if (req->ctx_free)
        req->ctx_free(req->ctx);
    clear_params(req);
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        free(req->extra_headers[i]);
    buf_cleanup(&req->body);
    free(req->resp);
    free(req->path);
    free(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    struct http_req *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    int64_t ns = time_mono_ns() - req->start_ns;
    int cls_i = status_class(req->status ? req->status : 500);
    if (req->route_index >= 0) {
        struct route_metrics *m = &g.rm[req->route_index];
        metric_add(&m->by_class[cls_i], 1);
        histogram_observe_ns(&m->latency, ns);
    } else {
        metric_add(&g.unmatched[cls_i], 1);
    }
    log_debug("http", "%s %s %d %.1fms%s", req->method, req->path, req->status, (double)ns / 1e6,
              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
    http_req_free(req);
}

/* fmt comes from libmicrohttpd (the format attribute lets clang check the call). */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_warn("http", "%s", msg);
}

/* --- the acceptor --------------------------------------------------------------------- */

static void wake_acceptor(void)
{
    uint64_t one = 1;
    if (g.wake_fd >= 0 && write(g.wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_debug("http", "cannot wake the acceptor: %s", strerror(errno));
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls, (void)conn, (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&g.conns, 1);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        /* A descriptor and a connection slot are free: an acceptor that waits for either
         * may go on. */
        atomic_fetch_sub(&g.conns, 1);
        wake_acceptor();
    }
}

/* Waits until the wake eventfd fires or ms pass (ms < 0: the listen socket is readable
 * too); returns true when the listen socket is readable. */
static bool acceptor_wait(bool listen, int ms)
{
    struct pollfd p[2] = {{.fd = g.wake_fd, .events = POLLIN},
                          {.fd = g.listen_fd, .events = POLLIN}};
    int n = poll(p, listen ? 2 : 1, ms);
    if (n > 0 && (p[0].revents & POLLIN)) {
        uint64_t v;
        if (read(g.wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
            log_debug("http", "acceptor wake read: %s", strerror(errno));
    }
    return n > 0 && listen && (p[1].revents & POLLIN);
}

static void *acceptor_main(void *arg)
{
    (void)arg;
    bool failing = false; /* in an episode of accept() failing (EMFILE and the like) */
    while (!atomic_load(&g.stopping)) {
        if (atomic_load(&g.conns) >= g.max_conns) {
            /* At the connection limit: clients wait in the backlog until one closes. */
            acceptor_wait(false, 1000);
            continue;
        }
        if (!acceptor_wait(true, 1000))
            continue;
        while (!atomic_load(&g.stopping) && atomic_load(&g.conns) < g.max_conns) {
            struct sockaddr_storage addr;
            socklen_t alen = sizeof addr;
            int fd =
                accept4(g.listen_fd, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                int e = errno;
                if (e == EAGAIN || e == EWOULDBLOCK)
                    break;
                if (e == EINTR || e == ECONNABORTED || e == EPROTO)
                    continue;
                metric_add(&g.accept_waits, 1);
                if (!failing)
                    log_warn("http",
                             "cannot accept connections: %s; new clients wait until a "
                             "descriptor is free (raise the open-file limit, ulimit -n, or "
                             "lower --max-connections)",
                             strerror(e));
                failing = true;
                acceptor_wait(false, 100);
                break;
            }
            if (failing) {
                log_info("http", "accepting connections again");
                failing = false;
            }
            /* On failure the daemon has closed the socket and logged why. */
            MHD_add_connection(g.daemon, fd, (struct sockaddr *)&addr, alen);
        }
    }
    return NULL;
}

/* --- start/stop ---------------------------------------------------------------------- */

static enum err parse_listen(const char *listen, struct sockaddr_storage *ss, bool *v6,
                             char *errmsg, size_t errlen)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    if (!colon) {
        snprintf(errmsg, errlen, "--listen must be HOST:PORT, [V6]:PORT or :PORT, not \"%s\"",
                 listen);
        return ERR_INVALID;
    }
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        hl = sizeof host - 1;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port < 0 || port > 65535) {
        snprintf(errmsg, errlen, "--listen has an invalid port in \"%s\"", listen);
        return ERR_INVALID;
    }
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']')
            goto bad;
        host[n - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            goto bad;
        *v6 = true;
        return ERR_OK;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (!*host || !strcmp(host, "0.0.0.0"))
        a->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (!strcmp(host, "localhost"))
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        goto bad;
    *v6 = false;
    return ERR_OK;
bad:
    snprintf(errmsg, errlen, "--listen has an invalid address in \"%s\"", listen);
    return ERR_INVALID;
}

static void register_metrics(void)
{
    g.rm = xcalloc((size_t)g.nroutes, sizeof *g.rm);
    for (int i = 0; i < g.nroutes; i++) {
        struct route_metrics *m = &g.rm[i];
        for (int c = 0; c < 3; c++) {
            m->labels[c] = xasprintf("method=\"%s\",route=\"%s\",code=\"%s\"", g.routes[i].method,
                                     g.routes[i].pattern, class_names[c]);
            m->by_class[c].name = "sluice_http_requests_total";
            m->by_class[c].help = "HTTP requests by route and status class.";
            m->by_class[c].type = "counter";
            m->by_class[c].labels = m->labels[c];
            metric_register(&m->by_class[c]);
        }
        m->labels[3] =
            xasprintf("method=\"%s\",route=\"%s\"", g.routes[i].method, g.routes[i].pattern);
        m->latency.name = "sluice_http_request_duration_seconds";
        m->latency.help = "HTTP request latency by route, from first byte to response.";
        m->latency.labels = m->labels[3];
        histogram_register(&m->latency);
    }
    static const char *const unmatched_labels[] = {"method=\"\",route=\"unmatched\",code=\"2xx\"",
                                                   "method=\"\",route=\"unmatched\",code=\"4xx\"",
                                                   "method=\"\",route=\"unmatched\",code=\"5xx\""};
    g.accept_waits.name = "sluice_http_accept_waits_total";
    g.accept_waits.help = "Times accept() failed and the acceptor waited (usually for want of "
                          "file descriptors).";
    g.accept_waits.type = "counter";
    metric_register(&g.accept_waits);
    for (int c = 0; c < 3; c++) {
        g.unmatched[c].name = "sluice_http_requests_total";
        g.unmatched[c].help = "HTTP requests by route and status class.";
        g.unmatched[c].type = "counter";
        g.unmatched[c].labels = unmatched_labels[c];
        metric_register(&g.unmatched[c]);
    }
}

enum err http_listen(const struct config *cfg, char *errmsg, size_t errlen)
{
    struct sockaddr_storage ss;
    bool v6 = false;
    enum err rc = parse_listen(cfg->listen, &ss, &v6, errmsg, errlen);
    if (rc != ERR_OK)
        return rc;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, (struct sockaddr *)&ss,
             v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) != 0 ||
        listen(fd, 1024) != 0) {
        snprintf(errmsg, errlen, "cannot listen on %s: %s", cfg->listen, strerror(errno));
        if (fd >= 0)
            close(fd);
        return ERR_IO;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    g.port = ntohs(v6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                      : ((struct sockaddr_in *)&bound)->sin_port);
    g.listen_fd = fd;
    g.v6 = v6;
    return ERR_OK;
}

enum err http_start(const struct config *cfg, const struct route *routes, char *errmsg,
                    size_t errlen)
{
    if (g.listen_fd < 0) {
        enum err rc = http_listen(cfg, errmsg, errlen);
        if (rc != ERR_OK)
            return rc;
    }
    g.routes = routes;
    g.api_role = config_has_role(cfg, "api");
    g.nroutes = 0;
    while (routes[g.nroutes].method)
        g.nroutes++;
    g.closing = false;
    register_metrics();
    ratelimit_configure(cfg->rate_limit);
    /* The daemon has no listen socket of its own: the acceptor thread hands it connections
     * (MHD_USE_ITC makes a pool thread pick each one up at once) and keeps to
     * --max-connections. The daemon's own limit is only a backstop, set above it: its count
     * lags ours (a closed connection is counted until the pool thread cleans it up), and a
     * connection it refused would be reset instead of waiting in the backlog. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    g.daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections * 2 + (unsigned)cfg->http_threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)64 * 1024, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
    if (!g.daemon) {
        snprintf(errmsg, errlen, "cannot serve on %s (see the log above)", cfg->listen);
        return ERR_IO;
    }
    g.max_conns = cfg->max_connections;
    atomic_store(&g.conns, 0);
    atomic_store(&g.stopping, false);
    g.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int e = g.wake_fd < 0 ? errno : pthread_create(&g.acceptor, NULL, acceptor_main, NULL);
    if (e != 0) {
        snprintf(errmsg, errlen, "cannot start the HTTP acceptor: %s", strerror(e));
        MHD_stop_daemon(g.daemon);
        g.daemon = NULL;
        if (g.wake_fd >= 0)
            close(g.wake_fd);
        g.wake_fd = -1;
        return ERR_IO;
    }
    g.acceptor_running = true;
    return ERR_OK;
}

int http_port(void)
{
    return g.port;
}

void http_stop(void)
{
    if (!g.daemon) {
        if (g.listen_fd >= 0) /* bound, but start-up stopped before serving */
            close(g.listen_fd);
        g.listen_fd = -1;
        return;
    }
    /* Take no new connection: stop the acceptor (clients still in the backlog are refused
     * when the listen socket closes below). */
    atomic_store(&g.stopping, true);
    wake_acceptor();
    if (g.acceptor_running)
        pthread_join(g.acceptor, NULL);
    g.acceptor_running = false;
    /* Let every suspended request get its commit and be resumed. */
    pthread_mutex_lock(&g.lock);
    while (atomic_load(&g.deferred) > 0)
        pthread_cond_wait(&g.cond, &g.lock);
    g.closing = true; /* from now on a deferral is answered 503 instead of suspended */
    pthread_mutex_unlock(&g.lock);
    /* Give resumed connections a moment to write their answers before the daemon stops. */
    for (int i = 0; i < 50; i++) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(g.daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!info || info->num_connections == 0)
            break;
        usleep(10000);
    }
    MHD_stop_daemon(g.daemon);
    g.daemon = NULL;
    close(g.listen_fd);
    g.listen_fd = -1;
    close(g.wake_fd);
    g.wake_fd = -1;
    for (int i = 0; i < g.nroutes; i++)
        for (int c = 0; c < 4; c++)
            free(g.rm[i].labels[c]);
    free(g.rm);
    g.rm = NULL;
    ratelimit_cleanup();
}
