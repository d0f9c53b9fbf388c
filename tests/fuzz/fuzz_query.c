/* Fuzz target: query strings of every list (limit, cursor, filters, from/to) and of
 * /v1/stats, through the in-process server. data[0] picks the route (every GET route with a
 * list spec, in route-table order, then /v1/stats), data[1] the key (tenant fz, another
 * tenant, the admin token); the rest is the query string, sent as is except for bytes that
 * cannot appear in a request line (percent-encoded). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "fuzz.h"

/* The fixture a path parameter names, from the segment before it. */
static const char *param_for(const char *segment, size_t n)
{
    static const struct {
        const char *segment, *value;
    } map[] = {
        {"integrations", "$INT"}, {"events", "$EVT"},         {"issues", "$ISS"},
        {"tenants", "fz"},        {"alert-policies", "$POL"}, {"notification-channels", "$CHN"},
        {"alerts", "$ALR"},       {"tasks", "$TSK"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i].segment) == n && !strncmp(map[i].segment, segment, n))
            return map[i].value;
    return "x";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fz_fixtures *f = fz_server();
    if (size < 2)
        return 0;
    const struct route *lists[64];
    int n = 0;
    for (const struct route *r = api_routes; r->method && n < 63; r++)
        if (r->list)
            lists[n++] = r;
    const struct route *rt = lists[data[0] % (n + 1) == n ? 0 : data[0] % (n + 1)];
    bool stats = data[0] % (n + 1) == (unsigned)n;
    /* The path, its {} filled with fixtures. */
    char path[512] = "";
    const char *pat = stats ? "/v1/stats" : rt->pattern;
    size_t len = 0;
    for (const char *p = pat; *p && len < 400;) {
        if (p[0] == '{' && p[1] == '}') {
            const char *seg_end = p - 1, *seg = seg_end;
            while (seg > pat && seg[-1] != '/')
                seg--;
            len += (size_t)snprintf(path + len, sizeof path - len, "%s",
                                    param_for(seg, (size_t)(seg_end - seg)));
            p += 2;
        } else {
            path[len++] = *p++;
        }
    }
    path[len] = '\0';
    const char *tokens[] = {f->key, f->other, fz_admin_token};
    const char *token = tokens[data[1] % 3];
    /* The query: bytes a request line cannot carry are percent-encoded, the rest kept. */
    size_t qlen = 0;
    char *q = malloc(3 * (size - 2) + 1);
    for (size_t i = 2; i < size; i++) {
        unsigned char c = data[i];
        if (c <= 0x20 || c >= 0x7f || c == '#') {
            qlen += (size_t)snprintf(q + qlen, 4, "%%%02X", c);
        } else {
            q[qlen++] = (char)c;
        }
    }
    q[qlen] = '\0';
    size_t elen;
    char *expanded = fz_expand(path, len, &elen);
    char *target = malloc(elen + qlen + 2);
    snprintf(target, elen + qlen + 2, "%s?%s", expanded, q);
    struct fz_resp r;
    if (!fz_request("GET", target, token, NULL, 0, &r)) {
        fprintf(stderr, "fuzz: GET %s: no complete answer\n", target);
        abort();
    }
    fz_check(&r, false, target);
    fz_resp_free(&r);
    free(target);
    free(expanded);
    free(q);
    return 0;
}
