/* Issues: the alert engine's grouping of alerts (one open or acknowledged issue per policy
 * and group key, enforced by a partial unique index), their lifecycle (acknowledge, close,
 * reopen, comments, auto-close, close on recovery), the timeline, and the notifications an
 * issue event queues. Every function runs on the writer thread inside a transaction. */
#ifndef SLUICE_ALERT_ISSUES_H
#define SLUICE_ALERT_ISSUES_H

#include <stddef.h>
#include <stdint.h>

#include "alert/alerts.h"
#include "core/err.h"
#include "store/db.h"

/* Matches n stored alerts (ids[i] is the id of a[i]) against the tenant's enabled policies
 * and, for each match, upserts the issue of its group key, links the alert, moves counts
 * and writes the timeline; queues the "opened" notifications. Alerts are grouped in memory
 * first, so each touched issue is updated once per call. *matched gets the number of
 * alerts that matched at least one policy. */
enum err issues_on_alerts(struct db *db, const char *tenant, const char (*ids)[ID_MAX],
                          const struct alert_in *a, size_t n, int64_t now, size_t *matched);

/* Closes an open or acknowledged issue (reason manual|auto|recovered); ERR_CONFLICT when it
 * is already closed, ERR_NOT_FOUND when absent. Queues "closed" notifications when the
 * policy asks for them. comment may be NULL. */
enum err issue_close(struct db *db, const char *tenant, const char *id, const char *reason,
                     const char *actor, const char *comment, int64_t now);
/* open -> acknowledged; ERR_CONFLICT unless open. */
enum err issue_acknowledge(struct db *db, const char *tenant, const char *id, const char *actor,
                           int64_t now);
/* closed -> open; ERR_CONFLICT unless closed or when its key has another open issue. */
enum err issue_reopen(struct db *db, const char *tenant, const char *id, const char *actor,
                      int64_t now);
/* Appends a comment; ERR_NOT_FOUND when the issue is absent. */
enum err issue_comment(struct db *db, const char *tenant, const char *id, const char *actor,
                       const char *text, int64_t now);
/* Appends a timeline entry (and ends the folding of alert_added entries). */
enum err issue_timeline_add(struct db *db, const char *tenant, const char *issue_id,
                            const char *kind, const char *actor, const char *detail, int64_t now);
/* After alert_id was resolved: closes (reason recovered) each open issue holding it whose
 * policy has close_on_recovery and whose every alert is now resolved. */
enum err issues_recovery(struct db *db, const char *tenant, const char *alert_id, int64_t now);
/* Closes (reason auto) up to a batch of issues past their auto_close_at; *closed counts. */
enum err issues_auto_close(struct db *db, int64_t now, int64_t *closed);

/* Metrics (registered once at start-up, main thread). */
void issues_register_metrics(void);

/* --- rendering (any thread, on the connection given) ------------------------------- */

/* The columns issue_json_row reads, for "SELECT " ISSUE_JSON_COLS " FROM issues ...". */
#define ISSUE_JSON_COLS                                                                            \
    "id, policy_id, title, group_json, status, alert_count, opened_at, last_alert_at, "            \
    "acknowledged_at, closed_at, close_reason, previous_issue_id"
/* Renders the current row of such a query (caller decrefs). */
json_t *issue_json_row(struct db_stmt *st);
/* Reads and renders one issue into *out (caller decrefs); ERR_NOT_FOUND when absent. */
enum err issue_json_load(struct db *db, const char *tenant, const char *id, json_t **out);

#endif
