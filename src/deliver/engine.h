/* The delivery engine core: what every target's engine shares, so a target is only a driver.
 *
 * One engine per target type runs one thread that owns a libcurl multi handle, the table
 * of that type's integrations (reloaded from the thread's read connection every second,
 * or at once after engine_config_changed) and every transfer. The driver (engine_ops)
 * says what to do per integration: it submits writer jobs (claims, appends, outcomes) and
 * starts transfers; the core runs the loop.
 *
 * Threads. The engine thread runs the loop and every driver callback. The writer runs a
 * job's run() in its transaction; its completion hands the job itself back to the engine
 * (the inbox, under a mutex, then curl_multi_wakeup) and the engine thread calls the job's
 * back() — no message types per engine. engine_wake and engine_config_changed may be
 * called from any thread (atomics). No lock is held across I/O.
 *
 * Lifetime. An integration's entry lives while its row exists or while a job or transfer
 * still refers to it (refs); a deleted one is forgotten once they are done.
 *
 * Stopping drains: engine_stop_begin stops starting work (drivers check engine_stopping)
 * while the loop goes on, so the transfers in flight finish and their outcomes are recorded
 * (a consumer is never sent again what it got, nor does another node start a request on a
 * slot while the consumer still works on this one); engine_stop then waits for that, up to
 * the webhook timeout plus ENGINE_DRAIN_MARGIN_MS, aborts what is left without an outcome,
 * waits for the jobs the writer still owes, and gives this node's leases back through the
 * driver (work claimed but not started). */
#ifndef SLUICE_DELIVER_ENGINE_H
#define SLUICE_DELIVER_ENGINE_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "store/db.h"
#include "store/store.h"

/* A lease is never shorter than the longest request it covers plus this margin, so no
 * other node can claim work whose request is still on the wire. */
#define ENGINE_LEASE_MARGIN_MS 5000
/* A drain waits for the requests in flight up to the webhook timeout plus this (their
 * outcomes' commits). */
#define ENGINE_DRAIN_MARGIN_MS 2000

struct engine;

/* An integration of the engine's target type. */
struct engine_integ {
    char tenant[72], id[72];
    int64_t updated_at;
    bool present; /* its row exists */
    bool paused;
    bool wake;  /* the core sets it when new work may be due; the driver clears it */
    int refs;   /* jobs and transfers that point here */
    void *data; /* the driver's state */
    struct engine_integ *next;
};

/* The columns of an integration row the core reads for the driver. */
struct engine_row {
    const char *target;         /* JSON, secrets sealed */
    const char *signing_secret; /* sealed, or NULL */
    int max_in_flight;
};

/* A writer job of an engine. The driver embeds it first in its own job and submits it with
 * engine_submit. Its run() (writer thread) gets the job as its argument and may read
 * integ->tenant and integ->id (fixed for the entry's life, which the job keeps) and
 * engine_config(e). */
struct engine_job {
    struct store_job job;
    /* Engine thread, after the commit (rc: the job's result): takes the result in and frees
     * the job. */
    void (*back)(struct engine *e, struct engine_job *j, enum err rc);
    struct engine_integ *integ; /* may be NULL */
    struct engine *e;
    enum err rc;
    struct engine_job *next;
};

/* A transfer on the engine's multi handle. The driver embeds it in its request. */
struct engine_xfer {
    CURL *easy;
    struct engine_integ *integ; /* may be NULL */
    /* Engine thread: the transfer ended (the core has taken it off the multi handle). */
    void (*done)(struct engine *e, struct engine_xfer *x, CURLcode cc);
    /* Engine stopping: free everything, record nothing (the lease goes back). */
    void (*abort)(struct engine *e, struct engine_xfer *x);
    struct engine_xfer *prev, *next;
};

struct engine_ops {
    const char *type; /* the target type: rows read, thread "sluice-<type>", log component */
    /* Main thread, before the engine thread starts (metrics, directories, start-up lease
     * release). May be NULL. */
    enum err (*start)(struct engine *e);
    /* The integration's row is new or changed: (re)read its configuration. May be NULL. */
    void (*load)(struct engine *e, struct engine_integ *w, const struct engine_row *row);
    /* Frees the driver's state of an integration. */
    void (*unload)(struct engine_integ *w);
    /* Starts the integration's due work (jobs, transfers) unless engine_stopping(); returns
     * when it may have more (ms since the epoch), -1: only after a wake-up. Called for every
     * present integration on every turn of the loop, paused ones included. */
    int64_t (*poll)(struct engine *e, struct engine_integ *w, int64_t now);
    /* Writer: gives back this node's leases when the engine stops. */
    enum err (*release)(struct db *db, const char *node);
};

/* Starts an engine for ops on its own thread. ERR_INTERNAL when it cannot. Main thread. */
enum err engine_start(const struct engine_ops *ops, const struct config *cfg, struct engine **out);
/* Starts the drain: no new work, transfers in flight go on (see the top of this file).
 * Main thread; accepts NULL. */
void engine_stop_begin(struct engine *e);
/* Drains (engine_stop_begin if not yet), stops the engine and frees it. Main thread;
 * accepts NULL. */
void engine_stop(struct engine *e);
/* New due work may exist (store wake bits): every integration is looked at now. Any
 * thread. */
void engine_wake(struct engine *e);
/* Integrations changed: the table is reloaded now, then every integration looked at. Any
 * thread. */
void engine_config_changed(struct engine *e);

/* For drivers, on the engine thread: */
const struct config *engine_config(const struct engine *e);
/* True once the engine stops: start no new work. */
bool engine_stopping(const struct engine *e);
/* The lease for claimed work: --lease, but at least the request timeout plus the margin. */
int64_t engine_lease_ms(const struct engine *e);
/* Queues j on the writer: run() in the next group commit, then back() on the engine thread
 * with the result. w: the integration it is about (kept alive until back), or NULL. */
void engine_submit(struct engine *e, struct engine_job *j, struct engine_integ *w,
                   enum err (*run)(struct db *db, void *job),
                   void (*back)(struct engine *e, struct engine_job *j, enum err rc));
/* Puts a prepared transfer on the multi handle / takes it off (before freeing it). */
void engine_add(struct engine *e, struct engine_xfer *x);
void engine_remove(struct engine *e, struct engine_xfer *x);

#endif
