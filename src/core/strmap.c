/* The string-to-index hash map (see strmap.h): FNV-1a, linear probing, load factor ≤ 1/2. */
#include "core/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)h;
}

static struct strmap_slot *find(const struct strmap *m, const char *key)
{
    size_t mask = m->cap - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask)
        if (!m->slots[i].key || !strcmp(m->slots[i].key, key))
            return &m->slots[i];
}

bool strmap_get(const struct strmap *m, const char *key, size_t *value)
{
    if (!m->cap)
        return false;
    const struct strmap_slot *s = find(m, key);
    if (!s->key)
        return false;
    *value = s->value;
    return true;
}

static void grow(struct strmap *m)
{
    struct strmap old = *m;
    m->cap = old.cap ? 2 * old.cap : 16;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key)
            *find(m, old.slots[i].key) = old.slots[i];
    free(old.slots);
}

bool strmap_add(struct strmap *m, const char *key, size_t value, size_t *existing)
{
    if (2 * (m->n + 1) > m->cap)
        grow(m);
    struct strmap_slot *s = find(m, key);
    if (s->key) {
        if (existing)
            *existing = s->value;
        return false;
    }
    s->key = xstrdup(key);
    s->value = value;
    m->n++;
    return true;
}

void strmap_cleanup(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}
