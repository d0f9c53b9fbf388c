/* Event Stream integrations: the model, validation of create/PATCH bodies, secrets sealed
 * at rest, persistence, logs, and rendering with secrets masked.
 * Validation runs on HTTP threads; writes run inside writer jobs. */
#ifndef SLUICE_STREAM_INTEGRATIONS_H
#define SLUICE_STREAM_INTEGRATIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/json.h"
#include "store/db.h"

#define INTEGRATION_DEFAULT_MAX_IN_FLIGHT 16

struct integration {
    char tenant[72];
    char id[72];
    char type[12];  /* permanent | temporary */
    char state[12]; /* active | paused | stopped */
    char ordering[8];
    char target_type[8];                 /* webhook | s3 */
    int64_t start_at, end_at, paused_at; /* -1: null */
    int64_t created_at, updated_at, last_attempt_at, failing_since;
    int64_t failing_count;
    int max_in_flight;
    char *events;         /* JSON array text */
    char *target;         /* JSON object text; secrets sealed */
    char *signing_secret; /* sealed "whsec_..." or NULL */
};

void integration_cleanup(struct integration *in);

/* Validates a create body (existing == NULL) or a PATCH body (existing != NULL) and fills
 * out (a full integration: for PATCH, existing with the changes applied). Secrets are
 * sealed with the master key; on create a webhook gets a new signing secret, returned in
 * plaintext through *signing_secret (malloc'd, caller frees). db reads the tenant's
 * catalog. Problems go to v; ERR_STORAGE if the catalog cannot be read. */
enum err integration_parse(json_t *body, const struct integration *existing, const char *tenant,
                           struct db *db, bool allow_private, struct integration *out,
                           char **signing_secret, struct verrs *v);

/* Loads one integration; ERR_NOT_FOUND when absent. */
enum err integration_load(struct db *db, const char *tenant, const char *id,
                          struct integration *out);
/* Inserts (ERR_CONFLICT if the id exists) or updates every mutable column. Both bump the
 * tenant's configuration version so every node's routing index sees the change. */
enum err integration_insert(struct db *db, const struct integration *in);
enum err integration_update(struct db *db, const struct integration *in);
/* Deletes an integration with its deliveries, their attempts and the target's own rows,
 * and bumps the configuration version; ERR_NOT_FOUND when absent. Writer. */
enum err integration_delete(struct db *db, const char *tenant, const char *id);
/* Sets the state (and paused_at when pausing) and bumps the configuration version. */
enum err integration_set_state(struct db *db, const char *tenant, const char *id, const char *state,
                               int64_t now);
/* Appends a log row: action "started"|"stopped"|"updated"|"deleted", reason, actor. */
enum err integration_log(struct db *db, const char *tenant, const char *id, const char *action,
                         const char *reason, const char *actor);
/* Stops temporary integrations whose end date has passed (logged); deliveries already
 * routed still finish (held ones are due again). *n counts them. Writer. */
enum err integrations_stop_ended(struct db *db, int64_t *n);

/* The attempt columns of an integration: what the consequences of an outcome depend on. */
struct integration_health {
    bool paused;
    int64_t failing_since; /* -1: not failing */
    int64_t failing_count;
    int64_t last_attempt_at; /* -1: never */
};
/* Writer: whether the integration is paused now, read under a share lock of its row on
 * PostgreSQL, for a writer about to leave deliveries 'held' on a belief that it is paused (a
 * cached or earlier read). A resume made on another node updates the row before it turns
 * the held rows pending: it waits for this transaction, so its own update sees the rows
 * held here, or this read sees it active; either way nothing stays held on an active
 * integration. *paused is false when the row is gone. */
enum err integration_paused_locked(struct db *db, const char *tenant, const char *id, bool *paused);
/* Reads them; ERR_NOT_FOUND when the integration is gone. */
enum err integration_health_load(struct db *db, const char *tenant, const char *id,
                                 struct integration_health *out);
/* An attempt succeeded at now: the failure counters are cleared. Writer. */
enum err integration_attempt_ok(struct db *db, const char *tenant, const char *id, int64_t now);
/* Moves last_attempt_at on, nothing else; on PostgreSQL not at all while another node's
 * transaction holds the row (its own outcome or claim: the next success does it), so the
 * hot row of a busy integration is never waited for nor a deadlock's link. */
enum err integration_attempt_touch(struct db *db, const char *tenant, const char *id, int64_t now);
/* An attempt that started at started_at failed: counted (failing_since is the first failed
 * attempt's start since the last success); *since and *count get the new values. Writer. */
enum err integration_attempt_failed(struct db *db, const char *tenant, const char *id,
                                    int64_t started_at, int64_t now, int64_t *since,
                                    int64_t *count);
/* Starts the integration's lag episode at now unless one is open: *started says whether this
 * call started it (several nodes may try). Writer. */
enum err integration_lag_begin(struct db *db, const char *tenant, const char *id, int64_t now,
                               bool *started);
/* Ends the integration's lag episode if no unfinished delivery of it (paused: none counts)
 * was created before `before`: *ended says whether it did. Writer. */
enum err integration_lag_end(struct db *db, const char *tenant, const char *id, int64_t before,
                             bool *ended);

/* Bumps the tenant's configuration version (routing indexes rebuild). */
enum err tenant_config_bump(struct db *db, const char *tenant);

/* Renders the integration with masked secrets and its delivery stats (read from db): a new
 * reference, or NULL when the stats cannot be read (storage error). */
json_t *integration_to_json(struct db *db, const struct integration *in);
/* Opens a sealed secret; returns a malloc'd plaintext or NULL. */
char *integration_secret_open(const char *sealed);
/* Whether an event type matches any subscription of a JSON array text of patterns. */
bool integration_events_match(json_t *patterns, const char *type, const char *entity);
/* Whether an integration with these subscriptions and dates (-1: none) selects an event
 * published at published_at: the one rule that routing applies at publish time and
 * redeliver before it queues an event again. */
bool integration_selects(json_t *patterns, int64_t start_at, int64_t end_at, const char *type,
                         const char *entity, int64_t published_at);

#endif
