/* Fuzz target: the alert and task validators (POST /v1/alerts, one alert or {"alerts": [...]};
 * POST /v1/tasks; PATCH /v1/tasks/{id}; POST /v1/alerts/{id}/resolve), through the
 * in-process server. */
#include "fuzz.h"

static const struct fz_route routes[] = {
    {"POST", "/v1/alerts", false},
    {"POST", "/v1/tasks", false},
    {"PATCH", "/v1/tasks/$TSK", false},
    {"POST", "/v1/alerts/$ALR/resolve", false},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_body_target(data, size, routes, sizeof routes / sizeof routes[0]);
}
