/* Tests for src/stream/: subscription matching and routing (which integrations an event
 * reaches, in which state), the delivery queue's transitions (claim with max_in_flight and
 * leases, retry, finish, entity order, hold and resume, lease release, S3 batch
 * membership), integration health columns and lag episodes, the target driver table and
 * its secret helpers, and the writer-thread precondition of every queue write. On a
 * migrated SQLite database, single-threaded like the writer. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "store/db.h"
#include "store/events.h"
#include "store/store.h"
#include "stream/catalog.h"
#include "stream/deliveries.h"
#include "stream/integrations.h"
#include "stream/routing.h"
#include "stream/targets.h"
#include "unit.h"

/* An integration row with the given subscription patterns (JSON array text). */
static void add_integration(struct db *db, const char *id, const char *events, const char *ordering,
                            int max_in_flight)
{
    struct integration in;
    memset(&in, 0, sizeof in);
    snprintf(in.tenant, sizeof in.tenant, "acme");
    snprintf(in.id, sizeof in.id, "%s", id);
    snprintf(in.type, sizeof in.type, "permanent");
    snprintf(in.state, sizeof in.state, "active");
    snprintf(in.ordering, sizeof in.ordering, "%s", ordering);
    snprintf(in.target_type, sizeof in.target_type, "webhook");
    in.start_at = in.end_at = in.paused_at = in.last_attempt_at = in.failing_since = -1;
    in.max_in_flight = max_in_flight;
    in.events = (char *)events;
    in.target = (char *)"{\"type\":\"webhook\",\"url\":\"http://127.0.0.1:9/\"}";
    in.created_at = in.updated_at = time_now_ms();
    ASSERT_EQ_ERR(integration_insert(db, &in), ERR_OK);
}

/* Routes one event (type, entity_id) of tenant acme; returns how many deliveries it got. */
static int route(struct db *db, const char *type, const char *entity_id, char id[ID_MAX])
{
    struct event_in ev;
    memset(&ev, 0, sizeof ev);
    ev.type = xstrdup(type);
    catalog_entity(type, ev.entity, sizeof ev.entity);
    ev.entity_id = xstrdup(entity_id);
    ev.payload = xstrdup("{}");
    ev.occurred_at = -1;
    int routed = -1;
    struct routing_tenant *rt;
    if (store_event_publish(db, "acme", &ev) == ERR_OK &&
        routing_prepare(db, "acme", &rt) == ERR_OK)
        routing_route(db, rt, &ev, &routed);
    if (id)
        memcpy(id, ev.id, ID_MAX);
    event_in_cleanup(&ev);
    return routed;
}

static long long state_count(struct db *db, const char *integration, const char *state)
{
    struct db_stmt *st = db_stmt(db, "SELECT COUNT(*) FROM deliveries WHERE integration_id = ? "
                                     "AND state = ?");
    db_bind_text(st, 1, integration);
    db_bind_text(st, 2, state);
    long long n = db_next(st) == ERR_OK ? (long long)db_col_int(st, 0) : -1;
    db_release(db);
    return n;
}

static void test_events_match(void)
{
    json_t *p = json_loads("[\"order\", \"shipment.created\"]", 0, NULL);
    ASSERT_TRUE(integration_events_match(p, "order.created", "order"));
    ASSERT_TRUE(integration_events_match(p, "order.cancelled", "order"));
    ASSERT_TRUE(integration_events_match(p, "shipment.created", "shipment"));
    ASSERT_TRUE(!integration_events_match(p, "shipment.delivered", "shipment"));
    ASSERT_TRUE(!integration_events_match(p, "orders.created", "orders"));
    ASSERT_TRUE(!integration_events_match(p, "return.created", "return"));
    json_decref(p);
}

static void test_routing(void)
{
    char *dir;
    struct db *db = unit_db_open(&dir);
    if (!db)
        return;
    routing_cleanup();
    add_integration(db, "all", "[\"order\"]", "entity", 16);
    add_integration(db, "created", "[\"order.created\"]", "none", 16);
    add_integration(db, "ships", "[\"shipment\"]", "none", 16);
    add_integration(db, "later", "[\"order\"]", "none", 16);
    ASSERT_EQ_ERR(db_exec(db, "UPDATE integrations SET start_at = 9999999999999 WHERE id = "
                              "'later'"),
                  ERR_OK);
    ASSERT_EQ_ERR(tenant_config_bump(db, "acme"), ERR_OK);
    ASSERT_EQ_INT(route(db, "order.created", "O-1", NULL), 2); /* all, created */
    ASSERT_EQ_INT(route(db, "order.updated", "O-1", NULL), 1); /* all: waits behind O-1 */
    ASSERT_EQ_INT(route(db, "shipment.created", "S-1", NULL), 1);
    ASSERT_EQ_INT(route(db, "return.created", "R-1", NULL), 0);
    ASSERT_EQ_INT(state_count(db, "all", "pending"), 1);
    ASSERT_EQ_INT(state_count(db, "all", "waiting"), 1);
    ASSERT_EQ_INT(state_count(db, "created", "pending"), 1);
    ASSERT_EQ_INT(state_count(db, "later", "pending"), 0);
    /* a paused integration's deliveries are held; the cache sees the change (version bump) */
    ASSERT_EQ_ERR(integration_set_state(db, "acme", "created", "paused", time_now_ms()), ERR_OK);
    ASSERT_EQ_INT(route(db, "order.created", "O-2", NULL), 2);
    ASSERT_EQ_INT(state_count(db, "created", "held"), 1);
    /* stopped: nothing more */
    ASSERT_EQ_ERR(integration_set_state(db, "acme", "created", "stopped", time_now_ms()), ERR_OK);
    ASSERT_EQ_INT(route(db, "order.created", "O-3", NULL), 1);
    routing_cleanup();
    db_close(db);
    unit_rmdir(dir);
}

/* Claims for node n1 with a 30 s lease; returns how many were claimed. */
static int claim(struct db *db, const char *integration, int limit, struct claimed **c,
                 int64_t *next_due)
{
    int n = -1;
    ASSERT_EQ_ERR(deliveries_claim(db, "acme", integration, "n1", 30000, limit, c, &n, next_due),
                  ERR_OK);
    return n;
}

static struct attempt_outcome outcome_of(const char *integration, const struct claimed *c)
{
    struct attempt_outcome o;
    memset(&o, 0, sizeof o);
    snprintf(o.tenant, sizeof o.tenant, "acme");
    snprintf(o.integration, sizeof o.integration, "%s", integration);
    snprintf(o.delivery_id, sizeof o.delivery_id, "%s", c->delivery_id);
    snprintf(o.event_id, sizeof o.event_id, "%s", c->event_id);
    snprintf(o.node, sizeof o.node, "n1");
    o.attempt = c->attempt;
    o.started_at = time_now_ms();
    o.retry_after = -1;
    return o;
}

static void test_queue_transitions(void)
{
    char *dir;
    struct db *db = unit_db_open(&dir);
    if (!db)
        return;
    routing_cleanup();
    add_integration(db, "erp", "[\"order\"]", "entity", 2);
    /* (deliveries made now: an event's own time may be ahead of the clock in this process,
     * when an earlier test made an id for a later millisecond) */
    for (int i = 0; i < 4; i++) {
        char e[16], ev[16];
        snprintf(e, sizeof e, "O-%d", i % 3); /* the 4th waits behind O-0's first */
        snprintf(ev, sizeof ev, "evt_%d", i);
        ASSERT_EQ_ERR(
            deliveries_insert(db, "acme", "erp", false, true, ev, "order", e, time_now_ms()),
            ERR_OK);
    }
    ASSERT_EQ_INT(state_count(db, "erp", "pending"), 3);
    ASSERT_EQ_INT(state_count(db, "erp", "waiting"), 1);

    /* max_in_flight 2: two claimed, the third stays pending and is due now */
    struct claimed *c = NULL;
    int64_t next_due = -1;
    REQUIRE_TRUE(claim(db, "erp", 10, &c, &next_due) == 2);
    ASSERT_TRUE(next_due > 0 && next_due <= time_now_ms());
    ASSERT_EQ_INT(state_count(db, "erp", "in_flight"), 2);
    struct claimed *none = NULL;
    ASSERT_EQ_INT(claim(db, "erp", 10, &none, &next_due), 0);
    free(none);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT attempts FROM deliveries WHERE id = ?", c[0].delivery_id),
                  1);

    /* the lease is checked: another node's outcome finds nothing */
    struct attempt_outcome o = outcome_of("erp", &c[0]);
    struct delivery_leased d;
    snprintf(o.node, sizeof o.node, "n2");
    ASSERT_EQ_ERR(deliveries_leased(db, &o, &d), ERR_DONE);
    snprintf(o.node, sizeof o.node, "n1");
    REQUIRE_TRUE(deliveries_leased(db, &o, &d) == ERR_OK);
    ASSERT_TRUE(d.entity_order && !d.paused);
    ASSERT_EQ_STR(d.entity_key, "order/O-0");

    /* O-0 succeeds: its next event is released */
    o.status = 200;
    ASSERT_EQ_ERR(deliveries_record_attempt(db, &o), ERR_OK);
    ASSERT_EQ_ERR(deliveries_finish(db, &o, "succeeded", time_now_ms()), ERR_OK);
    ASSERT_EQ_ERR(deliveries_promote_next(db, "acme", "erp", d.entity_key, false), ERR_OK);
    ASSERT_EQ_INT(state_count(db, "erp", "waiting"), 0);
    ASSERT_EQ_INT(state_count(db, "erp", "succeeded"), 1);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT COUNT(*) FROM delivery_attempts WHERE delivery_id = ?",
                              o.delivery_id),
                  1);

    /* the second fails and is retried later: pending with a future due time */
    struct attempt_outcome o2 = outcome_of("erp", &c[1]);
    o2.status = 503;
    ASSERT_EQ_ERR(deliveries_retry(db, &o2, false, time_now_ms() + 60000), ERR_OK);
    ASSERT_EQ_INT(unit_db_int(db,
                              "SELECT next_attempt_at > first_attempt_at FROM deliveries "
                              "WHERE id = ?",
                              o2.delivery_id),
                  1);

    /* pausing holds what is pending; resuming makes it due now and shifts its 24 h window */
    ASSERT_EQ_ERR(deliveries_hold(db, "acme", "erp"), ERR_OK);
    ASSERT_EQ_INT(state_count(db, "erp", "pending"), 0);
    ASSERT_EQ_INT(state_count(db, "erp", "held"), 3);
    long long first =
        unit_db_int(db, "SELECT first_attempt_at FROM deliveries WHERE id = ?", o2.delivery_id);
    int64_t skipped = -1;
    ASSERT_EQ_ERR(deliveries_resume(db, "acme", "erp", time_now_ms() - 5000, false, &skipped),
                  ERR_OK);
    ASSERT_EQ_INT(state_count(db, "erp", "pending"), 3);
    ASSERT_TRUE(unit_db_int(db, "SELECT first_attempt_at FROM deliveries WHERE id = ?",
                            o2.delivery_id) >= first + 5000);

    /* leases: this node's go back when its engine stops, expired ones at the scheduler's
     * tick, every one at SQLite start-up; an S3 batch member stays with its batch */
    free(c);
    REQUIRE_TRUE(claim(db, "erp", 1, &c, &next_due) == 1);
    int64_t n = -1;
    ASSERT_EQ_ERR(deliveries_release_leases(db, "n2", false, &n), ERR_OK);
    ASSERT_EQ_INT(n, 0);
    ASSERT_EQ_ERR(deliveries_release_leases(db, NULL, false, &n), ERR_OK);
    ASSERT_EQ_INT(n, 0); /* not expired */
    ASSERT_EQ_ERR(deliveries_release_leases(db, "n1", false, &n), ERR_OK);
    ASSERT_EQ_INT(n, 1);
    ASSERT_EQ_INT(unit_db_int(db,
                              "SELECT first_attempt_at IS NOT NULL FROM deliveries WHERE "
                              "id = ?",
                              c[0].delivery_id),
                  1); /* the lost attempt started the 24 h clock */
    free(c);
    const char *ids[1];
    struct db_stmt *st = db_stmt(db, "SELECT id FROM deliveries WHERE state = 'pending' ORDER "
                                     "BY id LIMIT 1");
    REQUIRE_TRUE(db_next(st) == ERR_OK);
    char member[ID_MAX];
    snprintf(member, sizeof member, "%s", db_col_text(st, 0));
    db_release(db);
    ids[0] = member;
    bool joined = false;
    ASSERT_EQ_ERR(deliveries_join_batch(db, "acme", "erp", "s3b_1", ids, 1, &joined), ERR_OK);
    ASSERT_TRUE(joined);
    ASSERT_EQ_ERR(deliveries_join_batch(db, "acme", "erp", "s3b_2", ids, 1, &joined), ERR_OK);
    ASSERT_TRUE(!joined); /* a delivery joins one batch */
    ASSERT_EQ_ERR(deliveries_release_leases(db, NULL, true, &n), ERR_OK);
    ASSERT_EQ_INT(n, 0);
    ASSERT_EQ_INT(
        unit_db_int(db, "SELECT state = 'in_flight' FROM deliveries WHERE id = ?", member), 1);

    /* skip: every unfinished delivery that is not in flight */
    ASSERT_EQ_ERR(deliveries_resume(db, "acme", "erp", -1, true, &skipped), ERR_OK);
    ASSERT_EQ_INT(skipped, 2);
    ASSERT_EQ_INT(state_count(db, "erp", "skipped"), 2);
    routing_cleanup();
    db_close(db);
    unit_rmdir(dir);
}

static void test_integration_health(void)
{
    char *dir;
    struct db *db = unit_db_open(&dir);
    if (!db)
        return;
    add_integration(db, "erp", "[\"order\"]", "none", 16);
    int64_t now = time_now_ms(), since = -1, count = -1;
    ASSERT_EQ_ERR(integration_attempt_failed(db, "acme", "erp", now - 100, now, &since, &count),
                  ERR_OK);
    ASSERT_EQ_ERR(integration_attempt_failed(db, "acme", "erp", now - 50, now, &since, &count),
                  ERR_OK);
    ASSERT_EQ_INT(since, now - 100); /* the first failure since the last success */
    ASSERT_EQ_INT(count, 2);
    ASSERT_EQ_ERR(integration_attempt_ok(db, "acme", "erp", now), ERR_OK);
    struct integration_health h;
    ASSERT_EQ_ERR(integration_health_load(db, "acme", "erp", &h), ERR_OK);
    ASSERT_TRUE(h.failing_since < 0 && h.failing_count == 0 && h.last_attempt_at == now);
    ASSERT_EQ_ERR(integration_health_load(db, "acme", "nope", &h), ERR_NOT_FOUND);

    /* lag episodes: one begins once; it ends only when nothing unfinished is old */
    bool changed = false;
    ASSERT_EQ_ERR(integration_lag_begin(db, "acme", "erp", now, &changed), ERR_OK);
    ASSERT_TRUE(changed);
    ASSERT_EQ_ERR(integration_lag_begin(db, "acme", "erp", now, &changed), ERR_OK);
    ASSERT_TRUE(!changed);
    ASSERT_EQ_ERR(
        deliveries_insert(db, "acme", "erp", false, false, "evt_1", "order", "O-1", time_now_ms()),
        ERR_OK);
    ASSERT_EQ_ERR(integration_lag_end(db, "acme", "erp", time_now_ms() + 1000, &changed), ERR_OK);
    ASSERT_TRUE(!changed); /* O-1 is older than the limit (the cut-off is in the future) */
    ASSERT_EQ_ERR(integration_lag_end(db, "acme", "erp", time_now_ms() - 60000, &changed), ERR_OK);
    ASSERT_TRUE(changed); /* nothing older than a minute ago */
    db_close(db);
    unit_rmdir(dir);
}

static void test_target_secrets(void)
{
    json_t *stored = json_object();
    target_secret_seal(stored, "api_key", "api_key_hint", "abcdefgh1234");
    const char *sealed = json_string_value(json_object_get(stored, "api_key"));
    ASSERT_TRUE(sealed && !strstr(sealed, "abcdefgh1234"));
    char *plain = integration_secret_open(sealed);
    ASSERT_EQ_STR(plain, "abcdefgh1234");
    free(plain);
    json_t *kept = json_object();
    ASSERT_TRUE(target_secret_keep(kept, stored, "api_key", "api_key_hint"));
    ASSERT_TRUE(!target_secret_keep(kept, stored, "other", "other_hint"));
    target_secret_mask(kept, "api_key", "api_key_hint", true);
    ASSERT_EQ_STR(json_string_value(json_object_get(kept, "api_key")), "****1234");
    ASSERT_TRUE(!json_object_get(kept, "api_key_hint"));
    ASSERT_TRUE(target_secret_masked("****1234") && !target_secret_masked("abc"));
    json_t *none = json_object();
    target_secret_mask(none, "api_key", "api_key_hint", true);
    ASSERT_TRUE(json_is_null(json_object_get(none, "api_key")));
    json_decref(stored);
    json_decref(kept);
    json_decref(none);
}

/* Runs fn in a child process; true when it died of an assertion (SIGABRT). */
static bool dies(void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* no core file, no sanitizer report: only the abort matters */
        fclose(stderr);
        fn(arg);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void hold_outside_writer(void *arg)
{
    deliveries_hold(arg, "acme", "erp");
}

static enum err on_writer(struct db *db, void *arg)
{
    (void)db;
    *(bool *)arg = store_is_writer();
    return ERR_OK;
}

/* Starts the store (writer thread and all) on a fresh SQLite data dir; false (the test
 * failed) when it cannot. store_down() stops it and removes the dir. */
static bool store_up(struct config *cfg, char **dir, char **data)
{
    *dir = unit_tmpdir();
    *data = xasprintf("--data-dir=%s", *dir);
    char *argv[] = {*data, (char *)"--admin-token=unit-test-admin-token-0123456789", NULL};
    FILE *out = fopen("/dev/null", "w");
    int prc = config_parse(cfg, 2, argv, out, out);
    fclose(out);
    char err[256] = "";
    if (prc != 0)
        unit_fail(__FILE__, __LINE__, "config_parse failed");
    else if (store_start(cfg, err, sizeof err) != ERR_OK)
        unit_fail(__FILE__, __LINE__, "store_start: %s", err);
    else
        return true;
    if (prc == 0)
        config_cleanup(cfg);
    free(*data);
    unit_rmdir(*dir);
    return false;
}

static void store_down(struct config *cfg, char *dir, char *data)
{
    store_stop();
    config_cleanup(cfg);
    free(data);
    unit_rmdir(dir);
}

/* The queue's writes assert that they run on the writer thread: with the store running, a
 * call from another thread aborts instead of writing outside the writer's transaction. */
static void test_writer_only(void)
{
    char *dir, *data;
    struct config cfg;
    if (!store_up(&cfg, &dir, &data))
        return;
    ASSERT_TRUE(!store_is_writer()); /* this thread, while the writer runs */
    bool in_job = false;
    ASSERT_EQ_ERR(store_write(on_writer, &in_job, 0), ERR_OK);
    ASSERT_TRUE(in_job);
    struct db *reader = store_reader();
    ASSERT_TRUE(dies(hold_outside_writer, reader));
    store_reader_release();
    store_stop();
    ASSERT_TRUE(store_is_writer()); /* no writer: tools and tests are the writer */
    config_cleanup(&cfg);
    free(data);
    unit_rmdir(dir);
}

/* --- the writer's units: a group that fails runs again job by job ---------------------- */

struct unit_job {
    struct store_job job;
    long long x;   /* the row it writes; negative: it fails (after writing) */
    bool finished; /* done() was called */
};

static pthread_mutex_t uj_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t uj_cond = PTHREAD_COND_INITIALIZER;
static bool uj_release;  /* the blocking job may return */
static bool uj_blocking; /* the blocking job runs */
static int uj_many_calls, uj_one_calls;

static enum err uj_insert(struct db *db, long long x)
{
    struct db_stmt *st = db_stmt(db, "INSERT INTO unit_rows (x) VALUES (?)");
    db_bind_int(st, 1, x < 0 ? -x : x);
    enum err rc = db_run(st);
    db_release(db);
    return rc;
}

static enum err uj_run(struct db *db, void *arg)
{
    struct unit_job *u = arg;
    uj_one_calls++;
    enum err rc = uj_insert(db, u->x);
    return rc != ERR_OK ? rc : u->x < 0 ? ERR_INVALID : ERR_OK;
}

/* Writes every job's row, then fails the whole run if any job is a failing one. */
static enum err uj_run_many(struct db *db, struct store_job **jobs, size_t n)
{
    uj_many_calls++;
    bool bad = false;
    for (size_t i = 0; i < n; i++) {
        struct unit_job *u = jobs[i]->arg;
        if (uj_insert(db, u->x) != ERR_OK)
            return ERR_STORAGE;
        bad |= u->x < 0;
    }
    return bad ? ERR_CONFLICT : ERR_OK;
}

static const struct store_group uj_group = {uj_run_many};

/* A job that counts (store_count) and notes the transaction it ran in. */
static struct metric uj_metric = {.name = "unit_rerun_total", .type = "counter"};
static int uj_counting_runs, uj_rollbacks;
static uint64_t uj_counting_txn, uj_rolled_back_txn;

static enum err uj_counting(struct db *db, void *arg)
{
    struct unit_job *u = arg;
    uj_counting_runs++;
    uj_counting_txn = store_txn();
    store_count(&uj_metric, 1);
    return uj_insert(db, u->x);
}

static void uj_on_rollback(void)
{
    uj_rollbacks++;
    uj_rolled_back_txn = store_txn();
}

static void uj_done(void *arg, enum err rc)
{
    struct unit_job *u = arg;
    pthread_mutex_lock(&uj_lock);
    u->job.rc = rc;
    u->finished = true;
    pthread_cond_broadcast(&uj_cond);
    pthread_mutex_unlock(&uj_lock);
}

static enum err uj_block(struct db *db, void *arg)
{
    (void)db, (void)arg;
    pthread_mutex_lock(&uj_lock);
    uj_blocking = true;
    pthread_cond_broadcast(&uj_cond);
    while (!uj_release)
        pthread_cond_wait(&uj_cond, &uj_lock);
    pthread_mutex_unlock(&uj_lock);
    return ERR_OK;
}

static enum err uj_create(struct db *db, void *arg)
{
    (void)arg;
    return db_exec(db, "CREATE TABLE unit_rows (x INTEGER PRIMARY KEY)");
}

static enum err uj_count(struct db *db, void *arg)
{
    struct db_stmt *st = db_stmt(db, "SELECT COUNT(*), COALESCE(SUM(x), 0) FROM unit_rows");
    enum err rc = db_next(st);
    if (rc == ERR_OK) {
        ((long long *)arg)[0] = db_col_int(st, 0);
        ((long long *)arg)[1] = db_col_int(st, 1);
    }
    db_release(db);
    return rc == ERR_OK ? ERR_OK : ERR_STORAGE;
}

/* Queues the jobs behind a job that holds the writer, so that they make one batch; waits
 * for all of them. */
static void uj_batch(struct unit_job *jobs, size_t n)
{
    struct unit_job blocker = {.job = {.run = uj_block, .done = uj_done}};
    blocker.job.arg = &blocker;
    uj_release = uj_blocking = false;
    store_submit(&blocker.job);
    pthread_mutex_lock(&uj_lock);
    while (!uj_blocking)
        pthread_cond_wait(&uj_cond, &uj_lock);
    pthread_mutex_unlock(&uj_lock);
    for (size_t i = 0; i < n; i++) {
        jobs[i].job.arg = &jobs[i];
        jobs[i].job.done = uj_done;
        if (!jobs[i].job.run)
            jobs[i].job.run = uj_run;
        store_submit(&jobs[i].job);
    }
    pthread_mutex_lock(&uj_lock);
    uj_release = true;
    pthread_cond_broadcast(&uj_cond);
    for (size_t i = 0; i < n; i++)
        while (!jobs[i].finished)
            pthread_cond_wait(&uj_cond, &uj_lock);
    while (!blocker.finished)
        pthread_cond_wait(&uj_cond, &uj_lock);
    pthread_mutex_unlock(&uj_lock);
}

/* The writer runs a batch without savepoints first and, when a unit fails, rolls back and
 * runs it again unit by unit: whatever path it takes, a failing job fails alone and leaves
 * no row, and the others commit. */
static void test_writer_units(void)
{
    char *dir, *data;
    struct config cfg;
    if (!store_up(&cfg, &dir, &data))
        return;
    ASSERT_EQ_ERR(store_write(uj_create, NULL, 0), ERR_OK);
    long long cs[2];

    /* Only jobs of one group, all good: one run_many, no job alone. */
    uj_many_calls = uj_one_calls = 0;
    struct unit_job a[3] = {{.x = 1}, {.x = 2}, {.x = 4}};
    for (int i = 0; i < 3; i++)
        a[i].job.group = &uj_group;
    uj_batch(a, 3);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ_ERR(a[i].job.rc, ERR_OK);
    ASSERT_EQ_INT(uj_many_calls, 1);
    ASSERT_EQ_INT(uj_one_calls, 0);

    /* A group with a failing job: the run fails, every job runs again alone; the failing
     * one fails and its row is gone, the others commit. */
    uj_many_calls = uj_one_calls = 0;
    struct unit_job b[3] = {{.x = 8}, {.x = -16}, {.x = 32}};
    for (int i = 0; i < 3; i++)
        b[i].job.group = &uj_group;
    uj_batch(b, 3);
    ASSERT_EQ_ERR(b[0].job.rc, ERR_OK);
    ASSERT_EQ_ERR(b[1].job.rc, ERR_INVALID);
    ASSERT_EQ_ERR(b[2].job.rc, ERR_OK);
    ASSERT_EQ_INT(uj_many_calls, 1);
    ASSERT_EQ_INT(uj_one_calls, 3);
    ASSERT_EQ_ERR(store_write(uj_count, cs, 0), ERR_OK);
    ASSERT_EQ_INT(cs[0], 5);
    ASSERT_EQ_INT(cs[1], 1 + 2 + 4 + 8 + 32);

    /* One job alone that fails after writing: its row is rolled back. */
    struct unit_job c[1] = {{.x = -64}};
    uj_batch(c, 1);
    ASSERT_EQ_ERR(c[0].job.rc, ERR_INVALID);

    /* A mixed batch (jobs of no group after group jobs), with a failing one of each kind:
     * the first failure undoes the pass, the second pass runs each unit under its own
     * savepoint (the failed run job by job), and each failure stays alone. */
    uj_many_calls = uj_one_calls = 0;
    struct unit_job d[4] = {{.x = 128}, {.x = -256}, {.x = -512}, {.x = 1024}};
    d[0].job.group = d[1].job.group = &uj_group;
    uj_batch(d, 4);
    ASSERT_EQ_ERR(d[0].job.rc, ERR_OK);
    ASSERT_EQ_ERR(d[1].job.rc, ERR_INVALID);
    ASSERT_EQ_ERR(d[2].job.rc, ERR_INVALID);
    ASSERT_EQ_ERR(d[3].job.rc, ERR_OK);
    ASSERT_EQ_ERR(store_write(uj_count, cs, 0), ERR_OK);
    ASSERT_EQ_INT(cs[0], 7);
    ASSERT_EQ_INT(cs[1], 1 + 2 + 4 + 8 + 32 + 128 + 1024);

    /* A job before a failing one runs twice (the pass is rolled back and run again): what
     * it counts with store_count counts once, the rollback hook hears of the transaction
     * it first ran in, and a job that fails alone counts nothing. */
    store_on_rollback(uj_on_rollback);
    uj_counting_runs = uj_rollbacks = 0;
    int64_t before = uj_metric.value;
    struct unit_job e[3] = {{.x = 2048}, {.x = -4096}, {.x = 8192}};
    e[0].job.run = uj_counting;
    /* e[1] is a uj_run job that writes its row, then fails */
    uj_batch(e, 3);
    ASSERT_EQ_ERR(e[0].job.rc, ERR_OK);
    ASSERT_EQ_ERR(e[1].job.rc, ERR_INVALID);
    ASSERT_EQ_ERR(e[2].job.rc, ERR_OK);
    ASSERT_EQ_INT(uj_counting_runs, 2); /* e[0] in the pass and again after its rollback */
    ASSERT_EQ_INT(uj_metric.value - before, 1);
    ASSERT_TRUE(uj_rollbacks >= 2);                     /* the pass, then e[1]'s savepoint */
    ASSERT_TRUE(uj_rolled_back_txn == uj_counting_txn); /* e[1]'s, in the second transaction */

    /* A batch whose only counting job fails: nothing counts. */
    before = uj_metric.value;
    struct unit_job f[2] = {{.x = 2048}, {.x = 16384}}; /* 2048 is taken: the insert fails */
    f[0].job.run = uj_counting;
    f[1].job.run = uj_counting;
    uj_batch(f, 2);
    ASSERT_TRUE(f[0].job.rc != ERR_OK);
    ASSERT_EQ_ERR(f[1].job.rc, ERR_OK);
    ASSERT_EQ_INT(uj_metric.value - before, 1);

    store_down(&cfg, dir, data);
}

void unit_stream(void)
{
    RUN(test_events_match);
    RUN(test_writer_units);
    RUN(test_routing);
    RUN(test_queue_transitions);
    RUN(test_integration_health);
    RUN(test_target_secrets);
    RUN(test_writer_only);
}
