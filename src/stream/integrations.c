/* Integrations: validation, persistence, rendering. See integrations.h for threads. */
#include "stream/integrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/crypto.h"
#include "core/id.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "deliver/s3.h"
#include "deliver/ssrf.h"
#include "store/store.h"
#include "stream/catalog.h"

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

static bool header_name_ok(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

static bool is_masked(const char *s)
{
    return !strncmp(s, "****", 4);
}

/* Webhook target: {"type","url","api_key","api_key_header"}. old: stored target or NULL. */
static void parse_webhook_target(json_t *t, json_t *old, bool allow_private, struct verrs *v,
                                 char **out)
{
    static const char *const fields[] = {"type", "url", "api_key", "api_key_header", NULL};
    json_check_fields(t, fields, "target.", v);
    json_t *stored = json_pack("{s:s}", "type", "webhook");
    const char *url = json_string_value(json_object_get(t, "url"));
    if (!url && old)
        url = json_string_value(json_object_get(old, "url"));
    char why[256];
    if (!url || strlen(url) > 2048)
        verrs_add(v, "target.url", "must be an http or https URL");
    else if (ssrf_check_url(url, allow_private, why, sizeof why) != ERR_OK)
        verrs_add(v, "target.url", "%s", why);
    else
        json_object_set_new(stored, "url", json_string(url));
    json_t *key = json_object_get(t, "api_key");
    if (key && !json_is_null(key) && !json_is_string(key)) {
        verrs_add(v, "target.api_key", "must be a string");
    } else if (key && json_is_string(key) && !is_masked(json_string_value(key))) {
        const char *k = json_string_value(key);
        if (!*k || strlen(k) > 1024) {
            verrs_add(v, "target.api_key", "must be 1 to 1024 characters");
        } else {
            char *sealed = crypto_seal(store_master_key(), k);
            json_object_set_new(stored, "api_key", json_string(sealed));
            free(sealed);
            size_t n = strlen(k);
            json_object_set_new(stored, "api_key_hint", json_string(n >= 4 ? k + n - 4 : ""));
        }
    } else if (old && (!key || json_is_string(key))) {
        /* left out or masked: keep the stored value */
        json_t *ok = json_object_get(old, "api_key"), *oh = json_object_get(old, "api_key_hint");
        if (ok && !json_is_null(ok)) {
            json_object_set(stored, "api_key", ok);
            json_object_set(stored, "api_key_hint", oh);
        }
    }
    json_t *hdr = json_object_get(t, "api_key_header");
    const char *h = json_string_value(hdr);
    if (hdr && !json_is_null(hdr) && (!h || !header_name_ok(h)))
        verrs_add(v, "target.api_key_header", "must be an HTTP header name such as X-API-Key");
    if (!h && old)
        h = json_string_value(json_object_get(old, "api_key_header"));
    json_object_set_new(stored, "api_key_header", json_string(h ? h : "Authorization"));
    *out = json_dump_compact(stored);
    json_decref(stored);
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
        if (!id || !api_id_valid(id))
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
    if (t || !existing) {
        json_t *old = existing ? json_loads(existing->target, 0, NULL) : NULL;
        const char *tt = json_string_value(json_object_get(t, "type"));
        const char *oldtype = existing ? existing->target_type : NULL;
        if (!json_is_object(t)) {
            verrs_add(v, "target", "must be an object with a type (\"webhook\" or \"s3\")");
        } else if (!tt && !oldtype) {
            verrs_add(v, "target.type", "must be \"webhook\" or \"s3\"");
        } else if (oldtype && tt && strcmp(tt, oldtype)) {
            verrs_add(v, "target.type", "cannot change: a %s integration stays a %s integration",
                      oldtype, oldtype);
        } else if (!strcmp(tt ? tt : oldtype, "webhook")) {
            char *target = NULL;
            parse_webhook_target(t, old, allow_private, v, &target);
            free(out->target);
            out->target = target;
            snprintf(out->target_type, sizeof out->target_type, "webhook");
        } else if (!strcmp(tt ? tt : oldtype, "s3")) {
            char *target = NULL;
            s3_target_parse(t, old, allow_private, v, &target);
            free(out->target);
            out->target = target;
            snprintf(out->target_type, sizeof out->target_type, "s3");
        } else {
            verrs_add(v, "target.type", "must be \"webhook\" or \"s3\"");
        }
        json_decref(old);
    }
    if (!existing && !strcmp(out->target_type, "webhook") && !verrs_any(v)) {
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
    struct db_stmt *st =
        db_stmt(db, "UPDATE tenants SET config_version = config_version + 1 WHERE id = ?");
    db_bind_text(st, 1, tenant);
    return db_run(st);
}

enum err integration_insert(struct db *db, const struct integration *in)
{
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

enum err integration_set_state(struct db *db, const char *tenant, const char *id, const char *state,
                               int64_t now)
{
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
    json_t *hint = json_object_get(t, "api_key_hint");
    if (json_object_get(t, "api_key")) {
        char m[16];
        snprintf(m, sizeof m, "****%s", hint ? json_string_value(hint) : "");
        json_object_set_new(t, "api_key", json_string(m));
    } else if (!strcmp(in->target_type, "webhook")) {
        json_object_set_new(t, "api_key", json_null());
    }
    json_object_del(t, "api_key_hint");
    if (!strcmp(in->target_type, "s3"))
        s3_target_mask(t);
    return t;
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
    struct db_stmt *st = db_stmt(db, "SELECT state, COUNT(*) FROM deliveries WHERE tenant_id = ? "
                                     "AND integration_id = ? GROUP BY state");
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
    if (!strcmp(in->target_type, "s3"))
        s3_integration_json(db, in, o);
    return o;
}
