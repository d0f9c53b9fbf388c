/* What an attempt means for its integration — the one place both outcome paths (a webhook
 * delivery, webhook.c; an S3 batch upload, s3_batch.c) apply it, so the rules cannot drift
 * apart again:
 * - failure counts: a success clears them, a failure counts from its start;
 * - auto-pause: an integration whose every attempt failed for 24 h (scaled) with at least
 *   10 attempts is paused by Sluice (log row, event_stream.integration_stopped alert);
 * - recovery: a later success marks the failed tasks of the same work succeeded and
 *   resolves their alerts;
 * - lag episodes: one event_stream.delivery_failed alert (reason "lagging") when something
 *   of an active integration has waited longer than the limit, and no other until nothing
 *   of it is older than the limit any more.
 * Writer thread inside the outcome's transaction, except outcome_lag_scan (any thread, on
 * its own read connection). */
#ifndef SLUICE_DELIVER_OUTCOME_H
#define SLUICE_DELIVER_OUTCOME_H

#include <stdbool.h>
#include <stdint.h>

#include "alert/alerts.h"
#include "core/err.h"
#include "core/id.h"
#include "store/db.h"

/* What one attempt did to its delivery (webhook) or batch (S3). */
enum outcome_kind {
    OUTCOME_SUCCEEDED, /* delivered / uploaded */
    OUTCOME_REJECTED,  /* refused for good by the consumer (webhook 4xx) */
    OUTCOME_RETRY,     /* failed, tried again later */
    OUTCOME_FAILED,    /* failed for 24 h: given up */
    OUTCOME_STALE      /* the lease was lost meanwhile: nothing recorded but the attempt */
};

#define OUTCOME_AUTO_PAUSE_MIN_ATTEMPTS 10
#define OUTCOME_LAG_LIMIT_MS (15 * 60 * 1000) /* the promise: delivered within 15 minutes */

/* Applies one attempt of integration (started at started_at, ok or not) to the integration:
 * failure counts and auto-pause. pause_reason (a webhook's 410 Gone) pauses at once on a
 * failure. A paused or deleted integration is left as it is. */
enum err outcome_integration(struct db *db, const char *tenant, const char *integration, bool ok,
                             int64_t started_at, const char *pause_reason);

/* Pauses an integration on Sluice's own decision: state, held deliveries, log row
 * ("stopped", reason, actor system) and the event_stream.integration_stopped alert. */
enum err outcome_pause(struct db *db, const char *tenant, const char *integration,
                       const char *reason);

/* Records a failed task of task_kind for the work (integration, entity_id may be NULL)
 * unless *task is set already, and an alert of event linked to it. details: compact JSON
 * object text. task gets the task's id. */
enum err outcome_alert(struct db *db, const char *tenant, const char *task_kind,
                       const char *integration, const char *entity_id, const char *event,
                       const char *message, const char *details, char task[ID_MAX]);

/* A later attempt succeeded: the failed tasks of the work (task, or every failed task_kind
 * task of integration and entity_id when task is NULL) succeed, their alerts resolve. */
enum err outcome_recover(struct db *db, const char *tenant, const char *task_kind,
                         const char *integration, const char *entity_id, const char *task);

/* outcome_recover (task NULL) for many works at once: one look-up finds the few with
 * failed tasks, which then recover one by one. */
enum err outcome_recover_many(struct db *db, const char *task_kind, const struct task_work *w,
                              size_t n);

/* A lag episode starting (oldest >= 0: its oldest unfinished delivery's creation time) or
 * ending (oldest < 0). */
struct lag_change {
    char tenant[72], integration[72];
    int64_t oldest;
};
/* Lists up to max integrations whose lag episode starts (active, not alerted, something
 * unfinished created before now - lag_ms) or ends (alerted, nothing unfinished that old, or
 * paused). The scan of unfinished rows runs on a read connection, never in the writer. */
enum err outcome_lag_scan(struct db *db, int64_t lag_ms, struct lag_change *out, int max, int *n);
/* Applies the changes: an episode that starts gets its one alert (claimed on the
 * integration row, so several nodes alert once); one that ends is closed if, in this
 * transaction, nothing is older than the limit still. *alerted counts the alerts. */
enum err outcome_lag_apply(struct db *db, const struct lag_change *c, int n, int64_t lag_ms,
                           int64_t *alerted);

#endif
