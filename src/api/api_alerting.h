/* Helpers shared by the alerting API files (api_alerts.c, api_issues.c). HTTP threads, or
 * the writer when a job renders its answer with the writer's connection. */
#ifndef SLUICE_API_API_ALERTING_H
#define SLUICE_API_API_ALERTING_H

#include "http/http.h"

/* Reads ?cursor= (an id with prefix); answers 400 and returns false when invalid. */
bool alerting_cursor(struct http_req *req, const char *prefix, const char **cursor);
/* Answers {"data", "next_cursor"} from up to limit+1 rows of arr (stolen), or the error. */
void alerting_list_answer(struct http_req *req, json_t *arr, int limit, enum err rc);
/* Renders the current row of an alert query (columns of ALERT_COLS) with its issue ids. */
json_t *alerting_alert_json(struct db *db, const char *tenant, struct db_stmt *st);
/* Renders one issue; ERR_NOT_FOUND when absent. */
enum err alerting_issue_json(struct db *db, const char *tenant, const char *id, json_t **out);

#endif
