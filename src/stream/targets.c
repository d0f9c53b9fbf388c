/* The target driver table. Written at start-up (main thread) before other threads run,
 * read-only afterwards: no lock. */
#include "stream/targets.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "store/store.h"

#define TARGETS_MAX 8

static const struct target_driver *g_drivers[TARGETS_MAX];
static int g_n;

void target_register(const struct target_driver *d)
{
    if (target_find(d->type))
        return; /* registering twice (tests, restarts in one process) keeps the first */
    assert(g_n < TARGETS_MAX);
    g_drivers[g_n++] = d;
}

const struct target_driver *target_find(const char *type)
{
    for (int i = 0; type && i < g_n; i++)
        if (!strcmp(g_drivers[i]->type, type))
            return g_drivers[i];
    return NULL;
}

const struct target_driver *const *target_all(int *n)
{
    *n = g_n;
    return g_drivers;
}

void target_names(struct buf *out)
{
    for (int i = 0; i < g_n; i++)
        buf_printf(out, "%s\"%s\"", i == 0 ? "" : i == g_n - 1 ? " or " : ", ", g_drivers[i]->type);
}

bool target_secret_masked(const char *s)
{
    return !strncmp(s, "****", 4);
}

void target_secret_seal(json_t *stored, const char *field, const char *hint_field,
                        const char *plain)
{
    char *sealed = crypto_seal(store_master_key(), plain);
    json_object_set_new(stored, field, json_string(sealed));
    free(sealed);
    size_t n = strlen(plain);
    json_object_set_new(stored, hint_field, json_string(n >= 4 ? plain + n - 4 : ""));
}

bool target_secret_keep(json_t *stored, json_t *old, const char *field, const char *hint_field)
{
    json_t *v = json_object_get(old, field);
    if (!v || json_is_null(v))
        return false;
    json_object_set(stored, field, v);
    json_object_set(stored, hint_field, json_object_get(old, hint_field));
    return true;
}

void target_secret_mask(json_t *t, const char *field, const char *hint_field, bool null_when_absent)
{
    json_t *hint = json_object_get(t, hint_field);
    if (json_object_get(t, field)) {
        char m[16];
        snprintf(m, sizeof m, "****%s", hint ? json_string_value(hint) : "");
        json_object_set_new(t, field, json_string(m));
    } else if (null_when_absent) {
        json_object_set_new(t, field, json_null());
    }
    json_object_del(t, hint_field);
}
