/* Alerts: the one way to record a failure. Every reported failure and every Event Stream
 * failure becomes a row through alert_record(), inside the caller's transaction, so the
 * alert commits with the state change that caused it. (The alerting work extends this
 * function with policy matching and issues; callers do not change.) */
#ifndef SLUICE_ALERT_ALERTS_H
#define SLUICE_ALERT_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/id.h"
#include "core/json.h"
#include "store/db.h"

struct alert_in {
    const char *event;      /* a failure event of the catalog */
    const char *connection; /* may be NULL */
    const char *entity_id;  /* may be NULL */
    const char *task_id;    /* may be NULL */
    const char *message;
    const char *details; /* compact JSON object text, or NULL */
    int64_t occurred_at; /* ms; <0: now */
};

/* Stores the alert for tenant; writes its id into id_out (may be NULL). Writer thread,
 * inside a transaction. */
enum err alert_record(struct db *db, const char *tenant, const struct alert_in *a,
                      char id_out[ID_MAX]);

/* Stores n alerts like alert_record() (ids[i] gets the id of a[i]), grouping them in memory
 * so each issue they touch is updated once. Writer thread, inside a transaction. */
enum err alerts_record_batch(struct db *db, const char *tenant, const struct alert_in *a, size_t n,
                             char (*ids)[ID_MAX]);

/* One caller's alerts for alerts_record_many(): ids[i] gets the id of alerts[i]. */
struct alert_batch {
    const char *tenant;
    const struct alert_in *alerts;
    size_t n;
    char (*ids)[ID_MAX];
};
/* Stores the alerts of nb batches like alerts_record_batch(), all in a few set-based
 * statements, and matches each tenant's alerts of every batch together, so each issue they
 * touch is updated once per call (a group commit of several reports). Writer thread,
 * inside a transaction. */
enum err alerts_record_many(struct db *db, const struct alert_batch *b, size_t nb);

/* Creates a task row (kind, connection, entity_id, status) and writes its id to id_out.
 * Writer thread, inside a transaction. */
enum err task_record(struct db *db, const char *tenant, const char *kind, const char *connection,
                     const char *entity_id, const char *status, const char *details,
                     char id_out[ID_MAX]);

/* Marks the unresolved alerts of task_id resolved and closes the issues that recovered
 * (close_on_recovery). Writer thread. */
enum err alerts_resolve_task(struct db *db, const char *tenant, const char *task_id);

/* The work of failed tasks succeeded at now: the failed task task_id, or (task_id NULL)
 * every failed task of (kind, connection, entity_id), becomes succeeded and its alerts are
 * resolved. Writer thread. */
enum err tasks_recover(struct db *db, const char *tenant, const char *kind, const char *connection,
                       const char *entity_id, const char *task_id, int64_t now);

/* Resolves one alert (idempotent) and closes the issues that recovered; ERR_NOT_FOUND when
 * absent. Writer thread. */
enum err alert_resolve(struct db *db, const char *tenant, const char *alert_id);

/* Work (a connection and an entity of a tenant) whose failed tasks a success recovers. */
struct task_work {
    const char *tenant, *connection, *entity_id;
};
/* Which of w[0..n) have a failed task of kind: failed[i], with one look-up (the common
 * answer, none, costs no statement per item). */
enum err tasks_failed_any(struct db *db, const char *kind, const struct task_work *w, size_t n,
                          bool *failed);

/* A task of (kind, connection, entity_id) succeeded: resolves the open alerts of the earlier
 * tasks with those values (except_task excluded, may be NULL). Writer thread. */
enum err alerts_resolve_work(struct db *db, const char *tenant, const char *kind,
                             const char *connection, const char *entity_id,
                             const char *except_task);

/* Retention, for one tenant: deletes up to `limit` alerts recorded before `before` that are
 * not linked to an open or acknowledged issue (their links to closed issues go with them;
 * the issues keep their counts and timeline), then the finished tasks created and last
 * updated before `before` that no alert refers to any more. Counts go to *alerts and *tasks. Writer
 * thread. */
enum err alerts_purge(struct db *db, const char *tenant, int64_t before, int limit, int64_t *alerts,
                      int64_t *tasks);

/* Registers the alerting metrics (main thread, before the HTTP server starts). */
void alerts_register_metrics(void);

/* --- rendering (any thread, on the connection given) ------------------------------- */

/* The columns alert_json_row reads, for "SELECT " ALERT_JSON_COLS " FROM alerts a ...". */
#define ALERT_JSON_COLS                                                                            \
    "a.id, a.event, a.category, a.connection, a.entity_id, a.task_id, a.message, a.details, "      \
    "a.occurred_at, a.created_at, a.resolved_at"
/* Renders the current row of such a query, without issue ids (caller decrefs). */
json_t *alert_json_row(struct db_stmt *st);
/* Adds "issue_ids" to a rendered alert (read from db); on a storage error returns it and
 * adds nothing. */
enum err alert_json_issue_ids(struct db *db, const char *tenant, json_t *alert);

#endif
