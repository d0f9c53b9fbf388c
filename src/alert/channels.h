/* Notification channels (email lists with a batching frequency) and the notification rows
 * the notifier sends: validation on HTTP threads, persistence in writer jobs, and
 * notify_enqueue(), which puts an issue event into the right immediate mail or window
 * digest inside the alerting transaction (writer thread). */
#ifndef SLUICE_ALERT_CHANNELS_H
#define SLUICE_ALERT_CHANNELS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/id.h"
#include "core/json.h"
#include "store/db.h"

#define CHANNEL_MAX_ADDRESSES 100

struct channel {
    char tenant[72];
    char id[ID_MAX];
    char *name;
    char type[8]; /* email */
    json_t *addresses;
    json_t *unsubscribed; /* [{"address", "at" (ms)}]: who left through a mail's link */
    char batching[12];
    int64_t created_at, updated_at;
};

void channel_cleanup(struct channel *c);
/* Parses a batching name ("immediate", "5m", "15m", "30m", "1h", "1d") into its window
 * (0 for immediate); false when unknown. */
bool channel_batching_window(const char *batching, int64_t *ms);
/* True for a plausible single mailbox address (local@domain, no spaces or brackets). */
bool channel_address_valid(const char *s);
/* Validates a create (existing NULL) or PATCH body; fills out. Problems go to v. */
void channel_parse(json_t *body, const struct channel *existing, const char *tenant,
                   struct channel *out, struct verrs *v);
enum err channel_load(struct db *db, const char *tenant, const char *id, struct channel *out);
/* Inserts or updates the channel and bumps the tenant's alert_version. Writer thread. */
enum err channel_store(struct db *db, const struct channel *c, bool update);
/* Deletes the channel: ERR_CONFLICT while a policy uses it unless force (then it is removed
 * from those policies). Writer thread. */
enum err channel_delete(struct db *db, const char *tenant, const char *id, bool force);
json_t *channel_to_json(const struct channel *c);

/* Queues the notification of an issue event (kind "opened" or "closed") for one channel:
 * a new immediate mail, or an item of the channel's digest for the current window (aligned
 * to UTC multiples of the scaled window). Writer thread, inside the transaction. */
enum err notify_enqueue(struct db *db, const char *tenant, const char *channel_id,
                        int64_t window_ms, const char *issue_id, const char *kind, int64_t now);

#endif
