/* Tests for deliver/retry: the schedule, jitter bounds, Retry-After parsing and clamping,
 * which statuses are retried. */
#include <stdint.h>
#include <string.h>

#include "core/timeutil.h"
#include "deliver/retry.h"
#include "unit.h"

static void test_base_schedule(void)
{
    static const int64_t want[] = {5000,    30000,   120000,  300000, 900000,
                                   1800000, 3600000, 7200000, 7200000};
    for (int i = 0; i < (int)(sizeof want / sizeof want[0]); i++)
        ASSERT_EQ_INT(retry_base_delay(i + 1), want[i]);
    ASSERT_EQ_INT(retry_base_delay(0), 5000); /* clamped to the first step */
    ASSERT_EQ_INT(retry_base_delay(1000), 7200000);
}

static void test_jitter_within_20_percent(void)
{
    time_set_scale(1);
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t d = retry_next_delay(2, -1);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    ASSERT_TRUE(lo >= 24000 && hi <= 36000);
    ASSERT_TRUE(hi - lo > 6000); /* it does vary: 2000 draws spread over most of ±20 % */
}

static void test_scaled_and_give_up(void)
{
    time_set_scale(1000);
    int64_t d = retry_next_delay(1, -1);
    ASSERT_TRUE(d >= 4 && d <= 6);
    ASSERT_EQ_INT(retry_give_up_after(), 86400);
    time_set_scale(1);
    ASSERT_EQ_INT(retry_give_up_after(), 86400000);
}

static void test_retry_after_clamped(void)
{
    time_set_scale(1);
    /* Longer than the schedule: honoured up to twice the base delay. */
    ASSERT_EQ_INT(retry_next_delay(1, 8000), 8000);
    ASSERT_EQ_INT(retry_next_delay(1, 60000), 10000);
    /* Shorter than the schedule: the schedule wins. */
    ASSERT_TRUE(retry_next_delay(3, 1000) >= 96000);
    /* Under a time scale Retry-After stays unscaled (the consumer asked for it). */
    time_set_scale(100);
    ASSERT_EQ_INT(retry_next_delay(1, 3000), 3000);
    time_set_scale(1);
}

static void test_retry_after_parse(void)
{
    int64_t now = 1795342530000; /* 2026-11-22T10:15:30Z */
    ASSERT_EQ_INT(retry_after_parse("120", now), 120000);
    ASSERT_EQ_INT(retry_after_parse(" 0 ", now), 0);
    ASSERT_EQ_INT(retry_after_parse("Sun, 22 Nov 2026 10:16:00 GMT", now), 30000);
    ASSERT_EQ_INT(retry_after_parse("Sun, 22 Nov 2026 10:00:00 GMT", now), 0); /* past */
    ASSERT_EQ_INT(retry_after_parse(NULL, now), -1);
    ASSERT_EQ_INT(retry_after_parse("", now), -1);
    ASSERT_EQ_INT(retry_after_parse("-5", now), -1);
    ASSERT_EQ_INT(retry_after_parse("12abc", now), -1);
    ASSERT_EQ_INT(retry_after_parse("99999999999", now), -1); /* beyond a week */
    ASSERT_EQ_INT(retry_after_parse("tomorrow", now), -1);
}

static void test_retry_after_header_line(void)
{
    int64_t now = 1795342530000;
    const char *l = "Retry-After: 7\r\n";
    ASSERT_EQ_INT(retry_after_header(l, strlen(l), now), 7000);
    l = "retry-after:\t3 \r\n";
    ASSERT_EQ_INT(retry_after_header(l, strlen(l), now), 3000);
    l = "Retry-After: soon\r\n";
    ASSERT_EQ_INT(retry_after_header(l, strlen(l), now), -1);
    l = "Content-Type: text/plain\r\n";
    ASSERT_EQ_INT(retry_after_header(l, strlen(l), now), -2);
    l = "Retry-After:";
    ASSERT_EQ_INT(retry_after_header(l, strlen(l), now), -2); /* no value at all */
    /* Not NUL-terminated: only n bytes are read. */
    char raw[] = {'R', 'e', 't', 'r', 'y', '-', 'A', 'f', 't', 'e', 'r', ':', ' ', '4', '2', 'X'};
    ASSERT_EQ_INT(retry_after_header(raw, sizeof raw - 1, now), 42000);
}

static void test_retryable_statuses(void)
{
    static const long yes[] = {0, 301, 302, 408, 409, 425, 429, 500, 502, 503, 504};
    static const long no[] = {200, 400, 401, 403, 404, 410, 413, 422};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        ASSERT_TRUE(retry_status_retryable(yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        ASSERT_TRUE(!retry_status_retryable(no[i]));
}

void unit_retry(void)
{
    RUN(test_base_schedule);
    RUN(test_jitter_within_20_percent);
    RUN(test_scaled_and_give_up);
    RUN(test_retry_after_clamped);
    RUN(test_retry_after_parse);
    RUN(test_retry_after_header_line);
    RUN(test_retryable_statuses);
}
