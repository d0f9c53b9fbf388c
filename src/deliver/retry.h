/* The retry schedule: 5 s, 30 s, 2 m, 5 m, 15 m, 30 m, 1 h, then every 2 h,
 * up to 24 h after the first attempt; ±20 % jitter; Retry-After honoured (clamped). Pure
 * functions; any thread. */
#ifndef SLUICE_DELIVER_RETRY_H
#define SLUICE_DELIVER_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The unscaled, unjittered delay before attempt number `attempt + 1`, after `attempt`
 * attempts (attempt >= 1). */
int64_t retry_base_delay(int attempts);
/* The delay to wait after `attempts` failed attempts: the base delay divided by the time
 * scale, with ±20 % jitter. retry_after_ms >= 0 (from the response) replaces it, unscaled,
 * clamped to twice the unscaled base delay, and never below the scheduled delay. */
int64_t retry_next_delay(int attempts, int64_t retry_after_ms);
/* The window after the first attempt past which a delivery fails for good (24 h, scaled). */
int64_t retry_give_up_after(void);
/* Parses a Retry-After header value (delta-seconds or an HTTP-date) relative to now_ms;
 * returns milliseconds, or -1 when absent/invalid. */
int64_t retry_after_parse(const char *value, int64_t now_ms);
/* For a libcurl header callback: when the n bytes at line are a "Retry-After:" header line,
 * its value parsed as retry_after_parse() does (-1 when invalid); else -2. */
int64_t retry_after_header(const char *line, size_t n, int64_t now_ms);
/* True when an HTTP status is retried (408, 409, 425, 429, 5xx, 3xx, or 0 = no response). */
bool retry_status_retryable(long status);

#endif
