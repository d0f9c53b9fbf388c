/* Time: wall-clock milliseconds, RFC 3339 formatting/parsing, durations, and the
 * --time-scale divisor for scheduled durations. Any thread. */
#ifndef SLUICE_CORE_TIMEUTIL_H
#define SLUICE_CORE_TIMEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define TIME_RFC3339_LEN 25 /* "2026-11-22T10:15:30.123Z" + NUL */

/* Milliseconds since the Unix epoch (wall clock). */
int64_t time_now_ms(void);
/* Monotonic milliseconds, for measuring intervals. */
int64_t time_mono_ms(void);
/* Monotonic nanoseconds, for latency histograms. */
int64_t time_mono_ns(void);

/* Writes ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (TIME_RFC3339_LEN bytes). */
void time_format(int64_t ms, char out[TIME_RFC3339_LEN]);
/* Writes ms as "YYYYMMDDTHHMMSSmmmZ" (19 chars + NUL) into out. */
void time_format_compact(int64_t ms, char out[20]);
/* Parses an RFC 3339 date-time (any offset, optional fraction) into ms since the epoch. */
enum err time_parse(const char *s, int64_t *ms);

/* Parses a duration such as "500ms", "30s", "5m", "24h", "7d" (also "1h30m") into ms. */
enum err duration_parse(const char *s, int64_t *ms);
/* Formats ms as the shortest exact duration string ("24h", "90s", "1500ms"). */
void duration_format(int64_t ms, char *out, size_t outlen);

/* Sets the divisor for scheduled durations (retry delays, windows, auto-close): > 0. */
void time_set_scale(double scale);
double time_scale(void);
/* Returns a scheduled duration divided by the time scale, at least 1 ms if d > 0. */
int64_t time_scaled(int64_t d);

#endif
