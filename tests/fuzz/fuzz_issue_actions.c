/* Fuzz target: the issue action bodies (acknowledge, close, reopen, comments), through the
 * in-process server. */
#include "fuzz.h"

static const struct fz_route routes[] = {
    {"POST", "/v1/issues/$ISS/acknowledge", false},
    {"POST", "/v1/issues/$ISS/close", false},
    {"POST", "/v1/issues/$ISS/reopen", false},
    {"POST", "/v1/issues/$ISS/comments", false},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_body_target(data, size, routes, sizeof routes / sizeof routes[0]);
}
