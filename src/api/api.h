/* HTTP handlers, one file per resource, and the route table (routes.c). Handlers run on
 * HTTP threads (see http/http.h); writes go through http_defer(). */
#ifndef SLUICE_API_API_H
#define SLUICE_API_API_H

#include "core/config.h"
#include "http/http.h"

/* The route table, terminated by an entry whose method is NULL. */
extern const struct route api_routes[];

/* The lists, each served by api_list() (list.h) from its spec. */
struct list_spec;
extern const struct list_spec api_tenants_list_spec, api_keys_list_spec, api_nodes_list_spec;
extern const struct list_spec api_event_types_list_spec, api_events_list_spec;
extern const struct list_spec api_integrations_list_spec, api_integration_events_list_spec,
    api_attempts_list_spec, api_rejected_list_spec, api_logs_list_spec;
extern const struct list_spec api_alerts_list_spec, api_tasks_list_spec,
    api_failure_types_list_spec, api_connections_list_spec;
extern const struct list_spec api_policies_list_spec, api_channels_list_spec, api_issues_list_spec,
    api_issue_alerts_list_spec, api_issue_timeline_list_spec, api_notifications_list_spec;

/* Called once at start-up with the configuration (read-only afterwards). */
void api_init(const struct config *cfg);
const struct config *api_config(void);

/* api_health.c */
void api_healthz(struct http_req *req);
void api_readyz(struct http_req *req);
void api_metrics(struct http_req *req);

/* api_console.c: the console's files and the unsubscribe pages of notification mails */
void api_console(struct http_req *req);
void api_console_asset(struct http_req *req);
void api_unsubscribe_page(struct http_req *req);
void api_unsubscribe(struct http_req *req);

/* api_admin.c */
void api_tenants_create(struct http_req *req);
void api_keys_create(struct http_req *req);
void api_keys_delete(struct http_req *req);
void api_me(struct http_req *req);

/* api_events.c */
void api_events_register_metrics(void);
void api_event_types_create(struct http_req *req);
void api_events_publish(struct http_req *req);
void api_events_get(struct http_req *req);

/* api_integrations.c */
void api_integrations_create(struct http_req *req);
void api_integrations_get(struct http_req *req);
void api_integrations_patch(struct http_req *req);
void api_integrations_delete(struct http_req *req);
void api_integrations_pause(struct http_req *req);
void api_integrations_resume(struct http_req *req);
void api_integrations_test(struct http_req *req);
void api_integrations_redeliver(struct http_req *req);

/* api_alerts.c, api_issues.c (alerting) */
void api_alerts_report(struct http_req *req);
void api_alerts_get(struct http_req *req);
void api_alerts_resolve(struct http_req *req);
void api_tasks_create(struct http_req *req);
void api_tasks_get(struct http_req *req);
void api_tasks_patch(struct http_req *req);
void api_stats(struct http_req *req);
void api_policies_create(struct http_req *req);
void api_policies_get(struct http_req *req);
void api_policies_patch(struct http_req *req);
void api_policies_delete(struct http_req *req);
void api_policies_append_events(struct http_req *req);
void api_channels_create(struct http_req *req);
void api_channels_get(struct http_req *req);
void api_channels_patch(struct http_req *req);
void api_channels_delete(struct http_req *req);
void api_channels_test(struct http_req *req);
void api_issues_get(struct http_req *req);
void api_issues_acknowledge(struct http_req *req);
void api_issues_close(struct http_req *req);
void api_issues_reopen(struct http_req *req);
void api_issues_comment(struct http_req *req);

#endif
