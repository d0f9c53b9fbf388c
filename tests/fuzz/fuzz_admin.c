/* Fuzz target: the admin validators (POST /v1/admin/tenants, POST /v1/admin/tenants/{id}/keys),
 * through the in-process server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_server();
    if (size < 1)
        return 0;
    const char *path = data[0] & 1 ? "/v1/admin/tenants/fz/keys" : "/v1/admin/tenants";
    struct fz_resp r;
    if (!fz_request("POST", path, fz_admin_token, data + 1, size - 1, &r)) {
        fprintf(stderr, "fuzz: POST %s: no complete answer\n", path);
        abort();
    }
    fz_check(&r, false, path);
    fz_resp_free(&r);
    return 0;
}
