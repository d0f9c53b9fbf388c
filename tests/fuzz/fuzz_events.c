/* Fuzz target: the publish validator (POST /v1/events, one event or {"events": [...]}) and
 * the event-type validator (POST /v1/event-types), through the in-process server. */
#include "fuzz.h"

static const struct fz_route routes[] = {
    {"POST", "/v1/events", false},
    {"POST", "/v1/event-types", false},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_body_target(data, size, routes, sizeof routes / sizeof routes[0]);
}
