/* Fuzz target: the router and authentication: any method and path (with placeholders for the
 * fixtures' ids), with the key data[0] picks (tenant fz with every permission, the publish-only
 * key, another tenant's key, the admin token, none), no body. Through the in-process server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_server();
    if (size < 2)
        return 0;
    const char *tokens[] = {"$KEY", "$PUB", "$OTHER", "$ADMIN", NULL};
    const char *token = tokens[data[0] % 5];
    size_t ex_len;
    char *ex = fz_expand((const char *)data + 1, size - 1, &ex_len);
    /* "METHOD PATH": the method is a token of letters (what HTTP allows), the path starts with
     * '/', and bytes a request line cannot carry are percent-encoded. */
    char method[16];
    size_t m = 0, i = 0;
    while (i < ex_len && ex[i] != ' ' && m < sizeof method - 1) {
        char c = ex[i++];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
            method[m++] = c;
    }
    method[m] = '\0';
    if (!m)
        snprintf(method, sizeof method, "GET");
    while (i < ex_len && ex[i] == ' ')
        i++;
    char *path = malloc(3 * (ex_len - i) + 2);
    size_t plen = 0;
    if (i >= ex_len || ex[i] != '/')
        path[plen++] = '/';
    for (; i < ex_len; i++) {
        unsigned char c = (unsigned char)ex[i];
        if (c <= 0x20 || c >= 0x7f || c == '#')
            plen += (size_t)snprintf(path + plen, 4, "%%%02X", c);
        else
            path[plen++] = (char)c;
    }
    path[plen] = '\0';
    size_t tlen = 0;
    char *tok = token ? fz_expand(token, strlen(token), &tlen) : NULL;
    struct fz_resp r;
    char what[600];
    snprintf(what, sizeof what, "%s %.500s", method, path);
    /* HEAD answers carry no body: nothing to parse after the head. */
    if (!strcmp(method, "HEAD")) {
        free(tok);
        free(path);
        free(ex);
        return 0;
    }
    if (!fz_request(method, path, tok, NULL, 0, &r)) {
        fprintf(stderr, "fuzz: %s: no complete answer\n", what);
        abort();
    }
    /* 503: a test action refused while too many are in progress, the only one allowed. */
    fz_check(&r, strstr(path, "/test") != NULL, what);
    fz_resp_free(&r);
    free(tok);
    free(path);
    free(ex);
    return 0;
}
