/* Per-key request rate limiting (--rate-limit R): a token bucket per API key holding up to
 * R tokens (one second's worth), refilled at R per second. Any HTTP thread. */
#ifndef SLUICE_HTTP_RATELIMIT_H
#define SLUICE_HTTP_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Sets the rate (requests per second); 0 disables limiting. Main thread, at start-up. */
void ratelimit_configure(double rate);
/* Takes one token for key; when none is left returns false and the seconds to wait in
 * *retry_after (at least 1). */
bool ratelimit_take(const char *key, int64_t now_ms, int *retry_after);
/* Frees every bucket (at shutdown). */
void ratelimit_cleanup(void);

#endif
