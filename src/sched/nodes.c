/* The node registry (see nodes.h).
 *
 * Threads. The main thread identifies and registers the node and stops it. The node thread
 * (sluice-node) submits the heartbeat job to the writer every beat (a fifth of
 * --node-timeout, at most 2 s) and, on PostgreSQL, owns the node connection: it holds the
 * advisory lock of the node id for the life of the process (a second process with the
 * same id cannot take it; a restarted one gets it at once because its predecessor's
 * session ended with it) and LISTENs for the other nodes' wake-ups. The heartbeat job runs
 * on the writer, inside its transaction: it moves last_seen, finds the nodes that died and
 * gives their work back in the same transaction (released_at is set there, so exactly one
 * live node does it), and counts the live peers. Shared state: atomics only, and a pipe
 * that ends the node thread's wait.
 *
 * Clocks. last_seen and every "dead yet?" judgment use the database's clock, so the nodes'
 * clocks need not agree. A node finds others dead only once its own heartbeats have run
 * without a gap for a whole timeout: a node back from a database outage, or from a pause of
 * its own, does not take its peers, silent for the same reason, for dead. */
#include "sched/nodes.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/id.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "deliver/deliver.h"
#include "notify/notifier.h"
#include "store/store.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

#define BEAT_MAX_MS 2000
#define BEAT_MIN_MS 200
#define SAFETY_POLL_MS 5000 /* with peers: wake the engines even without a NOTIFY */
#define LOCK_KEY "7310002"  /* advisory lock class of node ids (7310001: migrations) */
#define SWEEP_MAX 16        /* dead nodes released per heartbeat */
#define PRUNE_AFTER_MS (7LL * 24 * 3600 * 1000)

/* The database's clock in milliseconds, per dialect, and "alive" on it. */
#define PG_NOW "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
#define LITE_NOW "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
#define ALIVE(now)                                                                                 \
    "n.stopped_at IS NULL AND n.released_at IS NULL AND n.last_seen + n.timeout_ms >= " now
#define DIALECT(db, M) (db_kind(db) == DB_PG ? M(PG_NOW) : M(LITE_NOW))

struct holding {
    int64_t deliveries, batches, notifications;
};

/* What a heartbeat found. */
struct beat_seen {
    bool fatal;     /* another process registered this node id */
    bool was_dead;  /* other nodes had found this one dead and given its work away */
    int64_t silent; /* how long it had been silent then */
    int64_t peers;  /* other live nodes */
    int64_t dead;   /* other nodes dead and not yet released */
};

/* The writer's job of a beat (one at a time: beat_busy), its fields written by the node
 * thread before submission and by the writer while it runs. */
struct beat {
    struct store_job job;
    bool heartbeat; /* SQLite: the heartbeat too (heartbeat()) */
    bool may_sweep;
    /* results */
    struct beat_seen seen;
    int nswept;
    char swept[SWEEP_MAX][72];
    struct holding swept_held[SWEEP_MAX];
    int64_t swept_silent[SWEEP_MAX];
};

static struct {
    const struct config *cfg;
    char host[128];
    char incarnation[ID_MAX];
    int64_t beat_ms;
    struct db *conn; /* PostgreSQL: the node connection; NULL on SQLite */
    bool locked;     /* conn holds the node id's advisory lock */
    bool listening;
    pthread_t thread;
    bool running;
    int pipe[2];
    _Atomic bool stopping;
    struct beat beat;
    _Atomic bool beat_busy;
    _Atomic bool beat_fatal;
    _Atomic bool beat_failing; /* the last heartbeat failed (logged once) */
    _Atomic int64_t ok_since;  /* monotonic ms: heartbeats without a gap since then, -1 none */
    _Atomic int64_t last_ok;   /* monotonic ms of the last committed heartbeat, -1 none */
    _Atomic bool peers;
    _Atomic int64_t dead;      /* dead nodes not yet released, as the last heartbeat saw */
    pthread_mutex_t wake_lock; /* held while waking the engines; guards wakeups */
    bool wakeups;              /* the engines run: wake-ups may reach them */
} g = {.pipe = {-1, -1}, .wake_lock = PTHREAD_MUTEX_INITIALIZER};

/* --- identity ------------------------------------------------------------------------ */

static bool read_id_file(const char *path, char *out, size_t outlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char buf[128] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n \t")] = '\0';
    snprintf(out, outlen, "%s", buf);
    return true;
}

/* "<first label of the host name, letters, digits and '-'>-<6 hex digits>". */
static void make_id(char *out, size_t outlen)
{
    char host[128] = "";
    gethostname(host, sizeof host - 1);
    char clean[41];
    size_t k = 0;
    for (const char *p = host; *p && *p != '.' && k < sizeof clean - 1; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-')
            clean[k++] = *p;
    clean[k] = '\0';
    unsigned char r[3];
    crypto_random(r, sizeof r);
    snprintf(out, outlen, "%s%s%02x%02x%02x", k ? clean : "node", "-", r[0], r[1], r[2]);
}

enum err nodes_identity(struct config *cfg, char *errmsg, size_t errlen)
{
    if (cfg->node_id)
        return ERR_OK;
    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errmsg, errlen, "cannot create data directory %s: %s", cfg->data_dir,
                 strerror(errno));
        return ERR_IO;
    }
    char *path = xasprintf("%s/node-id", cfg->data_dir);
    char id[128];
    enum err rc = ERR_OK;
    if (!read_id_file(path, id, sizeof id)) {
        make_id(id, sizeof id);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            char line[140];
            int n = snprintf(line, sizeof line, "%s\n", id);
            bool ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
            close(fd);
            if (!ok) {
                snprintf(errmsg, errlen, "cannot write %s: %s", path, strerror(errno));
                rc = ERR_IO;
                goto out;
            }
        } else if (errno != EEXIST || !read_id_file(path, id, sizeof id)) {
            snprintf(errmsg, errlen, "cannot create %s: %s", path, strerror(errno));
            rc = ERR_IO;
            goto out;
        }
    }
    if (!id_user_valid(id)) {
        snprintf(errmsg, errlen,
                 "%s must hold a node id of 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
                 path);
        rc = ERR_INVALID;
        goto out;
    }
    cfg->node_id = xstrdup(id);
out:
    free(path);
    return rc;
}

/* --- the rows (writer) --------------------------------------------------------------- */

static enum err count_holding(struct db *db, const char *node, struct holding *h)
{
    struct db_stmt *st = db_stmt(
        db, "SELECT (SELECT COUNT(*) FROM deliveries WHERE state = 'in_flight' AND lease_owner "
            "= ?), (SELECT COUNT(*) FROM s3_batches WHERE state = 'closing' AND lease_owner = ?), "
            "(SELECT COUNT(*) FROM notifications WHERE state = 'sending' AND lease_owner = ?)");
    db_bind_text(st, 1, node);
    db_bind_text(st, 2, node);
    db_bind_text(st, 3, node);
    enum err rc = db_next(st);
    if (rc == ERR_OK) {
        h->deliveries = db_col_int(st, 0);
        h->batches = db_col_int(st, 1);
        h->notifications = db_col_int(st, 2);
    }
    db_release(db);
    return rc == ERR_OK ? ERR_OK : rc == ERR_DONE ? ERR_STORAGE : rc;
}

/* Everything node holds goes back, for any node to take. */
static enum err release_node(struct db *db, const char *node)
{
    enum err rc = deliver_release_node(db, node);
    return rc == ERR_OK ? notifier_release(db, node) : rc;
}

/* A process of this host that still runs (a zombie, killed but not yet reaped, does not). */
static bool pid_alive(int64_t pid)
{
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
        return false;
    char path[64], stat[256] = "";
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')'); /* "pid (comm) state ..." */
    return !(paren && paren[1] == ' ' && paren[2] == 'Z');
}

struct reg {
    char refused[400];
    bool took_over; /* the id's previous run had not stopped */
    int64_t silent;
    struct holding held;
    struct beat_seen seen;
};

/* SQLite has one node: any other live process on the database is refused. A live row of
 * this host whose process is gone (or is this very process: a container's pid 1) is a
 * previous run that crashed. */
static enum err sqlite_check(struct db *db, struct reg *r)
{
#define SQL(now) "SELECT n.id, n.host, n.pid, " now " - n.last_seen FROM nodes n WHERE " ALIVE(now)
    struct db_stmt *st = db_stmt(db, SQL(LITE_NOW));
#undef SQL
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK) {
        const char *id = db_col_text(st, 0), *host = db_col_text(st, 1);
        int64_t pid = db_col_int(st, 2);
        if (!strcmp(host, g.host) && (pid == (int64_t)getpid() || !pid_alive(pid)))
            continue;
        if (!strcmp(id, g.cfg->node_id))
            snprintf(r->refused, sizeof r->refused,
                     "node id \"%s\" is in use by a running process (pid %lld on %s, last "
                     "heartbeat %.1f s ago); each process needs its own --node-id",
                     id, (long long)pid, host, (double)db_col_int(st, 3) / 1000.0);
        else
            snprintf(r->refused, sizeof r->refused,
                     "another sluice process (node \"%s\", pid %lld on %s) is running on this "
                     "SQLite database; SQLite runs one node (use PostgreSQL for several)",
                     id, (long long)pid, host);
        db_release(db);
        return ERR_CONFLICT;
    }
    db_release(db);
    return rc == ERR_DONE ? ERR_OK : rc;
}

static enum err upsert_row(struct db *db)
{
#define SQL(now)                                                                                   \
    "INSERT INTO nodes (id, incarnation, roles, version, host, pid, timeout_ms, started_at, "      \
    "last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, " now ", " now ") ON CONFLICT (id) DO UPDATE SET "    \
    "incarnation = excluded.incarnation, roles = excluded.roles, version = excluded.version, "     \
    "host = excluded.host, pid = excluded.pid, timeout_ms = excluded.timeout_ms, started_at = "    \
    "excluded.started_at, last_seen = excluded.last_seen, stopped_at = NULL, released_at = NULL"
    struct db_stmt *st = db_stmt(db, db_kind(db) == DB_PG ? SQL(PG_NOW) : SQL(LITE_NOW));
#undef SQL
    db_bind_text(st, 1, g.cfg->node_id);
    db_bind_text(st, 2, g.incarnation);
    db_bind_text(st, 3, g.cfg->roles);
    db_bind_text(st, 4, SLUICE_VERSION);
    db_bind_text(st, 5, g.host);
    db_bind_int(st, 6, (int64_t)getpid());
    db_bind_int(st, 7, g.cfg->node_timeout_ms);
    return db_run(st);
}

static enum err heartbeat(struct db *db, struct beat_seen *b);

static enum err register_run(struct db *db, void *arg)
{
    struct reg *r = arg;
    enum err rc;
    r->refused[0] = '\0'; /* a batch run again (store.c) runs this again */
    r->took_over = false;
    r->silent = 0;
    if (db_kind(db) == DB_SQLITE && (rc = sqlite_check(db, r)) != ERR_OK)
        return rc;
#define SQL(now) "SELECT " now " - n.last_seen FROM nodes n WHERE n.id = ? AND " ALIVE(now)
    struct db_stmt *st = db_stmt(db, DIALECT(db, SQL));
#undef SQL
    db_bind_text(st, 1, g.cfg->node_id);
    rc = db_next(st);
    if (rc == ERR_OK) {
        r->took_over = true;
        r->silent = db_col_int(st, 0);
    }
    db_release(db);
    if (rc != ERR_OK && rc != ERR_DONE)
        return rc;
    if ((rc = count_holding(db, g.cfg->node_id, &r->held)) != ERR_OK ||
        (rc = upsert_row(db)) != ERR_OK || (rc = release_node(db, g.cfg->node_id)) != ERR_OK)
        return rc;
        /* Rows of nodes gone for a week (stopped, or found dead) are forgotten. */
#define SQL(now)                                                                                   \
    "DELETE FROM nodes WHERE id <> ? AND (stopped_at IS NOT NULL OR released_at IS NOT NULL) "     \
    "AND last_seen < " now " - ?"
    st = db_stmt(db, DIALECT(db, SQL));
#undef SQL
    db_bind_text(st, 1, g.cfg->node_id);
    db_bind_int(st, 2, PRUNE_AFTER_MS);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    return heartbeat(db, &r->seen); /* the peers, from the start */
}

/* The heartbeat: moves last_seen (unless another process has this id now), counts the
 * live peers and the dead nodes not yet released. db: the node connection (PostgreSQL:
 * each statement commits on its own, beside the writer, so a busy writer never makes a
 * live node look dead) or the writer's (SQLite, one node). */
static enum err heartbeat(struct db *db, struct beat_seen *b)
{
    memset(b, 0, sizeof *b);
#define SQL(now)                                                                                   \
    "SELECT incarnation, released_at IS NOT NULL, " now " - last_seen FROM nodes WHERE id = ?"
    struct db_stmt *st = db_stmt(db, DIALECT(db, SQL));
#undef SQL
    db_bind_text(st, 1, g.cfg->node_id);
    enum err rc = db_next(st);
    bool present = rc == ERR_OK;
    if (present) {
        b->fatal = strcmp(db_col_text(st, 0), g.incarnation) != 0;
        b->was_dead = db_col_int(st, 1) != 0;
        b->silent = db_col_int(st, 2);
    }
    db_release(db);
    if (rc != ERR_OK && rc != ERR_DONE)
        return rc;
    if (b->fatal)
        return ERR_OK; /* another process has this id now: change nothing */
    if (!present) {
        rc = upsert_row(db); /* forgotten meanwhile (a restored backup?): here again */
    } else {
#define SQL(now)                                                                                   \
    "UPDATE nodes SET last_seen = " now ", released_at = NULL WHERE id = ? AND incarnation = ?"
        st = db_stmt(db, DIALECT(db, SQL));
#undef SQL
        db_bind_text(st, 1, g.cfg->node_id);
        db_bind_text(st, 2, g.incarnation);
        rc = db_run(st);
    }
    if (rc != ERR_OK)
        return rc;
#define SQL(now)                                                                                   \
    "SELECT COALESCE(SUM(CASE WHEN " ALIVE(                                                        \
        now) " THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE "                                         \
             "WHEN n.stopped_at IS NULL AND n.released_at IS NULL AND n.last_seen + n.timeout_ms " \
             "< " now " THEN 1 ELSE 0 END), 0) FROM nodes n WHERE n.id <> ?"
    st = db_stmt(db, DIALECT(db, SQL));
#undef SQL
    db_bind_text(st, 1, g.cfg->node_id);
    if ((rc = db_next(st)) == ERR_OK) {
        b->peers = db_col_int(st, 0);
        b->dead = db_col_int(st, 1);
    }
    db_release(db);
    return rc == ERR_OK ? ERR_OK : rc == ERR_DONE ? ERR_STORAGE : rc;
}

/* Writer: the nodes dead and not yet released give their work back, each once (released_at
 * is set in this transaction: of several live nodes sweeping at once, one does it). */
static enum err sweep(struct db *db, struct beat *b)
{
#define SQL(now)                                                                                   \
    "UPDATE nodes SET released_at = " now " WHERE id IN (SELECT n.id FROM nodes n WHERE n.id <> "  \
    "? AND n.stopped_at IS NULL AND n.released_at IS NULL AND n.last_seen + n.timeout_ms < " now   \
    " ORDER BY n.id LIMIT 16) AND released_at IS NULL RETURNING id, released_at - last_seen"
    struct db_stmt *st = db_stmt(db, DIALECT(db, SQL));
#undef SQL
    db_bind_text(st, 1, g.cfg->node_id);
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK) {
        if (b->nswept < SWEEP_MAX) {
            snprintf(b->swept[b->nswept], sizeof b->swept[0], "%s", db_col_text(st, 0));
            b->swept_silent[b->nswept] = db_col_int(st, 1);
            b->nswept++;
        }
    }
    db_release(db);
    if (rc != ERR_DONE)
        return rc;
    for (int i = 0; i < b->nswept; i++)
        if ((rc = count_holding(db, b->swept[i], &b->swept_held[i])) != ERR_OK ||
            (rc = release_node(db, b->swept[i])) != ERR_OK)
            return rc;
    return ERR_OK;
}

/* The beat's results (node thread on PostgreSQL, writer on SQLite). */
static void beat_seen(const struct beat_seen *b, enum err rc)
{
    int64_t now = time_mono_ms();
    if (rc == ERR_OK && b->fatal) {
        atomic_store(&g.beat_fatal, true);
    } else if (rc == ERR_OK) {
        int64_t last = atomic_load(&g.last_ok);
        /* A gap of half a timeout (an outage, a stall) starts the streak again. */
        if (last < 0 || now - last > g.cfg->node_timeout_ms / 2)
            atomic_store(&g.ok_since, now);
        atomic_store(&g.last_ok, now);
        atomic_store(&g.dead, b->dead);
        atomic_store(&g.peers, b->peers > 0);
        store_set_peers(b->peers > 0);
        if (b->was_dead)
            log_warn("node",
                     "node %s was taken for dead by the other nodes (no heartbeat for %.1f s) "
                     "and its work was given to them; it goes on",
                     g.cfg->node_id, (double)b->silent / 1000.0);
    } else if (!atomic_exchange(&g.beat_failing, true)) {
        log_warn("node",
                 "heartbeat failed: %s (the others take this node for dead after %lld "
                 "s without one)",
                 err_name(rc), (long long)(g.cfg->node_timeout_ms / 1000));
        return;
    } else {
        return;
    }
    if (atomic_exchange(&g.beat_failing, false))
        log_info("node", "heartbeats go on");
}

/* The writer's job: on SQLite the heartbeat and the sweep, on PostgreSQL the sweep. */
static enum err beat_run(struct db *db, void *arg)
{
    struct beat *b = arg;
    b->nswept = 0;
    enum err rc = ERR_OK;
    if (b->heartbeat && ((rc = heartbeat(db, &b->seen)) != ERR_OK || b->seen.fatal))
        return rc;
    return b->may_sweep ? sweep(db, b) : ERR_OK;
}

/* Writer, after the commit. */
static void beat_done(void *arg, enum err rc)
{
    struct beat *b = arg;
    if (b->heartbeat)
        beat_seen(&b->seen, rc);
    else if (rc != ERR_OK)
        log_warn("node", "cannot give the dead nodes' work back: %s", err_name(rc));
    for (int i = 0; rc == ERR_OK && i < b->nswept; i++)
        log_warn("node",
                 "node %s is dead (no heartbeat for %.1f s): released %lld delivery(ies), "
                 "%lld S3 batch(es), %lld notification(s)",
                 b->swept[i], (double)b->swept_silent[i] / 1000.0,
                 (long long)b->swept_held[i].deliveries, (long long)b->swept_held[i].batches,
                 (long long)b->swept_held[i].notifications);
    atomic_store(&g.beat_busy, false);
}

/* --- the node thread ----------------------------------------------------------------- */

static void wake_engines(unsigned bits)
{
    pthread_mutex_lock(&g.wake_lock);
    if (g.wakeups) {
        deliver_wake(bits);
        if (bits & STORE_WAKE_NOTIFY)
            notifier_wake();
    }
    pthread_mutex_unlock(&g.wake_lock);
}

void nodes_set_wakeups(bool on)
{
    pthread_mutex_lock(&g.wake_lock);
    g.wakeups = on;
    pthread_mutex_unlock(&g.wake_lock);
}

static void on_notify(const char *channel, const char *payload, void *ud)
{
    (void)channel;
    (void)ud;
    unsigned bits = 0;
    char node[80] = "";
    if (sscanf(payload, "%u %79s", &bits, node) < 1 || !strcmp(node, g.cfg->node_id))
        return;                   /* our own commits woke us already */
    if (bits & STORE_WAKE_PEER) { /* before its first request: see nodes_start */
        atomic_store(&g.peers, true);
        store_set_peers(true);
    }
    wake_engines(bits);
}

static int32_t lock_key(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (int32_t)h;
}

/* Takes the node id's advisory lock on the node connection: false when another session
 * holds it. */
static enum err try_lock(bool *got)
{
    struct db_stmt *st = db_stmt(g.conn, "SELECT pg_try_advisory_lock(" LOCK_KEY ", ?)");
    db_bind_int(st, 1, lock_key(g.cfg->node_id));
    enum err rc = db_next(st);
    *got = rc == ERR_OK && db_col_int(st, 0) != 0;
    db_release(g.conn);
    return rc == ERR_OK ? ERR_OK : ERR_STORAGE;
}

/* The session of the node connection: reconnected when broken, with TCP keepalives so
 * that the server notices a vanished host (and frees its lock) within seconds, the lock
 * taken again, and LISTEN. Node thread (or main thread before it starts). */
static bool pg_session(void)
{
    if (g.listening && !db_broken(g.conn))
        return true;
    g.listening = false;
    if (db_broken(g.conn))
        g.locked = false;
    if (db_ensure(g.conn) != ERR_OK)
        return false;
    db_exec(g.conn, "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET "
                    "tcp_keepalives_count = 3");
    /* Not holding it (another session of ours, not yet gone after a network cut, or
     * another process that took the id meanwhile: the heartbeat finds out) is retried. */
    if (!g.locked && try_lock(&g.locked) != ERR_OK)
        return false;
    if (db_exec(g.conn, "LISTEN " STORE_NOTIFY_CHANNEL) != ERR_OK)
        return false;
    g.listening = true;
    return true;
}

/* This node judges others dead only after a whole timeout of its own heartbeats. */
static bool may_sweep(void)
{
    int64_t now = time_mono_ms(), since = atomic_load(&g.ok_since), last = atomic_load(&g.last_ok);
    return since >= 0 && last >= 0 && now - last <= g.cfg->node_timeout_ms / 2 &&
           now - since >= g.cfg->node_timeout_ms;
}

static void submit_beat(bool heartbeat, bool sweep_too)
{
    if (atomic_exchange(&g.beat_busy, true))
        return; /* the last one is still under way */
    struct beat *b = &g.beat;
    memset(&b->job, 0, sizeof b->job);
    b->job.run = beat_run;
    b->job.done = beat_done;
    b->job.arg = b;
    b->heartbeat = heartbeat;
    b->may_sweep = sweep_too;
    store_submit(&b->job);
}

/* One beat. PostgreSQL: the heartbeat on the node connection, then the sweep through the
 * writer when some node is dead. SQLite: both through the writer. */
static void beat(void)
{
    if (!g.conn) {
        submit_beat(true, may_sweep());
        return;
    }
    struct beat_seen seen = {0};
    enum err rc = g.listening || pg_session() ? heartbeat(g.conn, &seen) : ERR_STORAGE;
    if (rc != ERR_OK)
        g.listening = false; /* a new session on the next turn */
    beat_seen(&seen, rc);
    if (rc == ERR_OK && seen.dead > 0 && may_sweep())
        submit_beat(false, true);
}

static void *node_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "sluice-node");
    int64_t next_beat = 0, next_safety = time_mono_ms() + SAFETY_POLL_MS;
    while (!atomic_load(&g.stopping)) {
        if (atomic_load(&g.beat_fatal)) {
            /* Not a graceful stop: giving "our" leases back would give away the other
             * process's. Stop at once, like a crash; the work is resumed from the rows. */
            log_error("node",
                      "another process has registered node id %s: stopping at once (two "
                      "processes must not share a node id)",
                      g.cfg->node_id);
            _exit(1);
        }
        int64_t now = time_mono_ms();
        if (g.conn) {
            bool was = g.listening;
            if (pg_session() && !was) /* wake-ups may have been missed meanwhile */
                wake_engines(STORE_WAKE_DELIVER | STORE_WAKE_NOTIFY);
        }
        if (now >= next_beat) {
            beat();
            next_beat = now + g.beat_ms;
        }
        if (now >= next_safety) {
            if (atomic_load(&g.peers))
                wake_engines(STORE_WAKE_DELIVER | STORE_WAKE_NOTIFY);
            next_safety = now + SAFETY_POLL_MS;
        }
        struct pollfd fds[2] = {{.fd = g.pipe[0], .events = POLLIN},
                                {.fd = g.listening ? db_socket(g.conn) : -1, .events = POLLIN}};
        int64_t wait = (next_beat < next_safety ? next_beat : next_safety) - time_mono_ms();
        if (wait < 1)
            wait = 1;
        if (poll(fds, 2, (int)wait) < 0 && errno != EINTR)
            break;
        if (fds[1].fd >= 0 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) &&
            db_notifications(g.conn, on_notify, NULL) != ERR_OK) {
            g.listening = false; /* reconnected on the next turn */
            log_warn("node", "lost the node connection: %s", db_errmsg(g.conn));
        }
    }
    return NULL;
}

/* --- start and stop ------------------------------------------------------------------ */

static struct metric_fn m_nodes;

enum err nodes_start(const struct config *cfg, char *errmsg, size_t errlen)
{
    g.cfg = cfg;
    gethostname(g.host, sizeof g.host - 1);
    id_new("nin", time_now_ms(), g.incarnation);
    g.beat_ms = cfg->node_timeout_ms / 5;
    if (g.beat_ms > BEAT_MAX_MS)
        g.beat_ms = BEAT_MAX_MS;
    if (g.beat_ms < BEAT_MIN_MS)
        g.beat_ms = BEAT_MIN_MS;
    atomic_store(&g.ok_since, -1);
    atomic_store(&g.last_ok, -1);
    atomic_store(&g.stopping, false);
    if (store_kind() == DB_PG) {
        if (db_open(cfg->db, &g.conn, errmsg, errlen) != ERR_OK)
            return ERR_STORAGE;
        bool got = false;
        if (try_lock(&got) != ERR_OK) {
            snprintf(errmsg, errlen, "cannot take the node id's lock: %s", db_errmsg(g.conn));
            goto fail;
        }
        if (!got) {
            /* Say who holds it, as far as the row knows. */
            struct db_stmt *st =
                db_stmt(g.conn, "SELECT host, pid, " PG_NOW " - last_seen FROM nodes WHERE id = ?");
            db_bind_text(st, 1, cfg->node_id);
            enum err qrc = db_next(st); /* an error only makes the message shorter */
            if (qrc == ERR_OK)
                snprintf(errmsg, errlen,
                         "node id \"%s\" is in use by a running process (pid %lld on %s, last "
                         "heartbeat %.1f s ago); each process needs its own --node-id",
                         cfg->node_id, (long long)db_col_int(st, 1), db_col_text(st, 0),
                         (double)db_col_int(st, 2) / 1000.0);
            else
                snprintf(errmsg, errlen,
                         "node id \"%s\" is in use by a running process; each process needs "
                         "its own --node-id",
                         cfg->node_id);
            db_release(g.conn);
            goto fail;
        }
        g.locked = true;
    }
    struct reg r = {.refused = ""};
    enum err rc = store_write(register_run, &r, 0);
    /* A storage error at start (seen once on SQLite, with another process busy on the same
     * file) is tried again a few times before it is fatal: a refusal must say why. */
    for (int tries = 1; rc == ERR_STORAGE && tries < 4; tries++) {
        usleep(250 * 1000);
        memset(&r, 0, sizeof r);
        rc = store_write(register_run, &r, 0);
    }
    if (rc == ERR_CONFLICT && r.refused[0]) {
        snprintf(errmsg, errlen, "%s", r.refused);
        goto fail;
    }
    if (rc != ERR_OK) {
        snprintf(errmsg, errlen, "cannot register node %s: %s", cfg->node_id, err_name(rc));
        goto fail;
    }
    atomic_store(&g.peers, r.seen.peers > 0);
    store_set_peers(r.seen.peers > 0);
    if (r.took_over)
        log_info("node",
                 "node %s took back the work of its previous run (which stopped without a "
                 "goodbye %.1f s ago): %lld delivery(ies), %lld S3 batch(es), %lld "
                 "notification(s)",
                 cfg->node_id, (double)r.silent / 1000.0, (long long)r.held.deliveries,
                 (long long)r.held.batches, (long long)r.held.notifications);
    if (g.conn && !pg_session()) {
        snprintf(errmsg, errlen, "cannot listen for the other nodes: %s", db_errmsg(g.conn));
        goto fail;
    }
    if (g.conn) {
        /* The others count this node as a peer before it takes its first request (their
         * outcomes look again at entities a publish of this node may route meanwhile:
         * webhook_record_outcome), not a heartbeat later. */
        char payload[120];
        snprintf(payload, sizeof payload, "%u %s", STORE_WAKE_PEER, cfg->node_id);
        struct db_stmt *st = db_stmt(g.conn, "SELECT pg_notify('" STORE_NOTIFY_CHANNEL "', ?)");
        db_bind_text(st, 1, payload);
        if (db_run(st) != ERR_OK) {
            snprintf(errmsg, errlen, "cannot greet the other nodes: %s", db_errmsg(g.conn));
            goto fail;
        }
        db_release(g.conn);
    }
    if (pipe2(g.pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(errmsg, errlen, "cannot create a pipe: %s", strerror(errno));
        goto fail;
    }
    metric_fn_register(&m_nodes);
    if (pthread_create(&g.thread, NULL, node_main, NULL) != 0) {
        snprintf(errmsg, errlen, "cannot start the node thread");
        goto fail;
    }
    g.running = true;
    return ERR_OK;
fail:
    db_close(g.conn);
    g.conn = NULL;
    return ERR_CONFLICT;
}

static enum err stop_run(struct db *db, void *arg)
{
    (void)arg;
#define SQL(now)                                                                                   \
    "UPDATE nodes SET stopped_at = " now ", last_seen = " now " WHERE id = ? AND incarnation = ?"
    struct db_stmt *st = db_stmt(db, DIALECT(db, SQL));
#undef SQL
    db_bind_text(st, 1, g.cfg->node_id);
    db_bind_text(st, 2, g.incarnation);
    return db_run(st);
}

void nodes_stop(void)
{
    if (g.running) {
        atomic_store(&g.stopping, true);
        ssize_t w = write(g.pipe[1], "x", 1);
        (void)w;
        pthread_join(g.thread, NULL);
        g.running = false;
        while (atomic_load(&g.beat_busy)) /* the writer still owes the last heartbeat */
            usleep(1000);
        if (store_write(stop_run, NULL, 0) != ERR_OK)
            log_warn("node", "cannot mark node %s stopped (the others find it dead later)",
                     g.cfg->node_id);
    }
    for (int i = 0; i < 2; i++)
        if (g.pipe[i] >= 0) {
            close(g.pipe[i]);
            g.pipe[i] = -1;
        }
    db_close(g.conn); /* ends the session: the node id's lock is free */
    g.conn = NULL;
    store_set_peers(false);
}

/* --- reading ------------------------------------------------------------------------- */

enum err nodes_list(struct db *db, const char *after, int limit,
                    void (*fn)(const struct node_info *n, void *ud), void *ud)
{
#define SQL(now)                                                                                   \
    "SELECT n.id, n.roles, n.version, n.started_at, n.last_seen, " now " - n.last_seen, CASE "     \
    "WHEN " ALIVE(now) " THEN 1 ELSE 0 END, (SELECT COUNT(*) FROM deliveries d WHERE d.state = "   \
                       "'in_flight' AND d.lease_owner = n.id), (SELECT COUNT(*) FROM s3_batches "  \
                       "b WHERE b.state = "                                                        \
                       "'closing' AND b.lease_owner = n.id), (SELECT COUNT(*) FROM notifications " \
                       "x WHERE x.state = "                                                        \
                       "'sending' AND x.lease_owner = n.id) FROM nodes n WHERE n.id > ? ORDER BY " \
                       "n.id LIMIT ?"
    struct db_stmt *st = db_stmt(db, DIALECT(db, SQL));
#undef SQL
    db_bind_text(st, 1, after ? after : "");
    db_bind_int(st, 2, limit);
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK) {
        struct node_info n;
        memset(&n, 0, sizeof n);
        snprintf(n.id, sizeof n.id, "%s", db_col_text(st, 0));
        snprintf(n.roles, sizeof n.roles, "%s", db_col_text(st, 1));
        snprintf(n.version, sizeof n.version, "%s", db_col_text(st, 2));
        n.started_at = db_col_int(st, 3);
        n.last_seen = db_col_int(st, 4);
        n.silent_ms = db_col_int(st, 5);
        n.alive = db_col_int(st, 6) != 0;
        n.deliveries = db_col_int(st, 7);
        n.batches = db_col_int(st, 8);
        n.notifications = db_col_int(st, 9);
        fn(&n, ud);
    }
    db_release(db);
    return rc == ERR_DONE ? ERR_OK : rc;
}

#define METRICS_NODES_MAX 1000

static void collect(const struct node_info *n, void *ud)
{
    struct buf *b = ud;
    buf_append(b, (const char *)n, sizeof *n);
}

static void render_nodes(struct buf *out)
{
    struct db *db = store_reader();
    if (!db)
        return;
    struct buf rows = BUF_INIT;
    enum err rc = nodes_list(db, NULL, METRICS_NODES_MAX, collect, &rows);
    if (rc == ERR_OK) { /* a storage error leaves the families out, never half of them */
        const struct node_info *n = (const struct node_info *)(void *)rows.data;
        size_t k = rows.len / sizeof *n;
        buf_puts(out, "# HELP sluice_node_up Nodes sharing the database: 1 alive, 0 stopped or "
                      "dead.\n# TYPE sluice_node_up gauge\n");
        for (size_t i = 0; i < k; i++)
            buf_printf(out, "sluice_node_up{node=\"%s\",roles=\"%s\",version=\"%s\"} %d\n", n[i].id,
                       n[i].roles, n[i].version, n[i].alive ? 1 : 0);
        buf_puts(out, "# HELP sluice_node_heartbeat_age_seconds Time since each node's last "
                      "heartbeat (the database's clock).\n"
                      "# TYPE sluice_node_heartbeat_age_seconds gauge\n");
        for (size_t i = 0; i < k; i++)
            buf_printf(out, "sluice_node_heartbeat_age_seconds{node=\"%s\"} %.3f\n", n[i].id,
                       (double)n[i].silent_ms / 1000.0);
        buf_puts(out, "# HELP sluice_node_holding Work each node holds (leased) now.\n"
                      "# TYPE sluice_node_holding gauge\n");
        for (size_t i = 0; i < k; i++)
            buf_printf(out,
                       "sluice_node_holding{node=\"%s\",kind=\"deliveries\"} %lld\n"
                       "sluice_node_holding{node=\"%s\",kind=\"batches\"} %lld\n"
                       "sluice_node_holding{node=\"%s\",kind=\"notifications\"} %lld\n",
                       n[i].id, (long long)n[i].deliveries, n[i].id, (long long)n[i].batches,
                       n[i].id, (long long)n[i].notifications);
    }
    buf_cleanup(&rows);
}

static struct metric_fn m_nodes = {.render = render_nodes};
