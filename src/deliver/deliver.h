/* The delivery engines as one subsystem for main.c: registers every target driver (so the
 * domain and the API can look them up), starts the engine of each target whose role this
 * node has, wakes them after commits, and stops them. Main thread, except deliver_wake
 * (any thread). */
#ifndef SLUICE_DELIVER_DELIVER_H
#define SLUICE_DELIVER_DELIVER_H

#include "core/config.h"
#include "core/err.h"
#include "store/db.h"

/* Registers the target drivers (stream/targets.h). Before any other thread starts. */
void deliver_register(void);
/* Starts the engines of the roles cfg has. On failure writes the engine's name to what. */
enum err deliver_start(const struct config *cfg, const char **what);
/* Stops every engine: no more claims, requests in flight finish and their outcomes are
 * recorded (up to the webhook timeout), then what is left is given back. */
void deliver_stop(void);
/* Writer: gives back every lease node holds in every target (deliveries, S3 batches), for
 * other nodes to take: at a node's start (its previous run's) and when it is found dead. */
enum err deliver_release_node(struct db *db, const char *node);
/* After a commit with STORE_WAKE_* bits: new due work (DELIVER), changed integrations
 * (CONFIG). Any thread. */
void deliver_wake(unsigned mask);

#endif
