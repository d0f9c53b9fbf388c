/* The event catalog: built-in commerce entity events (DESIGN.md) plus tenant-registered
 * types, and the failure events an alert can be. Built-in tables are static; any thread. */
#ifndef SLUICE_STREAM_CATALOG_H
#define SLUICE_STREAM_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "store/db.h"

struct catalog_type {
    const char *name;
    const char *description;
};

/* Built-in entity event types, terminated by {NULL, NULL}. */
extern const struct catalog_type catalog_builtin[];
/* Failure events (alerts), terminated by {NULL, NULL}. */
extern const struct catalog_type catalog_failures[];

bool catalog_is_builtin(const char *name);
bool catalog_is_failure(const char *name);
/* True when name is "entity.action" of lower-case letters, digits and '_'. */
bool catalog_name_valid(const char *name);
/* Copies the entity (the part before the first dot) into out. */
void catalog_entity(const char *name, char *out, size_t outlen);
/* ERR_OK when the tenant may publish name (built-in or registered), ERR_NOT_FOUND if
 * not, ERR_STORAGE on failure. */
enum err catalog_type_known(struct db *db, const char *tenant, const char *name);

#endif
