/* The fuzz harness (see fuzz.h): the in-process server with its fixtures, a loopback HTTP
 * client, the answer checks, and an offline resolver.
 *
 * Threads: everything here runs on the fuzzer's thread; the server runs on its own threads
 * (libmicrohttpd's pool and the store's writer). Invariant: after fz_server() returns, the
 * server keeps running with the fixtures below until exit. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "core/config.h"
#include "core/log.h"
#include "deliver/deliver.h"
#include "http/http.h"
#include "store/store.h"

const char fz_admin_token[] = "adm_fuzz_0123456789abcdef0123456789";
/* Secrets the fixtures hold: no answer may ever show them. */
static const char webhook_secret[] = "fzsecret-webhook-api-key-7f3a9c";
static const char s3_secret[] = "fzsecret-s3-secret-access-key-5d1e8b";

/* The resolver, offline: every lookup is numeric-only (AI_NUMERICHOST), so a fuzzed host
 * name never waits on DNS. The SSRF guard still sees numeric spellings (0x7f.1, 2130706433,
 * [::ffff:127.0.0.1]) resolved as glibc resolves them. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
    struct addrinfo h = {0};
    if (hints)
        h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    return real(node, service, &h, res);
}

static struct {
    bool started;
    struct config cfg;
    char dir[64];
    int port;
    struct fz_fixtures fx;
} g;

/* --- the client ---------------------------------------------------------------------- */

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("fuzz: socket");
        abort();
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int tries = 0; connect(fd, (struct sockaddr *)&a, sizeof a) != 0; tries++) {
        if (tries > 200) {
            fprintf(stderr, "fuzz: cannot connect to the server: %s\n", strerror(errno));
            abort();
        }
        usleep(10000);
    }
    return fd;
}

static void write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server closed early (e.g. 413 before the whole body): fine */
        p += w;
        len -= (size_t)w;
    }
}

/* Reads until EOF. wait_ms: how long to wait for EOF in all; idle_ms: give up earlier when
 * nothing arrives for that long (0: never). Returns true on EOF. */
static bool read_all(int fd, char **out, size_t *n, int wait_ms, int idle_ms)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    int waited = 0;
    bool eof = false;
    while (waited < wait_ms) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int step = idle_ms ? idle_ms : 100;
        int r = poll(&p, 1, step);
        if (r == 0) {
            waited += step;
            if (idle_ms)
                break;
            continue;
        }
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t k = recv(fd, buf + len, cap - len, 0);
        if (k <= 0) {
            eof = true;
            break;
        }
        len += (size_t)k;
    }
    buf[len] = '\0';
    *out = buf;
    *n = len;
    return eof;
}

static void close_reset(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

char *fz_raw(const void *data, size_t len, size_t *n)
{
    int fd = connect_server();
    write_all(fd, data, len);
    shutdown(fd, SHUT_WR);
    char *out;
    if (!read_all(fd, &out, n, 20000, 0)) {
        fprintf(stderr, "fuzz: no answer and no close within 20 s\n");
        abort();
    }
    close(fd);
    if (*n == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* How many whole answers raw holds. */
static int count_answers(const char *raw, size_t n)
{
    int k = 0;
    size_t pos = 0, used;
    struct fz_resp r;
    while (pos < n && (used = fz_parse(raw + pos, n - pos, &r)) > 0) {
        fz_resp_free(&r);
        pos += used;
        k++;
    }
    return k;
}

char *fz_raw_bounded(const void *data, size_t len, int expect, size_t *n)
{
    int fd = connect_server();
    write_all(fd, data, len);
    shutdown(fd, SHUT_WR);
    /* Until EOF, or the answers expected are in (libmicrohttpd may keep a kept-alive
     * connection open although the client half-closed it), or a quiet spell when the input
     * ends inside a request (expect 0) or the answers cannot be counted (expect < 0). */
    size_t cap = 4096, got = 0;
    char *buf = malloc(cap + 1);
    /* expect > 0: 250 quiet ms is plenty for an in-process server that has the request. */
    int waited = 0, limit = expect > 0 ? 250 : 5, step = expect > 0 ? 50 : 5;
    bool eof = false;
    while (waited < limit) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, step) == 0) {
            waited += step;
            if (expect < 0 && got)
                break;
            continue;
        }
        if (got == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t k = recv(fd, buf + got, cap - got, 0);
        if (k <= 0) {
            eof = true;
            break;
        }
        got += (size_t)k;
        buf[got] = '\0';
        if (expect > 0 && count_answers(buf, got) >= expect)
            break;
        if (expect > 0)
            waited = 0; /* bytes came: the quiet spell starts again */
        if (expect < 0)
            waited = 0, limit = 100; /* quiet for 100 ms after the last bytes: done */
    }
    buf[got] = '\0';
    if (eof)
        close(fd);
    else
        close_reset(fd);
    *n = got;
    return buf;
}

size_t fz_parse(const char *raw, size_t n, struct fz_resp *r)
{
    memset(r, 0, sizeof *r);
    const char *end = memmem(raw, n, "\r\n\r\n", 4);
    if (!end || n < 12 || strncmp(raw, "HTTP/1.", 7) != 0)
        return 0;
    r->status = (int)strtol(raw + 9, NULL, 10);
    long clen = -1;
    const char *first_eol = memchr(raw, '\n', (size_t)(end - raw));
    for (const char *line = first_eol ? first_eol + 1 : end; line < end;) {
        const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        size_t ll = (size_t)(eol - line);
        const char *colon = memchr(line, ':', ll);
        if (colon) {
            size_t nl = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < eol && *v == ' ')
                v++;
            size_t vl = (size_t)(eol - v);
            if (nl == 14 && !strncasecmp(line, "Content-Length", 14))
                clen = strtol(v, NULL, 10);
            else if (nl == 12 && !strncasecmp(line, "Content-Type", 12))
                snprintf(r->content_type, sizeof r->content_type, "%.*s", (int)vl, v);
            else if (nl == 11 && !strncasecmp(line, "Retry-After", 11))
                snprintf(r->retry_after, sizeof r->retry_after, "%.*s", (int)vl, v);
        }
        line = eol + 2;
    }
    size_t head = (size_t)(end + 4 - raw);
    size_t blen = clen < 0 ? n - head : (size_t)clen;
    if (r->status < 200 || r->status == 204 || r->status == 304)
        blen = 0; /* no body, whatever the headers say */
    if (head + blen > n)
        return 0;
    r->body = malloc(blen + 1);
    memcpy(r->body, end + 4, blen);
    r->body[blen] = '\0';
    r->body_len = blen;
    return head + blen;
}

void fz_resp_free(struct fz_resp *r)
{
    free(r->body);
    r->body = NULL;
}

bool fz_request(const char *method, const char *target, const char *token, const void *body,
                size_t len, struct fz_resp *r)
{
    char head[2048];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n%s%s%s\r\n",
                      method, target, len, token ? "Authorization: Bearer " : "",
                      token ? token : "", token ? "\r\n" : "");
    if (hn < 0 || (size_t)hn >= sizeof head) {
        fprintf(stderr, "fuzz: request head too long\n");
        abort();
    }
    size_t total = (size_t)hn + len;
    char *req = malloc(total);
    memcpy(req, head, (size_t)hn);
    if (len)
        memcpy(req + hn, body, len);
    size_t n;
    char *raw = fz_raw(req, total, &n);
    free(req);
    memset(r, 0, sizeof *r);
    bool ok = raw && fz_parse(raw, n, r) > 0;
    free(raw);
    return ok;
}

/* --- checks -------------------------------------------------------------------------- */

static void fail(const struct fz_resp *r, const char *what, const char *why)
{
    fprintf(stderr, "fuzz: %s: %s\n  status %d, content-type \"%s\"\n  body: %.2000s\n", what, why,
            r->status, r->content_type, r->body ? r->body : "");
    abort();
}

/* Whether needle occurs in the n bytes at hay: a plain loop, kept out of the coverage and
 * comparison instrumentation so that the fuzzer never learns the needle. */
__attribute__((no_sanitize("coverage"))) static bool contains(const char *hay, size_t n,
                                                              const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && hay[i + k] == needle[k])
            k++;
        if (k == m)
            return true;
    }
    return false;
}

void fz_check(const struct fz_resp *r, bool allow_5xx, const char *what)
{
    /* libmicrohttpd's own answers to broken HTTP (400, 413, 414, 431, 505...) are HTML,
     * mostly without a Content-Type (libmicrohttpd 0.9.75 even sends the head of its 400 for
     * a bad Content-Length twice); every answer of Sluice's has a Content-Type (JSON for all
     * but the console's files), and every error of Sluice's is a problem. */
    bool html = !strncasecmp(r->content_type, "text/html", 9) || !r->content_type[0];
    if (r->status < 100 || r->status > 599)
        fail(r, what, "not an HTTP status");
    if (r->status == 500)
        fail(r, what, "500: the server failed on this input");
    if (r->status >= 500 && !allow_5xx && !html)
        fail(r, what, "a 5xx where the input alone decides the answer");
    if (r->status == 503 && !html && !r->retry_after[0])
        fail(r, what, "503 without Retry-After");
    const char *body = r->body ? r->body : "";
    /* The fixtures' secrets in the answer. Searched without memmem, whose interceptor
     * would hand them to the fuzzer as dictionary words; the admin token is left out since
     * inputs may carry it ($ADMIN) into what the server stores and shows back. */
    if (contains(body, r->body_len, webhook_secret) || contains(body, r->body_len, s3_secret))
        fail(r, what, "a secret in the answer");
    bool problem = !strncasecmp(r->content_type, "application/problem+json", 24);
    bool json = problem || !strncasecmp(r->content_type, "application/json", 16);
    json_t *v = NULL;
    if (json && r->body_len) {
        json_error_t e;
        v = json_loadb(body, r->body_len, 0, &e);
        if (!v)
            fail(r, what, "JSON Content-Type with a body that is not JSON");
    }
    if (r->status >= 400 && !html) {
        if (!problem)
            fail(r, what, "an error that is not application/problem+json");
        json_t *st = json_object_get(v, "status");
        if (!json_is_string(json_object_get(v, "type")) ||
            !json_is_string(json_object_get(v, "title")) || !json_is_integer(st) ||
            json_integer_value(st) != r->status || !json_is_string(json_object_get(v, "detail")))
            fail(r, what, "a problem without type, title, detail or the right status");
    }
    json_decref(v);
}

/* --- placeholders -------------------------------------------------------------------- */

char *fz_expand(const char *s, size_t n, size_t *out_len)
{
    const struct {
        const char *name;
        const char *value;
    } subs[] = {
        {"$KEY", g.fx.key},
        {"$OTHER", g.fx.other},
        {"$PUB", g.fx.pub},
        {"$ADMIN", fz_admin_token},
        {"$S3INT", g.fx.s3_integration},
        {"$INT", g.fx.integration},
        {"$CHN", g.fx.channel},
        {"$POL", g.fx.policy},
        {"$ISS", g.fx.issue},
        {"$ALR", g.fx.alert},
        {"$TSK", g.fx.task},
        {"$EVT", g.fx.event},
    };
    size_t cap = n * 2 + 64, len = 0;
    char *out = malloc(cap + 1);
    for (size_t i = 0; i < n;) {
        size_t k = 0, nsubs = sizeof subs / sizeof subs[0];
        if (s[i] == '$')
            for (k = 0; k < nsubs; k++) {
                size_t l = strlen(subs[k].name);
                if (i + l <= n && !memcmp(s + i, subs[k].name, l))
                    break;
            }
        const char *piece = s + i;
        size_t pl = 1, adv = 1;
        if (s[i] == '$' && k < nsubs) {
            piece = subs[k].value;
            pl = strlen(piece);
            adv = strlen(subs[k].name);
        }
        if (len + pl > cap) {
            cap = (len + pl) * 2;
            out = realloc(out, cap + 1);
        }
        memcpy(out + len, piece, pl);
        len += pl;
        i += adv;
    }
    out[len] = '\0';
    *out_len = len;
    return out;
}

int fz_body_target(const uint8_t *data, size_t size, const struct fz_route *routes, size_t nroutes)
{
    const struct fz_fixtures *f = fz_server();
    if (size < 1)
        return 0;
    const struct fz_route *rt = &routes[data[0] % nroutes];
    size_t plen, blen;
    char *path = fz_expand(rt->path, strlen(rt->path), &plen);
    char *body = fz_expand((const char *)data + 1, size - 1, &blen);
    struct fz_resp r;
    char what[300];
    snprintf(what, sizeof what, "%s %s", rt->method, path);
    if (!fz_request(rt->method, path, f->key, body, blen, &r)) {
        fprintf(stderr, "fuzz: %s: the connection closed without a complete answer\n", what);
        abort();
    }
    fz_check(&r, rt->allow_5xx, what);
    fz_resp_free(&r);
    free(path);
    free(body);
    return 0;
}

/* --- the server and its fixtures ----------------------------------------------------- */

/* A request the fixtures need: must answer expect; copies the string member `member` of the
 * answer (or of its data[0] for a list) into out. */
static void setup(const char *method, const char *target, const char *token, const char *body,
                  int expect, const char *member, char *out, size_t outlen)
{
    struct fz_resp r;
    if (!fz_request(method, target, token, body, body ? strlen(body) : 0, &r) ||
        r.status != expect) {
        fprintf(stderr, "fuzz: fixture %s %s answered %d, not %d: %s\n", method, target, r.status,
                expect, r.body ? r.body : "");
        abort();
    }
    if (member) {
        json_t *v = json_loads(r.body, 0, NULL);
        json_t *o = json_is_array(json_object_get(v, "data"))
                        ? json_array_get(json_object_get(v, "data"), 0)
                        : v;
        json_t *m = json_object_get(o, member);
        if (json_is_array(m))
            m = json_array_get(m, 0);
        if (!json_is_string(m)) {
            fprintf(stderr, "fuzz: fixture %s %s: no \"%s\" in %s\n", method, target, member,
                    r.body);
            abort();
        }
        snprintf(out, outlen, "%s", json_string_value(m));
        json_decref(v);
    }
    fz_resp_free(&r);
}

static void remove_tree(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", dir);
}

static void stop_server(void)
{
    http_stop();
    store_stop();
    curl_global_cleanup();
    config_cleanup(&g.cfg);
    remove_tree(g.dir);
}

static void make_fixtures(void)
{
    struct fz_fixtures *f = &g.fx;
    const char *adm = fz_admin_token;
    setup("POST", "/v1/admin/tenants", adm, "{\"id\":\"fz\",\"name\":\"Fuzz\"}", 201, NULL, NULL,
          0);
    setup("POST", "/v1/admin/tenants", adm, "{\"id\":\"other\",\"name\":\"Other\"}", 201, NULL,
          NULL, 0);
    static const char all[] = "{\"name\":\"all\",\"permissions\":[\"events:publish\","
                              "\"tools:manage\",\"alerts:report\",\"alerts:manage\"]}";
    setup("POST", "/v1/admin/tenants/fz/keys", adm, all, 201, "key", f->key, sizeof f->key);
    setup("POST", "/v1/admin/tenants/other/keys", adm, all, 201, "key", f->other, sizeof f->other);
    setup("POST", "/v1/admin/tenants/fz/keys", adm,
          "{\"name\":\"pub\",\"permissions\":[\"events:publish\"]}", 201, "key", f->pub,
          sizeof f->pub);
    char body[1024];
    snprintf(body, sizeof body,
             "{\"id\":\"erp\",\"events\":[\"order\"],\"target\":{\"type\":\"webhook\","
             "\"url\":\"http://192.0.2.1:9/hook\",\"api_key\":\"%s\"}}",
             webhook_secret);
    setup("POST", "/v1/integrations", f->key, body, 201, "id", f->integration,
          sizeof f->integration);
    snprintf(body, sizeof body,
             "{\"id\":\"lake\",\"events\":[\"order\",\"return.created\"],\"verify\":false,"
             "\"target\":{\"type\":\"s3\",\"bucket\":\"lake-bucket\",\"region\":\"us-east-1\","
             "\"key_prefix\":\"sluice/\",\"access_key_id\":\"AKIAFUZZ0000EXAMPLE\","
             "\"secret_access_key\":\"%s\",\"endpoint\":\"http://192.0.2.1:9000\"}}",
             s3_secret);
    setup("POST", "/v1/integrations", f->key, body, 201, "id", f->s3_integration,
          sizeof f->s3_integration);
    setup("POST", "/v1/events", f->key,
          "{\"id\":\"o1\",\"type\":\"order.created\",\"entity_id\":\"ORD-1\","
          "\"payload\":{\"total\":\"9.90\"}}",
          202, "ids", f->event, sizeof f->event);
    setup("POST", "/v1/notification-channels", f->key,
          "{\"name\":\"Ops\",\"type\":\"email\",\"addresses\":[\"ops@example.com\"]}", 201, "id",
          f->channel, sizeof f->channel);
    snprintf(body, sizeof body,
             "{\"name\":\"Orders\",\"monitored_events\":[{\"event\":\"order.*\"}],"
             "\"channel_ids\":[\"%s\"],\"notify_on\":[\"opened\",\"closed\"]}",
             f->channel);
    setup("POST", "/v1/alert-policies", f->key, body, 201, "id", f->policy, sizeof f->policy);
    setup("POST", "/v1/tasks", f->key, "{\"kind\":\"order_import\",\"status\":\"failed\"}", 201,
          "id", f->task, sizeof f->task);
    snprintf(body, sizeof body,
             "{\"event\":\"order.import_failed\",\"message\":\"SKU ABC-1 not found\","
             "\"connection\":\"shopify-main\",\"entity_id\":\"ORD-1\",\"task_id\":\"%s\"}",
             f->task);
    setup("POST", "/v1/alerts", f->key, body, 202, "ids", f->alert, sizeof f->alert);
    setup("GET", "/v1/issues", f->key, NULL, 200, "id", f->issue, sizeof f->issue);
}

const struct fz_fixtures *fz_server(void)
{
    if (g.started)
        return &g.fx;
    g.started = true;
    for (char **e = environ; *e;) /* no SLUICE_* from the environment */
        if (!strncmp(*e, "SLUICE_", 7)) {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
            unsetenv(name);
        } else {
            e++;
        }
    snprintf(g.dir, sizeof g.dir, "/tmp/sluice-fuzz-XXXXXX");
    if (!mkdtemp(g.dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    char data_dir[96];
    snprintf(data_dir, sizeof data_dir, "%s/data", g.dir);
    char *argv[] = {"--data-dir",        data_dir,
                    "--listen",          "127.0.0.1:0",
                    "--admin-token",     (char *)fz_admin_token,
                    "--roles",           "api",
                    "--log-level",       "error",
                    "--http-threads",    "2",
                    "--webhook-timeout", "1s"};
    int argc = (int)(sizeof argv / sizeof argv[0]);
    char err[512] = "";
    FILE *devnull = fopen("/dev/null", "w");
    if (config_parse(&g.cfg, argc, argv, devnull, stderr) != 0 ||
        log_configure(g.cfg.log_level, g.cfg.log_format) != 0) {
        fprintf(stderr, "fuzz: bad harness configuration\n");
        abort();
    }
    fclose(devnull);
    deliver_register(); /* the target drivers, as main() does: integrations need them */
    if (http_listen(&g.cfg, err, sizeof err) != ERR_OK ||
        store_start(&g.cfg, err, sizeof err) != ERR_OK) {
        fprintf(stderr, "fuzz: cannot start the server: %s\n", err);
        abort();
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    api_init(&g.cfg);
    if (http_start(&g.cfg, api_routes, err, sizeof err) != ERR_OK) {
        fprintf(stderr, "fuzz: cannot serve: %s\n", err);
        abort();
    }
    g.port = http_port();
    atexit(stop_server);
    make_fixtures();
    return &g.fx;
}
