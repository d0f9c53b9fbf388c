/* Fuzz target: the integration validators and their targets (webhook and S3: create, PATCH of
 * each kind), redeliver, pause and resume bodies, through the in-process server. S3 probes
 * and DNS stay offline (the harness resolves numeric hosts only). */
#include "fuzz.h"

static const struct fz_route routes[] = {
    {"POST", "/v1/integrations", false},
    {"PATCH", "/v1/integrations/$INT", false},
    {"PATCH", "/v1/integrations/$S3INT", false},
    {"POST", "/v1/integrations/$INT/redeliver", false},
    {"POST", "/v1/integrations/$INT/pause", false},
    {"POST", "/v1/integrations/$INT/resume", false},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_body_target(data, size, routes, sizeof routes / sizeof routes[0]);
}
