/* The delivery work queue on the database (DESIGN.md: the database is the queue):
 * claiming due deliveries with a lease, applying attempt outcomes (success, rejection,
 * retry, final failure, the alerts and pauses they cause), pause/resume/skip transitions,
 * lease expiry and end dates. Every function runs on the writer thread inside a
 * transaction. */
#ifndef SLUICE_DELIVER_QUEUE_H
#define SLUICE_DELIVER_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/id.h"
#include "store/db.h"

struct claimed {
    char delivery_id[ID_MAX];
    char event_id[ID_MAX];
    int attempt;
};

/* Claims up to `limit` due pending deliveries of one integration for node, respecting the
 * integration's max_in_flight across nodes. Returns them in *out (malloc'd, caller frees)
 * and the next due time of what remains in *next_due (-1: none). */
enum err queue_claim(struct db *db, const char *tenant, const char *integration, const char *node,
                     int64_t lease_ms, int limit, struct claimed **out, int *n, int64_t *next_due);

struct attempt_outcome {
    char tenant[72];
    char integration[72];
    char delivery_id[ID_MAX];
    char event_id[ID_MAX];
    char node[128];
    int attempt;
    int64_t started_at;
    int64_t duration_ms;
    long status;         /* HTTP status; 0 when no response */
    char *error;         /* NULL on success */
    char *body;          /* first 1 KiB of the response, or NULL */
    int64_t retry_after; /* ms, -1: none */
};

enum outcome_kind {
    OUTCOME_SUCCEEDED,
    OUTCOME_REJECTED,
    OUTCOME_RETRY,
    OUTCOME_FAILED,
    OUTCOME_STALE
};

/* Records the attempt and moves the delivery on; *kind says what happened. */
enum err queue_apply_outcome(struct db *db, const struct attempt_outcome *o,
                             enum outcome_kind *kind);

/* Pausing moves pending deliveries to held; resuming moves held ones back (shifting their
 * retry clocks by the paused time) or, with skip, marks every unfinished one skipped. */
enum err queue_pause(struct db *db, const char *tenant, const char *integration);
enum err queue_resume(struct db *db, const char *tenant, const char *integration, int64_t paused_at,
                      bool skip, int64_t *skipped);
/* Pauses an integration on Sluice's own decision: state, held deliveries, log, alert. */
enum err queue_system_pause(struct db *db, const char *tenant, const char *integration,
                            const char *reason);

/* Returns expired leases (or every lease with all == true, SQLite start-up) to pending. */
enum err queue_release_leases(struct db *db, bool all, int64_t *n);
/* The lag check, in two halves so the scan of unfinished rows never runs inside the
 * writer's transaction. queue_find_lagging (any thread, on its read connection) lists up to
 * max integrations not yet alerted whose oldest unfinished, unpaused delivery was created
 * before now - lag_ms; queue_alert_lagging (writer) records an event_stream.delivery_failed
 * alert (reason "lagging") for each that is still not alerted, once per episode. */
struct lag_candidate {
    char tenant[72], integration[72];
    int64_t oldest;
};
enum err queue_find_lagging(struct db *db, int64_t lag_ms, struct lag_candidate *out, int max,
                            int *n);
enum err queue_alert_lagging(struct db *db, const struct lag_candidate *c, int n, int64_t lag_ms,
                             int64_t *alerted);

/* Retention, for one tenant: deletes up to `limit` finished deliveries (with their attempts)
 * created before deliveries_before, and events published before events_before that have no
 * unfinished delivery. Counts go to *deliveries and *events. */
enum err queue_purge(struct db *db, const char *tenant, int64_t deliveries_before,
                     int64_t events_before, int limit, int64_t *deliveries, int64_t *events);

/* Deletes every delivery of an integration, with its attempts. */
enum err deliveries_delete_integration(struct db *db, const char *tenant, const char *integration);

/* Stops temporary integrations whose end date has passed (logged). */
enum err queue_stop_ended(struct db *db, int64_t *n);

#endif
