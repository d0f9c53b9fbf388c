/* The webhook engine. Threads: the engine thread owns the curl multi handle, the
 * integration table and every request; the writer thread runs claim and outcome jobs and
 * posts their results into the inbox (g.lock), then wakes the engine with
 * curl_multi_wakeup(). HTTP threads call webhook_wake/webhook_config_changed (atomics) and
 * webhook_test (its own easy handle). No lock is held across I/O. */
#include "deliver/webhook.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "deliver/outbound.h"
#include "deliver/outcome.h"
#include "deliver/retry.h"
#include "store/store.h"
#include "stream/deliveries.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif
#define BODY_KEEP 1024
#define REFRESH_MS 1000

struct wh_integ {
    char tenant[72];
    char id[72];
    char *url, *api_key, *api_key_header, *secret;
    int max_in_flight;
    int inflight; /* requests on the wire */
    int outcomes; /* outcome jobs not yet answered by the writer */
    bool claiming;
    bool dirty;
    bool present;
    int64_t next_due;
    int64_t updated_at;
    struct wh_integ *next;
};

struct wh_req {
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    struct buf resp;
    int64_t retry_after;
    int64_t start_ns;
    struct wh_integ *integ;
    struct attempt_outcome o;
    struct wh_req *prev, *next; /* the engine's list of live requests */
};

enum msg_kind { MSG_CLAIMED, MSG_OUTCOME };

struct msg {
    enum msg_kind kind;
    struct wh_integ *integ;
    struct claimed *claimed;
    int n;
    int64_t next_due;
    enum err rc;
    enum outcome_kind outcome;
    struct msg *next;
};

struct claim_job {
    struct store_job job;
    struct wh_integ *integ;
    char tenant[72], id[72];
    int limit;
    struct claimed *claimed;
    int n;
    int64_t next_due;
};

struct outcome_job {
    struct store_job job;
    struct wh_integ *integ;
    struct attempt_outcome o;
    enum outcome_kind kind;
};

static struct {
    const struct config *cfg;
    pthread_t thread;
    bool running;
    CURLM *multi;
    _Atomic bool stopping;
    _Atomic bool all_dirty;
    _Atomic unsigned config_gen;
    unsigned seen_gen;
    int64_t last_refresh;
    struct wh_integ *integs;
    struct wh_req *reqs;
    pthread_mutex_t lock;
    struct msg *inbox;
    _Atomic int jobs_pending; /* claim/outcome jobs not yet answered */
    _Atomic int64_t inflight_total;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct metric m_outcomes[4] = {
    {.name = "sluice_webhook_deliveries_total",
     .help = "Webhook attempts by outcome.",
     .type = "counter",
     .labels = "outcome=\"succeeded\""},
    {.name = "sluice_webhook_deliveries_total",
     .help = "Webhook attempts by outcome.",
     .type = "counter",
     .labels = "outcome=\"rejected\""},
    {.name = "sluice_webhook_deliveries_total",
     .help = "Webhook attempts by outcome.",
     .type = "counter",
     .labels = "outcome=\"retried\""},
    {.name = "sluice_webhook_deliveries_total",
     .help = "Webhook attempts by outcome.",
     .type = "counter",
     .labels = "outcome=\"failed\""},
};
static struct metric m_inflight = {.name = "sluice_webhook_in_flight",
                                   .help = "Webhook requests in flight on this node.",
                                   .type = "gauge"};
static struct histogram m_latency = {.name = "sluice_webhook_attempt_duration_seconds",
                                     .help = "Duration of webhook attempts."};
static struct metric_fn m_queue = {.render = deliveries_render_metrics};

/* --- envelope and signature ---------------------------------------------------------- */

char *webhook_envelope(const char *event_id, const char *type, const char *entity,
                       const char *entity_id, int64_t sequence, int64_t occurred_at,
                       int64_t published_at, const char *tenant, const char *integration,
                       int attempt, const char *payload)
{
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "id", event_id, "type", type, "name", type, "entity",
                  entity, "entity_id", entity_id, "sequence", (json_int_t)sequence);
    json_set_time(o, "occurred_at", occurred_at);
    json_set_time(o, "published_at", published_at);
    json_object_set_new(o, "tenant", json_string(tenant));
    json_object_set_new(o, "integration_id", json_string(integration));
    if (attempt >= 0)
        json_object_set_new(o, "attempt", json_integer(attempt));
    char *head = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    size_t n = strlen(head);
    head[n - 1] = '\0'; /* drop the closing brace: the stored payload text follows */
    char *out = xasprintf("%s,\"payload\":%s}", head, payload && *payload ? payload : "{}");
    free(head);
    return out;
}

char *webhook_sign(const char *secret, const char *msg_id, long long timestamp, const char *body)
{
    if (!secret || strncmp(secret, "whsec_", 6) != 0)
        return NULL;
    unsigned char *key = NULL;
    size_t keylen = 0;
    if (base64_decode(secret + 6, &key, &keylen) != ERR_OK)
        return NULL;
    struct buf m = BUF_INIT;
    buf_printf(&m, "%s.%lld.", msg_id, timestamp);
    buf_puts(&m, body);
    unsigned char mac[SHA256_LEN];
    crypto_hmac_sha256(key, keylen, m.data, m.len, mac);
    buf_cleanup(&m);
    free(key);
    char *b = base64_encode(mac, sizeof mac);
    char *out = xasprintf("v1,%s", b);
    free(b);
    return out;
}

/* --- requests ------------------------------------------------------------------------ */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;
    if (b->len < BODY_KEEP)
        buf_append(b, ptr, b->len + n > BODY_KEEP ? BODY_KEEP - b->len : n);
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    int64_t *retry_after = ud;
    size_t n = size * nmemb;
    int64_t v = retry_after_header(ptr, n, time_now_ms());
    if (v != -2)
        *retry_after = v;
    return n;
}

static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    (void)purpose;
    bool allow = *(const bool *)clientp;
    if (!allow && ssrf_address_blocked(&addr->addr))
        return CURL_SOCKET_BAD;
    return socket(addr->family, addr->socktype, addr->protocol);
}

/* Configures easy for one POST of body to the integration's URL with every header. */
static struct curl_slist *setup_easy(CURL *easy, const char *url, const char *api_key,
                                     const char *api_key_header, const char *secret,
                                     const char *msg_id, const char *body, struct buf *resp,
                                     int64_t *retry_after, const struct config *cfg)
{
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    char line[1200];
    if (api_key) {
        if (!api_key_header || !strcasecmp(api_key_header, "Authorization"))
            snprintf(line, sizeof line, "Authorization: Bearer %s", api_key);
        else
            snprintf(line, sizeof line, "%s: %s", api_key_header, api_key);
        h = curl_slist_append(h, line);
    }
    long long ts = (long long)(time_now_ms() / 1000);
    snprintf(line, sizeof line, "webhook-id: %s", msg_id);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof line, "webhook-timestamp: %lld", ts);
    h = curl_slist_append(h, line);
    char *sig = webhook_sign(secret, msg_id, ts, body);
    if (sig) {
        snprintf(line, sizeof line, "webhook-signature: %s", sig);
        h = curl_slist_append(h, line);
        free(sig);
    }
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)cfg->webhook_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(cfg->webhook_timeout_ms < 10000 ? cfg->webhook_timeout_ms : 10000));
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, retry_after);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, &cfg->allow_private_targets);
    return h;
}

/* --- integration table --------------------------------------------------------------- */

static void integ_free_config(struct wh_integ *w)
{
    free(w->url);
    free(w->api_key);
    free(w->api_key_header);
    free(w->secret);
    w->url = w->api_key = w->api_key_header = w->secret = NULL;
}

static void refresh(void)
{
    struct db *db = store_reader();
    if (!db)
        return;
    g.last_refresh = time_mono_ms();
    for (struct wh_integ *w = g.integs; w; w = w->next)
        w->present = false;
    struct db_stmt *st =
        db_stmt(db, "SELECT tenant_id, id, target, signing_secret, max_in_flight, updated_at FROM "
                    "integrations WHERE target_type = 'webhook' AND state <> 'paused'");
    while (db_next(st) == ERR_OK) {
        const char *tenant = db_col_text(st, 0), *id = db_col_text(st, 1);
        struct wh_integ *w = g.integs;
        while (w && (strcmp(w->tenant, tenant) || strcmp(w->id, id)))
            w = w->next;
        if (!w) {
            w = xcalloc(1, sizeof *w);
            snprintf(w->tenant, sizeof w->tenant, "%s", tenant);
            snprintf(w->id, sizeof w->id, "%s", id);
            w->next_due = -1;
            w->updated_at = -1;
            w->dirty = true;
            w->next = g.integs;
            g.integs = w;
        }
        w->present = true;
        int64_t updated = db_col_int(st, 5);
        if (updated != w->updated_at) {
            integ_free_config(w);
            json_t *t = json_loads(db_col_text(st, 2), 0, NULL);
            w->url = xstrdup(json_string_value(json_object_get(t, "url")));
            w->api_key = integration_secret_open(json_string_value(json_object_get(t, "api_key")));
            w->api_key_header = xstrdup(json_string_value(json_object_get(t, "api_key_header")));
            json_decref(t);
            w->secret = integration_secret_open(db_col_text(st, 3));
            w->max_in_flight = (int)db_col_int(st, 4);
            w->updated_at = updated;
            w->dirty = true;
        }
    }
    db_release(db);
    /* Forget integrations that were deleted or paused once nothing refers to them. */
    struct wh_integ **pp = &g.integs;
    while (*pp) {
        struct wh_integ *w = *pp;
        if (!w->present && w->inflight == 0 && w->outcomes == 0 && !w->claiming) {
            *pp = w->next;
            integ_free_config(w);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

/* --- writer jobs --------------------------------------------------------------------- */

static void post(struct msg *m)
{
    pthread_mutex_lock(&g.lock);
    m->next = g.inbox;
    g.inbox = m;
    pthread_mutex_unlock(&g.lock);
    curl_multi_wakeup(g.multi);
}

static enum err claim_run(struct db *db, void *arg)
{
    struct claim_job *j = arg;
    /* A lease must outlive the request it covers, or another node could send it too. */
    int64_t lease = g.cfg->lease_ms;
    if (lease < g.cfg->webhook_timeout_ms + 5000)
        lease = g.cfg->webhook_timeout_ms + 5000;
    return deliveries_claim(db, j->tenant, j->id, g.cfg->node_id, lease, j->limit, &j->claimed,
                            &j->n, &j->next_due);
}

static void claim_done(void *arg, enum err rc)
{
    struct claim_job *j = arg;
    struct msg *m = xcalloc(1, sizeof *m);
    m->kind = MSG_CLAIMED;
    m->integ = j->integ;
    m->rc = rc;
    if (rc == ERR_OK) {
        m->claimed = j->claimed;
        m->n = j->n;
        m->next_due = j->next_due;
    } else {
        free(j->claimed);
        m->next_due = -1;
    }
    free(j);
    post(m);
}

/* A webhook attempt failed for good (rejected or given up): a webhook_delivery task and
 * its alert, for the delivery's entity. */
static enum err delivery_alert(struct db *db, const struct attempt_outcome *o, const char *event,
                               const char *entity_id, const char *message)
{
    json_t *d = json_pack("{s:s,s:s,s:i,s:i}", "delivery_id", o->delivery_id, "event_id",
                          o->event_id, "attempts", o->attempt, "status", (int)o->status);
    if (o->error)
        json_object_set_new(d, "error", json_string(o->error));
    char *details = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    char task[ID_MAX] = "";
    enum err rc = outcome_alert(db, o->tenant, "webhook_delivery", o->integration, entity_id, event,
                                message, details, task);
    free(details);
    return rc;
}

enum err webhook_record_outcome(struct db *db, const struct attempt_outcome *o,
                                enum outcome_kind *kind)
{
    int64_t now = time_now_ms();
    enum err rc = deliveries_record_attempt(db, o);
    if (rc != ERR_OK)
        return rc;
    struct delivery_leased d;
    rc = deliveries_leased(db, o, &d);
    if (rc == ERR_DONE) { /* lease lost (expired and re-claimed) or integration deleted */
        *kind = OUTCOME_STALE;
        return ERR_OK;
    }
    if (rc != ERR_OK)
        return rc;
    const char *slash = strchr(d.entity_key, '/');
    const char *entity_id = slash ? slash + 1 : d.entity_key;
    char msg[512];
    const char *pause = NULL;
    bool ok = o->status >= 200 && o->status < 300 && !o->error;
    if (ok) {
        *kind = OUTCOME_SUCCEEDED;
        if ((rc = deliveries_finish(db, o, "succeeded", now)) == ERR_OK)
            rc =
                outcome_recover(db, o->tenant, "webhook_delivery", o->integration, entity_id, NULL);
    } else if (!retry_status_retryable(o->status) && !o->error) {
        *kind = OUTCOME_REJECTED;
        snprintf(msg, sizeof msg, "the consumer rejected event %s with HTTP %ld", o->event_id,
                 o->status);
        if ((rc = deliveries_finish(db, o, "rejected", now)) == ERR_OK)
            rc = delivery_alert(db, o, "event_stream.event_rejected", entity_id, msg);
        if (o->status == 410)
            pause = "paused: the consumer answered 410 Gone";
    } else if (now - d.first_attempt_at >= retry_give_up_after()) {
        *kind = OUTCOME_FAILED;
        if (o->error)
            snprintf(msg, sizeof msg, "event %s could not be delivered after %d attempts: %s",
                     o->event_id, o->attempt, o->error);
        else
            snprintf(msg, sizeof msg, "event %s could not be delivered after %d attempts: HTTP %ld",
                     o->event_id, o->attempt, o->status);
        if ((rc = deliveries_finish(db, o, "failed", now)) == ERR_OK)
            rc = delivery_alert(db, o, "event_stream.delivery_failed", entity_id, msg);
    } else {
        *kind = OUTCOME_RETRY;
        rc = deliveries_retry(db, o, d.paused, now + retry_next_delay(o->attempt, o->retry_after));
    }
    /* A final outcome releases the entity's next delivery. */
    if (rc == ERR_OK && *kind != OUTCOME_RETRY && d.entity_order)
        rc = deliveries_promote_next(db, o->tenant, o->integration, d.entity_key, d.paused);
    if (rc == ERR_OK)
        rc = outcome_integration(db, o->tenant, o->integration, ok, o->started_at, pause);
    return rc;
}

static enum err outcome_run(struct db *db, void *arg)
{
    struct outcome_job *j = arg;
    return webhook_record_outcome(db, &j->o, &j->kind);
}

static void outcome_done(void *arg, enum err rc)
{
    struct outcome_job *j = arg;
    if (rc != ERR_OK)
        log_error("webhook",
                  "cannot record the outcome of delivery %s: %s (the lease will "
                  "expire and it is retried)",
                  j->o.delivery_id, err_name(rc));
    struct msg *m = xcalloc(1, sizeof *m);
    m->kind = MSG_OUTCOME;
    m->integ = j->integ;
    m->rc = rc;
    m->outcome = j->kind;
    free(j->o.error);
    free(j->o.body);
    free(j);
    post(m);
}

static void submit_claim(struct wh_integ *w)
{
    struct claim_job *j = xcalloc(1, sizeof *j);
    j->integ = w;
    snprintf(j->tenant, sizeof j->tenant, "%s", w->tenant);
    snprintf(j->id, sizeof j->id, "%s", w->id);
    j->limit = w->max_in_flight - w->inflight;
    j->job.run = claim_run;
    j->job.done = claim_done;
    j->job.arg = j;
    w->claiming = true;
    w->dirty = false;
    atomic_fetch_add(&g.jobs_pending, 1);
    store_submit(&j->job);
}

/* --- sending ------------------------------------------------------------------------- */

static void finish_req(struct wh_req *r, CURLcode cc)
{
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    int64_t ns = time_mono_ns() - r->start_ns;
    histogram_observe_ns(&m_latency, ns);
    struct outcome_job *j = xcalloc(1, sizeof *j);
    j->integ = r->integ;
    j->o = r->o;
    j->o.duration_ms = ns / 1000000;
    j->o.status = cc == CURLE_OK ? status : 0;
    j->o.retry_after = r->retry_after;
    if (cc != CURLE_OK) {
        j->o.error = xasprintf("%s", cc == CURLE_COULDNT_CONNECT && !g.cfg->allow_private_targets
                                         ? "could not connect (or the address is private and "
                                           "refused by the SSRF guard)"
                                         : curl_easy_strerror(cc));
    }
    if (r->resp.len) {
        j->o.body = buf_steal(&r->resp);
        utf8_scrub(j->o.body);
    }
    j->job.run = outcome_run;
    j->job.done = outcome_done;
    j->job.arg = j;
    atomic_fetch_add(&g.jobs_pending, 1);
    store_submit(&j->job);
    /* The slot is free now: the next claim is queued behind this outcome, and the writer
     * runs jobs in order, so the claim's in-flight count already sees it applied. */
    r->integ->inflight--;
    r->integ->outcomes++;
    r->integ->dirty = true;
    if (r->prev)
        r->prev->next = r->next;
    else
        g.reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    curl_multi_remove_handle(g.multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    buf_cleanup(&r->resp);
    free(r);
    metric_add(&m_inflight, -1);
}

/* Reads the event and starts its request; on a missing event records a failure. */
static void start_req(struct wh_integ *w, const struct claimed *c)
{
    struct wh_req *r = xcalloc(1, sizeof *r);
    r->integ = w;
    r->retry_after = -1;
    snprintf(r->o.tenant, sizeof r->o.tenant, "%s", w->tenant);
    snprintf(r->o.integration, sizeof r->o.integration, "%s", w->id);
    snprintf(r->o.delivery_id, sizeof r->o.delivery_id, "%s", c->delivery_id);
    snprintf(r->o.event_id, sizeof r->o.event_id, "%s", c->event_id);
    snprintf(r->o.node, sizeof r->o.node, "%s", g.cfg->node_id);
    r->o.attempt = c->attempt;
    r->o.started_at = time_now_ms();
    r->o.retry_after = -1;
    r->start_ns = time_mono_ns();
    r->easy = curl_easy_init();
    struct db *db = store_reader();
    struct db_stmt *st = NULL;
    if (db) {
        st = db_stmt(db, "SELECT type, entity, entity_id, sequence, occurred_at, published_at, "
                         "payload FROM events WHERE tenant_id = ? AND id = ?");
        db_bind_text(st, 1, w->tenant);
        db_bind_text(st, 2, c->event_id);
    }
    if (db && db_next(st) == ERR_OK) {
        r->body =
            webhook_envelope(c->event_id, db_col_text(st, 0), db_col_text(st, 1),
                             db_col_text(st, 2), db_col_int(st, 3), db_col_int(st, 4),
                             db_col_int(st, 5), w->tenant, w->id, c->attempt, db_col_text(st, 6));
    } else {
        /* The event cannot be read now: point the request nowhere; it fails and retries. */
        r->body = xstrdup("{}");
    }
    if (db)
        db_release(db);
    r->headers =
        setup_easy(r->easy, w->url ? w->url : "http://invalid./", w->api_key, w->api_key_header,
                   w->secret, c->event_id, r->body, &r->resp, &r->retry_after, g.cfg);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    w->inflight++;
    metric_add(&m_inflight, 1);
    r->next = g.reqs;
    if (g.reqs)
        g.reqs->prev = r;
    g.reqs = r;
    curl_multi_add_handle(g.multi, r->easy);
}

static void handle_inbox(void)
{
    pthread_mutex_lock(&g.lock);
    struct msg *m = g.inbox;
    g.inbox = NULL;
    pthread_mutex_unlock(&g.lock);
    /* The inbox is LIFO; reverse to keep claim order. */
    struct msg *rev = NULL;
    while (m) {
        struct msg *next = m->next;
        m->next = rev;
        rev = m;
        m = next;
    }
    for (m = rev; m;) {
        struct msg *next = m->next;
        struct wh_integ *w = m->integ;
        atomic_fetch_sub(&g.jobs_pending, 1);
        if (m->kind == MSG_CLAIMED) {
            w->claiming = false;
            w->next_due = m->next_due;
            if (m->rc == ERR_OK && !atomic_load(&g.stopping))
                for (int i = 0; i < m->n; i++)
                    start_req(w, &m->claimed[i]);
            if (m->rc == ERR_OK && m->n > 0)
                w->dirty = true; /* there may be more due */
            free(m->claimed);
        } else {
            w->outcomes--;
            if (m->rc != ERR_OK)
                w->dirty = true; /* the lease will expire; look again later */
            if (m->rc == ERR_OK && m->outcome <= OUTCOME_FAILED)
                metric_add(&m_outcomes[m->outcome], 1);
        }
        free(m);
        m = next;
    }
}

/* Submits claims for integrations with free slots and due (or possibly due) work; returns
 * how long the engine may sleep before something falls due (ms). */
static int64_t submit_claims(void)
{
    bool all = atomic_exchange(&g.all_dirty, false);
    int64_t now = time_now_ms(), wait = REFRESH_MS;
    for (struct wh_integ *w = g.integs; w; w = w->next) {
        if (!w->present || !w->url)
            continue;
        if (all)
            w->dirty = true;
        bool due = w->dirty || (w->next_due >= 0 && w->next_due <= now);
        if (!w->claiming && w->inflight < w->max_in_flight && due)
            submit_claim(w);
        else if (w->next_due > now && w->next_due - now < wait)
            wait = w->next_due - now;
    }
    return wait;
}

static void *engine_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "sluice-webhook");
    while (!atomic_load(&g.stopping)) {
        handle_inbox();
        unsigned gen = atomic_load(&g.config_gen);
        if (gen != g.seen_gen || time_mono_ms() - g.last_refresh >= REFRESH_MS) {
            g.seen_gen = gen;
            refresh();
        }
        int running = 0;
        curl_multi_perform(g.multi, &running);
        CURLMsg *cm;
        int left;
        while ((cm = curl_multi_info_read(g.multi, &left))) {
            if (cm->msg != CURLMSG_DONE)
                continue;
            struct wh_req *r = NULL;
            curl_easy_getinfo(cm->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            finish_req(r, cm->data.result);
        }
        /* Claims go after the outcomes just queued, so freed slots are reused at once. */
        int64_t wait = submit_claims();
        curl_multi_poll(g.multi, NULL, 0, (int)(wait > 0 ? wait : 1), NULL);
    }
    return NULL;
}

/* --- lifecycle ----------------------------------------------------------------------- */

void webhook_wake(void)
{
    atomic_store(&g.all_dirty, true);
    if (g.multi)
        curl_multi_wakeup(g.multi);
}

void webhook_config_changed(void)
{
    atomic_fetch_add(&g.config_gen, 1);
    webhook_wake();
}

static bool metrics_registered;

enum err webhook_start(const struct config *cfg)
{
    g.cfg = cfg;
    if (!metrics_registered) {
        for (int i = 0; i < 4; i++)
            metric_register(&m_outcomes[i]);
        metric_register(&m_inflight);
        histogram_register(&m_latency);
        metric_fn_register(&m_queue);
        metrics_registered = true;
    }
    g.multi = curl_multi_init();
    curl_multi_setopt(g.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->webhook_max_connections);
    curl_multi_setopt(g.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->webhook_max_connections);
    atomic_store(&g.stopping, false);
    atomic_store(&g.all_dirty, true);
    if (pthread_create(&g.thread, NULL, engine_main, NULL) != 0) {
        curl_multi_cleanup(g.multi);
        g.multi = NULL;
        return ERR_INTERNAL;
    }
    g.running = true;
    return ERR_OK;
}

static enum err release_mine(struct db *db, void *arg)
{
    (void)arg;
    return deliveries_release_leases(db, g.cfg->node_id, false, NULL);
}

void webhook_stop(void)
{
    if (!g.running)
        return;
    atomic_store(&g.stopping, true);
    curl_multi_wakeup(g.multi);
    pthread_join(g.thread, NULL);
    /* Abort what is in flight: no outcome is recorded, the leases go back to pending. */
    while (g.reqs) {
        struct wh_req *r = g.reqs;
        g.reqs = r->next;
        r->integ->inflight--;
        curl_multi_remove_handle(g.multi, r->easy);
        curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers);
        free(r->body);
        buf_cleanup(&r->resp);
        free(r);
        metric_add(&m_inflight, -1);
    }
    /* Wait for the jobs the writer still owes us, so their messages can be freed. */
    while (atomic_load(&g.jobs_pending) > 0) {
        handle_inbox();
        usleep(1000);
    }
    handle_inbox();
    store_write(release_mine, NULL, 0);
    while (g.integs) {
        struct wh_integ *next = g.integs->next;
        integ_free_config(g.integs);
        free(g.integs);
        g.integs = next;
    }
    curl_multi_cleanup(g.multi);
    g.multi = NULL;
    g.running = false;
}

json_t *webhook_test(const struct integration *in, const struct config *cfg)
{
    json_t *t = json_loads(in->target, 0, NULL);
    char *api_key = integration_secret_open(json_string_value(json_object_get(t, "api_key")));
    char *secret = integration_secret_open(in->signing_secret);
    char id[ID_MAX];
    int64_t now = time_now_ms();
    id_new("evt", now, id);
    char *body = webhook_envelope(id, "sluice.test", "sluice", "test", 1, now, now, in->tenant,
                                  in->id, 1, "{\"message\":\"This is a test event from Sluice.\"}");
    struct buf resp = BUF_INIT;
    int64_t retry_after = -1;
    CURL *easy = curl_easy_init();
    struct curl_slist *h = setup_easy(easy, json_string_value(json_object_get(t, "url")), api_key,
                                      json_string_value(json_object_get(t, "api_key_header")),
                                      secret, id, body, &resp, &retry_after, cfg);
    int64_t t0 = time_mono_ns();
    CURLcode cc = curl_easy_perform(easy);
    int64_t ms = (time_mono_ns() - t0) / 1000000;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    json_t *o = json_object();
    bool ok = cc == CURLE_OK && status >= 200 && status < 300;
    json_object_set_new(o, "ok", json_boolean(ok));
    json_object_set_new(o, "status", cc == CURLE_OK ? json_integer(status) : json_null());
    json_object_set_new(o, "latency_ms", json_integer(ms));
    if (cc != CURLE_OK) {
        json_object_set_new(o, "error", json_string(curl_easy_strerror(cc)));
    } else if (!ok) {
        char e[64];
        snprintf(e, sizeof e, "the target answered HTTP %ld", status);
        json_object_set_new(o, "error", json_string(e));
    } else {
        json_object_set_new(o, "error", json_null());
    }
    if (resp.len) {
        utf8_scrub(resp.data);
        json_object_set_new(o, "response_body", json_string(resp.data));
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(easy);
    buf_cleanup(&resp);
    free(body);
    free(secret);
    free(api_key);
    json_decref(t);
    return o;
}

const struct target_driver webhook_driver = {
    .type = "webhook",
    .parse = webhook_target_parse,
    .mask = webhook_target_mask,
    .test = webhook_test,
    .signs = true,
};
