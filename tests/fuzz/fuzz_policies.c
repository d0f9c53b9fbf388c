/* Fuzz target: the alert-policy validator (create, PATCH, monitored-events append), through
 * the in-process server. */
#include "fuzz.h"

static const struct fz_route routes[] = {
    {"POST", "/v1/alert-policies", false},
    {"PATCH", "/v1/alert-policies/$POL", false},
    {"POST", "/v1/alert-policies/$POL/monitored-events", false},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_body_target(data, size, routes, sizeof routes / sizeof routes[0]);
}
