/* Routing at publish time: one delivery row per (event, matching active or paused
 * integration), written in the publishing transaction. The subscription index is cached
 * per tenant on the writer thread and rebuilt when the tenant's configuration version
 * (bumped in every integration change, on any node) moved. Writer thread only. */
#ifndef SLUICE_STREAM_ROUTING_H
#define SLUICE_STREAM_ROUTING_H

#include <stdint.h>

#include "core/err.h"
#include "store/db.h"
#include "store/events.h"

struct routing_tenant;

/* Returns the tenant's current subscription index (checking its version inside the
 * transaction). Owned by the routing cache; valid until the next call. */
enum err routing_prepare(struct db *db, const char *tenant, struct routing_tenant **out);
/* Writes the deliveries of one stored event; *routed gets their number (may be NULL). */
enum err routing_route(struct db *db, struct routing_tenant *rt, const struct event_in *ev,
                       int *routed);
/* An event to route and its tenant's index (from routing_prepare in this transaction). */
struct route_item {
    struct routing_tenant *rt;
    const struct event_in *ev;
};
/* routing_route for many stored events at once, in order (set-based inserts);
 * routed[i] (may be NULL) gets the count of items[i]. */
enum err routing_route_many(struct db *db, const struct route_item *items, size_t n, int *routed);
/* Backfills a new integration: routes every retained event published in [from, to) that
 * matches, in publish order. *n gets the count. */
enum err routing_backfill(struct db *db, const char *tenant, const char *integration_id,
                          const char *events_json, bool entity_order, int64_t from, int64_t to,
                          int64_t *n);
/* Frees the cache (at shutdown). */
void routing_cleanup(void);

#endif
