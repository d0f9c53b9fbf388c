/* Fuzz target: the notification-channel validator (create and PATCH), through the in-process
 * server. */
#include "fuzz.h"

static const struct fz_route routes[] = {
    {"POST", "/v1/notification-channels", false},
    {"PATCH", "/v1/notification-channels/$CHN", false},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_body_target(data, size, routes, sizeof routes / sizeof routes[0]);
}
