/* Token buckets in a fixed hash table, one mutex per stripe. Buckets are never removed
 * while running: their number is bounded by the number of API keys. */
#include "http/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

#define BUCKETS 1024
#define STRIPES 16

struct bucket {
    char *key;
    double tokens;
    int64_t updated_ms;
    struct bucket *next;
};

static double g_rate;
static struct bucket *g_table[BUCKETS];
static pthread_mutex_t g_locks[STRIPES] = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER};

void ratelimit_configure(double rate)
{
    g_rate = rate;
}

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

bool ratelimit_take(const char *key, int64_t now_ms, int *retry_after)
{
    if (g_rate <= 0)
        return true;
    unsigned b = hash(key) % BUCKETS;
    pthread_mutex_t *lock = &g_locks[b % STRIPES];
    double burst = g_rate < 1 ? 1 : g_rate;
    pthread_mutex_lock(lock);
    struct bucket *e = g_table[b];
    while (e && strcmp(e->key, key))
        e = e->next;
    if (!e) {
        e = xcalloc(1, sizeof *e);
        e->key = xstrdup(key);
        e->tokens = burst;
        e->updated_ms = now_ms;
        e->next = g_table[b];
        g_table[b] = e;
    }
    double elapsed = (double)(now_ms - e->updated_ms) / 1000.0;
    if (elapsed > 0) {
        e->tokens = fmin(burst, e->tokens + elapsed * g_rate);
        e->updated_ms = now_ms;
    }
    bool ok = e->tokens >= 1.0;
    if (ok) {
        e->tokens -= 1.0;
    } else {
        double wait = (1.0 - e->tokens) / g_rate;
        *retry_after = wait < 1 ? 1 : (int)ceil(wait);
    }
    pthread_mutex_unlock(lock);
    return ok;
}

void ratelimit_cleanup(void)
{
    for (int i = 0; i < BUCKETS; i++) {
        while (g_table[i]) {
            struct bucket *next = g_table[i]->next;
            free(g_table[i]->key);
            free(g_table[i]);
            g_table[i] = next;
        }
    }
}
