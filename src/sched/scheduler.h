/* The scheduler: one thread that periodically hands the writer the timed work of
 * DESIGN.md: expired leases back to pending, temporary integrations past their end date
 * stopped. (Alerting adds auto-close here; digests are notification rows the notifier sends.) */
#ifndef SLUICE_STREAM_SCHEDULER_H
#define SLUICE_STREAM_SCHEDULER_H

#include "core/config.h"
#include "core/err.h"

enum err scheduler_start(const struct config *cfg);
void scheduler_stop(void);

#endif
