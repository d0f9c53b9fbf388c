/* Alert policies: validation (HTTP threads), persistence (writer jobs), rendering (any
 * thread with its own connection) and the matching index.
 *
 * The index is a writer-thread-only cache (no lock): per tenant, for every failure event of
 * the catalog, the list of enabled policy entries that watch it (exact or category
 * wildcard) with their connection filters. alert_record() checks tenants.alert_version
 * inside its transaction and rebuilds when any node changed a policy or channel. */
#include "alert/policies.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/channels.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "store/store.h"
#include "stream/catalog.h"

#define POLICY_MAX_EVENTS 200
#define POLICY_MAX_CONNECTIONS 200
#define POLICY_MAX_CHANNELS 50

static const char *const group_fields[] = {"event", "connection", "entity_id", "message", NULL};

void policy_cleanup(struct policy *p)
{
    if (!p)
        return;
    free(p->name);
    json_decref(p->group_by);
    json_decref(p->notify_on);
    json_decref(p->monitored_events);
    json_decref(p->channel_ids);
    memset(p, 0, sizeof *p);
}

/* True when pattern is a failure event or "<failure category>.*". */
static bool monitored_event_valid(const char *pattern)
{
    if (catalog_is_failure(pattern))
        return true;
    size_t n = strlen(pattern);
    if (n < 3 || strcmp(pattern + n - 2, ".*") != 0)
        return false;
    char cat[72];
    for (const struct catalog_type *t = catalog_failures; t->name; t++) {
        catalog_entity(t->name, cat, sizeof cat);
        if (strlen(cat) == n - 2 && !strncmp(cat, pattern, n - 2))
            return true;
    }
    return false;
}

static bool pattern_matches(const char *pattern, const char *event)
{
    size_t n = strlen(pattern);
    if (n >= 2 && !strcmp(pattern + n - 2, ".*"))
        return !strncmp(pattern, event, n - 1); /* "order." prefix */
    return !strcmp(pattern, event);
}

/* Validates a monitored_events array into out (a fresh array of normalized entries). */
static void parse_monitored(json_t *arr, const char *field, json_t *out, struct verrs *v)
{
    char f[96];
    if (!json_is_array(arr) || json_array_size(arr) > POLICY_MAX_EVENTS) {
        verrs_add(v, field, "must be a list of at most %d {\"event\", \"connections\"} entries",
                  POLICY_MAX_EVENTS);
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s[%zu].", field, i);
        if (!json_is_object(e)) {
            snprintf(f, sizeof f, "%s[%zu]", field, i);
            verrs_add(v, f, "must be an object {\"event\", \"connections\"}");
            continue;
        }
        static const char *const fields[] = {"event", "connections", NULL};
        json_check_fields(e, fields, prefix, v);
        const char *ev = json_string_value(json_object_get(e, "event"));
        if (!ev || !monitored_event_valid(ev))
            verrs_add(v, json_field(f, sizeof f, prefix, "event"),
                      "must be a failure event (see GET /v1/failure-types) or a category "
                      "wildcard such as \"order.*\"");
        json_t *conns = json_object_get(e, "connections");
        json_t *norm = json_array();
        if (conns && !json_is_null(conns)) {
            if (!json_is_array(conns) || json_array_size(conns) > POLICY_MAX_CONNECTIONS) {
                verrs_add(v, json_field(f, sizeof f, prefix, "connections"),
                          "must be a list of at most %d connection names", POLICY_MAX_CONNECTIONS);
            } else {
                size_t j;
                json_t *c;
                json_array_foreach(conns, j, c)
                {
                    const char *s = json_string_value(c);
                    if (!s || !*s || strlen(s) > 128) {
                        char cf[128];
                        snprintf(cf, sizeof cf, "%sconnections[%zu]", prefix, j);
                        verrs_add(v, cf, "must be a non-empty string of at most 128 characters");
                    } else {
                        json_array_append(norm, c);
                    }
                }
            }
        }
        json_array_append_new(out,
                              json_pack("{s:s,s:o}", "event", ev ? ev : "", "connections", norm));
    }
}

static enum err parse_channels(json_t *arr, struct db *db, const char *tenant, json_t *out,
                               struct verrs *v)
{
    if (!json_is_array(arr) || json_array_size(arr) > POLICY_MAX_CHANNELS) {
        verrs_add(v, "channel_ids", "must be a list of at most %d channel ids",
                  POLICY_MAX_CHANNELS);
        return ERR_OK;
    }
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c)
    {
        char f[48];
        snprintf(f, sizeof f, "channel_ids[%zu]", i);
        const char *s = json_string_value(c);
        if (!s || !*s || strlen(s) >= ID_MAX) {
            verrs_add(v, f, "must be a channel id");
            continue;
        }
        struct db_stmt *st =
            db_stmt(db, "SELECT 1 FROM notification_channels WHERE tenant_id = ? AND id = ?");
        db_bind_text(st, 1, tenant);
        db_bind_text(st, 2, s);
        enum err rc = db_next(st);
        if (rc == ERR_DONE) {
            verrs_add(v, f, "no notification channel \"%.60s\"", s);
            continue;
        }
        if (rc != ERR_OK)
            return rc;
        bool dup = false;
        for (size_t j = 0; j < json_array_size(out); j++)
            dup = dup || !strcmp(json_string_value(json_array_get(out, j)), s);
        if (!dup)
            json_array_append(out, c);
    }
    return ERR_OK;
}

static void parse_enum_list(json_t *arr, const char *field, const char *const *allowed,
                            const char *what, json_t **out, struct verrs *v)
{
    if (!json_is_array(arr)) {
        verrs_add(v, field, "must be a list of %s", what);
        return;
    }
    json_t *norm = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *s = json_string_value(e);
        bool ok = false;
        for (int k = 0; s && allowed[k]; k++)
            ok = ok || !strcmp(allowed[k], s);
        char f[48];
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        if (!ok) {
            verrs_add(v, f, "must be one of %s", what);
            continue;
        }
        for (size_t j = 0; j < json_array_size(norm); j++)
            if (!strcmp(json_string_value(json_array_get(norm, j)), s)) {
                verrs_add(v, f, "repeats \"%s\"", s);
                ok = false;
            }
        if (ok)
            json_array_append(norm, e);
    }
    json_decref(*out);
    *out = norm;
}

enum err policy_parse(json_t *body, const struct policy *existing, bool append, struct db *db,
                      const char *tenant, struct policy *out, struct verrs *v)
{
    memset(out, 0, sizeof *out);
    snprintf(out->tenant, sizeof out->tenant, "%s", tenant);
    int64_t now = time_now_ms();
    if (existing) {
        memcpy(out->id, existing->id, ID_MAX);
        out->name = xstrdup(existing->name);
        out->enabled = existing->enabled;
        out->group_by = json_deep_copy(existing->group_by);
        out->auto_close_ms = existing->auto_close_ms;
        out->close_on_recovery = existing->close_on_recovery;
        out->notify_on = json_deep_copy(existing->notify_on);
        out->monitored_events = json_deep_copy(existing->monitored_events);
        out->channel_ids = json_deep_copy(existing->channel_ids);
        out->created_at = existing->created_at;
    } else {
        id_new("pol", now, out->id);
        out->enabled = true;
        out->group_by = json_pack("[s,s]", "event", "connection");
        out->auto_close_ms = POLICY_DEFAULT_AUTO_CLOSE_MS;
        out->notify_on = json_pack("[s]", "opened");
        out->monitored_events = json_array();
        out->channel_ids = json_array();
        out->created_at = now;
    }
    out->updated_at = now;
    if (!json_is_object(body)) {
        verrs_add(v, "", "the body must be a JSON object");
        return ERR_OK;
    }
    if (append) {
        static const char *const fields[] = {"monitored_events", NULL};
        json_check_fields(body, fields, "", v);
        json_t *me = json_object_get(body, "monitored_events");
        if (!me || json_array_size(me) == 0) {
            verrs_add(v, "monitored_events", "must be a non-empty list of entries to append");
            return ERR_OK;
        }
        parse_monitored(me, "monitored_events", out->monitored_events, v);
        if (json_array_size(out->monitored_events) > POLICY_MAX_EVENTS)
            verrs_add(v, "monitored_events", "a policy watches at most %d entries",
                      POLICY_MAX_EVENTS);
        return ERR_OK;
    }
    static const char *const fields[] = {
        "name",     "enabled",          "monitored_events",  "channel_ids",
        "group_by", "auto_close_after", "close_on_recovery", "notify_on",
        NULL};
    json_check_fields(body, fields, "", v);
    json_t *x;
    if ((x = json_object_get(body, "name")) || !existing) {
        const char *s = json_string_value(x);
        size_t n = s ? strlen(s) : 0;
        while (s && n && (*s == ' ' || *s == '\t')) {
            s++;
            n--;
        }
        if (!s || n == 0 || n > 200) {
            verrs_add(v, "name", "is required: a non-empty string of at most 200 characters");
        } else {
            free(out->name);
            out->name = xstrdup(json_string_value(x));
        }
    }
    if ((x = json_object_get(body, "enabled"))) {
        if (!json_is_boolean(x))
            verrs_add(v, "enabled", "must be true or false");
        else
            out->enabled = json_is_true(x);
    }
    if ((x = json_object_get(body, "monitored_events")) || !existing) {
        json_t *norm = json_array();
        if (!x || json_array_size(x) == 0)
            verrs_add(v, "monitored_events", "must list at least one failure event to watch");
        else
            parse_monitored(x, "monitored_events", norm, v);
        json_decref(out->monitored_events);
        out->monitored_events = norm;
    }
    if ((x = json_object_get(body, "channel_ids"))) {
        json_t *norm = json_array();
        enum err rc = parse_channels(x, db, tenant, norm, v);
        json_decref(out->channel_ids);
        out->channel_ids = norm;
        if (rc != ERR_OK)
            return rc;
    }
    if ((x = json_object_get(body, "group_by")))
        parse_enum_list(x, "group_by", group_fields, "event, connection, entity_id, message",
                        &out->group_by, v);
    if ((x = json_object_get(body, "auto_close_after"))) {
        int64_t ms;
        if (json_is_null(x))
            out->auto_close_ms = -1;
        else if (!json_is_string(x) || duration_parse(json_string_value(x), &ms) != ERR_OK ||
                 ms < 1000 || ms > 366LL * 24 * 3600 * 1000)
            verrs_add(v, "auto_close_after",
                      "must be a duration from \"1s\" to \"366d\" such as \"24h\", or null");
        else
            out->auto_close_ms = ms;
    }
    if ((x = json_object_get(body, "close_on_recovery"))) {
        if (!json_is_boolean(x))
            verrs_add(v, "close_on_recovery", "must be true or false");
        else
            out->close_on_recovery = json_is_true(x);
    }
    if ((x = json_object_get(body, "notify_on"))) {
        static const char *const kinds[] = {"opened", "closed", NULL};
        parse_enum_list(x, "notify_on", kinds, "opened, closed", &out->notify_on, v);
    }
    return ERR_OK;
}

static json_t *parse_or_array(const char *text)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    return j ? j : json_array();
}

enum err policy_load(struct db *db, const char *tenant, const char *id, struct policy *out)
{
    memset(out, 0, sizeof *out);
    struct db_stmt *st = db_stmt(
        db, "SELECT name, enabled, group_by, auto_close_after, close_on_recovery, notify_on, "
            "created_at, updated_at FROM alert_policies WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    snprintf(out->tenant, sizeof out->tenant, "%s", tenant);
    snprintf(out->id, sizeof out->id, "%s", id);
    out->name = xstrdup(db_col_text(st, 0));
    out->enabled = db_col_int(st, 1) != 0;
    out->group_by = parse_or_array(db_col_text(st, 2));
    out->auto_close_ms = db_col_opt_int(st, 3);
    out->close_on_recovery = db_col_int(st, 4) != 0;
    out->notify_on = parse_or_array(db_col_text(st, 5));
    out->created_at = db_col_int(st, 6);
    out->updated_at = db_col_int(st, 7);
    out->monitored_events = json_array();
    out->channel_ids = json_array();
    st = db_stmt(db, "SELECT event, connections FROM policy_monitored_events WHERE tenant_id = "
                     "? AND policy_id = ? ORDER BY seq");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    while ((rc = db_next(st)) == ERR_OK)
        json_array_append_new(out->monitored_events,
                              json_pack("{s:s,s:o}", "event", db_col_text(st, 0), "connections",
                                        parse_or_array(db_col_text(st, 1))));
    if (rc != ERR_DONE)
        goto fail;
    st = db_stmt(db, "SELECT channel_id FROM policy_channels WHERE tenant_id = ? AND "
                     "policy_id = ? ORDER BY channel_id");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    while ((rc = db_next(st)) == ERR_OK)
        json_array_append_new(out->channel_ids, json_string(db_col_text(st, 0)));
    if (rc != ERR_DONE)
        goto fail;
    return ERR_OK;
fail:
    policy_cleanup(out);
    return rc;
}

enum err policy_version_bump(struct db *db, const char *tenant)
{
    struct db_stmt *st =
        db_stmt(db, "UPDATE tenants SET alert_version = alert_version + 1 WHERE id = ?");
    db_bind_text(st, 1, tenant);
    return db_run(st);
}

static enum err delete_children(struct db *db, const char *tenant, const char *id)
{
    struct db_stmt *st =
        db_stmt(db, "DELETE FROM policy_monitored_events WHERE tenant_id = ? AND policy_id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    st = db_stmt(db, "DELETE FROM policy_channels WHERE tenant_id = ? AND policy_id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    return db_run(st);
}

enum err policy_store(struct db *db, const struct policy *p, bool update)
{
    char *group_by = json_dumps(p->group_by, JSON_COMPACT);
    char *notify_on = json_dumps(p->notify_on, JSON_COMPACT);
    struct db_stmt *st;
    if (update) {
        st = db_stmt(db, "UPDATE alert_policies SET name = ?, enabled = ?, group_by = ?, "
                         "auto_close_after = ?, close_on_recovery = ?, notify_on = ?, "
                         "updated_at = ? WHERE tenant_id = ? AND id = ?");
    } else {
        st = db_stmt(db, "INSERT INTO alert_policies (name, enabled, group_by, "
                         "auto_close_after, close_on_recovery, notify_on, updated_at, "
                         "tenant_id, id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        db_bind_int(st, 10, p->created_at);
    }
    db_bind_text(st, 1, p->name);
    db_bind_int(st, 2, p->enabled);
    db_bind_text(st, 3, group_by);
    if (p->auto_close_ms >= 0)
        db_bind_int(st, 4, p->auto_close_ms);
    else
        db_bind_null(st, 4);
    db_bind_int(st, 5, p->close_on_recovery);
    db_bind_text(st, 6, notify_on);
    db_bind_int(st, 7, p->updated_at);
    db_bind_text(st, 8, p->tenant);
    db_bind_text(st, 9, p->id);
    enum err rc = db_run(st);
    free(group_by);
    free(notify_on);
    if (rc == ERR_OK && update && db_changes(st) == 0)
        rc = ERR_NOT_FOUND;
    if (rc == ERR_OK && update)
        rc = delete_children(db, p->tenant, p->id);
    size_t i;
    json_t *e;
    json_array_foreach(p->monitored_events, i, e)
    {
        if (rc != ERR_OK)
            break;
        char *conns = json_dumps(json_object_get(e, "connections"), JSON_COMPACT);
        st = db_stmt(db, "INSERT INTO policy_monitored_events (tenant_id, policy_id, seq, "
                         "event, connections) VALUES (?, ?, ?, ?, ?)");
        db_bind_text(st, 1, p->tenant);
        db_bind_text(st, 2, p->id);
        db_bind_int(st, 3, (int64_t)i);
        db_bind_text(st, 4, json_string_value(json_object_get(e, "event")));
        db_bind_text(st, 5, conns);
        rc = db_run(st);
        free(conns);
    }
    json_array_foreach(p->channel_ids, i, e)
    {
        if (rc != ERR_OK)
            break;
        st = db_stmt(db, "INSERT INTO policy_channels (tenant_id, policy_id, channel_id) "
                         "VALUES (?, ?, ?)");
        db_bind_text(st, 1, p->tenant);
        db_bind_text(st, 2, p->id);
        db_bind_text(st, 3, json_string_value(e));
        rc = db_run(st);
    }
    if (rc == ERR_OK)
        rc = policy_version_bump(db, p->tenant);
    return rc;
}

enum err policy_delete(struct db *db, const char *tenant, const char *id)
{
    struct db_stmt *st = db_stmt(db, "DELETE FROM alert_policies WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_run(st);
    if (rc == ERR_OK && db_changes(st) == 0)
        return ERR_NOT_FOUND;
    if (rc == ERR_OK)
        rc = delete_children(db, tenant, id);
    if (rc == ERR_OK)
        rc = policy_version_bump(db, tenant);
    return rc;
}

json_t *policy_to_json(struct db *db, const struct policy *p)
{
    json_t *o = json_pack("{s:s,s:s,s:b,s:O,s:O,s:O,s:b,s:O}", "id", p->id, "name", p->name,
                          "enabled", p->enabled, "monitored_events", p->monitored_events,
                          "channel_ids", p->channel_ids, "group_by", p->group_by,
                          "close_on_recovery", p->close_on_recovery, "notify_on", p->notify_on);
    if (p->auto_close_ms >= 0) {
        char d[32];
        if (p->auto_close_ms % 3600000 == 0 && p->auto_close_ms <= 48 * 3600000LL)
            snprintf(d, sizeof d, "%lldh", (long long)(p->auto_close_ms / 3600000)); /* "24h" */
        else
            duration_format(p->auto_close_ms, d, sizeof d);
        json_object_set_new(o, "auto_close_after", json_string(d));
    } else {
        json_object_set_new(o, "auto_close_after", json_null());
    }
    struct db_stmt *st = db_stmt(db, "SELECT COUNT(*) FROM issues WHERE tenant_id = ? AND "
                                     "policy_id = ? AND status IN ('open', 'acknowledged')");
    db_bind_text(st, 1, p->tenant);
    db_bind_text(st, 2, p->id);
    enum err rc = db_next(st);
    if (rc != ERR_OK) { /* COUNT always answers one row: this is a storage error */
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "open_issue_count", json_integer(db_col_int(st, 0)));
    json_set_time(o, "created_at", p->created_at);
    json_set_time(o, "updated_at", p->updated_at);
    return o;
}

/* --- the matching index -------------------------------------------------------------- */

struct ix_entry {
    int rule;
    int nconns;
    char **conns;
};

struct ix_event {
    int n, cap;
    struct ix_entry *entries;
};

struct policy_index {
    char tenant[72];
    char *tenant_name;
    int64_t version;
    uint64_t txn; /* the writer's transaction it was loaded in (store_txn) */
    int nrules, cap;
    struct policy_rule *rules;
    bool *enabled;
    int nevents;
    struct ix_event *by_event; /* parallel to catalog_failures */
    struct policy_index *next;
};

static struct policy_index *g_index;

static int failure_count(void)
{
    int n = 0;
    while (catalog_failures[n].name)
        n++;
    return n;
}

static int failure_slot(const char *event)
{
    for (int i = 0; catalog_failures[i].name; i++)
        if (!strcmp(catalog_failures[i].name, event))
            return i;
    return -1;
}

static void index_clear(struct policy_index *ix)
{
    for (int i = 0; i < ix->nrules; i++) {
        free(ix->rules[i].name);
        free(ix->rules[i].channels);
    }
    free(ix->rules);
    free(ix->enabled);
    ix->rules = NULL;
    ix->enabled = NULL;
    ix->nrules = ix->cap = 0;
    for (int e = 0; e < ix->nevents; e++) {
        for (int k = 0; k < ix->by_event[e].n; k++) {
            struct ix_entry *en = &ix->by_event[e].entries[k];
            for (int c = 0; c < en->nconns; c++)
                free(en->conns[c]);
            free(en->conns);
        }
        free(ix->by_event[e].entries);
    }
    free(ix->by_event);
    ix->by_event = NULL;
    ix->nevents = 0;
    free(ix->tenant_name);
    ix->tenant_name = NULL;
}

static int rule_find(const struct policy_index *ix, const char *id)
{
    for (int i = 0; i < ix->nrules; i++)
        if (!strcmp(ix->rules[i].id, id))
            return i;
    return -1;
}

static unsigned group_mask(json_t *arr)
{
    unsigned m = 0;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        for (int k = 0; group_fields[k]; k++)
            if (json_is_string(e) && !strcmp(json_string_value(e), group_fields[k]))
                m |= 1u << k;
    }
    return m;
}

static bool json_list_has(json_t *arr, const char *s)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (json_is_string(e) && !strcmp(json_string_value(e), s))
            return true;
    }
    return false;
}

static enum err index_load(struct db *db, struct policy_index *ix)
{
    index_clear(ix);
    ix->nevents = failure_count();
    ix->by_event = xcalloc((size_t)ix->nevents, sizeof *ix->by_event);
    struct db_stmt *st = db_stmt(db, "SELECT name FROM tenants WHERE id = ?");
    db_bind_text(st, 1, ix->tenant);
    enum err rc = db_next(st);
    ix->tenant_name = xstrdup(rc == ERR_OK ? db_col_text(st, 0) : ix->tenant);
    st = db_stmt(db, "SELECT id, name, enabled, group_by, auto_close_after, close_on_recovery, "
                     "notify_on FROM alert_policies WHERE tenant_id = ? ORDER BY id");
    db_bind_text(st, 1, ix->tenant);
    while ((rc = db_next(st)) == ERR_OK) {
        if (ix->nrules == ix->cap) {
            ix->cap = ix->cap ? 2 * ix->cap : 8;
            ix->rules = xrealloc(ix->rules, (size_t)ix->cap * sizeof *ix->rules);
            ix->enabled = xrealloc(ix->enabled, (size_t)ix->cap * sizeof *ix->enabled);
        }
        struct policy_rule *r = &ix->rules[ix->nrules];
        memset(r, 0, sizeof *r);
        ix->enabled[ix->nrules] = db_col_int(st, 2) != 0;
        ix->nrules++;
        snprintf(r->id, sizeof r->id, "%s", db_col_text(st, 0));
        r->name = xstrdup(db_col_text(st, 1));
        json_t *g = parse_or_array(db_col_text(st, 3));
        r->group_by = group_mask(g);
        json_decref(g);
        r->auto_close_ms = db_col_opt_int(st, 4);
        r->close_on_recovery = db_col_int(st, 5) != 0;
        json_t *n = parse_or_array(db_col_text(st, 6));
        r->notify_opened = json_list_has(n, "opened");
        r->notify_closed = json_list_has(n, "closed");
        json_decref(n);
    }
    if (rc != ERR_DONE)
        return rc;
    st = db_stmt(db, "SELECT pc.policy_id, pc.channel_id, c.batching FROM policy_channels pc "
                     "JOIN notification_channels c ON c.tenant_id = pc.tenant_id AND c.id = "
                     "pc.channel_id WHERE pc.tenant_id = ? ORDER BY pc.policy_id, pc.channel_id");
    db_bind_text(st, 1, ix->tenant);
    while ((rc = db_next(st)) == ERR_OK) {
        int ri = rule_find(ix, db_col_text(st, 0));
        if (ri < 0)
            continue;
        struct policy_rule *r = &ix->rules[ri];
        r->channels = xrealloc(r->channels, (size_t)(r->nchannels + 1) * sizeof *r->channels);
        struct policy_channel *c = &r->channels[r->nchannels++];
        snprintf(c->id, sizeof c->id, "%s", db_col_text(st, 1));
        if (!channel_batching_window(db_col_text(st, 2), &c->window_ms))
            c->window_ms = 0;
    }
    if (rc != ERR_DONE)
        return rc;
    st = db_stmt(db, "SELECT policy_id, event, connections FROM policy_monitored_events WHERE "
                     "tenant_id = ? ORDER BY policy_id, seq");
    db_bind_text(st, 1, ix->tenant);
    while ((rc = db_next(st)) == ERR_OK) {
        int ri = rule_find(ix, db_col_text(st, 0));
        if (ri < 0 || !ix->enabled[ri])
            continue;
        const char *pattern = db_col_text(st, 1);
        json_t *conns = parse_or_array(db_col_text(st, 2));
        for (int e = 0; e < ix->nevents; e++) {
            if (!pattern_matches(pattern, catalog_failures[e].name))
                continue;
            struct ix_event *ev = &ix->by_event[e];
            if (ev->n == ev->cap) {
                ev->cap = ev->cap ? 2 * ev->cap : 4;
                ev->entries = xrealloc(ev->entries, (size_t)ev->cap * sizeof *ev->entries);
            }
            struct ix_entry *en = &ev->entries[ev->n++];
            en->rule = ri;
            en->nconns = (int)json_array_size(conns);
            en->conns = en->nconns ? xcalloc((size_t)en->nconns, sizeof *en->conns) : NULL;
            for (int c = 0; c < en->nconns; c++)
                en->conns[c] = xstrdup(json_string_value(json_array_get(conns, (size_t)c)));
        }
        json_decref(conns);
    }
    return rc == ERR_DONE ? ERR_OK : rc;
}

/* The writer rolled back (store_on_rollback): an index loaded in that transaction may hold
 * an alert version it wrote, which is undone and may come back with other content (another
 * node's change): load it again on next use. */
static void index_rolled_back(void)
{
    for (struct policy_index *ix = g_index; ix; ix = ix->next)
        if (ix->txn == store_txn())
            ix->version = -1;
}

enum err policy_index_get(struct db *db, const char *tenant, struct policy_index **out)
{
    assert(store_is_writer());
    static bool hooked;
    if (!hooked) {
        store_on_rollback(index_rolled_back);
        hooked = true;
    }
    struct db_stmt *st = db_stmt(db, "SELECT alert_version FROM tenants WHERE id = ?");
    db_bind_text(st, 1, tenant);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    int64_t version = db_col_int(st, 0);
    struct policy_index *ix = g_index;
    while (ix && strcmp(ix->tenant, tenant))
        ix = ix->next;
    if (!ix) {
        ix = xcalloc(1, sizeof *ix);
        snprintf(ix->tenant, sizeof ix->tenant, "%s", tenant);
        ix->version = -1;
        ix->next = g_index;
        g_index = ix;
    }
    if (ix->version != version) {
        if ((rc = index_load(db, ix)) != ERR_OK) {
            ix->version = -1;
            return rc;
        }
        ix->version = version;
        ix->txn = store_txn();
    }
    *out = ix;
    return ERR_OK;
}

int policy_index_match(const struct policy_index *ix, const char *event, const char *connection,
                       const struct policy_rule **out, int max)
{
    int slot = failure_slot(event);
    if (slot < 0 || slot >= ix->nevents)
        return 0;
    const struct ix_event *ev = &ix->by_event[slot];
    int n = 0;
    for (int k = 0; k < ev->n && n < max; k++) {
        const struct ix_entry *en = &ev->entries[k];
        bool ok = en->nconns == 0;
        for (int c = 0; !ok && c < en->nconns; c++)
            ok = connection && !strcmp(en->conns[c], connection);
        if (!ok)
            continue;
        const struct policy_rule *r = &ix->rules[en->rule];
        bool seen = false;
        for (int j = 0; j < n; j++)
            seen = seen || out[j] == r;
        if (!seen)
            out[n++] = r;
    }
    return n;
}

const struct policy_rule *policy_index_rule(const struct policy_index *ix, const char *id)
{
    int i = rule_find(ix, id);
    return i < 0 ? NULL : &ix->rules[i];
}

const char *policy_index_tenant_name(const struct policy_index *ix)
{
    return ix->tenant_name ? ix->tenant_name : ix->tenant;
}

void policy_index_cleanup(void)
{
    while (g_index) {
        struct policy_index *next = g_index->next;
        index_clear(g_index);
        free(g_index);
        g_index = next;
    }
}
