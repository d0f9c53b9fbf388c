/* Target drivers: what the stream domain and the API need to know about a kind of target
 * (webhook, s3) without depending on the engines that implement it. The engine layer
 * (src/deliver/) registers one driver per target type at start-up, before any other thread
 * runs; afterwards the table is read-only and any thread may look a driver up. Nothing in
 * the domain compares target_type strings: it asks the driver. */
#ifndef SLUICE_STREAM_TARGETS_H
#define SLUICE_STREAM_TARGETS_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "store/db.h"

struct integration;
struct engine_ops; /* the engine's side of a driver (deliver/engine.h); opaque here */

struct target_driver {
    const char *type; /* "webhook", "s3": the integration's target_type and the node role */
    /* Validates the target object t of a create (old NULL) or a PATCH (old = the stored
     * target, whose secrets stay when left out or masked) and writes the stored form
     * (secrets sealed) to *out (malloc'd, caller frees). Problems go to v. HTTP threads. */
    void (*parse)(json_t *t, json_t *old, bool allow_private, struct verrs *v, char **out);
    /* Replaces the sealed secrets of a stored target (t, parsed) by their masks. */
    void (*mask)(json_t *t);
    /* Adds the target's own members to an integration's JSON, read through db (a read
     * connection or the writer's). A storage error is returned, never rendered as a part of
     * the answer. May be NULL. */
    enum err (*render)(struct db *db, const struct integration *in, json_t *o);
    /* Reaches the target now and answers {"ok", "status", "latency_ms", "error",
     * "response_body", ...} (caller decrefs). Blocks up to the configured timeout: never on an
     * HTTP thread (http_defer_blocking). */
    json_t *(*test)(const struct integration *in, const struct config *cfg);
    /* Create and a PATCH that changes the target run test() first and refuse the change
     * with 422 when it fails, unless the body says "verify": false. */
    bool verify;
    /* A new integration gets a signing secret (Standard Webhooks). */
    bool signs;
    /* Deletes the driver's own rows of an integration being deleted (writer; may be NULL). */
    enum err (*remove)(struct db *db, const char *tenant, const char *integration);
    /* The engine that delivers to this target, started on nodes with the role `type`. */
    const struct engine_ops *engine;
};

/* Secrets in stored targets, for the drivers' parse and mask: sealed with the master key,
 * with their last 4 characters kept in hint_field for masks ("****wxyz"). A value sent
 * back masked (starting "****") means: keep the stored one. */
bool target_secret_masked(const char *s);
/* Stores plain sealed in stored[field] and its hint in stored[hint_field]. */
void target_secret_seal(json_t *stored, const char *field, const char *hint_field,
                        const char *plain);
/* Copies the stored secret and its hint from old (a PATCH leaving it out or masked); false
 * when old has none. */
bool target_secret_keep(json_t *stored, json_t *old, const char *field, const char *hint_field);
/* Replaces t[field] by its mask (null when absent and null_when_absent) and drops the hint. */
void target_secret_mask(json_t *t, const char *field, const char *hint_field,
                        bool null_when_absent);

/* Adds a driver (at start-up, main thread, before other threads run). */
void target_register(const struct target_driver *d);
/* The driver of a target type, or NULL. */
const struct target_driver *target_find(const char *type);
/* The registered drivers in registration order: *n entries. */
const struct target_driver *const *target_all(int *n);
/* Appends the registered types as a human list: "\"webhook\" or \"s3\"". */
void target_names(struct buf *out);

#endif
