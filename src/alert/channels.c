/* Notification channels and the queueing of notifications. Validation on HTTP threads,
 * persistence and notify_enqueue() in writer jobs (inside the alerting transaction).
 *
 * A batched channel has at most one pending digest per window: the row for the window that
 * contains now (windows are aligned to UTC multiples of the scaled window length) collects
 * the window's issue events as items, and is due at the window's end. If the notifier has
 * already claimed that window's row, the event goes into the next window. */
#include "alert/channels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alert/policies.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "store/store.h"

static const struct {
    const char *name;
    int64_t ms;
} windows[] = {
    {"immediate", 0},
    {"5m", 5 * 60 * 1000LL},
    {"15m", 15 * 60 * 1000LL},
    {"30m", 30 * 60 * 1000LL},
    {"1h", 60 * 60 * 1000LL},
    {"1d", 24 * 60 * 60 * 1000LL},
    {NULL, 0},
};

bool channel_batching_window(const char *batching, int64_t *ms)
{
    for (int i = 0; batching && windows[i].name; i++)
        if (!strcmp(windows[i].name, batching)) {
            *ms = windows[i].ms;
            return true;
        }
    return false;
}

void channel_cleanup(struct channel *c)
{
    if (!c)
        return;
    free(c->name);
    json_decref(c->addresses);
    json_decref(c->unsubscribed);
    memset(c, 0, sizeof *c);
}

bool channel_address_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 254)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || !at[1] || !strchr(at + 1, '.'))
        return false;
    if (at[1] == '.' || s[n - 1] == '.')
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c >= 0x7f || strchr("<>()[]\\,;:\"", c))
            return false;
    }
    return true;
}

/* An address listed again by an operator is subscribed again: it leaves unsubscribed. */
static void drop_resubscribed(struct channel *c)
{
    for (size_t i = json_array_size(c->unsubscribed); i-- > 0;) {
        const char *a =
            json_string_value(json_object_get(json_array_get(c->unsubscribed, i), "address"));
        size_t j;
        json_t *e;
        json_array_foreach(c->addresses, j, e)
        {
            if (a && !strcasecmp(a, json_string_value(e))) {
                json_array_remove(c->unsubscribed, i);
                break;
            }
        }
    }
}

void channel_parse(json_t *body, const struct channel *existing, const char *tenant,
                   struct channel *out, struct verrs *v)
{
    memset(out, 0, sizeof *out);
    snprintf(out->tenant, sizeof out->tenant, "%s", tenant);
    int64_t now = time_now_ms();
    if (existing) {
        memcpy(out->id, existing->id, ID_MAX);
        out->name = xstrdup(existing->name);
        memcpy(out->type, existing->type, sizeof out->type);
        out->addresses = json_deep_copy(existing->addresses);
        out->unsubscribed = json_deep_copy(existing->unsubscribed);
        memcpy(out->batching, existing->batching, sizeof out->batching);
        out->created_at = existing->created_at;
    } else {
        id_new("chn", now, out->id);
        snprintf(out->type, sizeof out->type, "email");
        snprintf(out->batching, sizeof out->batching, "immediate");
        out->addresses = json_array();
        out->unsubscribed = json_array();
        out->created_at = now;
    }
    out->updated_at = now;
    if (!json_is_object(body)) {
        verrs_add(v, "", "the body must be a JSON object");
        return;
    }
    static const char *const fields[] = {"name", "type", "addresses", "batching", NULL};
    json_check_fields(body, fields, "", v);
    json_t *x;
    if ((x = json_object_get(body, "name")) || !existing) {
        const char *s = json_string_value(x);
        size_t n = s ? strspn(s, " \t") : 0;
        if (!s || !s[n] || strlen(s) > 200) {
            verrs_add(v, "name", "is required: a non-empty string of at most 200 characters");
        } else {
            free(out->name);
            out->name = xstrdup(s);
        }
    }
    if ((x = json_object_get(body, "type")) || !existing) {
        const char *s = json_string_value(x);
        if (!s || strcmp(s, "email") != 0)
            verrs_add(v, "type", "must be \"email\"");
        else if (existing && strcmp(existing->type, s) != 0)
            verrs_add(v, "type", "cannot change");
    }
    if ((x = json_object_get(body, "addresses")) || !existing) {
        size_t n = json_array_size(x);
        if (!json_is_array(x) || n == 0 || n > CHANNEL_MAX_ADDRESSES) {
            verrs_add(v, "addresses", "must list 1 to %d email addresses", CHANNEL_MAX_ADDRESSES);
        } else {
            json_t *norm = json_array();
            size_t i;
            json_t *e;
            json_array_foreach(x, i, e)
            {
                const char *s = json_string_value(e);
                if (!s || !channel_address_valid(s)) {
                    char f[48];
                    snprintf(f, sizeof f, "addresses[%zu]", i);
                    verrs_add(v, f, "must be an email address such as ops@example.com");
                } else {
                    json_array_append(norm, e);
                }
            }
            json_decref(out->addresses);
            out->addresses = norm;
            drop_resubscribed(out);
        }
    }
    if ((x = json_object_get(body, "batching"))) {
        int64_t ms;
        const char *s = json_string_value(x);
        if (!s || !channel_batching_window(s, &ms))
            verrs_add(v, "batching", "must be one of immediate, 5m, 15m, 30m, 1h, 1d");
        else
            snprintf(out->batching, sizeof out->batching, "%s", s);
    }
}

enum err channel_load(struct db *db, const char *tenant, const char *id, struct channel *out)
{
    memset(out, 0, sizeof *out);
    struct db_stmt *st =
        db_stmt(db, "SELECT name, type, addresses, batching, created_at, updated_at, "
                    "unsubscribed FROM notification_channels WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    snprintf(out->tenant, sizeof out->tenant, "%s", tenant);
    snprintf(out->id, sizeof out->id, "%s", id);
    out->name = xstrdup(db_col_text(st, 0));
    snprintf(out->type, sizeof out->type, "%s", db_col_text(st, 1));
    out->addresses = json_loads(db_col_text(st, 2), 0, NULL);
    if (!out->addresses)
        out->addresses = json_array();
    snprintf(out->batching, sizeof out->batching, "%s", db_col_text(st, 3));
    out->created_at = db_col_int(st, 4);
    out->updated_at = db_col_int(st, 5);
    out->unsubscribed = json_loads(db_col_text(st, 6), 0, NULL);
    if (!json_is_array(out->unsubscribed)) {
        json_decref(out->unsubscribed);
        out->unsubscribed = json_array();
    }
    return ERR_OK;
}

enum err channel_store(struct db *db, const struct channel *c, bool update)
{
    char *addrs = json_dumps(c->addresses, JSON_COMPACT);
    char *gone = c->unsubscribed ? json_dumps(c->unsubscribed, JSON_COMPACT) : xstrdup("[]");
    struct db_stmt *st;
    if (update)
        st = db_stmt(db, "UPDATE notification_channels SET name = ?, type = ?, addresses = ?, "
                         "batching = ?, updated_at = ?, unsubscribed = ? WHERE tenant_id = ? AND "
                         "id = ?");
    else
        st = db_stmt(db, "INSERT INTO notification_channels (name, type, addresses, batching, "
                         "updated_at, unsubscribed, tenant_id, id, created_at) VALUES (?, ?, ?, "
                         "?, ?, ?, ?, ?, ?)");
    if (!update)
        db_bind_int(st, 9, c->created_at);
    db_bind_text(st, 1, c->name);
    db_bind_text(st, 2, c->type);
    db_bind_text(st, 3, addrs);
    db_bind_text(st, 4, c->batching);
    db_bind_int(st, 5, c->updated_at);
    db_bind_text(st, 6, gone);
    db_bind_text(st, 7, c->tenant);
    db_bind_text(st, 8, c->id);
    enum err rc = db_run(st);
    free(addrs);
    free(gone);
    if (rc == ERR_OK && update && db_changes(st) == 0)
        rc = ERR_NOT_FOUND;
    if (rc == ERR_OK)
        rc = policy_version_bump(db, c->tenant);
    return rc;
}

enum err channel_delete(struct db *db, const char *tenant, const char *id, bool force)
{
    struct db_stmt *st =
        db_stmt(db, "SELECT 1 FROM policy_channels WHERE tenant_id = ? AND channel_id = ? "
                    "LIMIT 1");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc == ERR_OK && !force)
        return ERR_CONFLICT;
    if (rc != ERR_OK && rc != ERR_DONE)
        return rc;
    st = db_stmt(db, "DELETE FROM notification_channels WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    if (db_changes(st) == 0)
        return ERR_NOT_FOUND;
    st = db_stmt(db, "DELETE FROM policy_channels WHERE tenant_id = ? AND channel_id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    return policy_version_bump(db, tenant);
}

json_t *channel_to_json(const struct channel *c)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:O,s:s}", "id", c->id, "name", c->name, "type", c->type,
                          "addresses", c->addresses, "batching", c->batching);
    json_t *gone = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(c->unsubscribed, i, e)
    {
        json_t *u = json_pack("{s:O}", "address", json_object_get(e, "address"));
        json_set_time(u, "at", json_integer_value(json_object_get(e, "at")));
        json_array_append_new(gone, u);
    }
    json_object_set_new(o, "unsubscribed", gone);
    json_set_time(o, "created_at", c->created_at);
    json_set_time(o, "updated_at", c->updated_at);
    return o;
}

static enum err add_item(struct db *db, const char *tenant, const char *ntf, const char *issue,
                         const char *kind, int64_t now)
{
    struct db_stmt *st = db_stmt(db, "INSERT INTO notification_items (tenant_id, "
                                     "notification_id, issue_id, kind, at) VALUES (?, ?, ?, ?, "
                                     "?) ON CONFLICT DO NOTHING");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, ntf);
    db_bind_text(st, 3, issue);
    db_bind_text(st, 4, kind);
    db_bind_int(st, 5, now);
    return db_run(st);
}

static enum err insert_notification(struct db *db, const char *tenant, const char *channel_id,
                                    int64_t window_start, bool batched, int64_t due, int64_t now,
                                    char id[ID_MAX])
{
    id_new("ntf", now, id);
    struct db_stmt *st = db_stmt(
        db, "INSERT INTO notifications (tenant_id, id, channel_id, window_start, batched, state, "
            "due_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    db_bind_text(st, 3, channel_id);
    db_bind_int(st, 4, window_start);
    db_bind_int(st, 5, batched);
    db_bind_int(st, 6, due);
    db_bind_int(st, 7, now);
    if (due <= now)
        store_wake(STORE_WAKE_NOTIFY);
    return db_run(st);
}

enum err notify_enqueue(struct db *db, const char *tenant, const char *channel_id,
                        int64_t window_ms, const char *issue_id, const char *kind, int64_t now)
{
    char id[ID_MAX];
    enum err rc;
    if (window_ms <= 0) {
        rc = insert_notification(db, tenant, channel_id, now, false, now, now, id);
        return rc == ERR_OK ? add_item(db, tenant, id, issue_id, kind, now) : rc;
    }
    int64_t len = time_scaled(window_ms);
    int64_t start = now - now % len;
    for (int step = 0; step < 4; step++, start += len) {
        struct db_stmt *st = db_stmt(
            db, "SELECT id, state FROM notifications WHERE tenant_id = ? AND channel_id = ? AND "
                "window_start = ? AND batched = 1 ORDER BY id LIMIT 1");
        db_bind_text(st, 1, tenant);
        db_bind_text(st, 2, channel_id);
        db_bind_int(st, 3, start);
        rc = db_next(st);
        if (rc == ERR_DONE) {
            rc = insert_notification(db, tenant, channel_id, start, true, start + len, now, id);
            return rc == ERR_OK ? add_item(db, tenant, id, issue_id, kind, now) : rc;
        }
        if (rc != ERR_OK)
            return rc;
        if (!strcmp(db_col_text(st, 1), "pending")) {
            snprintf(id, sizeof id, "%s", db_col_text(st, 0));
            return add_item(db, tenant, id, issue_id, kind, now);
        }
        /* that window's digest is being sent or gone: use the next window */
    }
    return ERR_INTERNAL;
}
