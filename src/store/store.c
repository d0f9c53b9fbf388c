/* The writer thread (group commit), read connections and start-up checks.
 *
 * Threads: store_start/store_stop run on the main thread. One writer thread owns the only
 * writing connection and commits queued jobs in batches. Every other thread reads through
 * its own connection from store_reader(), closed by a pthread key destructor at thread exit.
 * On SQLite a checkpointer thread (its own connection) runs the WAL checkpoints, so they are
 * never in a commit. The queue, the parked jobs and the checkpointer's flags are guarded by
 * g.lock; no lock is held across database I/O. */
#include "store/store.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/embed.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xalloc.h"

#define BATCH_MAX 1024       /* jobs per transaction */
#define READER_CACHE "-8192" /* KiB of SQLite page cache per read connection */

static struct {
    char *url;
    char *node;         /* this node's id, in the wake-ups it sends other nodes */
    _Atomic bool peers; /* other live nodes share the database: send them wake-ups */
    struct db *wdb;
    pthread_t thread;
    _Atomic bool running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct store_job *head, *tail;
    bool stopping;
    void (*wake_hook)(unsigned mask);
    unsigned char master_key[32];
    char admin_hash[2 * SHA256_LEN + 1];
    pthread_key_t reader_key;
    struct store_stats stats;
    /* SQLite: WAL checkpoints run on their own thread and connection, not in the writer's
     * commits (a checkpoint copies ~1,000 pages and fsyncs the database file: tens of ms a
     * few times a second at 1,000 events/s, which every job of that batch waited for). */
    pthread_t ckpt_thread;
    bool ckpt_running;
    bool ckpt_due; /* commits since the last checkpoint */
    pthread_cond_t ckpt_cond;
    uint64_t txn;                    /* the writer's transactions begun */
    void (*rollback_hooks[4])(void); /* store_on_rollback */
    int nrollback_hooks;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .cond = PTHREAD_COND_INITIALIZER,
       .ckpt_cond = PTHREAD_COND_INITIALIZER};

#define CKPT_PAGES 1000   /* a WAL this long is checkpointed (SQLite's own default) */
#define CKPT_EVERY_MS 100 /* at most this often */

/* --- migrations --------------------------------------------------------------------- */

static int migration_version(const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    return (int)strtol(base, NULL, 10);
}

enum err store_tenant_ids(struct db *db, char (**ids)[TENANT_ID_MAX], size_t *n)
{
    *ids = NULL;
    *n = 0;
    size_t cap = 0;
    struct db_stmt *st = db_stmt(db, "SELECT id FROM tenants ORDER BY id");
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            *ids = xrealloc(*ids, cap * sizeof **ids);
        }
        snprintf((*ids)[(*n)++], TENANT_ID_MAX, "%s", db_col_text(st, 0));
    }
    db_release(db);
    if (rc == ERR_DONE)
        return ERR_OK;
    free(*ids);
    *ids = NULL;
    *n = 0;
    return rc;
}

enum err store_migrate(struct db *db, char *errmsg, size_t errlen)
{
    const char *dialect = db_kind(db) == DB_PG ? ".pg.sql" : ".sqlite.sql";
    enum err rc = db_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                              "version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)");
    if (rc != ERR_OK)
        goto fail;
    if (db_kind(db) == DB_PG) /* several nodes may start at once */
        db_exec(db, "SELECT pg_advisory_lock(7310001)");
    /* Every version applied so far, not just the highest: a migration merged from another
     * branch may carry a lower number than one already applied, and still runs. */
    int applied[256], napplied = 0;
    struct db_stmt *st = db_stmt(db, "SELECT version FROM schema_migrations ORDER BY version");
    while ((rc = db_next(st)) == ERR_OK && napplied < (int)(sizeof applied / sizeof *applied))
        applied[napplied++] = (int)db_col_int(st, 0);
    if (rc == ERR_OK) {
        snprintf(errmsg, errlen, "more migrations applied than this build knows");
        rc = ERR_INTERNAL;
    }
    db_release(db); /* end the read snapshot before migrating */
    if (rc != ERR_DONE)
        goto unlock;
    rc = ERR_OK;
    for (const struct embedded_file *f = embedded_files; f->name; f++) {
        if (strncmp(f->name, "src/store/migrations/", 21) != 0)
            continue;
        size_t n = strlen(f->name), dl = strlen(dialect);
        if (n < dl || strcmp(f->name + n - dl, dialect) != 0)
            continue;
        int v = migration_version(f->name);
        bool done = false;
        for (int k = 0; k < napplied && !done; k++)
            done = applied[k] == v;
        if (done)
            continue;
        char *sql = xstrndup((const char *)f->data, f->len);
        rc = db_begin(db);
        if (rc == ERR_OK)
            rc = db_exec(db, sql);
        free(sql);
        if (rc == ERR_OK) {
            struct db_stmt *ins =
                db_stmt(db, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)");
            db_bind_int(ins, 1, v);
            db_bind_int(ins, 2, time_now_ms());
            rc = db_run(ins);
        }
        if (rc == ERR_OK)
            rc = db_commit(db);
        if (rc != ERR_OK) {
            snprintf(errmsg, errlen, "migration %s failed: %s", f->name, db_errmsg(db));
            db_rollback(db);
            goto unlock;
        }
        log_info("store", "applied migration %s", f->name);
    }
unlock:
    if (db_kind(db) == DB_PG)
        db_exec(db, "SELECT pg_advisory_unlock(7310001)");
    if (rc == ERR_OK)
        return ERR_OK;
fail:
    if (!*errmsg)
        snprintf(errmsg, errlen, "migrations failed: %s", db_errmsg(db));
    return rc;
}

/* The tables that grow with the load, and the columns their queries filter and join on:
 * their names come from this list, never from the database, into the SQL text. A column
 * list skips the payloads and the expression indexes (autovacuum's ANALYZE does those),
 * which were most of each run; the table's size, what these runs are for, is updated
 * whatever the list. Each run's small sample replaces autovacuum's fuller one for these
 * columns, but only when a table has doubled: rarely once it is large. */
static const struct {
    const char *table, *columns;
} grown_tables[] = {
    {"events", "tenant_id, id, client_id, type, entity, entity_id, published_at"},
    {"deliveries", "tenant_id, id, integration_id, event_id, entity_key, state, "
                   "next_attempt_at, first_attempt_at, lease_owner, lease_until, batch_id, "
                   "created_at, finished_at"},
    {"delivery_attempts", "tenant_id, delivery_id"},
    {"entity_sequences", "tenant_id, entity, entity_id"},
    {"delivery_counts", "tenant_id, integration_id, status"},
    {"stats_minutes", "tenant_id, minute, kind"},
};
#define NGROWN (sizeof grown_tables / sizeof *grown_tables)

/* ANALYZE of each grown table with twice the rows its statistics saw. */
static enum err analyze_due(struct db *db, int *n)
{
    bool due[NGROWN] = {0};
    /* Every grown-past table of the schema; the loop below keeps those of grown_tables. */
    struct db_stmt *st = db_stmt(
        db, "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
            "WHERE s.schemaname = current_schema() AND "
            "s.n_live_tup >= GREATEST(?, 2 * c.reltuples)");
    db_bind_int(st, 1, STORE_ANALYZE_MIN);
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK)
        for (size_t i = 0; i < NGROWN; i++)
            if (!strcmp(db_col_text(st, 0), grown_tables[i].table))
                due[i] = true;
    db_release(db);
    if (rc != ERR_DONE)
        return rc;
    /* A small sample: what these plans need is the table's size and its few states and
     * integrations, and a run with the default sample took up to 0.13 s of a core on this
     * 2-core machine, which the publish-to-receipt p99 showed. Autovacuum's own ANALYZE
     * later takes the full sample. */
    if ((rc = db_exec(db, "SET default_statistics_target = 10")) != ERR_OK)
        return rc;
    for (size_t i = 0; i < NGROWN && rc == ERR_OK; i++) {
        if (!due[i])
            continue;
        char sql[256];
        snprintf(sql, sizeof sql, "ANALYZE %s (%s)", grown_tables[i].table,
                 grown_tables[i].columns);
        if ((rc = db_exec(db, sql)) == ERR_OK)
            (*n)++;
    }
    enum err reset = db_exec(db, "RESET default_statistics_target");
    return rc != ERR_OK ? rc : reset;
}

enum err store_analyze_grown(struct db *db, int *n)
{
    *n = 0;
    if (db_kind(db) != DB_PG)
        return ERR_OK;
    /* One node at a time (the others find the statistics fresh afterwards): with several
     * nodes they all saw the same growth on the same tick and analyzed the same tables
     * together, queued on each other's lock. */
    struct db_stmt *st = db_stmt(db, "SELECT pg_try_advisory_lock(7310003)");
    enum err rc = db_next(st);
    bool locked = rc == ERR_OK && db_col_int(st, 0) != 0;
    db_release(db);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_STORAGE : rc;
    if (!locked)
        return ERR_OK;
    rc = analyze_due(db, n);
    if (db_exec(db, "SELECT pg_advisory_unlock(7310003)") != ERR_OK && rc == ERR_OK)
        rc = ERR_STORAGE;
    return rc;
}

/* --- settings: master key, admin token ------------------------------------------------ */

static enum err setting_get(struct db *db, const char *key, char **out)
{
    struct db_stmt *st = db_stmt(db, "SELECT value FROM settings WHERE key = ?");
    db_bind_text(st, 1, key);
    enum err rc = db_next(st);
    if (rc == ERR_OK)
        *out = xstrdup(db_col_text(st, 0));
    return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
}

static enum err setting_put(struct db *db, const char *key, const char *value)
{
    struct db_stmt *st = db_stmt(db, "INSERT INTO settings (key, value) VALUES (?, ?) "
                                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    db_bind_text(st, 1, key);
    db_bind_text(st, 2, value);
    return db_run(st);
}

/* Reads a whole small file into a malloc'd string; NULL if it does not exist. */
static char *read_small_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return xstrdup(buf);
}

static enum err write_secret_file(const char *path, const char *content, char *errmsg,
                                  size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        snprintf(errmsg, errlen, "cannot create %s: %s", path, strerror(errno));
        return ERR_IO;
    }
    size_t n = strlen(content);
    bool ok = write(fd, content, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    close(fd);
    if (!ok) {
        snprintf(errmsg, errlen, "cannot write %s: %s", path, strerror(errno));
        return ERR_IO;
    }
    return ERR_OK;
}

static enum err setup_master_key(const struct config *cfg, char *errmsg, size_t errlen)
{
    char *path = cfg->master_key_file ? xstrdup(cfg->master_key_file)
                                      : xasprintf("%s/master-key", cfg->data_dir);
    char *hex = read_small_file(path);
    enum err rc = ERR_OK;
    if (!hex) {
        if (cfg->master_key_file) {
            snprintf(errmsg, errlen, "cannot read master key file %s: %s", path, strerror(errno));
            rc = ERR_IO;
            goto out;
        }
        unsigned char key[32];
        crypto_random(key, sizeof key);
        hex = hex_encode(key, sizeof key);
        if ((rc = write_secret_file(path, hex, errmsg, errlen)) != ERR_OK)
            goto out;
        log_info("store", "generated master key in %s", path);
    }
    if (hex_decode(hex, g.master_key, sizeof g.master_key) != ERR_OK) {
        snprintf(errmsg, errlen, "master key file %s must hold 32 bytes as 64 hex digits", path);
        rc = ERR_INVALID;
        goto out;
    }
    char fp[2 * SHA256_LEN + 1];
    crypto_sha256_hex(hex, fp);
    char *stored = NULL;
    rc = setting_get(g.wdb, "master_key_fingerprint", &stored);
    if (rc == ERR_NOT_FOUND) {
        rc = setting_put(g.wdb, "master_key_fingerprint", fp);
    } else if (rc == ERR_OK && strcmp(stored, fp) != 0) {
        snprintf(errmsg, errlen,
                 "the master key in %s does not match the one this database was set up with "
                 "(every node sharing a database must use the same --master-key-file)",
                 path);
        rc = ERR_INVALID;
    }
    free(stored);
out:
    free(hex);
    free(path);
    return rc;
}

static enum err setup_admin_token(const struct config *cfg, char *errmsg, size_t errlen)
{
    char *path = xasprintf("%s/admin-token", cfg->data_dir);
    char *stored = NULL;
    enum err rc = setting_get(g.wdb, "admin_token_hash", &stored);
    if (rc != ERR_OK && rc != ERR_NOT_FOUND)
        goto out;
    rc = ERR_OK;
    if (cfg->admin_token && *cfg->admin_token) {
        crypto_sha256_hex(cfg->admin_token, g.admin_hash);
        if (!stored || strcmp(stored, g.admin_hash) != 0)
            rc = setting_put(g.wdb, "admin_token_hash", g.admin_hash);
        fprintf(stdout, "Admin token: as given by --admin-token / SLUICE_ADMIN_TOKEN\n");
        goto out;
    }
    char *tok = read_small_file(path);
    if (tok) {
        crypto_sha256_hex(tok, g.admin_hash);
        free(tok);
        if (!stored || strcmp(stored, g.admin_hash) != 0)
            rc = setting_put(g.wdb, "admin_token_hash", g.admin_hash);
        fprintf(stdout, "Admin token: in %s\n", path);
        goto out;
    }
    if (stored) {
        /* Another node generated it; this node's data dir does not hold it. */
        snprintf(g.admin_hash, sizeof g.admin_hash, "%s", stored);
        fprintf(stdout, "Admin token: set in the database by another node (not in %s)\n", path);
        goto out;
    }
    unsigned char raw[24];
    crypto_random(raw, sizeof raw);
    char *b = base64url_encode(raw, sizeof raw);
    char *token = xasprintf("adm_%s", b);
    free(b);
    if ((rc = write_secret_file(path, token, errmsg, errlen)) == ERR_OK) {
        crypto_sha256_hex(token, g.admin_hash);
        rc = setting_put(g.wdb, "admin_token_hash", g.admin_hash);
        fprintf(stdout, "Admin token: %s  (saved in %s, shown only now)\n", token, path);
    }
    free(token);
out:
    fflush(stdout);
    if (rc == ERR_STORAGE && !*errmsg)
        snprintf(errmsg, errlen, "cannot store the admin token: %s", db_errmsg(g.wdb));
    free(stored);
    free(path);
    return rc;
}

bool store_admin_token_ok(const char *token)
{
    if (!g.admin_hash[0] || !token)
        return false;
    char h[2 * SHA256_LEN + 1];
    crypto_sha256_hex(token, h);
    return crypto_streq(h, g.admin_hash);
}

const unsigned char *store_master_key(void)
{
    return g.master_key;
}

/* --- readers -------------------------------------------------------------------------- */

static void reader_destroy(void *p)
{
    db_close(p);
}

struct db *store_reader(void)
{
    struct db *db = pthread_getspecific(g.reader_key);
    if (!db) {
        char msg[256] = "";
        if (db_open(g.url, &db, msg, sizeof msg) != ERR_OK) {
            log_error("store", "cannot open a read connection: %s", msg);
            return NULL;
        }
        /* SQLite's page cache is per connection and fills up to its size as the database
         * grows: 64 MiB for the writer (db_sqlite.c), READER_CACHE for each reading thread,
         * so the process stays within 64 MiB + READER_CACHE x readers (docs/operations.md). */
        if (db_kind(db) == DB_SQLITE)
            db_exec(db, "PRAGMA query_only = ON; PRAGMA cache_size = " READER_CACHE);
        pthread_setspecific(g.reader_key, db);
    }
    if (db_ensure(db) != ERR_OK)
        return NULL;
    return db;
}

void store_reader_release(void)
{
    struct db *db = pthread_getspecific(g.reader_key);
    if (db)
        db_release(db);
}

enum db_kind store_kind(void)
{
    return db_kind(g.wdb);
}

/* --- the writer ----------------------------------------------------------------------- */

static _Thread_local bool t_writer;    /* this thread is the writer */
static _Thread_local unsigned *t_wake; /* the running unit's wake bits (NULL: none) */

bool store_is_writer(void)
{
    return t_writer || !atomic_load(&g.running);
}

void store_wake(unsigned bits)
{
    assert(store_is_writer());
    if (t_wake)
        *t_wake |= bits;
}

/* Counts of the transaction's jobs (store_count), applied after its commit. Writer only. */
static struct {
    struct metric *m;
    int64_t n;
} * t_counts;
static size_t t_ncounts, t_capcounts;

void store_count(struct metric *m, int64_t n)
{
    assert(store_is_writer());
    if (!t_wake) { /* outside a job */
        metric_add(m, n);
        return;
    }
    if (t_ncounts == t_capcounts) {
        t_capcounts = t_capcounts ? 2 * t_capcounts : 64;
        t_counts = xrealloc(t_counts, t_capcounts * sizeof *t_counts);
    }
    t_counts[t_ncounts].m = m;
    t_counts[t_ncounts++].n = n;
}

uint64_t store_txn(void)
{
    return g.txn;
}

void store_on_rollback(void (*fn)(void))
{
    pthread_mutex_lock(&g.lock);
    assert(g.nrollback_hooks < (int)(sizeof g.rollback_hooks / sizeof *g.rollback_hooks));
    if (g.nrollback_hooks < (int)(sizeof g.rollback_hooks / sizeof *g.rollback_hooks))
        g.rollback_hooks[g.nrollback_hooks++] = fn;
    pthread_mutex_unlock(&g.lock);
}

/* After a rollback of the transaction (counts: 0) or of a unit's savepoint (counts: what
 * stood before the unit): drops the rolled-back counts and tells the caches. */
static void rolled_back(size_t counts)
{
    t_ncounts = counts;
    pthread_mutex_lock(&g.lock);
    int n = g.nrollback_hooks;
    void (*hooks[4])(void);
    memcpy(hooks, g.rollback_hooks, sizeof hooks);
    pthread_mutex_unlock(&g.lock);
    for (int i = 0; i < n; i++)
        hooks[i]();
}

/* BEGIN on the writer's connection: a new transaction number, no counts. */
static enum err writer_begin(struct db *db)
{
    g.txn++;
    t_ncounts = 0;
    return db_begin(db);
}

/* Runs one job alone under its own savepoint; returns its wake bits if it succeeded. */
static unsigned run_one(struct db *db, struct store_job *j)
{
    if (db_savepoint(db) != ERR_OK) {
        j->rc = ERR_STORAGE;
        return 0;
    }
    unsigned wake = 0;
    size_t counts = t_ncounts;
    t_wake = &wake;
    j->rc = j->run(db, j->arg);
    t_wake = NULL;
    if (j->rc == ERR_OK && db_release_savepoint(db) != ERR_OK)
        j->rc = ERR_STORAGE; /* (then the transaction is broken: rolled back whole) */
    else if (j->rc != ERR_OK) {
        db_rollback_savepoint(db);
        rolled_back(counts);
    }
    return j->rc == ERR_OK ? wake : 0;
}

/* Runs n consecutive jobs of one group together (store_group); if that fails, each alone.
 * Returns the wake bits of what committed in the transaction. */
static unsigned run_group(struct db *db, struct store_job **jobs, size_t n)
{
    const struct store_group *grp = jobs[0]->group;
    if (n > 1 && db_savepoint(db) == ERR_OK) {
        unsigned wake = 0;
        size_t counts = t_ncounts;
        for (size_t i = 0; i < n; i++)
            jobs[i]->rc = ERR_OK;
        t_wake = &wake;
        enum err rc = grp->run_many(db, jobs, n);
        t_wake = NULL;
        if (rc == ERR_OK && db_release_savepoint(db) == ERR_OK)
            return wake;
        if (rc == ERR_OK) /* the release failed: nothing of it stands */
            rc = ERR_STORAGE;
        db_rollback_savepoint(db);
        rolled_back(counts);
        if (db_kind(db) == DB_PG && db_broken(db)) {
            for (size_t i = 0; i < n; i++)
                jobs[i]->rc = rc;
            return 0;
        }
    }
    unsigned wake = 0;
    for (size_t i = 0; i < n; i++)
        wake |= run_one(db, jobs[i]);
    return wake;
}

/* Other nodes sharing a PostgreSQL database learn of a commit's wake bits (a NOTIFY with
 * "<bits> <node id>", src/sched/nodes.c listens), only while any share it (g.peers): after
 * the commit, outside its transaction, so a failure costs the others only their
 * safety-net poll, never the batch, and a listener finds the rows already visible. */
static void notify_peers(struct db *db, unsigned wake)
{
    if (!wake || db_kind(db) != DB_PG || !atomic_load(&g.peers))
        return;
    char payload[160];
    snprintf(payload, sizeof payload, "%u %s", wake, g.node ? g.node : "");
    struct db_stmt *st = db_stmt(db, "SELECT pg_notify('" STORE_NOTIFY_CHANNEL "', ?)");
    db_bind_text(st, 1, payload);
    if (db_run(st) != ERR_OK)
        log_warn("store", "cannot wake the other nodes: %s", db_errmsg(db));
    db_release(db);
}

void store_set_peers(bool peers)
{
    atomic_store(&g.peers, peers);
}

bool store_peers(void)
{
    return atomic_load(&g.peers);
}

/* Runs the batch's jobs in the open transaction, adding the wake bits of what ran to *wake.
 * With savepoints each unit (a job, or a run of consecutive jobs of one group) runs under
 * its own, so one that fails leaves the others standing; the unit that starts at `alone`
 * (one that failed before) runs job by job at once. Without, the first unit that fails ends
 * the pass: returns its first job, and the caller rolls the transaction back. Returns NULL
 * when the pass went through. */
static struct store_job *run_units(struct db *db, struct store_job *batch, bool savepoints,
                                   const struct store_job *alone, unsigned *wake)
{
    struct store_job *run[256];
    for (struct store_job *j = batch; j;) {
        struct store_job *first = j;
        size_t n = 0;
        const struct store_group *grp = j->group;
        if (!grp) {
            run[n++] = j;
            j = j->next;
        } else { /* at most 256 per run_many */
            while (j && j->group == grp && n < sizeof run / sizeof *run) {
                run[n++] = j;
                j = j->next;
            }
        }
        if (savepoints) {
            if (n > 1 && first != alone)
                *wake |= run_group(db, run, n);
            else
                for (size_t i = 0; i < n; i++)
                    *wake |= run_one(db, run[i]);
            continue;
        }
        unsigned w = 0;
        enum err rc;
        t_wake = &w;
        if (n > 1) {
            for (size_t i = 0; i < n; i++)
                run[i]->rc = ERR_OK;
            rc = grp->run_many(db, run, n);
        } else {
            rc = run[0]->rc = run[0]->run(db, run[0]->arg);
        }
        t_wake = NULL;
        if (rc != ERR_OK)
            return first;
        *wake |= w;
    }
    return NULL;
}

/* Several nodes on one PostgreSQL: a job chosen as a deadlock's victim is rolled back to
 * its savepoint, but the rows the batch's earlier jobs locked stay locked, so the other
 * transaction still waits for this one, and the job (or its retry alone) loses again a
 * second later, for as long as the batch lasts. Instead the whole transaction is rolled
 * back, which lets the other node go on, and the batch runs again after a short random
 * pause (every run() can run again: nothing of a rolled-back run stays). */
#define VICTIM_TRIES 6

static void run_batch(struct store_job *batch)
{
    struct db *db = g.wdb;
    unsigned wake = 0;
    enum err rc = ERR_OK;
    for (int attempt = 1;; attempt++) {
        wake = 0;
        rc = db_ensure(db);
        if (rc == ERR_OK)
            rc = writer_begin(db);
        if (rc != ERR_OK) {
            log_error("store", "cannot begin a transaction: %s", db_errmsg(db));
            break;
        }
        /* First without savepoints: a savepoint is not free (SQLite copies every page the
         * statements under it touch into a sub-journal file, made and deleted per
         * savepoint; PostgreSQL takes two more round trips), and jobs rarely fail. */
        struct store_job *failed = run_units(db, batch, false, NULL, &wake);
        if (!failed && db_txn_aborted(db))
            failed = batch; /* a job went on past a failed statement: find it, unit by unit */
        if (failed && (!db_lock_victim(db) || attempt >= VICTIM_TRIES)) {
            /* A unit failed: undo the pass and run the jobs again, each unit under its own
             * savepoint and the one that failed job by job, so only what fails fails
             * (every job may run again: nothing of a rolled-back run stays). */
            wake = 0;
            db_rollback(db);
            rolled_back(0);
            if (!batch->next && !batch->group) { /* nothing to commit */
                if (batch->rc == ERR_OK)         /* it went on past a failed statement */
                    batch->rc = ERR_STORAGE;
                break; /* else its own error stands */
            }
            rc = writer_begin(db);
            if (rc != ERR_OK) {
                log_error("store", "cannot begin a transaction: %s", db_errmsg(db));
                break;
            }
            run_units(db, batch, true, failed, &wake);
        }
        if (db_lock_victim(db) && attempt < VICTIM_TRIES) {
            db_rollback(db);
            rolled_back(0);
            pthread_mutex_lock(&g.lock);
            g.stats.victim_retries++;
            pthread_mutex_unlock(&g.lock);
            unsigned char r;
            crypto_random(&r, 1);
            usleep((useconds_t)(1000 + (r % 8) * 1000 * attempt));
            continue;
        }
        rc = db_commit(db);
        if (rc != ERR_OK) {
            log_error("store", "commit failed: %s", db_errmsg(db));
            db_rollback(db);
            rolled_back(0);
        }
        break;
    }
    size_t n = 0;
    for (struct store_job *j = batch; j; j = j->next) {
        n++;
        if (rc != ERR_OK)
            j->rc = ERR_STORAGE; /* nothing of the batch was committed */
        else if (j->rc == ERR_OK)
            wake |= j->wake; /* the bits it was submitted with */
    }
    if (rc != ERR_OK)
        wake = 0;
    for (size_t i = 0; rc == ERR_OK && i < t_ncounts; i++) /* what committed counts */
        metric_add(t_counts[i].m, t_counts[i].n);
    t_ncounts = 0;
    pthread_mutex_lock(&g.lock);
    void (*hook)(unsigned) = g.wake_hook;
    g.stats.commits += rc == ERR_OK;
    if (rc == ERR_OK && g.ckpt_running && !g.ckpt_due && db_wal_pages(db) >= CKPT_PAGES) {
        g.ckpt_due = true;
        pthread_cond_signal(&g.ckpt_cond);
    }
    g.stats.failed_commits += rc != ERR_OK;
    g.stats.jobs += n;
    pthread_mutex_unlock(&g.lock);
    struct store_job *j = batch;
    while (j) {
        struct store_job *next = j->next; /* done() may free j */
        j->next = NULL;
        if (j->done)
            j->done(j->arg, j->rc);
        j = next;
    }
    if (wake && hook)
        hook(wake);
    notify_peers(db, wake);
}

static void *writer_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "sluice-writer");
    t_writer = true;
    for (;;) {
        pthread_mutex_lock(&g.lock);
        while (!g.head && !g.stopping)
            pthread_cond_wait(&g.cond, &g.lock);
        if (!g.head && g.stopping) {
            pthread_mutex_unlock(&g.lock);
            break;
        }
        struct store_job *batch = g.head, *last = g.head;
        size_t n = 1;
        while (last->next && n < BATCH_MAX) {
            last = last->next;
            n++;
        }
        g.head = last->next;
        if (!g.head)
            g.tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&g.lock);
        run_batch(batch);
    }
    return NULL;
}

/* The checkpointer (SQLite): a PASSIVE checkpoint once a commit leaves CKPT_PAGES or more
 * in the WAL (when SQLite's own auto-checkpoint would run one, in the commit), at most
 * every CKPT_EVERY_MS, on its own connection. It never blocks the writer; the writer restarts the
 * WAL from its start once a checkpoint has copied all of it and no reader still needs it. */
static void *ckpt_main(void *arg)
{
    struct db *db = arg;
    pthread_setname_np(pthread_self(), "sluice-ckpt");
    pthread_mutex_lock(&g.lock);
    while (g.ckpt_running) {
        while (g.ckpt_running && !g.ckpt_due)
            pthread_cond_wait(&g.ckpt_cond, &g.lock);
        if (!g.ckpt_running)
            break;
        g.ckpt_due = false;
        pthread_mutex_unlock(&g.lock);
        if (db_exec(db, "PRAGMA wal_checkpoint(PASSIVE)") != ERR_OK)
            log_warn("store", "checkpoint failed: %s", db_errmsg(db));
        usleep(CKPT_EVERY_MS * 1000);
        pthread_mutex_lock(&g.lock);
    }
    pthread_mutex_unlock(&g.lock);
    db_close(db);
    return NULL;
}

static void ckpt_start(void)
{
    struct db *db = NULL;
    char msg[256] = "";
    if (db_kind(g.wdb) != DB_SQLITE)
        return;
    if (db_open(g.url, &db, msg, sizeof msg) != ERR_OK) {
        log_warn("store", "no checkpoint thread (%s): the writer checkpoints", msg);
        return;
    }
    g.ckpt_running = true;
    if (pthread_create(&g.ckpt_thread, NULL, ckpt_main, db) != 0) {
        g.ckpt_running = false;
        db_close(db);
        log_warn("store", "no checkpoint thread: the writer checkpoints");
        return;
    }
    db_watch_wal(g.wdb);
}

static void ckpt_stop(void)
{
    pthread_mutex_lock(&g.lock);
    bool running = g.ckpt_running;
    g.ckpt_running = false;
    pthread_cond_signal(&g.ckpt_cond);
    pthread_mutex_unlock(&g.lock);
    if (running) {
        pthread_join(g.ckpt_thread, NULL);
        db_exec(g.wdb, "PRAGMA wal_autocheckpoint = 1000"); /* SQLite's own hook again */
    }
}

void store_submit(struct store_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&g.lock);
    if (g.stopping || !g.running) {
        pthread_mutex_unlock(&g.lock);
        job->rc = ERR_SHUTDOWN;
        if (job->done)
            job->done(job->arg, ERR_SHUTDOWN);
        return;
    }
    if (g.tail)
        g.tail->next = job;
    else
        g.head = job;
    g.tail = job;
    pthread_cond_signal(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

struct sync_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    enum err rc;
    enum err (*run)(struct db *db, void *arg);
    void *arg;
};

static enum err sync_run(struct db *db, void *arg)
{
    struct sync_wait *w = arg;
    return w->run(db, w->arg);
}

static void sync_done(void *arg, enum err rc)
{
    struct sync_wait *w = arg;
    pthread_mutex_lock(&w->lock);
    w->done = true;
    w->rc = rc;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

enum err store_write(enum err (*run)(struct db *db, void *arg), void *arg, unsigned wake)
{
    struct sync_wait w = {.lock = PTHREAD_MUTEX_INITIALIZER,
                          .cond = PTHREAD_COND_INITIALIZER,
                          .run = run,
                          .arg = arg};
    struct store_job job = {.run = sync_run, .done = sync_done, .arg = &w, .wake = wake};
    store_submit(&job);
    pthread_mutex_lock(&w.lock);
    while (!w.done)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    return w.rc;
}

static enum err noop_run(struct db *db, void *arg)
{
    (void)db;
    (void)arg;
    return ERR_OK;
}

void store_set_wake_hook(void (*fn)(unsigned mask))
{
    pthread_mutex_lock(&g.lock);
    g.wake_hook = fn;
    pthread_mutex_unlock(&g.lock);
    /* Removing it: once a job has gone through the writer after this point, no call of the
     * old hook is in progress any more (the writer reads the hook after each batch). */
    if (!fn && atomic_load(&g.running) && !t_writer)
        store_write(noop_run, NULL, 0);
}

void store_get_stats(struct store_stats *out)
{
    pthread_mutex_lock(&g.lock);
    *out = g.stats;
    pthread_mutex_unlock(&g.lock);
}

static enum err ensure_data_dir(const char *dir, char *errmsg, size_t errlen)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errmsg, errlen, "cannot create data directory %s: %s", dir, strerror(errno));
        return ERR_IO;
    }
    return ERR_OK;
}

enum err store_start(const struct config *cfg, char *errmsg, size_t errlen)
{
    enum err rc = ensure_data_dir(cfg->data_dir, errmsg, errlen);
    if (rc != ERR_OK)
        return rc;
    g.url = xstrdup(cfg->db);
    g.node = xstrdup(cfg->node_id ? cfg->node_id : "");
    if ((rc = db_open(g.url, &g.wdb, errmsg, errlen)) != ERR_OK)
        goto fail;
    if ((rc = store_migrate(g.wdb, errmsg, errlen)) != ERR_OK)
        goto fail;
    if ((rc = setup_master_key(cfg, errmsg, errlen)) != ERR_OK)
        goto fail;
    if ((rc = setup_admin_token(cfg, errmsg, errlen)) != ERR_OK)
        goto fail;
    pthread_key_create(&g.reader_key, reader_destroy);
    ckpt_start();
    g.stopping = false;
    g.running = true;
    if (pthread_create(&g.thread, NULL, writer_main, NULL) != 0) {
        snprintf(errmsg, errlen, "cannot start the writer thread");
        g.running = false;
        ckpt_stop();
        rc = ERR_INTERNAL;
        goto fail;
    }
    log_info("store", "database ready (%s)", db_kind(g.wdb) == DB_PG ? "postgresql" : "sqlite");
    return ERR_OK;
fail:
    db_close(g.wdb);
    g.wdb = NULL;
    free(g.url);
    g.url = NULL;
    free(g.node);
    g.node = NULL;
    return rc;
}

void store_stop(void)
{
    if (!g.running)
        return;
    pthread_mutex_lock(&g.lock);
    g.stopping = true;
    pthread_cond_signal(&g.cond);
    pthread_mutex_unlock(&g.lock);
    pthread_join(g.thread, NULL);
    g.running = false;
    ckpt_stop();
    db_close(g.wdb);
    g.wdb = NULL;
    /* The main thread may have opened a read connection too. */
    struct db *r = pthread_getspecific(g.reader_key);
    if (r) {
        db_close(r);
        pthread_setspecific(g.reader_key, NULL);
    }
    free(g.url);
    g.url = NULL;
    free(g.node);
    g.node = NULL;
}
