/* The engine core (see engine.h). The engine thread owns the multi handle, the integration
 * table and the transfer list; the writer thread touches only the inbox (e->lock) and
 * jobs_pending; any thread may set the wake flags (atomics). No lock is held across I/O. */
#include "deliver/engine.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"

#define REFRESH_MS 1000 /* other nodes' changes, retry times: looked at least this often */

struct engine {
    const struct engine_ops *ops;
    const struct config *cfg;
    pthread_t thread;
    CURLM *multi;
    _Atomic bool stopping;
    _Atomic int64_t drain_until; /* monotonic ms: transfers in flight are aborted after it */
    _Atomic bool wake_all;
    _Atomic unsigned config_gen;
    unsigned seen_gen;
    int64_t last_refresh;
    struct engine_integ *integs;
    struct engine_xfer *xfers;
    pthread_mutex_t lock; /* guards inbox */
    struct engine_job *inbox;
    _Atomic int jobs_pending; /* submitted jobs whose back() has not run yet */
};

const struct config *engine_config(const struct engine *e)
{
    return e->cfg;
}

bool engine_stopping(const struct engine *e)
{
    return atomic_load(&e->stopping);
}

int64_t engine_lease_ms(const struct engine *e)
{
    int64_t lease = e->cfg->lease_ms, least = e->cfg->webhook_timeout_ms + ENGINE_LEASE_MARGIN_MS;
    return lease > least ? lease : least;
}

/* --- jobs ---------------------------------------------------------------------------- */

/* Writer thread: the job is done; hand it back to the engine thread. */
static void job_done(void *arg, enum err rc)
{
    struct engine_job *j = arg;
    struct engine *e = j->e;
    j->rc = rc;
    pthread_mutex_lock(&e->lock);
    j->next = e->inbox;
    e->inbox = j;
    /* Woken under the lock: engine_stop takes it once before freeing the multi handle. */
    curl_multi_wakeup(e->multi);
    pthread_mutex_unlock(&e->lock);
}

void engine_submit(struct engine *e, struct engine_job *j, struct engine_integ *w,
                   enum err (*run)(struct db *db, void *job),
                   void (*back)(struct engine *e, struct engine_job *j, enum err rc))
{
    j->e = e;
    j->integ = w;
    j->job.run = run;
    j->back = back;
    j->job.done = job_done;
    j->job.arg = j;
    if (j->integ)
        j->integ->refs++;
    atomic_fetch_add(&e->jobs_pending, 1);
    store_submit(&j->job);
}

/* Engine thread: runs back() of every job the writer finished, in submission order. */
static void handle_inbox(struct engine *e)
{
    pthread_mutex_lock(&e->lock);
    struct engine_job *j = e->inbox;
    e->inbox = NULL;
    pthread_mutex_unlock(&e->lock);
    struct engine_job *fifo = NULL; /* the inbox is LIFO */
    while (j) {
        struct engine_job *next = j->next;
        j->next = fifo;
        fifo = j;
        j = next;
    }
    while (fifo) {
        j = fifo;
        fifo = j->next;
        struct engine_integ *w = j->integ;
        j->back(e, j, j->rc); /* frees j */
        if (w)
            w->refs--;
        atomic_fetch_sub(&e->jobs_pending, 1);
    }
}

/* --- transfers ----------------------------------------------------------------------- */

void engine_add(struct engine *e, struct engine_xfer *x)
{
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    x->prev = NULL;
    x->next = e->xfers;
    if (e->xfers)
        e->xfers->prev = x;
    e->xfers = x;
    if (x->integ)
        x->integ->refs++;
    curl_multi_add_handle(e->multi, x->easy);
}

void engine_remove(struct engine *e, struct engine_xfer *x)
{
    curl_multi_remove_handle(e->multi, x->easy);
    if (x->prev)
        x->prev->next = x->next;
    else
        e->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    if (x->integ)
        x->integ->refs--;
}

static void run_transfers(struct engine *e)
{
    int running = 0;
    curl_multi_perform(e->multi, &running);
    CURLMsg *cm;
    int left;
    while ((cm = curl_multi_info_read(e->multi, &left))) {
        if (cm->msg != CURLMSG_DONE)
            continue;
        struct engine_xfer *x = NULL;
        CURLcode cc = cm->data.result;
        curl_easy_getinfo(cm->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        engine_remove(e, x);
        x->done(e, x, cc);
    }
}

/* --- the integration table ----------------------------------------------------------- */

static void free_integ(struct engine *e, struct engine_integ *w)
{
    e->ops->unload(w);
    free(w);
}

static void refresh(struct engine *e)
{
    struct db *db = store_reader();
    if (!db)
        return;
    e->last_refresh = time_mono_ms();
    for (struct engine_integ *w = e->integs; w; w = w->next)
        w->present = false;
    struct db_stmt *st = db_stmt(db, "SELECT tenant_id, id, state, updated_at, target, "
                                     "signing_secret, max_in_flight FROM integrations WHERE "
                                     "target_type = ?");
    db_bind_text(st, 1, e->ops->type);
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK) {
        const char *tenant = db_col_text(st, 0), *id = db_col_text(st, 1);
        struct engine_integ *w = e->integs;
        while (w && (strcmp(w->tenant, tenant) || strcmp(w->id, id)))
            w = w->next;
        if (!w) {
            w = xcalloc(1, sizeof *w);
            snprintf(w->tenant, sizeof w->tenant, "%s", tenant);
            snprintf(w->id, sizeof w->id, "%s", id);
            w->updated_at = -1;
            w->next = e->integs;
            e->integs = w;
        }
        w->present = true;
        bool paused = !strcmp(db_col_text(st, 2), "paused");
        if (w->paused && !paused)
            w->wake = true;
        w->paused = paused;
        int64_t updated = db_col_int(st, 3);
        if (updated != w->updated_at) {
            struct engine_row row = {.target = db_col_text(st, 4),
                                     .signing_secret = db_col_text(st, 5),
                                     .max_in_flight = (int)db_col_int(st, 6)};
            if (e->ops->load)
                e->ops->load(e, w, &row);
            w->updated_at = updated;
            w->wake = true;
        }
    }
    db_release(db);
    if (rc != ERR_DONE) { /* a partial read says nothing about what is gone */
        log_warn(e->ops->type, "cannot read the integrations: %s", err_name(rc));
        for (struct engine_integ *w = e->integs; w; w = w->next)
            w->present = true;
        return;
    }
    /* Forget integrations that were deleted once nothing refers to them. */
    struct engine_integ **pp = &e->integs;
    while (*pp) {
        struct engine_integ *w = *pp;
        if (!w->present && w->refs == 0) {
            *pp = w->next;
            free_integ(e, w);
        } else {
            pp = &w->next;
        }
    }
}

/* --- the loop ------------------------------------------------------------------------ */

/* Lets the driver start due work; returns how long the engine may sleep (ms). */
static int64_t poll_all(struct engine *e)
{
    bool all = atomic_exchange(&e->wake_all, false);
    int64_t now = time_now_ms(), wait = REFRESH_MS;
    for (struct engine_integ *w = e->integs; w; w = w->next) {
        if (!w->present)
            continue;
        if (all)
            w->wake = true;
        int64_t next = e->ops->poll(e, w, now);
        if (next > now && next - now < wait)
            wait = next - now;
    }
    return wait;
}

/* Stopping: the loop goes on, starting nothing new, until every transfer has finished and
 * every job come back (their outcomes recorded), or the drain deadline. */
static bool drained(struct engine *e)
{
    if (!atomic_load(&e->stopping))
        return false;
    return (!e->xfers && atomic_load(&e->jobs_pending) == 0) ||
           time_mono_ms() >= atomic_load(&e->drain_until);
}

static void *engine_main(void *arg)
{
    struct engine *e = arg;
    char name[16];
    snprintf(name, sizeof name, "sluice-%s", e->ops->type);
    pthread_setname_np(pthread_self(), name);
    while (!drained(e)) {
        handle_inbox(e);
        unsigned gen = atomic_load(&e->config_gen);
        if (gen != e->seen_gen || time_mono_ms() - e->last_refresh >= REFRESH_MS) {
            e->seen_gen = gen;
            refresh(e);
        }
        run_transfers(e);
        /* Work starts after the outcomes just queued, so freed slots are reused at once. */
        int64_t wait = poll_all(e);
        if (atomic_load(&e->stopping)) {
            int64_t left = atomic_load(&e->drain_until) - time_mono_ms();
            if (left < wait)
                wait = left;
        }
        curl_multi_poll(e->multi, NULL, 0, (int)(wait > 0 ? wait : 1), NULL);
    }
    store_reader_release();
    return NULL;
}

/* --- lifecycle ----------------------------------------------------------------------- */

void engine_wake(struct engine *e)
{
    if (!e)
        return;
    atomic_store(&e->wake_all, true);
    curl_multi_wakeup(e->multi);
}

void engine_config_changed(struct engine *e)
{
    if (!e)
        return;
    atomic_fetch_add(&e->config_gen, 1);
    engine_wake(e);
}

enum err engine_start(const struct engine_ops *ops, const struct config *cfg, struct engine **out)
{
    struct engine *e = xcalloc(1, sizeof *e);
    e->ops = ops;
    e->cfg = cfg;
    pthread_mutex_init(&e->lock, NULL);
    atomic_store(&e->wake_all, true);
    e->multi = curl_multi_init();
    /* --webhook-max-connections caps every engine's connections, in total and per host. */
    curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->webhook_max_connections);
    curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->webhook_max_connections);
    enum err rc = ops->start ? ops->start(e) : ERR_OK;
    if (rc == ERR_OK && pthread_create(&e->thread, NULL, engine_main, e) != 0)
        rc = ERR_INTERNAL;
    if (rc != ERR_OK) {
        curl_multi_cleanup(e->multi);
        pthread_mutex_destroy(&e->lock);
        free(e);
        return rc;
    }
    *out = e;
    return ERR_OK;
}

static enum err release_run(struct db *db, void *arg)
{
    struct engine *e = arg;
    return e->ops->release(db, e->cfg->node_id);
}

void engine_stop_begin(struct engine *e)
{
    if (!e || atomic_load(&e->stopping))
        return;
    /* A request started just now ends within the timeout; its outcome needs a commit. */
    atomic_store(&e->drain_until,
                 time_mono_ms() + e->cfg->webhook_timeout_ms + ENGINE_DRAIN_MARGIN_MS);
    atomic_store(&e->stopping, true);
    curl_multi_wakeup(e->multi);
}

void engine_stop(struct engine *e)
{
    if (!e)
        return;
    engine_stop_begin(e);
    pthread_join(e->thread, NULL);
    if (e->xfers)
        log_warn(e->ops->type, "stopping: requests still in flight after the drain are cut off "
                               "(their work goes back to pending)");
    /* Abort what is still in flight after the drain: no outcome is recorded, the leases go
     * back below. */
    while (e->xfers) {
        struct engine_xfer *x = e->xfers;
        engine_remove(e, x);
        x->abort(e, x);
    }
    /* Wait for the jobs the writer still owes us, so they can be freed. */
    while (atomic_load(&e->jobs_pending) > 0) {
        handle_inbox(e);
        if (atomic_load(&e->jobs_pending) > 0)
            usleep(1000);
    }
    pthread_mutex_lock(&e->lock); /* the last job_done() has left its critical section */
    pthread_mutex_unlock(&e->lock);
    assert(e->xfers == NULL); /* back() starts nothing while stopping */
    /* DELIVER: the other nodes learn at once (NOTIFY) that the work is theirs to take. */
    if (e->ops->release && store_write(release_run, e, STORE_WAKE_DELIVER) != ERR_OK)
        log_warn(e->ops->type, "cannot release this node's leases (they expire)");
    while (e->integs) {
        struct engine_integ *next = e->integs->next;
        free_integ(e, e->integs);
        e->integs = next;
    }
    curl_multi_cleanup(e->multi);
    pthread_mutex_destroy(&e->lock);
    free(e);
}
