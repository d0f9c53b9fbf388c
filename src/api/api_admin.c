/* Admin endpoints (tenants, API keys, nodes) and /v1/me. HTTP threads; writes via http_defer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/list.h"
#include "core/crypto.h"
#include "core/id.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "sched/nodes.h"

/* --- tenants ------------------------------------------------------------------------- */

struct tenant_ctx {
    char *id;
    char *name;
    int64_t created_at;
};

static void tenant_ctx_free(void *p)
{
    struct tenant_ctx *c = p;
    free(c->id);
    free(c->name);
    free(c);
}

static enum err tenant_insert(struct db *db, void *arg)
{
    struct tenant_ctx *c = arg;
    struct db_stmt *st = db_stmt(db, "INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)");
    db_bind_text(st, 1, c->id);
    db_bind_text(st, 2, c->name);
    db_bind_int(st, 3, c->created_at);
    return db_run(st);
}

static json_t *tenant_json(const char *id, const char *name, int64_t created_at)
{
    json_t *o = json_pack("{s:s,s:s}", "id", id, "name", name);
    json_set_time(o, "created_at", created_at);
    return o;
}

static void tenant_created(struct http_req *req)
{
    struct tenant_ctx *c = req->ctx;
    if (req->job.rc == ERR_CONFLICT) {
        char d[160];
        snprintf(d, sizeof d, "a tenant with id \"%s\" already exists", c->id);
        http_problem(req, 409, d, NULL);
    } else if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc, NULL);
    } else {
        http_json(req, 201, tenant_json(c->id, c->name, c->created_at));
    }
}

void api_tenants_create(struct http_req *req)
{
    json_t *body;
    if (!http_body_json(req, &body))
        return;
    struct verrs v;
    verrs_init(&v);
    if (!json_is_object(body)) {
        verrs_add(&v, "", "the body must be a JSON object");
    } else {
        static const char *const fields[] = {"id", "name", NULL};
        json_check_fields(body, fields, "", &v);
        const char *id = json_string_value(json_object_get(body, "id"));
        const char *name = json_string_value(json_object_get(body, "name"));
        if (!id || !id_user_valid(id))
            verrs_add(&v, "id", "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'");
        if (!name || !*name || strlen(name) > 200)
            verrs_add(&v, "name", "must be a non-empty string of at most 200 characters");
    }
    if (verrs_any(&v)) {
        http_problem_verrs(req, &v);
        goto out;
    }
    struct tenant_ctx *c = xcalloc(1, sizeof *c);
    c->id = xstrdup(json_string_value(json_object_get(body, "id")));
    c->name = xstrdup(json_string_value(json_object_get(body, "name")));
    c->created_at = time_now_ms();
    http_defer(req, tenant_insert, tenant_created, c, tenant_ctx_free, 0);
out:
    verrs_cleanup(&v);
    json_decref(body);
}

static json_t *tenant_row(struct db_stmt *st)
{
    return tenant_json(db_col_text(st, 0), db_col_text(st, 1), db_col_int(st, 2));
}

const struct list_spec api_tenants_list_spec = {
    .name = "tenants",
    .select = "SELECT id, name, created_at FROM tenants WHERE 1 = 1",
    .after = " AND id > ?",
    .after_parts = "0",
    .order = " ORDER BY id",
    .key_cols = {0},
    .key_types = "s",
    .row = tenant_row,
};

/* --- nodes ---------------------------------------------------------------------------- */

static void node_push(const struct node_info *n, void *ud)
{
    struct list_ctx *c = ud;
    json_t *roles = json_array();
    for (const char *p = n->roles; *p;) {
        size_t len = strcspn(p, ",");
        json_array_append_new(roles, json_stringn(p, len));
        p += len;
        if (*p == ',')
            p++;
    }
    json_t *o = json_pack("{s:s,s:o,s:s}", "id", n->id, "roles", roles, "version", n->version);
    json_set_time(o, "started_at", n->started_at);
    json_set_time(o, "last_seen_at", n->last_seen);
    json_object_set_new(o, "alive", json_boolean(n->alive));
    json_object_set_new(o, "holding",
                        json_pack("{s:I,s:I,s:I}", "deliveries", (json_int_t)n->deliveries,
                                  "batches", (json_int_t)n->batches, "notifications",
                                  (json_int_t)n->notifications));
    const char *key[] = {n->id};
    list_push(c, o, key);
}

/* Every node sharing the database, by id (src/sched/nodes.c reads them on the database's
 * clock: "alive" is the registry's own judgment). */
static enum err nodes_fetch(struct db *db, struct list_ctx *c)
{
    return nodes_list(db, c->has_cursor ? c->key[0] : NULL, c->limit + 1, node_push, c);
}

const struct list_spec api_nodes_list_spec = {
    .name = "nodes",
    .key_types = "s",
    .fetch = nodes_fetch,
};

/* --- API keys ------------------------------------------------------------------------ */

struct key_ctx {
    char *tenant;
    char id[ID_MAX];
    char *name;
    char *key; /* plaintext, shown once */
    char hash[2 * SHA256_LEN + 1];
    char hint[16];
    unsigned perms;
    int64_t created_at;
};

static void key_ctx_free(void *p)
{
    struct key_ctx *c = p;
    if (c->key) {
        memset(c->key, 0, strlen(c->key));
        free(c->key);
    }
    free(c->tenant);
    free(c->name);
    free(c);
}

static enum err tenant_exists(struct db *db, const char *tenant)
{
    struct db_stmt *st = db_stmt(db, "SELECT 1 FROM tenants WHERE id = ?");
    db_bind_text(st, 1, tenant);
    enum err rc = db_next(st);
    return rc == ERR_OK ? ERR_OK : rc == ERR_DONE ? ERR_NOT_FOUND : rc;
}

static enum err key_insert(struct db *db, void *arg)
{
    struct key_ctx *c = arg;
    enum err rc = tenant_exists(db, c->tenant);
    if (rc != ERR_OK)
        return rc;
    struct db_stmt *st =
        db_stmt(db, "INSERT INTO api_keys (tenant_id, id, name, key_hash, key_hint, permissions, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
    db_bind_text(st, 1, c->tenant);
    db_bind_text(st, 2, c->id);
    db_bind_text(st, 3, c->name);
    db_bind_text(st, 4, c->hash);
    db_bind_text(st, 5, c->hint);
    db_bind_int(st, 6, c->perms);
    db_bind_int(st, 7, c->created_at);
    return db_run(st);
}

static json_t *key_json(const char *id, const char *name, unsigned perms, const char *hint,
                        int64_t created_at)
{
    json_t *p = json_array();
    perm_to_json(perms, p);
    json_t *o =
        json_pack("{s:s,s:s,s:o,s:s}", "id", id, "name", name, "permissions", p, "key_hint", hint);
    json_set_time(o, "created_at", created_at);
    return o;
}

static void key_created(struct http_req *req)
{
    struct key_ctx *c = req->ctx;
    if (req->job.rc == ERR_NOT_FOUND) {
        http_problem(req, 404, "no such tenant", NULL);
    } else if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc, NULL);
    } else {
        json_t *o = key_json(c->id, c->name, c->perms, c->hint, c->created_at);
        json_object_set_new(o, "key", json_string(c->key));
        json_object_set_new(o, "tenant", json_string(c->tenant));
        http_json(req, 201, o);
    }
}

void api_keys_create(struct http_req *req)
{
    json_t *body;
    if (!http_body_json(req, &body))
        return;
    struct verrs v;
    verrs_init(&v);
    unsigned perms = 0;
    if (!json_is_object(body)) {
        verrs_add(&v, "", "the body must be a JSON object");
    } else {
        static const char *const fields[] = {"name", "permissions", NULL};
        json_check_fields(body, fields, "", &v);
        const char *name = json_string_value(json_object_get(body, "name"));
        if (!name || !*name || strlen(name) > 128)
            verrs_add(&v, "name", "must be a non-empty string of at most 128 characters");
        json_t *p = json_object_get(body, "permissions");
        if (!json_is_array(p) || json_array_size(p) == 0) {
            verrs_add(&v, "permissions", "must be a non-empty list of permissions");
        } else {
            size_t i;
            json_t *e;
            json_array_foreach(p, i, e)
            {
                unsigned bit = json_is_string(e) ? perm_parse(json_string_value(e)) : 0;
                if (!bit) {
                    char f[48];
                    snprintf(f, sizeof f, "permissions[%zu]", i);
                    verrs_add(&v, f,
                              "unknown permission (events:publish, tools:view, tools:manage, "
                              "alerts:report, alerts:view, alerts:manage)");
                }
                perms |= bit;
            }
        }
    }
    if (verrs_any(&v)) {
        http_problem_verrs(req, &v);
        goto out;
    }
    struct key_ctx *c = xcalloc(1, sizeof *c);
    c->tenant = xstrdup(http_param(req, 0));
    c->name = xstrdup(json_string_value(json_object_get(body, "name")));
    c->perms = perms;
    c->created_at = time_now_ms();
    id_new("key", c->created_at, c->id);
    unsigned char raw[32];
    crypto_random(raw, sizeof raw);
    char *b = base64url_encode(raw, sizeof raw);
    c->key = xasprintf("sk_%s", b);
    free(b);
    crypto_sha256_hex(c->key, c->hash);
    snprintf(c->hint, sizeof c->hint, "****%s", c->key + strlen(c->key) - 4);
    http_defer(req, key_insert, key_created, c, key_ctx_free, 0);
out:
    verrs_cleanup(&v);
    json_decref(body);
}

static enum err keys_parent(struct db *db, struct list_ctx *c)
{
    enum err rc = tenant_exists(db, http_param(c->req, 0));
    return rc == ERR_OK ? rc : list_fail(c, rc, "no such tenant");
}

static json_t *key_row(struct db_stmt *st)
{
    return key_json(db_col_text(st, 0), db_col_text(st, 1), (unsigned)db_col_int(st, 2),
                    db_col_text(st, 3), db_col_int(st, 4));
}

const struct list_spec api_keys_list_spec = {
    .name = "keys",
    .parent = keys_parent,
    .select = "SELECT id, name, permissions, key_hint, created_at FROM api_keys WHERE "
              "tenant_id = ?",
    .binds = "0",
    LIST_NEWEST_FIRST("id", 0),
    .row = key_row,
};

struct key_del {
    char *tenant;
    char *id;
};

static void key_del_free(void *p)
{
    struct key_del *c = p;
    free(c->tenant);
    free(c->id);
    free(c);
}

static enum err key_delete(struct db *db, void *arg)
{
    struct key_del *c = arg;
    struct db_stmt *st = db_stmt(db, "DELETE FROM api_keys WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, c->tenant);
    db_bind_text(st, 2, c->id);
    enum err rc = db_run(st);
    if (rc == ERR_OK && db_changes(st) == 0)
        rc = ERR_NOT_FOUND;
    return rc;
}

static void key_deleted(struct http_req *req)
{
    if (req->job.rc == ERR_OK) {
        http_auth_forget(); /* refused on this node from now on */
        http_no_content(req);
    } else {
        http_problem_err(req, req->job.rc,
                         req->job.rc == ERR_NOT_FOUND ? "no such key in this tenant" : NULL);
    }
}

void api_keys_delete(struct http_req *req)
{
    struct key_del *c = xcalloc(1, sizeof *c);
    c->tenant = xstrdup(http_param(req, 0));
    c->id = xstrdup(http_param(req, 1));
    http_defer(req, key_delete, key_deleted, c, key_del_free, 0);
}

void api_me(struct http_req *req)
{
    if (req->auth.admin) {
        http_json(req, 200, json_pack("{s:b}", "admin", 1));
        return;
    }
    json_t *p = json_array();
    perm_to_json(req->auth.perms, p);
    http_json(req, 200,
              json_pack("{s:s,s:{s:s,s:s,s:o}}", "tenant", req->auth.tenant, "key", "id",
                        req->auth.key_id, "name", req->auth.key_name, "permissions", p));
}
