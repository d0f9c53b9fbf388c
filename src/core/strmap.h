/* A small hash map from strings to indexes, for the writer's set-based statements (one
 * group commit's distinct keys: entities, client ids, integrations). Open addressing; keys
 * are copied. Not thread-safe: one owner at a time. */
#ifndef SLUICE_CORE_STRMAP_H
#define SLUICE_CORE_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

struct strmap_slot {
    char *key; /* NULL: empty */
    size_t value;
};

struct strmap {
    struct strmap_slot *slots;
    size_t cap, n; /* cap is a power of two (or 0) */
};

#define STRMAP_INIT                                                                                \
    {                                                                                              \
        0                                                                                          \
    }

/* The value of key, or false when it is absent. */
bool strmap_get(const struct strmap *m, const char *key, size_t *value);
/* Sets key (copied) to value when absent and returns true; when present leaves it, writes
 * its value to *existing (may be NULL) and returns false. */
bool strmap_add(struct strmap *m, const char *key, size_t value, size_t *existing);
/* Frees every key and the table. */
void strmap_cleanup(struct strmap *m);

#endif
