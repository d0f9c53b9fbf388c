/* Integrations: validation, persistence, rendering. See integrations.h for threads. */
#include "stream/integrations.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/id.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "store/store.h"
#include "stream/catalog.h"
#include "stream/deliveries.h"
#include "stream/targets.h"

void integration_cleanup(struct integration *in)
{
    free(in->events);
    free(in->target);
    free(in->signing_secret);
    in->events = in->target = in->signing_secret = NULL;
}

char *integration_secret_open(const char *sealed)
{
    char *out = NULL;
    if (!sealed || crypto_open(store_master_key(), sealed, &out) != ERR_OK)
        return NULL;
    return out;
}

bool integration_events_match(json_t *patterns, const char *type, const char *entity)
{
    size_t i;
    json_t *p;
    json_array_foreach(patterns, i, p)
    {
        const char *s = json_string_value(p);
        if (!s)
            continue;
        if (strchr(s, '.') ? !strcmp(s, type) : !strcmp(s, entity))
            return true;
    }
    return false;
}

bool integration_selects(json_t *patterns, int64_t start_at, int64_t end_at, const char *type,
                         const char *entity, int64_t published_at)
{
    if (end_at >= 0 && published_at >= end_at)
        return false; /* past its end date: matches nothing */
    if (start_at >= 0 && published_at < start_at)
        return false;
    return integration_events_match(patterns, type, entity);
}

/* Is `entity` an entity of the built-in catalog or of the tenant's registered types? */
static enum err entity_known(struct db *db, const char *tenant, const char *entity)
{
    char e[72];
    for (const struct catalog_type *t = catalog_builtin; t->name; t++) {
        catalog_entity(t->name, e, sizeof e);
        if (!strcmp(e, entity))
            return ERR_OK;
    }
    struct db_stmt *st =
        db_stmt(db, "SELECT 1 FROM event_types WHERE tenant_id = ? AND entity = ? LIMIT 1");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, entity);
    enum err rc = db_next(st);
    return rc == ERR_OK ? ERR_OK : rc == ERR_DONE ? ERR_NOT_FOUND : rc;
}

static enum err parse_events(json_t *ev, const char *tenant, struct db *db, struct verrs *v,
                             char **out)
{
    if (!json_is_array(ev) || json_array_size(ev) == 0 || json_array_size(ev) > 100) {
        verrs_add(v, "events", "must be a list of 1 to 100 entity names or event types");
        return ERR_OK;
    }
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        char f[32];
        snprintf(f, sizeof f, "events[%zu]", i);
        const char *s = json_string_value(e);
        enum err rc = ERR_NOT_FOUND;
        if (s && strchr(s, '.'))
            rc = catalog_type_known(db, tenant, s);
        else if (s && *s && strlen(s) <= 64)
            rc = entity_known(db, tenant, s);
        if (rc == ERR_STORAGE)
            return rc;
        if (rc != ERR_OK)
            verrs_add(v, f,
                      "\"%.80s\" is neither an entity (such as \"order\") nor an event type "
                      "of the catalog",
                      s ? s : "");
        for (size_t j = 0; j < i && s; j++)
            if (json_equal(json_array_get(ev, j), e)) {
                verrs_add(v, f, "repeats events[%zu]", j);
                break;
            }
    }
    *out = json_dump_compact(ev);
    return ERR_OK;
}

static void parse_time_field(json_t *body, const char *name, int64_t *out, struct verrs *v)
{
    json_t *t = json_object_get(body, name);
    *out = -1;
    if (!t || json_is_null(t))
        return;
    if (!json_is_string(t) || time_parse(json_string_value(t), out) != ERR_OK)
        verrs_add(v, name, "must be an RFC 3339 date-time or null");
}

enum err integration_parse(json_t *body, const struct integration *existing, const char *tenant,
                           struct db *db, bool allow_private, struct integration *out,
                           char **signing_secret, struct verrs *v)
{
    memset(out, 0, sizeof *out);
    *signing_secret = NULL;
    if (!json_is_object(body)) {
        verrs_add(v, "", "the body must be a JSON object");
        return ERR_OK;
    }
    int64_t now = time_now_ms();
    if (existing) {
        static const char *const patchable[] = {"events", "target", "max_in_flight", NULL};
        const char *key;
        json_t *val;
        json_object_foreach(body, key, val)
        {
            bool ok = false;
            for (const char *const *a = patchable; *a && !ok; a++)
                ok = !strcmp(*a, key);
            if (!ok && strcmp(key, "verify") != 0)
                verrs_add(v, key, "cannot be changed (only events, target and max_in_flight)");
        }
        *out = *existing;
        out->events = xstrdup(existing->events);
        out->target = xstrdup(existing->target);
        out->signing_secret = xstrdup(existing->signing_secret);
        out->updated_at = now;
    } else {
        static const char *const fields[] = {"id",     "type",     "start_at", "end_at",
                                             "events", "ordering", "target",   "max_in_flight",
                                             "verify", NULL};
        json_check_fields(body, fields, "", v);
        const char *id = json_string_value(json_object_get(body, "id"));
        if (!id || !id_user_valid(id))
            verrs_add(v, "id", "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'");
        else
            snprintf(out->id, sizeof out->id, "%s", id);
        snprintf(out->tenant, sizeof out->tenant, "%s", tenant);
        const char *type = json_string_value(json_object_get(body, "type"));
        if (!type)
            type = "permanent";
        if (strcmp(type, "permanent") && strcmp(type, "temporary"))
            verrs_add(v, "type", "must be \"permanent\" or \"temporary\"");
        snprintf(out->type, sizeof out->type, "%s", type);
        parse_time_field(body, "start_at", &out->start_at, v);
        parse_time_field(body, "end_at", &out->end_at, v);
        if (!strcmp(type, "temporary") && out->end_at < 0)
            verrs_add(v, "end_at", "is required for a temporary integration");
        if (!strcmp(type, "permanent") && out->end_at >= 0)
            verrs_add(v, "end_at", "only a temporary integration has an end date");
        if (out->start_at >= 0 && out->end_at >= 0 && out->end_at <= out->start_at)
            verrs_add(v, "end_at", "must be after start_at");
        else if (out->end_at >= 0 && out->end_at <= now && out->start_at < 0)
            /* It would take nothing and stop at once. With a start_at before it, a past
             * end_at is the replay of that window, and welcome. */
            verrs_add(v, "end_at",
                      "is in the past: this integration would receive nothing (give a future "
                      "end_at, or a start_at too to re-send a past window)");
        const char *ord = json_string_value(json_object_get(body, "ordering"));
        if (json_object_get(body, "ordering") &&
            (!ord || (strcmp(ord, "entity") && strcmp(ord, "none"))))
            verrs_add(v, "ordering", "must be \"entity\" or \"none\"");
        snprintf(out->ordering, sizeof out->ordering, "%s", ord ? ord : "entity");
        snprintf(out->state, sizeof out->state, "active");
        out->paused_at = out->last_attempt_at = out->failing_since = -1;
        out->max_in_flight = INTEGRATION_DEFAULT_MAX_IN_FLIGHT;
        out->created_at = out->updated_at = now;
    }
    json_t *verify = json_object_get(body, "verify");
    if (verify && !json_is_boolean(verify))
        verrs_add(v, "verify", "must be true or false");
    json_t *mif = json_object_get(body, "max_in_flight");
    if (mif) {
        if (!json_is_integer(mif) || json_integer_value(mif) < 1 || json_integer_value(mif) > 256)
            verrs_add(v, "max_in_flight", "must be an integer from 1 to 256");
        else
            out->max_in_flight = (int)json_integer_value(mif);
    }
    json_t *ev = json_object_get(body, "events");
    if (ev || !existing) {
        char *events = NULL;
        if (parse_events(ev, tenant, db, v, &events) == ERR_STORAGE)
            return ERR_STORAGE;
        if (events) {
            free(out->events);
            out->events = events;
        }
    }
    json_t *t = json_object_get(body, "target");
    const struct target_driver *d = existing ? target_find(existing->target_type) : NULL;
    if (t || !existing) {
        json_t *old = existing ? json_loads(existing->target, 0, NULL) : NULL;
        const char *tt = json_string_value(json_object_get(t, "type"));
        struct buf names = BUF_INIT;
        target_names(&names);
        if (!json_is_object(t)) {
            verrs_add(v, "target", "must be an object with a type (%s)", names.data);
        } else if (existing && tt && strcmp(tt, existing->target_type)) {
            verrs_add(v, "target.type", "cannot change: a %s integration stays a %s integration",
                      existing->target_type, existing->target_type);
        } else if (!existing && !(d = target_find(tt))) {
            verrs_add(v, "target.type", "must be %s", names.data);
        } else if (d) {
            char *target = NULL;
            d->parse(t, old, allow_private, v, &target);
            free(out->target);
            out->target = target;
            snprintf(out->target_type, sizeof out->target_type, "%s", d->type);
        }
        buf_cleanup(&names);
        json_decref(old);
    }
    if (!existing && d && d->signs && !verrs_any(v)) {
        unsigned char raw[32];
        crypto_random(raw, sizeof raw);
        char *b = base64_encode(raw, sizeof raw);
        *signing_secret = xasprintf("whsec_%s", b);
        free(b);
        out->signing_secret = crypto_seal(store_master_key(), *signing_secret);
    }
    return ERR_OK;
}

#define INTEGRATION_COLS                                                                           \
    "tenant_id, id, type, start_at, end_at, state, paused_at, events, ordering, target_type, "     \
    "target, signing_secret, max_in_flight, failing_since, failing_count, last_attempt_at, "       \
    "created_at, updated_at"

enum err integration_load(struct db *db, const char *tenant, const char *id,
                          struct integration *out)
{
    struct db_stmt *st =
        db_stmt(db, "SELECT " INTEGRATION_COLS " FROM integrations WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    memset(out, 0, sizeof *out);
    snprintf(out->tenant, sizeof out->tenant, "%s", db_col_text(st, 0));
    snprintf(out->id, sizeof out->id, "%s", db_col_text(st, 1));
    snprintf(out->type, sizeof out->type, "%s", db_col_text(st, 2));
    out->start_at = db_col_opt_int(st, 3);
    out->end_at = db_col_opt_int(st, 4);
    snprintf(out->state, sizeof out->state, "%s", db_col_text(st, 5));
    out->paused_at = db_col_opt_int(st, 6);
    out->events = xstrdup(db_col_text(st, 7));
    snprintf(out->ordering, sizeof out->ordering, "%s", db_col_text(st, 8));
    snprintf(out->target_type, sizeof out->target_type, "%s", db_col_text(st, 9));
    out->target = xstrdup(db_col_text(st, 10));
    out->signing_secret = xstrdup(db_col_text(st, 11));
    out->max_in_flight = (int)db_col_int(st, 12);
    out->failing_since = db_col_opt_int(st, 13);
    out->failing_count = db_col_int(st, 14);
    out->last_attempt_at = db_col_opt_int(st, 15);
    out->created_at = db_col_int(st, 16);
    out->updated_at = db_col_int(st, 17);
    return ERR_OK;
}

enum err tenant_config_bump(struct db *db, const char *tenant)
{
    assert(store_is_writer());
    struct db_stmt *st =
        db_stmt(db, "UPDATE tenants SET config_version = config_version + 1 WHERE id = ?");
    db_bind_text(st, 1, tenant);
    store_wake(STORE_WAKE_CONFIG); /* every integration change passes here */
    return db_run(st);
}

enum err integration_insert(struct db *db, const struct integration *in)
{
    assert(store_is_writer());
    struct db_stmt *st =
        db_stmt(db, "INSERT INTO integrations (" INTEGRATION_COLS
                    ", incarnation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "?)");
    db_bind_text(st, 1, in->tenant);
    db_bind_text(st, 2, in->id);
    db_bind_text(st, 3, in->type);
    db_bind_opt_int(st, 4, in->start_at);
    db_bind_opt_int(st, 5, in->end_at);
    db_bind_text(st, 6, in->state);
    db_bind_opt_int(st, 7, in->paused_at);
    db_bind_text(st, 8, in->events);
    db_bind_text(st, 9, in->ordering);
    db_bind_text(st, 10, in->target_type);
    db_bind_text(st, 11, in->target);
    db_bind_text(st, 12, in->signing_secret);
    db_bind_int(st, 13, in->max_in_flight);
    db_bind_opt_int(st, 14, in->failing_since);
    db_bind_int(st, 15, in->failing_count);
    db_bind_opt_int(st, 16, in->last_attempt_at);
    db_bind_int(st, 17, in->created_at);
    db_bind_int(st, 18, in->updated_at);
    char incarnation[ID_MAX]; /* a new log starts with every creation (logs show only it) */
    id_new("inc", in->created_at, incarnation);
    db_bind_text(st, 19, incarnation);
    enum err rc = db_run(st);
    return rc == ERR_OK ? tenant_config_bump(db, in->tenant) : rc;
}

enum err integration_update(struct db *db, const struct integration *in)
{
    assert(store_is_writer());
    struct db_stmt *st =
        db_stmt(db, "UPDATE integrations SET events = ?, target = ?, max_in_flight = ?, "
                    "updated_at = ? WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, in->events);
    db_bind_text(st, 2, in->target);
    db_bind_int(st, 3, in->max_in_flight);
    db_bind_int(st, 4, in->updated_at);
    db_bind_text(st, 5, in->tenant);
    db_bind_text(st, 6, in->id);
    enum err rc = db_run(st);
    if (rc == ERR_OK && db_changes(st) == 0)
        rc = ERR_NOT_FOUND;
    return rc == ERR_OK ? tenant_config_bump(db, in->tenant) : rc;
}

enum err integration_delete(struct db *db, const char *tenant, const char *id)
{
    assert(store_is_writer());
    struct db_stmt *st =
        db_stmt(db, "SELECT target_type FROM integrations WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    const struct target_driver *d = target_find(db_col_text(st, 0));
    db_release(db);
    if ((rc = deliveries_delete_integration(db, tenant, id)) != ERR_OK)
        return rc;
    if (d && d->remove && (rc = d->remove(db, tenant, id)) != ERR_OK)
        return rc;
    st = db_stmt(db, "DELETE FROM integrations WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    return tenant_config_bump(db, tenant);
}

enum err integration_set_state(struct db *db, const char *tenant, const char *id, const char *state,
                               int64_t now)
{
    assert(store_is_writer());
    struct db_stmt *st =
        db_stmt(db, "UPDATE integrations SET state = ?, paused_at = ?, failing_since = NULL, "
                    "failing_count = 0, updated_at = ? WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, state);
    if (!strcmp(state, "paused"))
        db_bind_int(st, 2, now);
    else
        db_bind_null(st, 2);
    db_bind_int(st, 3, now);
    db_bind_text(st, 4, tenant);
    db_bind_text(st, 5, id);
    enum err rc = db_run(st);
    if (rc == ERR_OK && db_changes(st) == 0)
        rc = ERR_NOT_FOUND;
    return rc == ERR_OK ? tenant_config_bump(db, tenant) : rc;
}

enum err integration_log(struct db *db, const char *tenant, const char *id, const char *action,
                         const char *reason, const char *actor)
{
    assert(store_is_writer());
    char lid[ID_MAX];
    int64_t now = time_now_ms();
    id_new("log", now, lid);
    /* The row belongs to the integration's current incarnation (none once deleted). */
    struct db_stmt *st = db_stmt(
        db, "INSERT INTO integration_logs (tenant_id, integration_id, id, action, reason, actor, "
            "created_at, incarnation) VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT i.incarnation FROM "
            "integrations i WHERE i.tenant_id = ? AND i.id = ?))");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    db_bind_text(st, 3, lid);
    db_bind_text(st, 4, action);
    db_bind_text(st, 5, reason);
    db_bind_text(st, 6, actor);
    db_bind_int(st, 7, now);
    db_bind_text(st, 8, tenant);
    db_bind_text(st, 9, id);
    return db_run(st);
}

static json_t *render_target(const struct integration *in)
{
    json_t *t = json_loads(in->target, 0, NULL);
    if (!t)
        return json_object();
    const struct target_driver *d = target_find(in->target_type);
    if (d && d->mask)
        d->mask(t);
    return t;
}

enum err integrations_stop_ended(struct db *db, int64_t *n)
{
    assert(store_is_writer());
    *n = 0;
    struct db_stmt *st = db_stmt(db, "SELECT tenant_id, id FROM integrations WHERE end_at IS NOT "
                                     "NULL AND end_at <= ? AND state <> 'stopped' LIMIT 100");
    db_bind_int(st, 1, time_now_ms());
    char ids[100][2][72];
    int k = 0;
    enum err rc = ERR_OK;
    while (k < 100 && (rc = db_next(st)) == ERR_OK) {
        snprintf(ids[k][0], 72, "%s", db_col_text(st, 0));
        snprintf(ids[k][1], 72, "%s", db_col_text(st, 1));
        k++;
    }
    db_release(db);
    if (rc != ERR_OK && rc != ERR_DONE)
        return rc;
    for (int i = 0; i < k; i++) {
        int64_t now = time_now_ms();
        /* Deliveries already routed still finish: held ones return to pending. */
        if ((rc = deliveries_resume(db, ids[i][0], ids[i][1], -1, false, &(int64_t){0})) != ERR_OK)
            return rc;
        if ((rc = integration_set_state(db, ids[i][0], ids[i][1], "stopped", now)) != ERR_OK)
            return rc;
        if ((rc = integration_log(db, ids[i][0], ids[i][1], "stopped", "reached end date",
                                  "system")) != ERR_OK)
            return rc;
        (*n)++;
    }
    return ERR_OK;
}

enum err integration_paused_locked(struct db *db, const char *tenant, const char *id, bool *paused)
{
    assert(store_is_writer());
    struct db_stmt *st =
        db_kind(db) == DB_PG
            ? db_stmt(db, "SELECT state FROM integrations WHERE tenant_id = ? AND id = ? FOR SHARE")
            : db_stmt(db, "SELECT state FROM integrations WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    *paused = rc == ERR_OK && !strcmp(db_col_text(st, 0), "paused");
    db_release(db);
    return rc == ERR_DONE ? ERR_OK : rc;
}

enum err integration_health_load(struct db *db, const char *tenant, const char *id,
                                 struct integration_health *out)
{
    struct db_stmt *st = db_stmt(db, "SELECT state, failing_since, failing_count, "
                                     "last_attempt_at FROM integrations WHERE tenant_id = ? AND "
                                     "id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc == ERR_OK) {
        out->paused = !strcmp(db_col_text(st, 0), "paused");
        out->failing_since = db_col_opt_int(st, 1);
        out->failing_count = db_col_int(st, 2);
        out->last_attempt_at = db_col_opt_int(st, 3);
    }
    db_release(db);
    return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
}

enum err integration_attempt_ok(struct db *db, const char *tenant, const char *id, int64_t now)
{
    assert(store_is_writer());
    struct db_stmt *st = db_stmt(db, "UPDATE integrations SET failing_since = NULL, failing_count "
                                     "= 0, last_attempt_at = ? WHERE tenant_id = ? AND id = ?");
    db_bind_int(st, 1, now);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, id);
    return db_run(st);
}

enum err integration_attempt_touch(struct db *db, const char *tenant, const char *id, int64_t now)
{
    assert(store_is_writer());
    struct db_stmt *st =
        db_kind(db) == DB_PG
            ? db_stmt(db, "UPDATE integrations SET last_attempt_at = ? WHERE (tenant_id, id) IN "
                          "(SELECT tenant_id, id FROM integrations WHERE tenant_id = ? AND id = ? "
                          "FOR UPDATE SKIP LOCKED)")
            : db_stmt(db, "UPDATE integrations SET last_attempt_at = ? WHERE tenant_id = ? AND "
                          "id = ?");
    db_bind_int(st, 1, now);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, id);
    return db_run(st);
}

enum err integration_attempt_failed(struct db *db, const char *tenant, const char *id,
                                    int64_t started_at, int64_t now, int64_t *since, int64_t *count)
{
    assert(store_is_writer());
    struct db_stmt *st = db_stmt(db, "UPDATE integrations SET failing_since = "
                                     "COALESCE(failing_since, ?), failing_count = failing_count + "
                                     "1, last_attempt_at = ? WHERE tenant_id = ? AND id = ? "
                                     "RETURNING failing_since, failing_count");
    db_bind_int(st, 1, started_at);
    db_bind_int(st, 2, now);
    db_bind_text(st, 3, tenant);
    db_bind_text(st, 4, id);
    enum err rc = db_next(st);
    if (rc == ERR_OK) {
        *since = db_col_int(st, 0);
        *count = db_col_int(st, 1);
    }
    db_release(db);
    return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
}

enum err integration_lag_begin(struct db *db, const char *tenant, const char *id, int64_t now,
                               bool *started)
{
    assert(store_is_writer());
    struct db_stmt *st = db_stmt(db, "UPDATE integrations SET lag_alerted_at = ? WHERE tenant_id "
                                     "= ? AND id = ? AND lag_alerted_at IS NULL");
    db_bind_int(st, 1, now);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, id);
    enum err rc = db_run(st);
    *started = rc == ERR_OK && db_changes(st) > 0;
    return rc;
}

enum err integration_lag_end(struct db *db, const char *tenant, const char *id, int64_t before,
                             bool *ended)
{
    assert(store_is_writer());
    struct db_stmt *st = db_stmt(
        db, "UPDATE integrations SET lag_alerted_at = NULL WHERE tenant_id = ? AND id = ? AND "
            "lag_alerted_at IS NOT NULL AND (state = 'paused' OR NOT EXISTS (SELECT 1 FROM "
            "deliveries d WHERE d.tenant_id = integrations.tenant_id AND d.integration_id = "
            "integrations.id AND d.state IN ('waiting', 'pending', 'in_flight') AND d.created_at "
            "< ?))");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    db_bind_int(st, 3, before);
    enum err rc = db_run(st);
    *ended = rc == ERR_OK && db_changes(st) > 0;
    return rc;
}

json_t *integration_to_json(struct db *db, const struct integration *in)
{
    json_t *o = json_pack("{s:s,s:s}", "id", in->id, "type", in->type);
    json_set_time(o, "start_at", in->start_at);
    json_set_time(o, "end_at", in->end_at);
    json_object_set_new(o, "state", json_string(in->state));
    json_t *ev = json_loads(in->events, 0, NULL);
    json_object_set_new(o, "events", ev ? ev : json_array());
    json_object_set_new(o, "ordering", json_string(in->ordering));
    json_object_set_new(o, "target", render_target(in));
    json_object_set_new(o, "max_in_flight", json_integer(in->max_in_flight));
    json_set_time(o, "created_at", in->created_at);
    json_set_time(o, "updated_at", in->updated_at);
    json_t *stats = json_pack("{s:i,s:i,s:i,s:i,s:i}", "pending", 0, "succeeded", 0, "failed", 0,
                              "rejected", 0, "skipped", 0);
    /* delivery_counts: kept by triggers as deliveries change (migration 008); the status
     * class is 'pending' for every unfinished state. */
    struct db_stmt *st = db_stmt(db, "SELECT status, SUM(n) FROM delivery_counts WHERE "
                                     "tenant_id = ? AND integration_id = ? GROUP BY status");
    db_bind_text(st, 1, in->tenant);
    db_bind_text(st, 2, in->id);
    int64_t pending = 0;
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK) {
        const char *s = db_col_text(st, 0);
        int64_t n = db_col_int(st, 1);
        if (!strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "rejected") ||
            !strcmp(s, "skipped"))
            json_object_set_new(stats, s, json_integer(n));
        else
            pending += n;
    }
    if (rc != ERR_DONE) { /* never a partial answer: the caller fails with 503 */
        json_decref(stats);
        json_decref(o);
        return NULL;
    }
    json_object_set_new(stats, "pending", json_integer(pending));
    json_set_time(stats, "last_attempt_at", in->last_attempt_at);
    json_object_set_new(o, "stats", stats);
    const struct target_driver *d = target_find(in->target_type);
    if (d && d->render && d->render(db, in, o) != ERR_OK) {
        json_decref(o); /* never a partial answer: the caller fails with 503 */
        return NULL;
    }
    return o;
}
