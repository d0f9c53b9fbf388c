/* The route table: every endpoint, its authentication and permission. Read-only. */
#include "api/api.h"

static const struct config *g_cfg;

void api_init(const struct config *cfg)
{
    g_cfg = cfg;
    api_events_register_metrics();
}

const struct config *api_config(void)
{
    return g_cfg;
}

bool api_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return n >= 1 && n <= 64;
}

const struct route api_routes[] = {
    {"GET", "/healthz", AUTH_NONE, 0, api_healthz},
    {"GET", "/readyz", AUTH_NONE, 0, api_readyz},
    {"GET", "/metrics", AUTH_NONE, 0, api_metrics},
    {"GET", "/", AUTH_NONE, 0, api_console},

    {"POST", "/v1/admin/tenants", AUTH_ADMIN, 0, api_tenants_create},
    {"GET", "/v1/admin/tenants", AUTH_ADMIN, 0, api_tenants_list},
    {"POST", "/v1/admin/tenants/{}/keys", AUTH_ADMIN, 0, api_keys_create},
    {"GET", "/v1/admin/tenants/{}/keys", AUTH_ADMIN, 0, api_keys_list},
    {"DELETE", "/v1/admin/tenants/{}/keys/{}", AUTH_ADMIN, 0, api_keys_delete},
    {"GET", "/v1/me", AUTH_ANY, 0, api_me},

    {"GET", "/v1/event-types", AUTH_KEY, 0, api_event_types_list},
    {"POST", "/v1/event-types", AUTH_KEY, PERM_TOOLS_MANAGE, api_event_types_create},
    {"POST", "/v1/events", AUTH_KEY, PERM_EVENTS_PUBLISH, api_events_publish},
    {"GET", "/v1/events", AUTH_KEY, PERM_TOOLS_VIEW, api_events_list},
    {"GET", "/v1/events/{}", AUTH_KEY, PERM_TOOLS_VIEW, api_events_get},

    {"POST", "/v1/integrations", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_create},
    {"GET", "/v1/integrations", AUTH_KEY, PERM_TOOLS_VIEW, api_integrations_list},
    {"GET", "/v1/integrations/{}", AUTH_KEY, PERM_TOOLS_VIEW, api_integrations_get},
    {"PATCH", "/v1/integrations/{}", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_patch},
    {"DELETE", "/v1/integrations/{}", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_delete},
    {"POST", "/v1/integrations/{}/pause", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_pause},
    {"POST", "/v1/integrations/{}/resume", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_resume},
    {"POST", "/v1/integrations/{}/test", AUTH_KEY, PERM_TOOLS_MANAGE, api_integrations_test},
    {"GET", "/v1/integrations/{}/events", AUTH_KEY, PERM_TOOLS_VIEW, api_integrations_events},
    {"GET", "/v1/integrations/{}/events/{}/attempts", AUTH_KEY, PERM_TOOLS_VIEW,
     api_integrations_attempts},
    {"GET", "/v1/integrations/{}/rejected-events", AUTH_KEY, PERM_TOOLS_VIEW,
     api_integrations_rejected},
    {"POST", "/v1/integrations/{}/redeliver", AUTH_KEY, PERM_TOOLS_MANAGE,
     api_integrations_redeliver},
    {"GET", "/v1/integrations/{}/logs", AUTH_KEY, PERM_TOOLS_VIEW, api_integrations_logs},
    {NULL, NULL, AUTH_NONE, 0, NULL},
};
