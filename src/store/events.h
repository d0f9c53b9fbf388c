/* The event log: publishing (inside the writer's transaction) and reading. */
#ifndef SLUICE_STORE_EVENTS_H
#define SLUICE_STORE_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/id.h"
#include "store/db.h"

/* One event to publish, validated. Strings are owned by the event. */
struct event_in {
    char *client_id; /* NULL: none */
    char *type;
    char entity[72];
    char *entity_id;
    int64_t occurred_at; /* -1: the publish time */
    char *payload;       /* compact JSON object */
    /* results */
    char id[ID_MAX];
    bool duplicate;
    int64_t sequence;
    int64_t published_at;
};

/* Stores ev for tenant unless its client id already exists (then fills ev->id with the
 * stored id and sets ev->duplicate). Writer thread, inside a transaction. */
enum err store_event_publish(struct db *db, const char *tenant, struct event_in *ev);

/* One event of a group commit and its tenant. */
struct event_item {
    const char *tenant;
    struct event_in *ev;
};
/* store_event_publish for many events (of any tenants) at once, in order, with a few
 * set-based statements: client ids looked up together, one sequence upsert per distinct
 * entity, one multi-row insert. An event repeating the client id of an earlier one in the
 * same call is its duplicate. On an error nothing is complete (the caller rolls back). */
enum err store_events_publish_many(struct db *db, struct event_item *items, size_t n);

/* The columns of an event row, in the order store_event_row() reads them. */
#define STORE_EVENT_COLS                                                                           \
    "id, client_id, type, entity, entity_id, sequence, occurred_at, published_at, payload"
/* Renders the current row of a statement selecting STORE_EVENT_COLS (new reference). */
json_t *store_event_row(struct db_stmt *st);
/* Fetches one event as JSON (*out, caller decrefs); ERR_NOT_FOUND if absent. */
enum err store_event_get(struct db *db, const char *tenant, const char *id, json_t **out);

/* Retention, for one tenant: deletes up to `limit` events published before `before` that
 * no unfinished delivery still needs; *n counts them. Writer thread. */
enum err store_events_purge(struct db *db, const char *tenant, int64_t before, int limit,
                            int64_t *n);

/* Frees the strings of ev. */
void event_in_cleanup(struct event_in *ev);

#endif
