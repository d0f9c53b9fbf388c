/* Server-generated identifiers: a type prefix and a ULID (48-bit millisecond time, then 80
 * random bits, Crockford base32), so ids sort by creation time. Any thread. */
#ifndef SLUICE_CORE_ID_H
#define SLUICE_CORE_ID_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

#define ID_ULID_LEN 26
#define ID_MAX 40 /* prefix (up to 8 with '_') + ULID + NUL, rounded up */

/* Writes "<prefix>_<ULID>" for time ms into out. Ids made in one process are strictly
 * increasing even within one millisecond. */
void id_new(const char *prefix, int64_t ms, char out[ID_MAX]);
/* Writes the smallest "<prefix>_<ULID>" for time ms (random part all zero) into out, for
 * turning a time filter into an id range. */
void id_floor(const char *prefix, int64_t ms, char out[ID_MAX]);
/* Extracts the millisecond time from an id made by id_new; ERR_INVALID if it is not one. */
enum err id_time(const char *id, int64_t *ms);
/* Whether s is a valid user-chosen id (tenants, integrations): 1-64 characters of
 * A-Z, a-z, 0-9, '.', '_' or '-'. */
bool id_user_valid(const char *s);

#endif
