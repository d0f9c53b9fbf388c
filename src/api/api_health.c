/* Health, readiness and metrics. HTTP threads. */
#include <string.h>

#include "api/api.h"
#include "core/metrics.h"
#include "notify/notifier.h"
#include "store/store.h"

void api_healthz(struct http_req *req)
{
    http_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

void api_readyz(struct http_req *req)
{
    const char *dbstate = "ok";
    struct db *db = store_reader();
    if (!db) {
        dbstate = "unreachable";
    } else {
        struct db_stmt *st = db_stmt(db, "SELECT 1");
        enum err rc = db_next(st);
        if (rc != ERR_OK)
            dbstate = db_errmsg(db);
    }
    const struct config *cfg = api_config();
    (void)cfg;
    char smtp_buf[256];
    const char *smtp = notifier_smtp_state(smtp_buf, sizeof smtp_buf);
    bool ready = !strcmp(dbstate, "ok");
    http_json(req, ready ? 200 : 503,
              json_pack("{s:s,s:{s:s,s:s}}", "status", ready ? "ready" : "unavailable", "checks",
                        "database", dbstate, "smtp", smtp));
}

void api_metrics(struct http_req *req)
{
    struct buf b = BUF_INIT;
    struct store_stats s;
    store_get_stats(&s);
    buf_printf(&b,
               "# HELP sluice_store_commits_total Group commits by outcome.\n"
               "# TYPE sluice_store_commits_total counter\n"
               "sluice_store_commits_total{outcome=\"ok\"} %llu\n"
               "sluice_store_commits_total{outcome=\"failed\"} %llu\n"
               "# HELP sluice_store_jobs_total Write jobs committed or failed.\n"
               "# TYPE sluice_store_jobs_total counter\n"
               "sluice_store_jobs_total %llu\n"
               "# HELP sluice_store_deadlock_retries_total Group commits rolled back whole and "
               "run again after losing a deadlock to another node.\n"
               "# TYPE sluice_store_deadlock_retries_total counter\n"
               "sluice_store_deadlock_retries_total %llu\n",
               (unsigned long long)s.commits, (unsigned long long)s.failed_commits,
               (unsigned long long)s.jobs, (unsigned long long)s.victim_retries);
    metrics_render(&b);
    http_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
    buf_cleanup(&b);
}
