/* Alert policies: the model, validation of create/PATCH bodies (HTTP threads), persistence
 * and rendering (writer jobs and readers), and the per-tenant matching index that
 * alert_record() consults (writer thread only, rebuilt when tenants.alert_version moves). */
#ifndef SLUICE_ALERT_POLICIES_H
#define SLUICE_ALERT_POLICIES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/id.h"
#include "core/json.h"
#include "store/db.h"

#define POLICY_DEFAULT_AUTO_CLOSE_MS (24LL * 3600 * 1000)

/* Group-by fields, in the canonical order of group keys. */
enum {
    POLICY_GROUP_EVENT = 1u << 0,
    POLICY_GROUP_CONNECTION = 1u << 1,
    POLICY_GROUP_ENTITY = 1u << 2,
    POLICY_GROUP_MESSAGE = 1u << 3,
};

struct policy {
    char tenant[72];
    char id[ID_MAX];
    char *name;
    bool enabled;
    json_t *group_by;      /* array of field names, as given */
    int64_t auto_close_ms; /* -1: never */
    bool close_on_recovery;
    json_t *notify_on;        /* array: "opened", "closed" */
    json_t *monitored_events; /* array of {"event", "connections": [...]} */
    json_t *channel_ids;      /* array of channel ids */
    int64_t created_at, updated_at;
};

void policy_cleanup(struct policy *p);

/* Validates a create body (existing NULL), a PATCH body (existing set) or, with append,
 * a monitored-events append body ({"monitored_events": [...]}); fills out with the whole
 * resulting policy. Reads the tenant's channels from db. Problems go to v. */
enum err policy_parse(json_t *body, const struct policy *existing, bool append, struct db *db,
                      const char *tenant, struct policy *out, struct verrs *v);

/* Loads one policy; ERR_NOT_FOUND when absent. */
enum err policy_load(struct db *db, const char *tenant, const char *id, struct policy *out);
/* Writes the policy and its children (insert, or replace when update) and bumps the tenant's
 * alert_version. Writer thread. */
enum err policy_store(struct db *db, const struct policy *p, bool update);
/* Deletes the policy (its issues stay); ERR_NOT_FOUND when absent. Writer thread. */
enum err policy_delete(struct db *db, const char *tenant, const char *id);
/* Renders the policy with its open_issue_count: a new reference, or NULL when the count
 * cannot be read (storage error). */
json_t *policy_to_json(struct db *db, const struct policy *p);
/* Bumps the tenant's alert configuration version (indexes rebuild). Writer thread. */
enum err policy_version_bump(struct db *db, const char *tenant);

/* --- the matching index (writer thread only) ---------------------------------------- */

struct policy_channel {
    char id[ID_MAX];
    int64_t window_ms; /* 0: immediate */
};

struct policy_rule {
    char id[ID_MAX];
    char *name;
    unsigned group_by; /* POLICY_GROUP_* */
    int64_t auto_close_ms;
    bool close_on_recovery, notify_opened, notify_closed;
    int nchannels;
    struct policy_channel *channels;
};

struct policy_index;

/* Returns the tenant's index, checking its version inside the current transaction. Owned
 * by the cache; valid until the next call. ERR_NOT_FOUND for an unknown tenant. */
enum err policy_index_get(struct db *db, const char *tenant, struct policy_index **out);
/* Fills out (capacity max) with the enabled rules matching event on connection; returns the
 * count. */
int policy_index_match(const struct policy_index *ix, const char *event, const char *connection,
                       const struct policy_rule **out, int max);
/* The rule of policy id (enabled or not), or NULL when the policy does not exist. */
const struct policy_rule *policy_index_rule(const struct policy_index *ix, const char *id);
/* The tenant's display name (for mail subjects). */
const char *policy_index_tenant_name(const struct policy_index *ix);
/* Frees the cache (at shutdown, writer stopped). */
void policy_index_cleanup(void);

#endif
