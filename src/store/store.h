/* The store: the writer thread (group commit), per-thread read connections, migrations,
 * and start-up settings (admin token, master key fingerprint).
 *
 * Writes go through jobs: a job's run() executes inside the writer's transaction under its
 * own savepoint (a failing job rolls back alone); the transaction commits once for the
 * whole batch, then every job learns its result. So a 2xx means durably committed. */
#ifndef SLUICE_STORE_STORE_H
#define SLUICE_STORE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "store/db.h"

struct store_group;

struct store_job {
    /* Runs on the writer thread inside the transaction; must not block on I/O. */
    enum err (*run)(struct db *db, void *arg);
    /* Optional: jobs of the same group that follow each other in the queue run together
     * (see struct store_group); run() is still the way to run one alone. */
    const struct store_group *group;
    /* Runs on the writer thread after commit (or failure); must be quick. May be NULL. */
    void (*done)(void *arg, enum err rc);
    void *arg;
    unsigned wake; /* STORE_WAKE_* bits (given, or added by store_wake()): woken after commit */
    enum err rc;
    struct store_job *next;
};

/* Jobs that are cheaper together: the writer hands a run of consecutive jobs of one group
 * (in queue order) to run_many, so their rows go in with a few set-based statements
 * instead of a few statements each. run_many sets each job's rc: a job it could not take
 * (ERR_*, nothing of it written) fails alone. It returns ERR_OK when every job's writes are
 * complete or absent; any other result rolls the whole run back and the writer runs each
 * job alone through its run(), under its own savepoint, so a failing job still fails alone
 * and a job commits whole or not at all. A batch runs first without savepoints; if a unit
 * fails there, the writer rolls the transaction back and runs the batch again with them,
 * the failed run job by job: run_many and run() may run twice, so neither may keep
 * anything but database rows (and store_wake bits) of a run that is rolled back. */
struct store_group {
    enum err (*run_many)(struct db *db, struct store_job **jobs, size_t n);
};

/* Wake-up bits: what changed, so which background engines have new work after a commit.
 * DELIVER: deliveries became due (routed, resumed, redelivered, leases returned); CONFIG:
 * an integration changed (created, patched, paused, resumed, stopped, deleted); NOTIFY:
 * notifications may be due. */
#define STORE_WAKE_DELIVER 1u
#define STORE_WAKE_CONFIG 2u
#define STORE_WAKE_NOTIFY 8u
/* Not a commit's: a node joined (src/sched/nodes.c), the others count it as a peer at once. */
#define STORE_WAKE_PEER 16u

/* On PostgreSQL, while other live nodes share the database (store_set_peers), every commit
 * with wake bits also NOTIFYs this channel with the payload "<bits> <node id>", so they
 * wake up too. */
#define STORE_NOTIFY_CHANNEL "sluice_wake"
/* Whether other live nodes share the database (the node registry says so). Any thread. */
void store_set_peers(bool peers);
bool store_peers(void);

/* Opens the database, applies migrations, checks the master key fingerprint and admin
 * token, and starts the writer thread. On failure writes one line to errmsg. */
enum err store_start(const struct config *cfg, char *errmsg, size_t errlen);
/* Stops accepting jobs, commits everything queued, stops the writer. Main thread. */
void store_stop(void);

/* Queues a job; its done() is called later on the writer thread. After store_stop() the
 * job completes at once with ERR_SHUTDOWN. The caller keeps the job alive until done. */
void store_submit(struct store_job *job);
/* Runs run(db, arg) in the next group commit and waits for the outcome. */
enum err store_write(enum err (*run)(struct db *db, void *arg), void *arg, unsigned wake);

/* The calling thread's read connection (opened on first use, closed at thread exit), or
 * NULL when the database cannot be reached. */
struct db *store_reader(void);

/* Ends the calling thread's read snapshot (resets its statements); call after each request. */
void store_reader_release(void);

/* Registers the function called after each commit with the OR of the jobs' wake bits.
 * Setting NULL returns once no call of the previous function is in progress. */
void store_set_wake_hook(void (*fn)(unsigned mask));
/* Adds wake bits to the job the writer is running (they count only if it commits): the
 * code that changes the rows says what changed, so no caller has to remember. Writer
 * thread; a no-op outside a job (tests, start-up). */
void store_wake(unsigned bits);
/* True on the writer thread, or while no writer runs (start-up, tests, tools): the
 * precondition of every function that writes inside the writer's transaction. */
bool store_is_writer(void);

struct metric;
/* Adds n to metric m once the running job's writes commit (nothing if they are rolled back,
 * once if the job runs twice): counts made inside a job go through this, never metric_add.
 * Writer thread; outside a job (tests, start-up) it counts at once. */
void store_count(struct metric *m, int64_t n);
/* The writer's current transaction (a new number at every BEGIN). Writer thread. */
uint64_t store_txn(void);
/* Registers fn, called on the writer thread after the writer rolls back the transaction
 * store_txn() or a job's savepoint in it (before the next BEGIN): a cache filled inside that
 * transaction from rows it wrote (a version number that is then undone, and may come back
 * with other content) drops what it filled in it. At most 4; any thread, before the writer
 * can need them (a cache registers on first use, on the writer). */
void store_on_rollback(void (*fn)(void));

/* The engine's kind (SQLite or PostgreSQL). */
enum db_kind store_kind(void);
/* The master key (32 bytes) for secrets at rest. */
const unsigned char *store_master_key(void);
/* Checks the admin token against its stored hash (constant time). */
bool store_admin_token_ok(const char *token);

/* Commit statistics for /metrics. */
struct store_stats {
    uint64_t commits;
    uint64_t jobs;
    uint64_t failed_commits;
    uint64_t victim_retries; /* batches rolled back whole and run again (deadlock victims) */
};
void store_get_stats(struct store_stats *out);

#define TENANT_ID_MAX 72

/* Every tenant id, in order, into a new array *ids (free() it) of *n entries. Any thread,
 * on its own connection. */
enum err store_tenant_ids(struct db *db, char (**ids)[TENANT_ID_MAX], size_t *n);

/* PostgreSQL: brings the planner's statistics of the tables that grow with the load
 * (events, deliveries, attempts, ...) up to date when they have grown to twice the rows the
 * last statistics saw (and at least STORE_ANALYZE_MIN rows). Autovacuum looks only once a
 * minute: a database that fills from empty is planned as if it were empty until then (every
 * equality guessed at 0.5 %, the claim walking the whole backlog through the wrong index).
 * Growth, not changes: a delivery changes its row three times, so "a fifth of the rows
 * changed" analyzed deliveries every 2 s on every node under steady load (up to 0.37 s of
 * a core each time, and the nodes queued on each other's ANALYZE).
 * *n gets the tables analyzed. Any thread, on its own connection, outside a transaction.
 * SQLite: nothing. */
#define STORE_ANALYZE_MIN 1000
enum err store_analyze_grown(struct db *db, int *n);

/* Applies pending migrations on db (exported for tests and the CLI). */
enum err store_migrate(struct db *db, char *errmsg, size_t errlen);

#endif
