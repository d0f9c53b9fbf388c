/* The delivery queue on the database (the database is the queue): the one module that
 * writes the deliveries and delivery_attempts tables. Routing inserts through it, the
 * engines claim and finish through it, the API holds and resumes through it, S3 batches
 * take their members through it. Row transitions only: what an outcome means for its
 * integration (alerts, auto-pause) is decided above, in src/deliver/outcome.c.
 *
 * Every function that writes runs on the writer thread inside a transaction (asserted);
 * the states are waiting (behind an earlier delivery of its entity) | held (integration
 * paused) | pending (due at next_attempt_at) | in_flight (leased by a node, or a member of
 * an S3 batch) | succeeded | rejected | failed | skipped (the last four final). */
#ifndef SLUICE_STREAM_DELIVERIES_H
#define SLUICE_STREAM_DELIVERIES_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/id.h"
#include "store/db.h"

/* The unfinished states, as SQL text for IN lists. */
#define DELIVERIES_UNFINISHED "('waiting', 'held', 'pending', 'in_flight')"

/* Inserts one delivery of event_id for an integration: held while paused, waiting behind an
 * unfinished delivery of the same entity (entity ordering), else pending (due at now). */
enum err deliveries_insert(struct db *db, const char *tenant, const char *integration, bool paused,
                           bool entity_order, const char *event_id, const char *entity,
                           const char *entity_id, int64_t now);

/* One delivery to insert (see deliveries_insert). */
struct delivery_new {
    const char *tenant, *integration, *event_id, *entity, *entity_id;
    bool paused, entity_order;
    int64_t now;
};
/* deliveries_insert for many at once, in order (a later one of the same integration and
 * entity waits behind an earlier one): one set-based look-up of the entities that already
 * have unfinished deliveries, one multi-row insert. */
enum err deliveries_insert_many(struct db *db, const struct delivery_new *d, size_t n);

struct claimed {
    char delivery_id[ID_MAX];
    char event_id[ID_MAX];
    int attempt;
};

/* Claims up to `limit` due pending deliveries of one integration for node with a lease of
 * lease_ms, respecting the integration's max_in_flight across nodes (nothing while it is
 * paused). Returns them in *out (malloc'd, caller frees) and the next due time of what
 * remains in *next_due (-1: none, or not looked up because all `limit` were claimed). */
enum err deliveries_claim(struct db *db, const char *tenant, const char *integration,
                          const char *node, int64_t lease_ms, int limit, struct claimed **out,
                          int *n, int64_t *next_due);

/* One attempt of one delivery, as the engine that made it reports it. */
struct attempt_outcome {
    char tenant[72];
    char integration[72];
    char delivery_id[ID_MAX];
    char event_id[ID_MAX];
    char node[128];
    int attempt;
    int64_t started_at;
    int64_t duration_ms;
    long status;         /* HTTP status; 0 when no response */
    char *error;         /* NULL on success */
    char *body;          /* first 1 KiB of the response, or NULL */
    int64_t retry_after; /* ms, -1: none */
};

/* Stores the attempt row (idempotent per attempt number). */
enum err deliveries_record_attempt(struct db *db, const struct attempt_outcome *o);

/* What an outcome needs to know about the delivery it ends. */
struct delivery_leased {
    char entity_key[400];
    int64_t first_attempt_at; /* the first attempt's start (o->started_at for the first) */
    bool paused;              /* its integration is paused */
    bool entity_order;        /* its integration orders by entity */
};

/* Reads the delivery of o if it is still in flight under o->node's lease: ERR_DONE when
 * the lease was lost (expired and claimed again) or the integration was deleted. */
enum err deliveries_leased(struct db *db, const struct attempt_outcome *o,
                           struct delivery_leased *out);
/* Ends the delivery of o in a final state (succeeded, rejected, failed). */
enum err deliveries_finish(struct db *db, const struct attempt_outcome *o, const char *state,
                           int64_t now);
/* Gives the delivery of o back for another attempt at due (held while paused). */
enum err deliveries_retry(struct db *db, const struct attempt_outcome *o, bool paused, int64_t due);
/* Releases the next waiting delivery of the entity: pending, or held while paused. Its
 * next_attempt_at stays its routing time, so claims keep publish order. */
enum err deliveries_promote_next(struct db *db, const char *tenant, const char *integration,
                                 const char *entity_key, bool paused);

/* --- the same for many outcomes at once (a group commit's successes) --- */

/* deliveries_record_attempt for o[0..n). */
enum err deliveries_record_attempts(struct db *db, const struct attempt_outcome *o, size_t n);
/* deliveries_leased for o[0..n): leased[i] says whether o[i]'s delivery is still in flight
 * under its lease (then out[i] is filled), with one look-up. */
enum err deliveries_leased_many(struct db *db, const struct attempt_outcome *o, size_t n,
                                struct delivery_leased *out, bool *leased);
/* deliveries_finish in state for every o[i] with pick[i] (pick may be NULL: all). */
enum err deliveries_finish_many(struct db *db, const struct attempt_outcome *o, const bool *pick,
                                size_t n, const char *state, int64_t now);
/* An entity whose delivery just finished (deliveries_promote_next_many). */
struct entity_next {
    const char *tenant, *integration, *entity_key;
    bool paused;
};
/* deliveries_promote_next for many entities (distinct ones) in one statement. */
enum err deliveries_promote_next_many(struct db *db, const struct entity_next *e, size_t n);

/* Pausing: pending deliveries become held. */
enum err deliveries_hold(struct db *db, const char *tenant, const char *integration);
/* Resuming: held deliveries are due now, their 24 h window shifted by the paused time
 * (paused_at < 0: no shift); with skip every unfinished one not in flight becomes skipped
 * instead (*skipped counts them). */
enum err deliveries_resume(struct db *db, const char *tenant, const char *integration,
                           int64_t paused_at, bool skip, int64_t *skipped);

/* Returns leases to pending: node's own (node != NULL: an engine stopping), every lease
 * (all: SQLite start-up, one node), or the expired ones (the scheduler). An attempt whose
 * outcome never came still started the 24 h clock. S3 batch members (in flight without a
 * lease: their batch holds them) stay. *n counts them (may be NULL). */
enum err deliveries_release_leases(struct db *db, const char *node, bool all, int64_t *n);

/* Makes the pending or waiting deliveries ids[0..n) of an integration members of an S3
 * batch (in flight, held by the batch); joined[i] says whether ids[i] joined (another node
 * may have taken it, or it may have moved on). */
enum err deliveries_join_batch(struct db *db, const char *tenant, const char *integration,
                               const char *batch_id, const char *const *ids, int n, bool *joined);

/* One upload attempt of an S3 batch, for its unfinished members.  */
struct batch_attempt {
    const char *tenant, *integration, *batch_id;
    int attempt;
    int64_t started_at;
    long status;       /* 0: no response */
    const char *error; /* NULL on success */
};
/* Records the attempt on the members; state ("succeeded", "failed") ends them too, NULL
 * leaves them in flight for the batch's retry. The only statement that finishes batch
 * members: on SQLite it keeps their counters itself, once per batch (migration 011). */
enum err deliveries_batch_attempt(struct db *db, const struct batch_attempt *a, const char *state,
                                  int64_t now);

/* Retention, for one tenant: deletes up to `limit` finished deliveries created before
 * `before`, with their attempts; *n counts them. */
enum err deliveries_purge(struct db *db, const char *tenant, int64_t before, int limit, int64_t *n);
/* Deletes every delivery of an integration, with its attempts. */
enum err deliveries_delete_integration(struct db *db, const char *tenant, const char *integration);

/* Appends the queue's gauges for /metrics (unfinished deliveries by state, the oldest per
 * integration), read through the calling thread's read connection. */
void deliveries_render_metrics(struct buf *out);

#endif
