/* ULID generation, monotonic within the process. Any thread: a mutex guards the last id. */
#include "core/id.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/crypto.h"

static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t g_last_ms = -1;
static unsigned char g_last_rand[10];

static void encode(int64_t ms, const unsigned char rnd[10], char out[ID_ULID_LEN + 1])
{
    uint64_t t = (uint64_t)ms;
    for (int i = 9; i >= 0; i--) {
        out[i] = b32[t & 31];
        t >>= 5;
    }
    /* 80 random bits = 16 base32 chars */
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 5; i++)
        hi = hi << 8 | rnd[i];
    for (int i = 5; i < 10; i++)
        lo = lo << 8 | rnd[i];
    for (int i = 17; i >= 10; i--) {
        out[i] = b32[hi & 31];
        hi >>= 5;
    }
    for (int i = 25; i >= 18; i--) {
        out[i] = b32[lo & 31];
        lo >>= 5;
    }
    out[ID_ULID_LEN] = '\0';
}

void id_new(const char *prefix, int64_t ms, char out[ID_MAX])
{
    unsigned char rnd[10];
    pthread_mutex_lock(&g_lock);
    if (ms <= g_last_ms) {
        ms = g_last_ms;
        int i = 9;
        while (i >= 0 && ++g_last_rand[i] == 0)
            i--;
        if (i < 0) { /* 80-bit overflow within one ms: move to the next ms */
            ms++;
            crypto_random(g_last_rand, sizeof g_last_rand);
            g_last_rand[0] &= 0x7f;
        }
    } else {
        crypto_random(g_last_rand, sizeof g_last_rand);
        g_last_rand[0] &= 0x7f; /* room to increment */
    }
    g_last_ms = ms;
    memcpy(rnd, g_last_rand, sizeof rnd);
    pthread_mutex_unlock(&g_lock);
    char u[ID_ULID_LEN + 1];
    encode(ms, rnd, u);
    snprintf(out, ID_MAX, "%s_%s", prefix, u);
}

void id_floor(const char *prefix, int64_t ms, char out[ID_MAX])
{
    static const unsigned char zero[10];
    char u[ID_ULID_LEN + 1];
    encode(ms < 0 ? 0 : ms, zero, u);
    snprintf(out, ID_MAX, "%s_%s", prefix, u);
}

enum err id_time(const char *id, int64_t *ms)
{
    const char *u = strrchr(id, '_');
    if (!u || strlen(u + 1) != ID_ULID_LEN)
        return ERR_INVALID;
    u++;
    if (u[0] > '7') /* more than 48 bits of time */
        return ERR_INVALID;
    uint64_t t = 0;
    for (int i = 0; i < ID_ULID_LEN; i++) {
        const char *p = u[i] ? strchr(b32, u[i]) : NULL;
        if (!p)
            return ERR_INVALID;
        if (i < 10)
            t = t << 5 | (uint64_t)(p - b32);
    }
    *ms = (int64_t)t;
    return ERR_OK;
}

bool id_user_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return n >= 1 && n <= 64;
}
