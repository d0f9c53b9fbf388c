/* The consequences of attempts for their integrations (see outcome.h). Writer thread
 * (asserted), except outcome_lag_scan. */
#include "deliver/outcome.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alerts.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "deliver/retry.h"
#include "store/store.h"
#include "stream/deliveries.h"
#include "stream/integrations.h"

enum err outcome_pause(struct db *db, const char *tenant, const char *integration,
                       const char *reason)
{
    assert(store_is_writer());
    enum err rc = integration_set_state(db, tenant, integration, "paused", time_now_ms());
    if (rc == ERR_OK)
        rc = deliveries_hold(db, tenant, integration);
    if (rc == ERR_OK)
        rc = integration_log(db, tenant, integration, "stopped", reason, "system");
    if (rc == ERR_OK) {
        struct alert_in a = {.event = "event_stream.integration_stopped",
                             .connection = integration,
                             .message = reason,
                             .occurred_at = -1};
        rc = alert_record(db, tenant, &a, NULL);
    }
    return rc;
}

enum err outcome_integration(struct db *db, const char *tenant, const char *integration, bool ok,
                             int64_t started_at, const char *pause_reason)
{
    assert(store_is_writer());
    int64_t now = time_now_ms();
    struct integration_health h;
    enum err rc = integration_health_load(db, tenant, integration, &h);
    if (rc == ERR_NOT_FOUND)
        return ERR_OK; /* deleted meanwhile */
    if (rc != ERR_OK)
        return rc;
    if (ok) {
        /* The integration row is every outcome's hot spot: a success rewrites it only to
         * clear failure state, or to move last_attempt_at on by a second or more. */
        if (h.failing_count > 0 || h.failing_since >= 0 || h.last_attempt_at < 0)
            rc = integration_attempt_ok(db, tenant, integration, now);
        else if (now - h.last_attempt_at >= 1000)
            rc = integration_attempt_touch(db, tenant, integration, now);
        return rc;
    }
    int64_t since, count;
    if ((rc = integration_attempt_failed(db, tenant, integration, started_at, now, &since,
                                         &count)) != ERR_OK)
        return rc;
    if (h.paused)
        return ERR_OK;
    if (pause_reason)
        return outcome_pause(db, tenant, integration, pause_reason);
    if (count >= OUTCOME_AUTO_PAUSE_MIN_ATTEMPTS && now - since >= retry_give_up_after())
        return outcome_pause(db, tenant, integration, "auto-paused: every delivery failed for 24h");
    return ERR_OK;
}

enum err outcome_alert(struct db *db, const char *tenant, const char *task_kind,
                       const char *integration, const char *entity_id, const char *event,
                       const char *message, const char *details, char task[ID_MAX])
{
    assert(store_is_writer());
    enum err rc = ERR_OK;
    if (!task[0])
        rc = task_record(db, tenant, task_kind, integration, entity_id, "failed", details, task);
    if (rc != ERR_OK)
        return rc;
    struct alert_in a = {.event = event,
                         .connection = integration,
                         .entity_id = entity_id,
                         .task_id = task,
                         .message = message,
                         .details = details,
                         .occurred_at = -1};
    return alert_record(db, tenant, &a, NULL);
}

enum err outcome_recover(struct db *db, const char *tenant, const char *task_kind,
                         const char *integration, const char *entity_id, const char *task)
{
    assert(store_is_writer());
    return tasks_recover(db, tenant, task_kind, integration, entity_id, task, time_now_ms());
}

enum err outcome_recover_many(struct db *db, const char *task_kind, const struct task_work *w,
                              size_t n)
{
    assert(store_is_writer());
    if (n == 0)
        return ERR_OK;
    bool *failed = xcalloc(n, sizeof *failed);
    enum err rc = tasks_failed_any(db, task_kind, w, n, failed);
    for (size_t i = 0; i < n && rc == ERR_OK; i++)
        if (failed[i])
            rc = outcome_recover(db, w[i].tenant, task_kind, w[i].connection, w[i].entity_id, NULL);
    free(failed);
    return rc;
}

/* --- lag episodes -------------------------------------------------------------------- */

enum err outcome_lag_scan(struct db *db, int64_t lag_ms, struct lag_change *out, int max, int *n)
{
    *n = 0;
    int64_t before = time_now_ms() - lag_ms;
    /* Starting: active, not alerted, something unfinished older than the limit. */
    struct db_stmt *st = db_stmt(
        db, "SELECT d.tenant_id, d.integration_id, MIN(d.created_at) FROM deliveries d JOIN "
            "integrations i ON i.tenant_id = d.tenant_id AND i.id = d.integration_id WHERE "
            "d.state IN ('waiting', 'pending', 'in_flight') AND i.lag_alerted_at IS NULL AND "
            "i.state <> 'paused' GROUP BY d.tenant_id, d.integration_id HAVING "
            "MIN(d.created_at) < ? LIMIT ?");
    db_bind_int(st, 1, before);
    db_bind_int(st, 2, max);
    enum err rc = ERR_OK;
    while (*n < max && (rc = db_next(st)) == ERR_OK) {
        struct lag_change *c = &out[(*n)++];
        snprintf(c->tenant, sizeof c->tenant, "%s", db_col_text(st, 0));
        snprintf(c->integration, sizeof c->integration, "%s", db_col_text(st, 1));
        c->oldest = db_col_int(st, 2);
    }
    db_release(db);
    if (rc != ERR_OK && rc != ERR_DONE)
        return rc;
    /* Ending: alerted, and paused or nothing unfinished older than the limit any more. A
     * success of another entity meanwhile ends nothing. */
    st = db_stmt(db, "SELECT i.tenant_id, i.id FROM integrations i WHERE i.lag_alerted_at IS "
                     "NOT NULL AND (i.state = 'paused' OR NOT EXISTS (SELECT 1 FROM deliveries "
                     "d WHERE d.tenant_id = i.tenant_id AND d.integration_id = i.id AND d.state "
                     "IN ('waiting', 'pending', 'in_flight') AND d.created_at < ?)) LIMIT ?");
    db_bind_int(st, 1, before);
    db_bind_int(st, 2, max - *n);
    rc = ERR_OK;
    while (*n < max && (rc = db_next(st)) == ERR_OK) {
        struct lag_change *c = &out[(*n)++];
        snprintf(c->tenant, sizeof c->tenant, "%s", db_col_text(st, 0));
        snprintf(c->integration, sizeof c->integration, "%s", db_col_text(st, 1));
        c->oldest = -1;
    }
    db_release(db);
    return rc == ERR_OK || rc == ERR_DONE ? ERR_OK : rc;
}

enum err outcome_lag_apply(struct db *db, const struct lag_change *c, int n, int64_t lag_ms,
                           int64_t *alerted)
{
    assert(store_is_writer());
    *alerted = 0;
    int64_t now = time_now_ms();
    for (int i = 0; i < n; i++) {
        enum err rc;
        bool changed;
        if (c[i].oldest < 0) {
            if ((rc = integration_lag_end(db, c[i].tenant, c[i].integration, now - lag_ms,
                                          &changed)) != ERR_OK)
                return rc;
            continue;
        }
        /* Claim the episode first, so several nodes alert once. The scan's answer may be a
         * few ms old: if the oldest delivery succeeded meanwhile the alert still goes (the
         * lag was real when measured), and the next scan ends the episode. */
        if ((rc = integration_lag_begin(db, c[i].tenant, c[i].integration, now, &changed)) !=
            ERR_OK)
            return rc;
        if (!changed)
            continue;
        char msg[300], details[200];
        snprintf(msg, sizeof msg,
                 "lagging: the oldest undelivered event has waited %lld ms (limit %lld ms)",
                 (long long)(now - c[i].oldest), (long long)lag_ms);
        snprintf(details, sizeof details, "{\"reason\":\"lagging\",\"lag_ms\":%lld}",
                 (long long)(now - c[i].oldest));
        struct alert_in a = {.event = "event_stream.delivery_failed",
                             .connection = c[i].integration,
                             .message = msg,
                             .details = details,
                             .occurred_at = now};
        if ((rc = alert_record(db, c[i].tenant, &a, NULL)) != ERR_OK)
            return rc;
        (*alerted)++;
    }
    return ERR_OK;
}
