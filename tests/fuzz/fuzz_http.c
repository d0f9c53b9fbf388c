/* Fuzz target: the HTTP layer as a whole. The input (placeholders expanded: $KEY, $ADMIN,
 * $INT...) is written raw to a new loopback connection of the in-process server, which is
 * then half-closed; every answer that comes back is parsed and checked (fz_check). Pipelined
 * requests, chunked bodies, broken request lines and headers all reach libmicrohttpd and,
 * past it, the router, authentication and handlers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"

/* How many whole requests the input holds before it ends or ends inside one (the server then
 * waits for the rest): a rough reading of the request framing, only used to decide how many
 * answers to wait for. */
static int complete(const char *s, size_t n)
{
    size_t pos = 0;
    int k = 0;
    while (pos < n) {
        while (pos < n && (s[pos] == '\r' || s[pos] == '\n'))
            pos++;
        if (pos >= n)
            return k;
        const char *end = memmem(s + pos, n - pos, "\r\n\r\n", 4);
        const char *lf = memmem(s + pos, n - pos, "\n\n", 2);
        size_t head_end;
        if (end && (!lf || end < lf))
            head_end = (size_t)(end - s) + 4;
        else if (lf)
            head_end = (size_t)(lf - s) + 2;
        else
            return k;
        long clen = 0;
        bool chunked = false;
        for (size_t i = pos; i + 16 < head_end; i++) {
            if ((i == pos || s[i - 1] == '\n') && !strncasecmp(s + i, "Content-Length:", 15))
                clen = strtol(s + i + 15, NULL, 10);
            if ((i == pos || s[i - 1] == '\n') && !strncasecmp(s + i, "Transfer-Encoding:", 18))
                chunked = memmem(s + i, head_end - i, "chunked", 7) != NULL;
        }
        pos = head_end;
        if (chunked) {
            for (;;) {
                const char *eol = memmem(s + pos, n - pos, "\n", 1);
                if (!eol)
                    return k;
                long sz = strtol(s + pos, NULL, 16);
                pos = (size_t)(eol - s) + 1;
                if (sz <= 0) {
                    const char *trail = memmem(s + pos, n - pos, "\n", 1);
                    if (!trail)
                        return k;
                    pos = (size_t)(trail - s) + 1;
                    break;
                }
                if (pos + (size_t)sz + 2 > n)
                    return k;
                pos += (size_t)sz + 2;
            }
        } else {
            if (clen < 0 || pos + (size_t)clen > n)
                return k;
            pos += (size_t)clen;
        }
        k++;
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_server();
    size_t len;
    char *req = fz_expand((const char *)data, size, &len);
    /* After a HEAD the answers' framing cannot be told apart: check the first only. */
    bool head = memmem(req, len, "HEAD", 4) != NULL;
    size_t n;
    char *out = fz_raw_bounded(req, len, head ? -1 : complete(req, len), &n);
    size_t pos = 0;
    while (pos < n) {
        struct fz_resp r;
        size_t used = fz_parse(out + pos, n - pos, &r);
        if (!used)
            break; /* cut short (the connection was reset) */
        fz_check(&r, false, "raw request");
        fz_resp_free(&r);
        pos += used;
        if (head)
            break;
    }
    free(out);
    free(req);
    return 0;
}
