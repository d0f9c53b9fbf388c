/* Helpers shared by the alerting API files (api_alerts.c, api_issues.c). HTTP threads, or
 * the writer when a job renders its answer with the writer's connection. */
#ifndef SLUICE_API_API_ALERTING_H
#define SLUICE_API_API_ALERTING_H

#include "http/http.h"

/* Renders the current row of an alert query (columns of ALERT_COLS), without issue ids. */
json_t *alerting_alert_row(struct db_stmt *st);
/* Adds "issue_ids" to a rendered alert (read from db); the storage error otherwise. */
enum err alerting_alert_issues(struct db *db, const char *tenant, json_t *alert);
/* Renders one issue; ERR_NOT_FOUND when absent. */
enum err alerting_issue_json(struct db *db, const char *tenant, const char *id, json_t **out);

#endif
