/* Fuzz target: list cursors. The input is tried as a cursor (list_cursor_decode must refuse
 * anything the server did not sign, without crashing), and its NUL-separated parts (as long
 * as a key column's text can be: 128 bytes) as a key that must survive list_cursor_encode ->
 * list_cursor_decode unchanged and be refused for another list or tenant. Pure functions;
 * one thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/list.h"
#include "core/json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool keyed;
    if (!keyed) {
        unsigned char master[32];
        memset(master, 0x5a, sizeof master);
        list_cursor_key(master);
        keyed = true;
    }
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char *key[LIST_KEY_MAX];
    for (int n = 1; n <= LIST_KEY_MAX; n++)
        if (list_cursor_decode(s, "events", "fz", n, key) == ERR_OK)
            for (int i = 0; i < n; i++)
                free(key[i]);
    /* The round trip: up to three parts, split at NULs. Key parts are database text that
     * came in as JSON, so valid UTF-8: scrubbed here as the server's never need to be. */
    const char *parts[LIST_KEY_MAX];
    int n = 0;
    for (char *p = s; n < LIST_KEY_MAX && p <= s + size; p += strlen(p) + 1) {
        utf8_scrub(p);
        parts[n++] = p;
    }
    for (int i = 0; i < n; i++) /* no key column holds more than 128 characters */
        if (strlen(parts[i]) > 128) {
            free(s);
            return 0;
        }
    char *c = list_cursor_encode("alerts", "fz", parts, n);
    if (list_cursor_decode(c, "alerts", "fz", n, key) != ERR_OK) {
        fprintf(stderr, "cursor: our own cursor %s is refused\n", c);
        abort();
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(key[i], parts[i]) != 0)
            abort();
        free(key[i]);
    }
    if (list_cursor_decode(c, "alerts", "other", n, key) == ERR_OK ||
        list_cursor_decode(c, "tasks", "fz", n, key) == ERR_OK) {
        fprintf(stderr, "cursor: %s accepted for another tenant or list\n", c);
        abort();
    }
    free(c);
    free(s);
    return 0;
}
