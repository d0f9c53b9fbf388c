/* Registration and lifecycle of the delivery engines: one engine (engine.h) per registered
 * target driver whose role this node has. deliver_register/start/stop run on the main
 * thread; deliver_wake on the writer thread (the commit hook) or any other. */
#include "deliver/deliver.h"

#include "core/metrics.h"
#include "deliver/engine.h"
#include "deliver/s3.h"
#include "deliver/webhook.h"
#include "store/store.h"
#include "stream/deliveries.h"
#include "stream/targets.h"

#define ENGINES_MAX 8

static struct engine *g_engines[ENGINES_MAX]; /* written before any wake-up can come */
static int g_n;

void deliver_register(void)
{
    target_register(&webhook_driver);
    target_register(&s3_driver);
}

static struct metric_fn m_queue = {.render = deliveries_render_metrics};
static bool metrics_registered;

enum err deliver_start(const struct config *cfg, const char **what)
{
    if (!metrics_registered) {
        metric_fn_register(&m_queue);
        metrics_registered = true;
    }
    int n;
    const struct target_driver *const *d = target_all(&n);
    for (int i = 0; i < n && g_n < ENGINES_MAX; i++) {
        if (!d[i]->engine || !config_has_role(cfg, d[i]->type))
            continue;
        if (engine_start(d[i]->engine, cfg, &g_engines[g_n]) != ERR_OK) {
            *what = d[i]->type;
            return ERR_INTERNAL;
        }
        g_n++;
    }
    return ERR_OK;
}

void deliver_stop(void)
{
    for (int i = 0; i < g_n; i++) /* every engine drains at the same time */
        engine_stop_begin(g_engines[i]);
    for (int i = 0; i < g_n; i++)
        engine_stop(g_engines[i]);
    g_n = 0;
}

enum err deliver_release_node(struct db *db, const char *node)
{
    int n;
    const struct target_driver *const *d = target_all(&n);
    enum err rc = ERR_OK;
    for (int i = 0; i < n && rc == ERR_OK; i++)
        if (d[i]->engine && d[i]->engine->release)
            rc = d[i]->engine->release(db, node);
    return rc;
}

void deliver_wake(unsigned mask)
{
    for (int i = 0; i < g_n; i++) {
        if (mask & STORE_WAKE_CONFIG)
            engine_config_changed(g_engines[i]);
        else if (mask & STORE_WAKE_DELIVER)
            engine_wake(g_engines[i]);
    }
}
