/* The route table: every endpoint, its authentication and permission, and for the GET
 * lists the spec the one list helper (api_list, list.c) serves them from. Read-only. */
#include "api/api.h"

#include "api/list.h"
#include "store/store.h"

static const struct config *g_cfg;

void api_init(const struct config *cfg)
{
    g_cfg = cfg;
    list_cursor_key(store_master_key());
    api_events_register_metrics();
}

const struct config *api_config(void)
{
    return g_cfg;
}

/* Routes that are not lists leave .list out (NULL): that is the point of the field. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

const struct route api_routes[] = {
    {"GET", "/healthz", AUTH_NONE, 0, api_healthz},
    {"GET", "/readyz", AUTH_NONE, 0, api_readyz},
    {"GET", "/metrics", AUTH_NONE, 0, api_metrics},
    {"GET", "/", AUTH_NONE, 0, api_console},
    {"GET", "/ui/{}", AUTH_NONE, 0, api_console_asset},
    {"GET", "/ui/{}/{}", AUTH_NONE, 0, api_console_asset},
    {"GET", "/unsubscribe/{}", AUTH_NONE, 0, api_unsubscribe_page},
    {"POST", "/unsubscribe/{}", AUTH_NONE, 0, api_unsubscribe},

    {"POST", "/v1/admin/tenants", AUTH_ADMIN, 0, api_tenants_create},
    {"GET", "/v1/admin/tenants", AUTH_ADMIN, 0, api_list, &api_tenants_list_spec},
    {"POST", "/v1/admin/tenants/{}/keys", AUTH_ADMIN, 0, api_keys_create},
    {"GET", "/v1/admin/tenants/{}/keys", AUTH_ADMIN, 0, api_list, &api_keys_list_spec},
    {"DELETE", "/v1/admin/tenants/{}/keys/{}", AUTH_ADMIN, 0, api_keys_delete},
    {"GET", "/v1/admin/nodes", AUTH_ADMIN, 0, api_list, &api_nodes_list_spec},
    {"GET", "/v1/me", AUTH_ANY, 0, api_me},

    {"GET", "/v1/event-types", AUTH_KEY, 0, api_list, &api_event_types_list_spec},
    {"POST", "/v1/event-types", AUTH_KEY, PERM_TOOLS_MANAGE, api_event_types_create},
    {"POST", "/v1/events", AUTH_KEY, PERM_EVENTS_PUBLISH, api_events_publish},
    {"GET", "/v1/events", AUTH_KEY, PERM_TOOLS_VIEW, api_list, &api_events_list_spec},
    {"GET", "/v1/events/{}", AUTH_KEY, PERM_TOOLS_VIEW, api_events_get},

    {"POST", "/v1/integrations", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_create},
    {"GET", "/v1/integrations", AUTH_KEY, PERM_TOOLS_VIEW, api_list, &api_integrations_list_spec},
    {"GET", "/v1/integrations/{}", AUTH_KEY, PERM_TOOLS_VIEW, api_integrations_get},
    {"PATCH", "/v1/integrations/{}", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_patch},
    {"DELETE", "/v1/integrations/{}", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_delete},
    {"POST", "/v1/integrations/{}/pause", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_pause},
    {"POST", "/v1/integrations/{}/resume", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_resume},
    {"POST", "/v1/integrations/{}/test", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_test},
    {"GET", "/v1/integrations/{}/events", AUTH_KEY, PERM_TOOLS_VIEW, api_list,
     &api_integration_events_list_spec},
    {"GET", "/v1/integrations/{}/events/{}/attempts", AUTH_KEY, PERM_TOOLS_VIEW, api_list,
     &api_attempts_list_spec},
    {"GET", "/v1/integrations/{}/rejected-events", AUTH_KEY, PERM_TOOLS_VIEW, api_list,
     &api_rejected_list_spec},
    {"POST", "/v1/integrations/{}/redeliver", AUTH_KEY, PERM_TOOLS_MANAGE,
     api_integrations_redeliver},
    {"GET", "/v1/integrations/{}/logs", AUTH_KEY, PERM_TOOLS_VIEW, api_list, &api_logs_list_spec},

    /* alerting (api_alerts.c, api_issues.c) */
    {"POST", "/v1/alerts", AUTH_KEY, PERM_ALERTS_REPORT, api_alerts_report},
    {"GET", "/v1/alerts", AUTH_KEY, PERM_ALERTS_VIEW, api_list, &api_alerts_list_spec},
    {"GET", "/v1/alerts/{}", AUTH_KEY, PERM_ALERTS_VIEW, api_alerts_get},
    {"POST", "/v1/alerts/{}/resolve", AUTH_KEY, PERM_ALERTS_REPORT, api_alerts_resolve},
    {"POST", "/v1/tasks", AUTH_KEY, PERM_ALERTS_REPORT, api_tasks_create},
    {"GET", "/v1/tasks", AUTH_KEY, PERM_ALERTS_VIEW, api_list, &api_tasks_list_spec},
    {"GET", "/v1/tasks/{}", AUTH_KEY, PERM_ALERTS_VIEW, api_tasks_get},
    {"PATCH", "/v1/tasks/{}", AUTH_KEY, PERM_ALERTS_REPORT, api_tasks_patch},
    {"GET", "/v1/failure-types", AUTH_KEY, PERM_ALERTS_VIEW, api_list,
     &api_failure_types_list_spec},
    {"GET", "/v1/connections", AUTH_KEY, PERM_ALERTS_VIEW, api_list, &api_connections_list_spec},
    {"GET", "/v1/stats", AUTH_KEY, PERM_TOOLS_VIEW | PERM_ALERTS_VIEW, api_stats},
    {"POST", "/v1/alert-policies", AUTH_KEY, PERM_ALERTS_MANAGE, api_policies_create},
    {"GET", "/v1/alert-policies", AUTH_KEY, PERM_ALERTS_VIEW, api_list, &api_policies_list_spec},
    {"GET", "/v1/alert-policies/{}", AUTH_KEY, PERM_ALERTS_VIEW, api_policies_get},
    {"PATCH", "/v1/alert-policies/{}", AUTH_KEY, PERM_ALERTS_MANAGE, api_policies_patch},
    {"DELETE", "/v1/alert-policies/{}", AUTH_KEY, PERM_ALERTS_MANAGE, api_policies_delete},
    {"POST", "/v1/alert-policies/{}/monitored-events", AUTH_KEY, PERM_ALERTS_MANAGE,
     api_policies_append_events},
    {"POST", "/v1/notification-channels", AUTH_KEY, PERM_ALERTS_MANAGE, api_channels_create},
    {"GET", "/v1/notification-channels", AUTH_KEY, PERM_ALERTS_VIEW, api_list,
     &api_channels_list_spec},
    {"GET", "/v1/notification-channels/{}", AUTH_KEY, PERM_ALERTS_VIEW, api_channels_get},
    {"PATCH", "/v1/notification-channels/{}", AUTH_KEY, PERM_ALERTS_MANAGE, api_channels_patch},
    {"DELETE", "/v1/notification-channels/{}", AUTH_KEY, PERM_ALERTS_MANAGE, api_channels_delete},
    {"POST", "/v1/notification-channels/{}/test", AUTH_KEY, PERM_ALERTS_MANAGE, api_channels_test},
    {"GET", "/v1/issues", AUTH_KEY, PERM_ALERTS_VIEW, api_list, &api_issues_list_spec},
    {"GET", "/v1/issues/{}", AUTH_KEY, PERM_ALERTS_VIEW, api_issues_get},
    {"GET", "/v1/issues/{}/alerts", AUTH_KEY, PERM_ALERTS_VIEW, api_list,
     &api_issue_alerts_list_spec},
    {"GET", "/v1/issues/{}/timeline", AUTH_KEY, PERM_ALERTS_VIEW, api_list,
     &api_issue_timeline_list_spec},
    {"POST", "/v1/issues/{}/acknowledge", AUTH_KEY, PERM_ALERTS_MANAGE, api_issues_acknowledge},
    {"POST", "/v1/issues/{}/close", AUTH_KEY, PERM_ALERTS_MANAGE, api_issues_close},
    {"POST", "/v1/issues/{}/reopen", AUTH_KEY, PERM_ALERTS_MANAGE, api_issues_reopen},
    {"POST", "/v1/issues/{}/comments", AUTH_KEY, PERM_ALERTS_MANAGE, api_issues_comment},
    {"GET", "/v1/notifications", AUTH_KEY, PERM_ALERTS_VIEW, api_list,
     &api_notifications_list_spec},
    {NULL, NULL, AUTH_NONE, 0, NULL, NULL},
};
