/* The webhook driver. Threads: the engine thread runs every engine callback below (claims,
 * requests, outcomes) and owns the per-integration state; the writer runs the jobs' run()
 * functions (claim, webhook_record_outcome); webhook_test runs on an HTTP test thread with
 * its own easy handle. The engine core (engine.c) owns the loop, the table and the inbox.
 *
 * Per integration at most max_in_flight requests are on the wire (counted across nodes by
 * the claim) and at most CLAIMS_MAX claim jobs are under way, each for slots the others did
 * not ask for. A claim is queued behind the outcome that freed its slot, and the writer runs
 * jobs in order, so it sees that outcome: a freed slot is claimed again in the same group
 * commit as its outcome, not one commit later behind a claim still under way. */
#include "deliver/webhook.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strmap.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "deliver/engine.h"
#include "deliver/envelope.h"
#include "deliver/outbound.h"
#include "deliver/retry.h"
#include "store/store.h"
#include "stream/integrations.h"

#define BODY_KEEP 1024 /* of a consumer's answer, kept with the attempt */
#define CLAIMS_MAX 4   /* claim jobs under way per integration */

/* The engine's state of one webhook integration. */
struct wh {
    char *url, *api_key, *api_key_header, *secret; /* secrets opened: never log them */
    int max_in_flight;
    int inflight;     /* requests on the wire */
    int claims;       /* claim jobs under way (at most CLAIMS_MAX) */
    int asked;        /* the slots they asked for: inflight + asked <= max_in_flight */
    int64_t next_due; /* the next pending delivery's due time, -1: none known */
};

struct wh_req {
    struct engine_xfer x;
    struct outbound out;
    struct curl_slist *headers;
    char *body;
    int64_t start_ns;
    struct attempt_outcome o;
};

struct claim_job {
    struct engine_job j;
    int limit;
    int64_t lease_ms;
    struct claimed *claimed;
    int n;
    int64_t next_due;
};

struct outcome_job {
    struct engine_job j;
    struct attempt_outcome o;
    enum outcome_kind kind;
    int tries;
};

/* An outcome whose transaction failed is tried again this many times before its lease is
 * left to expire: with several nodes, PostgreSQL may pick it as a deadlock's victim (its
 * delivery's successor being inserted on another node), and an outcome not recorded means
 * the request is sent again. */
#define OUTCOME_TRIES 4

#define M_OUTCOME(kind)                                                                            \
    {                                                                                              \
        .name = "sluice_webhook_deliveries_total", .help = "Webhook attempts by outcome.",         \
        .type = "counter", .labels = "outcome=\"" kind "\""                                        \
    }
static struct metric m_outcomes[4] = {M_OUTCOME("succeeded"), M_OUTCOME("rejected"),
                                      M_OUTCOME("retried"), M_OUTCOME("failed")};
static struct metric m_inflight = {.name = "sluice_webhook_in_flight",
                                   .help = "Webhook requests in flight on this node.",
                                   .type = "gauge"};
static struct histogram m_latency = {.name = "sluice_webhook_attempt_duration_seconds",
                                     .help = "Duration of webhook attempts."};

/* --- the request --------------------------------------------------------------------- */

/* Prepares a POST of body (the envelope of msg_id) to url with every header: content type,
 * the API key, the Standard Webhooks id, timestamp and signature. Returns the header list
 * the caller frees after the transfer. */
static struct curl_slist *prepare(struct outbound *out, const char *url, const char *api_key,
                                  const char *api_key_header, const char *secret,
                                  const char *msg_id, const char *body, const struct config *cfg)
{
    struct outbound_limits limits = {.timeout_ms = cfg->webhook_timeout_ms};
    outbound_init(out, url, cfg->allow_private_targets, BODY_KEEP, &limits);
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
    char *sig = envelope_sign(secret, msg_id, ts, body);
    if (sig) {
        snprintf(line, sizeof line, "webhook-signature: %s", sig);
        h = curl_slist_append(h, line);
        free(sig);
    }
    curl_easy_setopt(out->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(out->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(out->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(out->easy, CURLOPT_HTTPHEADER, h);
    return h;
}

/* --- claims -------------------------------------------------------------------------- */

static enum err claim_run(struct db *db, void *arg)
{
    struct claim_job *c = arg;
    struct engine_integ *w = c->j.integ;
    free(c->claimed); /* a batch run again (store.c) runs its jobs again */
    c->claimed = NULL;
    return deliveries_claim(db, w->tenant, w->id, engine_config(c->j.e)->node_id, c->lease_ms,
                            c->limit, &c->claimed, &c->n, &c->next_due);
}

static void start_req(struct engine *e, struct engine_integ *w, const struct claimed *c, char *body,
                      enum err read);

struct envelopes_ctx {
    struct engine_integ *w;
    const struct claimed *c;
    int n;
    char **bodies;
};

static enum err envelope_row(struct db_stmt *st, void *arg)
{
    struct envelopes_ctx *x = arg;
    struct envelope_event ev;
    envelope_from_row(st, 0, &ev);
    /* n is at most max_in_flight; an event claimed twice (a redelivery) gets a body each. */
    for (int i = 0; i < x->n; i++)
        if (!x->bodies[i] && !strcmp(x->c[i].event_id, ev.id))
            x->bodies[i] = envelope_build(&ev, x->w->tenant, x->w->id, x->c[i].attempt);
    return ERR_OK;
}

/* The envelopes of n claimed deliveries, read with one statement on this thread's
 * connection (not one round trip per delivery): bodies[i] for c[i], NULL where the event
 * could not be read. Returns the read's result. */
static enum err read_envelopes(struct engine_integ *w, const struct claimed *c, int n,
                               char **bodies)
{
    struct db *db = store_reader();
    if (!db)
        return ERR_STORAGE;
    struct db_rows r;
    db_rows_init(&r, "tt");
    for (int i = 0; i < n; i++) {
        db_rows_text(&r, w->tenant);
        db_rows_text(&r, c[i].event_id);
    }
    struct envelopes_ctx x = {.w = w, .c = c, .n = n, .bodies = bodies};
    enum err rc = db_rows_run(db,
                              "SELECT " ENVELOPE_COLS " FROM ({ROWS}) AS v JOIN events e ON "
                              "e.tenant_id = v.column1 AND e.id = v.column2",
                              &r, envelope_row, &x, NULL);
    db_rows_cleanup(&r);
    db_release(db);
    return rc;
}

static void claim_back(struct engine *e, struct engine_job *j, enum err rc)
{
    struct claim_job *c = (struct claim_job *)j;
    struct engine_integ *w = j->integ;
    struct wh *h = w->data;
    h->claims--;
    h->asked -= c->limit;
    h->next_due = rc == ERR_OK ? c->next_due : -1;
    if (rc == ERR_OK && !engine_stopping(e) && c->n > 0) {
        char **bodies = xcalloc((size_t)c->n, sizeof *bodies);
        enum err read = read_envelopes(w, c->claimed, c->n, bodies);
        for (int i = 0; i < c->n; i++)
            start_req(e, w, &c->claimed[i], bodies[i], read);
        free(bodies);
    }
    /* Claimed while stopping: the rows keep this node's lease, released at stop. */
    if (rc == ERR_OK && c->n > 0)
        w->wake = true; /* there may be more due */
    free(c->claimed);
    free(c);
}

static enum err wh_many(struct db *db, struct store_job **jobs, size_t n);
/* Outcomes and claims that follow each other in the writer's queue run together (wh_many). */
static const struct store_group wh_group = {.run_many = wh_many};

static void submit_claim(struct engine *e, struct engine_integ *w)
{
    struct wh *h = w->data;
    struct claim_job *c = xcalloc(1, sizeof *c);
    c->limit = h->max_in_flight - h->inflight - h->asked;
    c->lease_ms = engine_lease_ms(e); /* the lease outlives the request it covers */
    h->claims++;
    h->asked += c->limit;
    w->wake = false;
    c->j.job.group = &wh_group;
    engine_submit(e, &c->j, w, claim_run, claim_back);
}

/* --- requests and outcomes ----------------------------------------------------------- */

static enum err outcome_run(struct db *db, void *arg)
{
    struct outcome_job *oj = arg;
    return webhook_record_outcome(db, &oj->o, &oj->kind);
}

static void outcome_back(struct engine *e, struct engine_job *j, enum err rc)
{
    struct outcome_job *oj = (struct outcome_job *)j;
    if (rc != ERR_OK && rc != ERR_SHUTDOWN && ++oj->tries < OUTCOME_TRIES) {
        log_warn("webhook", "cannot record the outcome of delivery %s: %s (trying again)",
                 oj->o.delivery_id, err_name(rc));
        engine_submit(e, &oj->j, j->integ, outcome_run, outcome_back);
        return;
    }
    if (rc != ERR_OK) {
        log_error("webhook",
                  "cannot record the outcome of delivery %s: %s (the lease will expire and it "
                  "is retried)",
                  oj->o.delivery_id, err_name(rc));
        j->integ->wake = true; /* look again later */
    } else if (oj->kind <= OUTCOME_FAILED) {
        metric_add(&m_outcomes[oj->kind], 1);
    }
    free(oj->o.error);
    free(oj->o.body);
    free(oj);
}

static void req_free(struct wh_req *r)
{
    outbound_cleanup(&r->out);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
    metric_add(&m_inflight, -1);
}

static void req_done(struct engine *e, struct engine_xfer *x, CURLcode cc)
{
    struct wh_req *r = (struct wh_req *)x;
    struct engine_integ *w = x->integ;
    struct wh *h = w->data;
    int64_t ns = time_mono_ns() - r->start_ns;
    histogram_observe_ns(&m_latency, ns);
    struct outcome_job *oj = xcalloc(1, sizeof *oj);
    oj->o = r->o;
    oj->o.duration_ms = ns / 1000000;
    oj->o.status = outbound_status(&r->out, cc);
    oj->o.retry_after = r->out.retry_after;
    if (cc != CURLE_OK)
        oj->o.error = xstrdup(outbound_error(&r->out, cc));
    if (r->out.body.len) {
        oj->o.body = buf_steal(&r->out.body);
        utf8_scrub(oj->o.body);
    }
    oj->j.job.group = &wh_group;
    engine_submit(e, &oj->j, w, outcome_run, outcome_back);
    /* The slot is free now: the next claim goes behind this outcome. */
    h->inflight--;
    w->wake = true;
    req_free(r);
}

static void req_abort(struct engine *e, struct engine_xfer *x)
{
    (void)e;
    struct wh *h = x->integ->data;
    h->inflight--;
    req_free((struct wh_req *)x);
}

/* Starts the request of a claimed delivery with its envelope (body, taken; read_envelopes).
 * An event that could not be read (body NULL) is never sent (not even as an empty body):
 * its attempt is recorded as failed at once and retried. */
static void start_req(struct engine *e, struct engine_integ *w, const struct claimed *c, char *body,
                      enum err read)
{
    struct wh *h = w->data;
    struct wh_req *r = xcalloc(1, sizeof *r);
    snprintf(r->o.tenant, sizeof r->o.tenant, "%s", w->tenant);
    snprintf(r->o.integration, sizeof r->o.integration, "%s", w->id);
    snprintf(r->o.delivery_id, sizeof r->o.delivery_id, "%s", c->delivery_id);
    snprintf(r->o.event_id, sizeof r->o.event_id, "%s", c->event_id);
    snprintf(r->o.node, sizeof r->o.node, "%s", engine_config(e)->node_id);
    r->o.attempt = c->attempt;
    r->o.started_at = time_now_ms();
    r->o.retry_after = -1;
    r->start_ns = time_mono_ns();
    r->body = body;
    if (!r->body) {
        struct outcome_job *oj = xcalloc(1, sizeof *oj);
        oj->o = r->o;
        oj->o.error =
            xasprintf("the event could not be read from the database (%s)",
                      read == ERR_OK || read == ERR_DONE ? "no such event" : err_name(read));
        free(r);
        engine_submit(e, &oj->j, w, outcome_run, outcome_back);
        return;
    }
    r->headers = prepare(&r->out, h->url ? h->url : "http://invalid./", h->api_key,
                         h->api_key_header, h->secret, c->event_id, r->body, engine_config(e));
    r->x.easy = r->out.easy;
    r->x.integ = w;
    r->x.done = req_done;
    r->x.abort = req_abort;
    h->inflight++;
    metric_add(&m_inflight, 1);
    engine_add(e, &r->x);
}

/* --- the driver's engine callbacks --------------------------------------------------- */

static void wh_clear(struct wh *h)
{
    free(h->url);
    free(h->api_key);
    free(h->api_key_header);
    free(h->secret);
    h->url = h->api_key = h->api_key_header = h->secret = NULL;
}

static void wh_load(struct engine *e, struct engine_integ *w, const struct engine_row *row)
{
    (void)e;
    struct wh *h = w->data;
    if (!h) {
        h = w->data = xcalloc(1, sizeof *h);
        h->next_due = -1;
    }
    wh_clear(h);
    json_t *t = json_loads(row->target ? row->target : "{}", 0, NULL);
    h->url = xstrdup(json_string_value(json_object_get(t, "url")));
    h->api_key = integration_secret_open(json_string_value(json_object_get(t, "api_key")));
    h->api_key_header = xstrdup(json_string_value(json_object_get(t, "api_key_header")));
    json_decref(t);
    h->secret = integration_secret_open(row->signing_secret);
    h->max_in_flight = row->max_in_flight;
}

static void wh_unload(struct engine_integ *w)
{
    if (w->data)
        wh_clear(w->data);
    free(w->data);
    w->data = NULL;
}

static int64_t wh_poll(struct engine *e, struct engine_integ *w, int64_t now)
{
    struct wh *h = w->data;
    if (!h || !h->url || w->paused || engine_stopping(e))
        return -1;
    bool due = w->wake || (h->next_due >= 0 && h->next_due <= now);
    if (h->claims < CLAIMS_MAX && h->inflight + h->asked < h->max_in_flight && due)
        submit_claim(e, w);
    return h->next_due;
}

static enum err wh_release(struct db *db, const char *node)
{
    return deliveries_release_leases(db, node, false, NULL);
}

static bool metrics_registered;

static enum err wh_start(struct engine *e)
{
    (void)e;
    if (!metrics_registered) {
        for (int i = 0; i < 4; i++)
            metric_register(&m_outcomes[i]);
        metric_register(&m_inflight);
        histogram_register(&m_latency);
        metrics_registered = true;
    }
    return ERR_OK;
}

static const struct engine_ops webhook_engine = {
    .type = "webhook",
    .start = wh_start,
    .load = wh_load,
    .unload = wh_unload,
    .poll = wh_poll,
    .release = wh_release,
};

/* --- the outcome of an attempt (writer) ---------------------------------------------- */

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
    /* Held rows only on the row's word (a resume may be committing on another node). */
    if (d.paused &&
        (rc = integration_paused_locked(db, o->tenant, o->integration, &d.paused)) != ERR_OK)
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

/* A success is the common outcome: consecutive ones of a group commit are recorded
 * together, with a few set-based statements (deliveries.c's *_many), in the order the
 * engine submitted them; any other outcome goes through webhook_record_outcome alone, in
 * its place. Same rules as one by one: the attempt row, then (unless stale) succeeded,
 * recovery of the entity's failed tasks, the entity's next delivery, the integration's
 * failure counters. */
static bool plain_success(const struct attempt_outcome *o)
{
    return o->status >= 200 && o->status < 300 && !o->error;
}

static enum err successes(struct db *db, struct outcome_job **oj, size_t n)
{
    int64_t now = time_now_ms();
    struct attempt_outcome *o = xcalloc(n, sizeof *o);
    struct delivery_leased *d = xcalloc(n, sizeof *d);
    bool *leased = xcalloc(n, sizeof *leased);
    struct task_work *work = xcalloc(n, sizeof *work);
    struct entity_next *next = xcalloc(n, sizeof *next);
    size_t nwork = 0, nnext = 0;
    for (size_t i = 0; i < n; i++)
        o[i] = oj[i]->o;
    enum err rc = deliveries_record_attempts(db, o, n);
    if (rc == ERR_OK)
        rc = deliveries_leased_many(db, o, n, d, leased);
    if (rc == ERR_OK)
        rc = deliveries_finish_many(db, o, leased, n, "succeeded", now);
    struct strmap seen = STRMAP_INIT;
    struct buf key = BUF_INIT;
    for (size_t i = 0; i < n && rc == ERR_OK; i++) {
        oj[i]->kind = leased[i] ? OUTCOME_SUCCEEDED : OUTCOME_STALE;
        if (!leased[i])
            continue;
        const char *slash = strchr(d[i].entity_key, '/');
        buf_reset(&key);
        buf_printf(&key, "%s\x1f%s\x1f%s", o[i].tenant, o[i].integration, d[i].entity_key);
        if (!strmap_add(&seen, key.data, i, NULL))
            continue;
        work[nwork++] = (struct task_work){.tenant = o[i].tenant,
                                           .connection = o[i].integration,
                                           .entity_id = slash ? slash + 1 : d[i].entity_key};
        if (d[i].entity_order)
            next[nnext++] = (struct entity_next){.tenant = o[i].tenant,
                                                 .integration = o[i].integration,
                                                 .entity_key = d[i].entity_key,
                                                 .paused = d[i].paused};
    }
    if (rc == ERR_OK)
        rc = outcome_recover_many(db, "webhook_delivery", work, nwork);
    if (rc == ERR_OK && nnext)
        rc = deliveries_promote_next_many(db, next, nnext);
    /* Each integration once, with its latest attempt. */
    strmap_cleanup(&seen);
    for (size_t i = n; i-- > 0 && rc == ERR_OK;) {
        if (!leased[i])
            continue;
        buf_reset(&key);
        buf_printf(&key, "%s\x1f%s", o[i].tenant, o[i].integration);
        if (strmap_add(&seen, key.data, i, NULL))
            rc =
                outcome_integration(db, o[i].tenant, o[i].integration, true, o[i].started_at, NULL);
    }
    strmap_cleanup(&seen);
    buf_cleanup(&key);
    free(o);
    free(d);
    free(leased);
    free(work);
    free(next);
    return rc;
}

/* The claims of one integration in a run, as one: the slots they asked for together, the
 * rows handed out to them in order. */
static enum err claims_merged(struct db *db, struct claim_job **cj, size_t n)
{
    struct engine_integ *w = cj[0]->j.integ;
    int limit = 0;
    for (size_t i = 0; i < n; i++) {
        free(cj[i]->claimed); /* a run again (store.c) claims again */
        cj[i]->claimed = NULL;
        cj[i]->n = 0;
        limit += cj[i]->limit;
    }
    struct claimed *all = NULL;
    int got = 0;
    int64_t next_due = -1;
    enum err rc = deliveries_claim(db, w->tenant, w->id, engine_config(cj[0]->j.e)->node_id,
                                   cj[0]->lease_ms, limit, &all, &got, &next_due);
    if (rc == ERR_NOT_FOUND) { /* deleted: each claim fails as it would alone */
        for (size_t i = 0; i < n; i++)
            cj[i]->j.job.rc = rc;
        return ERR_OK;
    }
    if (rc != ERR_OK)
        return rc;
    int at = 0;
    for (size_t i = 0; i < n; i++) {
        int k = got - at < cj[i]->limit ? got - at : cj[i]->limit;
        if (k > 0) {
            cj[i]->claimed = xmalloc((size_t)k * sizeof *cj[i]->claimed);
            memcpy(cj[i]->claimed, all + at, (size_t)k * sizeof *all);
        }
        cj[i]->n = k;
        cj[i]->next_due = next_due;
        at += k;
    }
    free(all);
    return ERR_OK;
}

/* A run of outcome and claim jobs: the outcomes first (runs of plain successes set-based),
 * then one claim per integration for every slot its claims asked for. A claim sees the
 * slots the outcomes before it in the queue freed either way; going after all of the run's
 * outcomes it sees those behind it too, and one claim statement serves the slots freed one
 * request at a time (one claim per freed slot was most of the writer's work across nodes). */
static enum err wh_many(struct db *db, struct store_job **jobs, size_t n)
{
    struct outcome_job **oj = xcalloc(n, sizeof *oj);
    struct claim_job **cj = xcalloc(n, sizeof *cj);
    size_t no = 0, nc = 0;
    for (size_t i = 0; i < n; i++) { /* the arg: the engine job, first in either job */
        if (jobs[i]->run == claim_run)
            cj[nc++] = jobs[i]->arg;
        else
            oj[no++] = jobs[i]->arg;
    }
    enum err rc = ERR_OK;
    for (size_t i = 0; i < no && rc == ERR_OK;) {
        size_t k = i;
        while (k < no && plain_success(&oj[k]->o))
            k++;
        if (k > i) {
            rc = successes(db, oj + i, k - i);
            i = k;
        } else {
            rc = webhook_record_outcome(db, &oj[i]->o, &oj[i]->kind);
            i++;
        }
    }
    /* Claims grouped by integration, each group in queue order. */
    for (size_t i = 0; i < nc && rc == ERR_OK; i++) {
        if (!cj[i])
            continue;
        struct claim_job **same = xcalloc(nc - i, sizeof *same);
        struct engine_integ *w = cj[i]->j.integ;
        size_t k = 0;
        for (size_t m = i; m < nc; m++)
            if (cj[m] && cj[m]->j.integ == w) {
                same[k++] = cj[m];
                cj[m] = NULL;
            }
        rc = claims_merged(db, same, k);
        free(same);
    }
    free(oj);
    free(cj);
    return rc;
}

/* --- the test action ----------------------------------------------------------------- */

/* Sends a sluice.test event now (blocking, bounded by the webhook timeout). */
static json_t *webhook_test(const struct integration *in, const struct config *cfg)
{
    json_t *t = json_loads(in->target, 0, NULL);
    char *api_key = integration_secret_open(json_string_value(json_object_get(t, "api_key")));
    char *secret = integration_secret_open(in->signing_secret);
    char id[ID_MAX];
    int64_t now = time_now_ms();
    id_new("evt", now, id);
    struct envelope_event ev = {.id = id,
                                .type = "sluice.test",
                                .entity = "sluice",
                                .entity_id = "test",
                                .sequence = 1,
                                .occurred_at = now,
                                .published_at = now,
                                .payload = "{\"message\":\"This is a test event from Sluice.\"}"};
    char *body = envelope_build(&ev, in->tenant, in->id, 1);
    struct outbound out = {0};
    struct curl_slist *h =
        prepare(&out, json_string_value(json_object_get(t, "url")), api_key,
                json_string_value(json_object_get(t, "api_key_header")), secret, id, body, cfg);
    int64_t t0 = time_mono_ns();
    CURLcode cc = curl_easy_perform(out.easy);
    int64_t ms = (time_mono_ns() - t0) / 1000000;
    long status = outbound_status(&out, cc);
    bool ok = status >= 200 && status < 300;
    char error[160];
    if (cc != CURLE_OK)
        snprintf(error, sizeof error, "%s", outbound_error(&out, cc));
    else
        snprintf(error, sizeof error, "the target answered HTTP %ld", status);
    if (out.body.data)
        utf8_scrub(out.body.data);
    json_t *o = outbound_test_json(ok, status, ms, error, out.body.data);
    curl_slist_free_all(h);
    outbound_cleanup(&out);
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
    .engine = &webhook_engine,
};
