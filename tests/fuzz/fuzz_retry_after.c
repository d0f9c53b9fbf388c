/* Fuzz target: Retry-After as a header line (retry_after_header, the bytes exactly as curl
 * hands them over, not NUL-terminated) and as a value (retry_after_parse), and the delay the
 * retry schedule derives from it. Pure functions; one thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/retry.h"
#include "fuzz.h"

#define NOW_MS 1795000000000LL /* 2026-11-18 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t h = retry_after_header((const char *)data, size, NOW_MS);
    if (h < -2)
        abort();
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t v = retry_after_parse(s, NOW_MS);
    if (v < -1)
        abort();
    for (int attempts = 1; attempts <= 9; attempts += 4) {
        int64_t base = retry_base_delay(attempts);
        int64_t d = retry_next_delay(attempts, v);
        /* Never below 1 ms, never past twice the base delay (nor its +20 % jitter). */
        int64_t most = 2 * base > base * 12 / 10 + 1 ? 2 * base : base * 12 / 10 + 1;
        if (d < 1 || d > most) {
            fprintf(stderr, "retry: attempts %d, Retry-After %lld ms -> delay %lld ms\n", attempts,
                    (long long)v, (long long)d);
            abort();
        }
    }
    free(s);
    return 0;
}
