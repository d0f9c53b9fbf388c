/* The scheduler: one thread that periodically hands the writer the timed work: expired
 * delivery leases back to pending, temporary integrations past their end date stopped, lag
 * episodes started and ended, issues auto-closed (role alerts), retention. It sits above the
 * engines in the layers and drives them through the rows it changes (the commit's wake
 * bits), never by calling them. */
#ifndef SLUICE_SCHED_SCHEDULER_H
#define SLUICE_SCHED_SCHEDULER_H

#include "core/config.h"
#include "core/err.h"

enum err scheduler_start(const struct config *cfg);
void scheduler_stop(void);

#endif
