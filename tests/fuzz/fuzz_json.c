/* Fuzz target: request-body JSON parsing with Sluice's limits (json_parse: depth 64,
 * duplicate keys, invalid UTF-8) and the UTF-8 scrubber. Pure functions; one thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = NULL;
    char msg[256];
    enum err rc = json_parse((const char *)data, size, &v, msg, sizeof msg);
    if (rc == ERR_OK) {
        if (!v || json_depth((const char *)data, size) > JSON_MAX_DEPTH)
            abort();
        char *again = json_dump_compact(v);
        json_t *w = NULL;
        if (json_parse(again, strlen(again), &w, msg, sizeof msg) != ERR_OK || !json_equal(v, w)) {
            fprintf(stderr, "json: what parsed does not parse again: %s (%s)\n", again, msg);
            abort();
        }
        json_decref(w);
        free(again);
        json_decref(v);
    } else if (v || strnlen(msg, sizeof msg) == sizeof msg) {
        abort();
    }
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    utf8_scrub(s);
    json_t *str = json_string(s); /* jansson refuses invalid UTF-8: scrubbed must pass */
    if (!str) {
        fprintf(stderr, "json: utf8_scrub left invalid UTF-8\n");
        abort();
    }
    json_decref(str);
    free(s);
    return 0;
}
