/* Tests for core/timeutil: RFC 3339 formatting and parsing, durations, the time scale. */
#include <stdint.h>

#include "core/timeutil.h"
#include "unit.h"

/* Parses s, expecting ERR_OK and the time want. */
static void parses_to(const char *s, int64_t want, const char *file, int line)
{
    int64_t ms = -12345;
    enum err rc = time_parse(s, &ms);
    if (rc != ERR_OK)
        unit_fail(file, line, "time_parse(\"%s\") = %s, want ok", s, err_name(rc));
    else if (ms != want)
        unit_fail(file, line, "time_parse(\"%s\"): %lld != %lld", s, (long long)ms,
                  (long long)want);
}
#define PARSES_TO(s, want) parses_to((s), (want), __FILE__, __LINE__)

static void rejects(const char *s, const char *file, int line)
{
    int64_t ms = 0;
    enum err rc = time_parse(s, &ms);
    if (rc != ERR_INVALID)
        unit_fail(file, line, "time_parse(\"%s\") = %s (%lld), want invalid", s, err_name(rc),
                  (long long)ms);
}
#define REJECTS(s) rejects((s), __FILE__, __LINE__)

static void test_time_format_known(void)
{
    char out[TIME_RFC3339_LEN];
    time_format(0, out);
    ASSERT_EQ_STR(out, "1970-01-01T00:00:00.000Z");
    time_format(1795342530123, out);
    ASSERT_EQ_STR(out, "2026-11-22T10:15:30.123Z");
    time_format(946684799999, out);
    ASSERT_EQ_STR(out, "1999-12-31T23:59:59.999Z");
    time_format(1709208000000, out);
    ASSERT_EQ_STR(out, "2024-02-29T12:00:00.000Z");
    time_format(-1, out); /* before the epoch: the millisecond part stays positive */
    ASSERT_EQ_STR(out, "1969-12-31T23:59:59.999Z");
}

static void test_time_format_compact(void)
{
    char out[20];
    time_format_compact(1795342530123, out);
    ASSERT_EQ_STR(out, "20261122T101530123Z");
}

static void test_time_round_trip(void)
{
    static const int64_t times[] = {0,
                                    1,
                                    999,
                                    1000,
                                    86399999,
                                    951782400000,
                                    1709208000000,
                                    1795342530123,
                                    4102444799999,
                                    253402300799999};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char s[TIME_RFC3339_LEN];
        time_format(times[i], s);
        int64_t back = -1;
        ASSERT_EQ_ERR(time_parse(s, &back), ERR_OK);
        ASSERT_EQ_INT(back, times[i]);
    }
}

static void test_time_parse_offsets(void)
{
    PARSES_TO("2026-11-22T10:15:30Z", 1795342530000);
    PARSES_TO("2026-11-22T12:15:30+02:00", 1795342530000);
    PARSES_TO("2026-11-22T05:00:30-05:15", 1795342530000);
    PARSES_TO("2026-11-22T10:15:30+00:00", 1795342530000);
    PARSES_TO("2026-11-22T10:15:30-00:00", 1795342530000);
    PARSES_TO("2026-11-23T00:15:30+14:00", 1795342530000);
    /* an offset that crosses midnight and the year */
    PARSES_TO("2000-01-01T01:59:59.999+02:00", 946684799999);
    /* lower-case t and z are allowed by RFC 3339 */
    PARSES_TO("2026-11-22t10:15:30z", 1795342530000);
}

static void test_time_parse_fractions(void)
{
    PARSES_TO("2026-11-22T10:15:30.1Z", 1795342530100);
    PARSES_TO("2026-11-22T10:15:30.12Z", 1795342530120);
    PARSES_TO("2026-11-22T10:15:30.123Z", 1795342530123);
    /* digits past milliseconds are truncated, not rounded */
    PARSES_TO("2026-11-22T10:15:30.123999Z", 1795342530123);
    PARSES_TO("2026-11-22T10:15:30.123456789+01:00", 1795342530123 - 3600000);
    PARSES_TO("2024-02-29T12:00:00.000Z", 1709208000000);
    PARSES_TO("2000-02-29T00:00:00Z", 951782400000); /* 2000 is a leap year */
}

static void test_time_parse_invalid(void)
{
    REJECTS("");
    REJECTS("2026-13-01T00:00:00Z"); /* month 13 */
    REJECTS("2026-00-01T00:00:00Z");
    REJECTS("2026-02-30T00:00:00Z"); /* Feb 30 */
    REJECTS("2025-02-29T00:00:00Z"); /* not a leap year */
    REJECTS("1900-02-29T00:00:00Z"); /* centuries are not, unless divisible by 400 */
    REJECTS("2026-04-31T00:00:00Z");
    REJECTS("2026-01-00T00:00:00Z");
    REJECTS("2026-01-01T24:00:00Z");
    REJECTS("2026-01-01T23:60:00Z");
    REJECTS("2026-01-01T23:59:61Z");
    REJECTS("2026-01-01T00:00:00");       /* missing Z */
    REJECTS("2026-01-01T00:00:00.123");   /* missing Z after a fraction */
    REJECTS("2026-01-01T00:00:00.Z");     /* empty fraction */
    REJECTS("2026-01-01T00:00:00+0200");  /* offset without colon */
    REJECTS("2026-01-01T00:00:00+02");    /* truncated offset */
    REJECTS("2026-01-01T00:00:00+24:00"); /* offset hour */
    REJECTS("2026-01-01T00:00:00+02:60"); /* offset minute */
    REJECTS("2026-01-01T00:00:00Zjunk");
    REJECTS("2026-01-01");
    REJECTS("2026-1-01T00:00:00Z");
    REJECTS("26-01-01T00:00:00Z");
    REJECTS("2026-01-01X00:00:00Z");
    REJECTS("2026-01-01T00:00Z");
    REJECTS("not a time");
}

static void test_duration_parse(void)
{
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {
        {"30s", 30000},
        {"5m", 300000},
        {"24h", 86400000},
        {"7d", 604800000},
        {"1h30m", 5400000},
        {"500ms", 500},
        {"0s", 0},
        {"1m30s", 90000},
        {"1d2h3m4s5ms", 93784005},
        {"1ms", 1},
        {"3650d", 3650LL * 86400000},
        /* what duration_format writes for long durations that are not whole seconds */
        {"191980850222ms", 191980850222LL},
        {"315360000000ms", 3650LL * 86400000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        enum err rc = duration_parse(ok[i].s, &ms);
        if (rc != ERR_OK || ms != ok[i].ms)
            unit_fail(__FILE__, __LINE__, "duration_parse(\"%s\") = %s, %lld; want ok, %lld",
                      ok[i].s, err_name(rc), (long long)ms, (long long)ok[i].ms);
    }
}

static void test_duration_parse_invalid(void)
{
    static const char *const bad[] = {
        "",
        "s",
        "30",
        "30x",
        "-5s",
        "5 s",
        " 5s",
        "5s ",
        "1.5h",
        "h1",
        "5S",
        "1h30",
        "99999999999999999999s",
        "3651d",
        "315360000001ms",
        "315360001s",
        "87601h",
        "3650d1ms",
        "9223372036854775807ms",
        "1w",
        "ms",
        "+5s",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 0;
        enum err rc = duration_parse(bad[i], &ms);
        if (rc != ERR_INVALID)
            unit_fail(__FILE__, __LINE__, "duration_parse(\"%s\") = %s (%lld), want invalid",
                      bad[i], err_name(rc), (long long)ms);
    }
}

static void test_duration_format(void)
{
    static const struct {
        int64_t ms;
        const char *s;
    } cases[] = {
        {86400000, "1d"}, {7 * 86400000LL, "7d"},
        {3600000, "1h"},  {90000000, "25h"},
        {5400000, "90m"}, {60000, "1m"},
        {90000, "90s"},   {1000, "1s"},
        {1500, "1500ms"}, {1, "1ms"},
        {0, "0s"},        {191980850222, "191980850222ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        duration_format(cases[i].ms, out, sizeof out);
        ASSERT_EQ_STR(out, cases[i].s);
        /* whatever it prints parses back to the same duration */
        int64_t back = -1;
        ASSERT_EQ_ERR(duration_parse(out, &back), ERR_OK);
        ASSERT_EQ_INT(back, cases[i].ms);
    }
    char small[4];
    duration_format(1500, small, sizeof small); /* truncated, still terminated */
    ASSERT_EQ_STR(small, "150");
}

static void test_time_scaled(void)
{
    ASSERT_TRUE(time_scale() == 1.0);
    ASSERT_EQ_INT(time_scaled(60000), 60000);
    time_set_scale(60);
    ASSERT_TRUE(time_scale() == 60.0);
    ASSERT_EQ_INT(time_scaled(60000), 1000);
    ASSERT_EQ_INT(time_scaled(86400000), 1440000);
    ASSERT_EQ_INT(time_scaled(1), 1); /* at least 1 ms when d > 0 */
    ASSERT_EQ_INT(time_scaled(0), 0);
    time_set_scale(0); /* ignored: the scale must be > 0 */
    ASSERT_TRUE(time_scale() == 60.0);
    time_set_scale(-2);
    ASSERT_TRUE(time_scale() == 60.0);
    time_set_scale(0.5);
    ASSERT_EQ_INT(time_scaled(1000), 2000);
    time_set_scale(1);
    ASSERT_EQ_INT(time_scaled(1234), 1234);
}

static void test_clocks(void)
{
    int64_t now = time_now_ms();
    ASSERT_TRUE(now > 1700000000000); /* after 2023 */
    int64_t a = time_mono_ns(), b = time_mono_ns();
    ASSERT_TRUE(b >= a);
    ASSERT_TRUE(time_mono_ms() >= a / 1000000);
}

void unit_timeutil(void)
{
    RUN(test_time_format_known);
    RUN(test_time_format_compact);
    RUN(test_time_round_trip);
    RUN(test_time_parse_offsets);
    RUN(test_time_parse_fractions);
    RUN(test_time_parse_invalid);
    RUN(test_duration_parse);
    RUN(test_duration_parse_invalid);
    RUN(test_duration_format);
    RUN(test_time_scaled);
    RUN(test_clocks);
}
