/* Retry schedule and Retry-After parsing. Pure; any thread. */
#include "deliver/retry.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/crypto.h"
#include "core/timeutil.h"

static const int64_t schedule[] = {5000, 30000, 120000, 300000, 900000, 1800000, 3600000};
#define TWO_HOURS 7200000
#define DAY 86400000

int64_t retry_base_delay(int attempts)
{
    if (attempts < 1)
        attempts = 1;
    size_t n = sizeof schedule / sizeof schedule[0];
    return (size_t)attempts <= n ? schedule[attempts - 1] : TWO_HOURS;
}

int64_t retry_next_delay(int attempts, int64_t retry_after_ms)
{
    int64_t base = retry_base_delay(attempts);
    int64_t d = time_scaled(base);
    uint32_t r;
    crypto_random(&r, sizeof r);
    double jitter = 0.8 + 0.4 * ((double)r / 4294967295.0);
    d = (int64_t)((double)d * jitter);
    if (d < 1)
        d = 1;
    if (retry_after_ms >= 0) {
        int64_t ra = retry_after_ms > 2 * base ? 2 * base : retry_after_ms;
        if (ra > d)
            d = ra;
    }
    return d;
}

int64_t retry_give_up_after(void)
{
    return time_scaled(DAY);
}

int64_t retry_after_parse(const char *value, int64_t now_ms)
{
    if (!value)
        return -1;
    while (*value == ' ')
        value++;
    if (*value >= '0' && *value <= '9') {
        char *end;
        long long s = strtoll(value, &end, 10);
        while (*end == ' ')
            end++;
        if (*end || s < 0 || s > 86400LL * 7)
            return -1;
        return s * 1000;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return -1;
    int64_t at = (int64_t)timegm(&tm) * 1000;
    return at > now_ms ? at - now_ms : 0;
}

int64_t retry_after_header(const char *line, size_t n, int64_t now_ms)
{
    static const char name[] = "Retry-After:";
    size_t nl = sizeof name - 1;
    if (n <= nl || strncasecmp(line, name, nl) != 0)
        return -2;
    line += nl;
    n -= nl;
    while (n && (*line == ' ' || *line == '\t')) { /* optional whitespace, RFC 9110 */
        line++;
        n--;
    }
    char v[128];
    size_t len = n < sizeof v - 1 ? n : sizeof v - 1;
    memcpy(v, line, len);
    v[len] = '\0';
    char *e = v + strlen(v);
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return retry_after_parse(v, now_ms);
}

bool retry_status_retryable(long status)
{
    if (status == 0 || status == 408 || status == 409 || status == 425 || status == 429)
        return true;
    if (status >= 300 && status < 400)
        return true;
    return status >= 500;
}
