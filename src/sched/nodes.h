/* The node registry (scale-out): the nodes that share one database know each other through
 * the `nodes` table.
 *
 * Each node has an id that stays the same across its restarts (--node-id, else made once
 * into <data-dir>/node-id), writes a heartbeat every few seconds, and is dead once silent
 * for longer than its --node-timeout (judged on the database's clock). Any live node then
 * gives back at once everything the dead one held (leased deliveries, S3 batches and batch
 * writers, notifications), without waiting for each lease. A node that starts with the id
 * of a running process is refused; one that starts with the id of a dead or crashed one
 * takes its work back at once. On PostgreSQL the nodes also wake each other: every commit
 * with new work NOTIFYs the others (store.c), and the node thread here LISTENs.
 *
 * Threads: nodes_identity, nodes_start and nodes_stop run on the main thread; the node
 * thread (sluice-node) heartbeats and listens; nodes_list and nodes_render_metrics run on
 * any thread with its own read connection. */
#ifndef SLUICE_SCHED_NODES_H
#define SLUICE_SCHED_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "store/db.h"

/* Sets cfg->node_id when --node-id was not given: the id in <data-dir>/node-id, made there
 * on the first start ("<host>-<6 hex digits>") and kept. Creates the data dir. Before
 * store_start; on failure writes one line to errmsg. */
enum err nodes_identity(struct config *cfg, char *errmsg, size_t errlen);

/* Registers this node (after store_start, before the engines start): refuses, with one line
 * in errmsg, an id that a running process holds (ERR_CONFLICT); takes back the work the
 * id's previous run left; starts the node thread. cfg stays valid until nodes_stop. */
enum err nodes_start(const struct config *cfg, char *errmsg, size_t errlen);

/* Lets the other nodes' wake-ups reach this node's engines (on once they run; off before
 * they stop: no wake-up reaches an engine being stopped once this returns). Main thread. */
void nodes_set_wakeups(bool on);

/* Marks this node stopped (after the engines gave their work back) and ends its thread.
 * Accepts being called when nodes_start failed. */
void nodes_stop(void);

/* One node as GET /v1/admin/nodes and /metrics show it. */
struct node_info {
    char id[72];
    char roles[64];
    char version[64];
    int64_t started_at, last_seen;
    int64_t silent_ms; /* since its last heartbeat, on the database's clock */
    bool alive;
    int64_t deliveries, batches, notifications; /* what it holds (leased) now */
};

/* Reads up to limit nodes with an id after `after` (NULL: from the first), in id order,
 * passing each to fn. Any thread, on its own (read) connection. */
enum err nodes_list(struct db *db, const char *after, int limit,
                    void (*fn)(const struct node_info *n, void *ud), void *ud);

#endif
