/* Fuzz target: RFC 3339 timestamps (time_parse) and durations (duration_parse), with their
 * round trips: what parses formats back to the same value. Pure functions; one thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "fuzz.h"

/* Year 10000, where a four-digit year ends. */
#define YEAR_10000_MS 253402300800000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t ms = 0;
    if (time_parse(s, &ms) == ERR_OK && ms >= 0 && ms < YEAR_10000_MS) {
        char out[TIME_RFC3339_LEN], compact[20];
        time_format(ms, out);
        time_format_compact(ms, compact);
        int64_t back = -1;
        if (time_parse(out, &back) != ERR_OK || back != ms) {
            fprintf(stderr, "time: \"%s\" -> %lld -> \"%s\" -> %lld\n", s, (long long)ms, out,
                    (long long)back);
            abort();
        }
    }
    if (duration_parse(s, &ms) == ERR_OK) {
        char out[64];
        duration_format(ms, out, sizeof out);
        int64_t back = -1;
        if (ms < 0 || duration_parse(out, &back) != ERR_OK || back != ms) {
            fprintf(stderr, "duration: \"%s\" -> %lld -> \"%s\" -> %lld\n", s, (long long)ms, out,
                    (long long)back);
            abort();
        }
    }
    free(s);
    return 0;
}
