/* The target driver table. Written at start-up (main thread) before other threads run,
 * read-only afterwards: no lock. */
#include "stream/targets.h"

#include <assert.h>
#include <string.h>

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
