/* Scheduler thread: wakes every tick (or at stop), submits maintenance to the writer and
 * waits for it. Shares nothing but the stop flag (under g.lock). */
#include "sched/scheduler.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "alert/alerts.h"
#include "alert/issues.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "deliver/outcome.h"
#include "store/events.h"
#include "store/store.h"
#include "stream/deliveries.h"
#include "stream/integrations.h"

#define TICK_MS 250

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping, running;
    bool alerts; /* this node runs the "alerts" role: auto-close */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

#define LAG_CHECK_EVERY 20 /* ticks (5 s): the check scans unfinished rows */
#define LAG_MAX 100        /* lag episodes started or ended per check */

#define ANALYZE_EVERY 8 /* ticks (2 s): PostgreSQL statistics of fast-growing tables */

#define PURGE_EVERY 8 /* ticks (2 s) */
#define PURGE_LIMIT 5000

struct tick {
    int64_t released, stopped, lagging, auto_closed;
    struct lag_change lag[LAG_MAX];
    int nlag;
    int64_t purged_deliveries, purged_events, purged_alerts, purged_tasks;
    bool purge, purge_alerts;
};

static const struct config *g_cfg;

/* Retention (not scaled by --time-scale), tenant by tenant, at most PURGE_LIMIT rows of each
 * kind per tenant and pass. */
static enum err purge(struct db *db, struct tick *t)
{
    char(*tenants)[TENANT_ID_MAX];
    size_t n;
    enum err rc = store_tenant_ids(db, &tenants, &n);
    int64_t now = time_now_ms();
    for (size_t i = 0; i < n && rc == ERR_OK; i++) {
        int64_t d = 0, e = 0, a = 0, k = 0;
        if (t->purge)
            rc = deliveries_purge(db, tenants[i], now - g_cfg->retention_deliveries_ms, PURGE_LIMIT,
                                  &d);
        if (rc == ERR_OK && t->purge)
            rc = store_events_purge(db, tenants[i], now - g_cfg->retention_events_ms, PURGE_LIMIT,
                                    &e);
        if (rc == ERR_OK && t->purge_alerts)
            rc =
                alerts_purge(db, tenants[i], now - g_cfg->retention_alerts_ms, PURGE_LIMIT, &a, &k);
        if (rc == ERR_OK) {
            t->purged_deliveries += d;
            t->purged_events += e;
            t->purged_alerts += a;
            t->purged_tasks += k;
        }
    }
    free(tenants);
    return rc;
}

static enum err tick_run(struct db *db, void *arg)
{
    struct tick *t = arg;
    /* A batch run again (store.c) runs this again: purge() adds to these. */
    t->purged_deliveries = t->purged_events = t->purged_alerts = t->purged_tasks = 0;
    enum err rc = deliveries_release_leases(db, NULL, false, &t->released);
    if (rc == ERR_OK)
        rc = integrations_stop_ended(db, &t->stopped);
    if (rc == ERR_OK && t->nlag)
        rc = outcome_lag_apply(db, t->lag, t->nlag, time_scaled(OUTCOME_LAG_LIMIT_MS), &t->lagging);
    if (rc == ERR_OK && g.alerts)
        rc = issues_auto_close(db, time_now_ms(), &t->auto_closed);
    if (rc == ERR_OK && (t->purge || t->purge_alerts))
        rc = purge(db, t);
    return rc;
}

static void *scheduler_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "sluice-sched");
    unsigned ticks = 0;
    pthread_mutex_lock(&g.lock);
    while (!g.stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g.cond, &g.lock, &ts);
        if (g.stopping)
            break;
        pthread_mutex_unlock(&g.lock);
        ticks++;
        /* The alert purge walks the old alerts that open issues hold on every pass, inside
         * the writer's transaction: it runs every quarter retention period, at most every
         * minute (every 2 s with tiny test retentions). */
        int64_t alerts_every = g_cfg->retention_alerts_ms / 4;
        if (alerts_every > 60000)
            alerts_every = 60000;
        unsigned alerts_ticks = (unsigned)(alerts_every / TICK_MS);
        if (alerts_ticks < PURGE_EVERY)
            alerts_ticks = PURGE_EVERY;
        struct tick t = {.purge = ticks % PURGE_EVERY == 0,
                         .purge_alerts = g.alerts && ticks % alerts_ticks == 0};
        enum err rc = ERR_OK;
        if (ticks % LAG_CHECK_EVERY == 0) {
            /* The scan reads on this thread's own connection, outside the writer. */
            struct db *rdb = store_reader();
            if (rdb)
                rc = outcome_lag_scan(rdb, time_scaled(OUTCOME_LAG_LIMIT_MS), t.lag, LAG_MAX,
                                      &t.nlag);
            store_reader_release();
            if (rc != ERR_OK)
                log_warn("scheduler", "lag check: %s", err_name(rc));
        }
        if (ticks % ANALYZE_EVERY == ANALYZE_EVERY / 2 && store_kind() == DB_PG) {
            struct db *rdb = store_reader();
            int analyzed = 0;
            enum err arc = rdb ? store_analyze_grown(rdb, &analyzed) : ERR_STORAGE;
            store_reader_release();
            if (arc != ERR_OK)
                log_warn("scheduler", "statistics: %s", rdb ? db_errmsg(rdb) : err_name(arc));
            else if (analyzed)
                log_debug("scheduler", "statistics of %d grown table(s) brought up to date",
                          analyzed);
        }
        rc = store_write(tick_run, &t, 0);
        if (rc == ERR_OK && t.released)
            log_info("scheduler", "%lld expired lease(s) returned to pending",
                     (long long)t.released);
        if (rc == ERR_OK &&
            (t.purged_events || t.purged_deliveries || t.purged_alerts || t.purged_tasks))
            log_info("scheduler",
                     "retention: purged %lld event(s), %lld finished delivery(ies), %lld "
                     "alert(s), %lld task(s)",
                     (long long)t.purged_events, (long long)t.purged_deliveries,
                     (long long)t.purged_alerts, (long long)t.purged_tasks);
        pthread_mutex_lock(&g.lock);
    }
    pthread_mutex_unlock(&g.lock);
    return NULL;
}

enum err scheduler_start(const struct config *cfg)
{
    g_cfg = cfg;
    g.alerts = config_has_role(cfg, "alerts");
    g.stopping = false;
    if (pthread_create(&g.thread, NULL, scheduler_main, NULL) != 0)
        return ERR_INTERNAL;
    g.running = true;
    return ERR_OK;
}

void scheduler_stop(void)
{
    if (!g.running)
        return;
    pthread_mutex_lock(&g.lock);
    g.stopping = true;
    pthread_cond_signal(&g.cond);
    pthread_mutex_unlock(&g.lock);
    pthread_join(g.thread, NULL);
    g.running = false;
}
