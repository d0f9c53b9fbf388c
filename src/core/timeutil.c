/* Time helpers. Any thread; the time scale is set once at start-up before threads run. */
#include "core/timeutil.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double g_scale = 1.0;

int64_t time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_mono_ms(void)
{
    return time_mono_ns() / 1000000;
}

int64_t time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void split(int64_t ms, struct tm *tm, int *millis)
{
    int64_t sec = ms / 1000;
    int m = (int)(ms % 1000);
    if (m < 0) {
        m += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    gmtime_r(&t, tm);
    *millis = m;
}

void time_format(int64_t ms, char out[TIME_RFC3339_LEN])
{
    struct tm tm;
    int millis;
    split(ms, &tm, &millis);
    char tmp[80];
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    memcpy(out, tmp, TIME_RFC3339_LEN - 1);
    out[TIME_RFC3339_LEN - 1] = '\0';
}

void time_format_compact(int64_t ms, char out[20])
{
    struct tm tm;
    int millis;
    split(ms, &tm, &millis);
    char tmp[80];
    snprintf(tmp, sizeof tmp, "%04d%02d%02dT%02d%02d%02d%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    memcpy(out, tmp, 19);
    out[19] = '\0';
}

static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    return v;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

enum err time_parse(const char *s, int64_t *ms)
{
    const char *p = s;
    int y = digits(&p, 4);
    if (y < 0 || *p++ != '-')
        return ERR_INVALID;
    int mo = digits(&p, 2);
    if (mo < 1 || mo > 12 || *p++ != '-')
        return ERR_INVALID;
    int d = digits(&p, 2);
    if (d < 1 || d > days_in_month(y, mo) || (*p != 'T' && *p != 't' && *p != ' '))
        return ERR_INVALID;
    p++;
    int h = digits(&p, 2);
    if (h < 0 || h > 23 || *p++ != ':')
        return ERR_INVALID;
    int mi = digits(&p, 2);
    if (mi < 0 || mi > 59 || *p++ != ':')
        return ERR_INVALID;
    int se = digits(&p, 2);
    if (se < 0 || se > 60)
        return ERR_INVALID;
    int frac = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n < 3)
                frac = frac * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0)
            return ERR_INVALID;
        for (; n < 3; n++)
            frac *= 10;
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh = digits(&p, 2);
        if (oh < 0 || oh > 23 || *p++ != ':')
            return ERR_INVALID;
        int om = digits(&p, 2);
        if (om < 0 || om > 59)
            return ERR_INVALID;
        offset_min = sign * (oh * 60 + om);
    } else {
        return ERR_INVALID;
    }
    if (*p)
        return ERR_INVALID;
    if (se == 60)
        se = 59; /* leap second: clamp */
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    int64_t sec = (int64_t)timegm(&tm) - (int64_t)offset_min * 60;
    *ms = sec * 1000 + frac;
    return ERR_OK;
}

#define DURATION_MAX (3650LL * 86400000) /* ten years, in ms */

enum err duration_parse(const char *s, int64_t *ms)
{
    const char *p = s;
    int64_t total = 0;
    if (!*p)
        return ERR_INVALID;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return ERR_INVALID;
        int64_t v = 0;
        /* Any number up to the longest duration: duration_format() writes "191980850222ms"
         * for a duration that is not whole seconds, and that must parse back. */
        while (isdigit((unsigned char)*p)) {
            v = v * 10 + (*p - '0');
            if (v > DURATION_MAX)
                return ERR_INVALID;
            p++;
        }
        int64_t unit;
        if (p[0] == 'm' && p[1] == 's') {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000;
            p++;
        } else if (*p == 'm') {
            unit = 60000;
            p++;
        } else if (*p == 'h') {
            unit = 3600000;
            p++;
        } else if (*p == 'd') {
            unit = 86400000;
            p++;
        } else {
            return ERR_INVALID;
        }
        if (v > DURATION_MAX / unit)
            return ERR_INVALID;
        total += v * unit;
        if (total > DURATION_MAX)
            return ERR_INVALID;
    }
    *ms = total;
    return ERR_OK;
}

void duration_format(int64_t ms, char *out, size_t outlen)
{
    if (ms > 0 && ms % 86400000 == 0)
        snprintf(out, outlen, "%lldd", (long long)(ms / 86400000));
    else if (ms > 0 && ms % 3600000 == 0)
        snprintf(out, outlen, "%lldh", (long long)(ms / 3600000));
    else if (ms > 0 && ms % 60000 == 0)
        snprintf(out, outlen, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(out, outlen, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, outlen, "%lldms", (long long)ms);
}

void time_set_scale(double scale)
{
    if (scale > 0)
        g_scale = scale;
}

double time_scale(void)
{
    return g_scale;
}

int64_t time_scaled(int64_t d)
{
    if (d <= 0)
        return d;
    int64_t r = (int64_t)((double)d / g_scale);
    return r < 1 ? 1 : r;
}
