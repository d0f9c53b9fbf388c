/* The event catalog and publishing: POST/GET /v1/events, /v1/event-types.
 * Validation runs whole on the HTTP thread before anything is written; the write runs in
 * the writer's group commit and the answer (202) is sent only after it committed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/list.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "store/events.h"
#include "stream/catalog.h"
#include "stream/routing.h"

#define MAX_BATCH 1000
#define MAX_PAYLOAD (256 * 1024)

static struct metric m_ingested = {.name = "sluice_events_ingested_total",
                                   .help = "Events accepted and stored (duplicates excluded).",
                                   .type = "counter"};
static struct metric m_duplicates = {.name = "sluice_events_duplicates_total",
                                     .help = "Published events that repeated a client id.",
                                     .type = "counter"};
static struct metric m_rejected = {.name = "sluice_events_rejected_requests_total",
                                   .help = "Publish requests refused by validation.",
                                   .type = "counter"};

void api_events_register_metrics(void)
{
    metric_register(&m_ingested);
    metric_register(&m_duplicates);
    metric_register(&m_rejected);
}

/* --- event types --------------------------------------------------------------------- */

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

/* The built-in catalog and the tenant's own types, by name. */
static enum err event_types_fetch(struct db *db, struct list_ctx *c)
{
    const char *after = c->has_cursor ? c->key[0] : "";
    size_t n = 0, cap = 64;
    json_t **all = xcalloc(cap, sizeof *all);
    char entity[72];
    for (const struct catalog_type *t = catalog_builtin; t->name; t++) {
        if (strcmp(t->name, after) <= 0)
            continue;
        if (n == cap)
            all = xrealloc(all, (cap *= 2) * sizeof *all);
        catalog_entity(t->name, entity, sizeof entity);
        all[n++] = json_pack("{s:s,s:s,s:s,s:b}", "name", t->name, "entity", entity, "description",
                             t->description, "builtin", 1);
    }
    struct db_stmt *st = db_stmt(db, "SELECT name, entity, description FROM event_types "
                                     "WHERE tenant_id = ? AND name > ? ORDER BY name LIMIT ?");
    db_bind_text(st, 1, c->tenant);
    db_bind_text(st, 2, after);
    db_bind_int(st, 3, c->limit + 1);
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK) {
        if (n == cap)
            all = xrealloc(all, (cap *= 2) * sizeof *all);
        all[n++] = json_pack("{s:s,s:s,s:s,s:b}", "name", db_col_text(st, 0), "entity",
                             db_col_text(st, 1), "description", db_col_text(st, 2), "builtin", 0);
    }
    qsort(all, n, sizeof *all, cmp_by_name);
    for (size_t i = 0; i < n; i++) {
        if (rc == ERR_DONE && i <= (size_t)c->limit) {
            const char *key[] = {json_string_value(json_object_get(all[i], "name"))};
            list_push(c, all[i], key);
        } else {
            json_decref(all[i]);
        }
    }
    free(all);
    return rc == ERR_DONE ? ERR_OK : rc;
}

const struct list_spec api_event_types_list_spec = {
    .name = "event-types",
    .key_types = "s",
    .fetch = event_types_fetch,
};

struct type_ctx {
    char tenant[72];
    char *name;
    char *description;
    char entity[72];
    int64_t created_at;
};

static void type_ctx_free(void *p)
{
    struct type_ctx *c = p;
    free(c->name);
    free(c->description);
    free(c);
}

static enum err type_insert(struct db *db, void *arg)
{
    struct type_ctx *c = arg;
    struct db_stmt *st = db_stmt(db, "INSERT INTO event_types (tenant_id, name, entity, "
                                     "description, created_at) VALUES (?, ?, ?, ?, ?)");
    db_bind_text(st, 1, c->tenant);
    db_bind_text(st, 2, c->name);
    db_bind_text(st, 3, c->entity);
    db_bind_text(st, 4, c->description);
    db_bind_int(st, 5, c->created_at);
    return db_run(st);
}

static void type_created(struct http_req *req)
{
    struct type_ctx *c = req->ctx;
    if (req->job.rc == ERR_CONFLICT) {
        http_problem(req, 409, "this event type is already registered", NULL);
        return;
    }
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc, NULL);
        return;
    }
    json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "name", c->name, "entity", c->entity, "description",
                          c->description, "builtin", 0);
    json_set_time(o, "created_at", c->created_at);
    http_json(req, 201, o);
}

void api_event_types_create(struct http_req *req)
{
    json_t *body;
    if (!http_body_json(req, &body))
        return;
    struct verrs v;
    verrs_init(&v);
    const char *name = NULL, *desc = "";
    if (!json_is_object(body)) {
        verrs_add(&v, "", "the body must be a JSON object");
    } else {
        static const char *const fields[] = {"name", "description", NULL};
        json_check_fields(body, fields, "", &v);
        name = json_string_value(json_object_get(body, "name"));
        json_t *d = json_object_get(body, "description");
        if (!name || !catalog_name_valid(name))
            verrs_add(&v, "name",
                      "must be \"entity.action\": lower-case letters, digits and '_', "
                      "one dot, each part starting with a letter");
        if (d && (!json_is_string(d) || strlen(json_string_value(d)) > 500))
            verrs_add(&v, "description", "must be a string of at most 500 characters");
        else if (d)
            desc = json_string_value(d);
    }
    if (verrs_any(&v)) {
        http_problem_verrs(req, &v);
        goto out;
    }
    if (catalog_is_builtin(name) || catalog_is_failure(name)) {
        http_problem(req, 409, "this event type is part of the built-in catalog", NULL);
        goto out;
    }
    struct type_ctx *c = xcalloc(1, sizeof *c);
    snprintf(c->tenant, sizeof c->tenant, "%s", req->auth.tenant);
    c->name = xstrdup(name);
    c->description = xstrdup(desc);
    catalog_entity(name, c->entity, sizeof c->entity);
    c->created_at = time_now_ms();
    http_defer(req, type_insert, type_created, c, type_ctx_free, 0);
out:
    verrs_cleanup(&v);
    json_decref(body);
}

/* --- publishing ---------------------------------------------------------------------- */

struct publish_ctx {
    char tenant[72];
    size_t n;
    struct event_in *events;
    size_t accepted, duplicates;
};

static void publish_ctx_free(void *p)
{
    struct publish_ctx *c = p;
    for (size_t i = 0; i < c->n; i++)
        event_in_cleanup(&c->events[i]);
    free(c->events);
    free(c);
}

/* Validates one event object; on success fills ev. prefix is "" or "events[i].". */
static void validate_event(struct db *db, const char *tenant, json_t *e, const char *prefix,
                           struct event_in *ev, struct verrs *v, enum err *dbrc)
{
    char f[96];
    if (!json_is_object(e)) {
        size_t n = strlen(prefix);
        snprintf(f, sizeof f, "%.*s", (int)(n ? n - 1 : 0), prefix);
        verrs_add(v, *f ? f : "", "each event must be a JSON object");
        return;
    }
    static const char *const fields[] = {"id", "type", "entity_id", "occurred_at", "payload", NULL};
    json_check_fields(e, fields, prefix, v);
    json_t *id = json_object_get(e, "id");
    if (id && !json_is_null(id)) {
        const char *s = json_string_value(id);
        if (!s || !*s || strlen(s) > 128)
            verrs_add(v, json_field(f, sizeof f, prefix, "id"),
                      "must be a non-empty string of at most 128 characters");
        else
            ev->client_id = xstrdup(s);
    }
    const char *type = json_string_value(json_object_get(e, "type"));
    if (!type || !*type) {
        verrs_add(v, json_field(f, sizeof f, prefix, "type"), "is required (a string)");
    } else {
        enum err rc = catalog_type_known(db, tenant, type);
        if (rc == ERR_NOT_FOUND)
            verrs_add(v, json_field(f, sizeof f, prefix, "type"),
                      "unknown event type \"%.100s\" (see GET /v1/event-types)", type);
        else if (rc != ERR_OK)
            *dbrc = rc;
        else {
            ev->type = xstrdup(type);
            catalog_entity(type, ev->entity, sizeof ev->entity);
        }
    }
    const char *eid = json_string_value(json_object_get(e, "entity_id"));
    if (!eid || !*eid || strlen(eid) > 256)
        verrs_add(v, json_field(f, sizeof f, prefix, "entity_id"),
                  "is required: a non-empty string of at most 256 characters");
    else
        ev->entity_id = xstrdup(eid);
    ev->occurred_at = -1;
    json_t *occ = json_object_get(e, "occurred_at");
    if (occ && !json_is_null(occ)) {
        if (!json_is_string(occ) || time_parse(json_string_value(occ), &ev->occurred_at) != ERR_OK)
            verrs_add(v, json_field(f, sizeof f, prefix, "occurred_at"),
                      "must be an RFC 3339 date-time such as 2026-11-22T10:15:30.123Z");
    }
    json_t *payload = json_object_get(e, "payload");
    if (payload && !json_is_null(payload) && !json_is_object(payload)) {
        verrs_add(v, json_field(f, sizeof f, prefix, "payload"), "must be a JSON object");
    } else {
        char *s = payload && !json_is_null(payload) ? json_dump_compact(payload) : xstrdup("{}");
        if (strlen(s) > MAX_PAYLOAD) {
            verrs_add(v, json_field(f, sizeof f, prefix, "payload"),
                      "is %zu bytes; at most 262144 (256 KiB) are allowed", strlen(s));
            free(s);
        } else {
            ev->payload = s;
        }
    }
}

/* Publishes the events of n requests together: their tenants' routing indexes (each
 * tenant's once), then every event with a few set-based statements
 * (store_events_publish_many), then every delivery (routing_route_many). A request whose tenant is
 * gone fails alone (ERR_AUTH) before anything of it is written. */
static enum err publish_ctxs(struct db *db, struct publish_ctx **cs, enum err *rcs, size_t n)
{
    size_t total = 0;
    struct routing_tenant **rts = xcalloc(n, sizeof *rts);
    for (size_t j = 0; j < n; j++) {
        struct publish_ctx *c = cs[j];
        c->accepted = c->duplicates = 0;
        /* A tenant's index is looked up once per call (its version is a round trip on
         * PostgreSQL): most calls are many requests of one tenant. */
        size_t same = j;
        for (size_t i = j; i-- > 0;)
            if (!strcmp(cs[i]->tenant, c->tenant)) {
                same = i;
                break;
            }
        enum err rc;
        if (same < j) {
            rts[j] = rts[same];
            rc = rcs[same] == ERR_AUTH ? ERR_NOT_FOUND : ERR_OK;
        } else {
            rc = routing_prepare(db, c->tenant, &rts[j]);
        }
        if (rc == ERR_NOT_FOUND) {
            rcs[j] = ERR_AUTH;
            continue;
        }
        if (rc != ERR_OK) {
            free(rts);
            return rc;
        }
        rcs[j] = ERR_OK;
        total += c->n;
    }
    struct event_item *items = xcalloc(total ? total : 1, sizeof *items);
    struct route_item *route = xcalloc(total ? total : 1, sizeof *route);
    size_t k = 0;
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; rcs[j] == ERR_OK && i < cs[j]->n; i++)
            items[k++] = (struct event_item){.tenant = cs[j]->tenant, .ev = &cs[j]->events[i]};
    enum err rc = store_events_publish_many(db, items, total);
    size_t nr = 0;
    k = 0;
    for (size_t j = 0; j < n && rc == ERR_OK; j++)
        for (size_t i = 0; rcs[j] == ERR_OK && i < cs[j]->n; i++, k++) {
            if (items[k].ev->duplicate) {
                cs[j]->duplicates++;
                continue;
            }
            cs[j]->accepted++;
            route[nr++] = (struct route_item){.rt = rts[j], .ev = items[k].ev};
        }
    if (rc == ERR_OK)
        rc = routing_route_many(db, route, nr, NULL);
    free(items);
    free(route);
    free(rts);
    return rc;
}

static enum err publish_run(struct db *db, void *arg)
{
    struct publish_ctx *c = arg;
    enum err one;
    enum err rc = publish_ctxs(db, &c, &one, 1);
    return rc == ERR_OK ? one : rc;
}

static enum err publish_many(struct db *db, struct store_job **jobs, size_t n)
{
    struct publish_ctx **cs = xcalloc(n, sizeof *cs);
    enum err *rcs = xcalloc(n, sizeof *rcs);
    for (size_t j = 0; j < n; j++)
        cs[j] = http_job_ctx(jobs[j]);
    enum err rc = publish_ctxs(db, cs, rcs, n);
    for (size_t j = 0; j < n && rc == ERR_OK; j++)
        jobs[j]->rc = rcs[j];
    free(cs);
    free(rcs);
    return rc;
}

static const struct store_group publish_group = {.run_many = publish_many};

static void publish_done(struct http_req *req)
{
    struct publish_ctx *c = req->ctx;
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc == ERR_CONFLICT ? ERR_STORAGE : req->job.rc, NULL);
        return;
    }
    metric_add(&m_ingested, (int64_t)c->accepted);
    metric_add(&m_duplicates, (int64_t)c->duplicates);
    json_t *ids = json_array();
    for (size_t i = 0; i < c->n; i++)
        json_array_append_new(ids, json_string(c->events[i].id));
    http_json(req, 202,
              json_pack("{s:I,s:I,s:o}", "accepted", (json_int_t)c->accepted, "duplicates",
                        (json_int_t)c->duplicates, "ids", ids));
}

void api_events_publish(struct http_req *req)
{
    json_t *body;
    if (!http_body_json(req, &body))
        return;
    struct verrs v;
    verrs_init(&v);
    struct publish_ctx *c = xcalloc(1, sizeof *c);
    snprintf(c->tenant, sizeof c->tenant, "%s", req->auth.tenant);
    enum err dbrc = ERR_OK;
    struct db *db = http_reader(req);
    if (!db)
        goto fail;
    if (!json_is_object(body)) {
        verrs_add(&v, "", "the body must be an event object or {\"events\": [...]}");
    } else if (json_object_get(body, "events")) {
        json_t *list = json_object_get(body, "events");
        static const char *const fields[] = {"events", NULL};
        json_check_fields(body, fields, "", &v);
        size_t n = json_array_size(list);
        if (!json_is_array(list) || n == 0 || n > MAX_BATCH) {
            verrs_add(&v, "events", "must be a list of 1 to 1000 events");
        } else {
            c->n = n;
            c->events = xcalloc(n, sizeof *c->events);
            for (size_t i = 0; i < n && dbrc == ERR_OK; i++) {
                char prefix[32];
                snprintf(prefix, sizeof prefix, "events[%zu].", i);
                validate_event(db, c->tenant, json_array_get(list, i), prefix, &c->events[i], &v,
                               &dbrc);
                if (!c->events[i].client_id)
                    continue;
                for (size_t j = 0; j < i; j++)
                    if (c->events[j].client_id &&
                        !strcmp(c->events[j].client_id, c->events[i].client_id)) {
                        char f[48];
                        snprintf(f, sizeof f, "events[%zu].id", i);
                        verrs_add(&v, f, "repeats the id of events[%zu] in this request", j);
                        break;
                    }
            }
        }
    } else {
        c->n = 1;
        c->events = xcalloc(1, sizeof *c->events);
        validate_event(db, c->tenant, body, "", &c->events[0], &v, &dbrc);
    }
    if (dbrc != ERR_OK) {
        http_problem_err(req, dbrc, NULL);
        goto fail;
    }
    if (verrs_any(&v)) {
        metric_add(&m_rejected, 1);
        http_problem_verrs(req, &v);
        goto fail;
    }
    json_decref(body);
    verrs_cleanup(&v);
    http_defer_group(req, &publish_group, publish_run, publish_done, c, publish_ctx_free, 0);
    return;
fail:
    publish_ctx_free(c);
    verrs_cleanup(&v);
    json_decref(body);
}

static const struct list_param event_params[] = {
    LIST_TEXT("type", " AND type = ?"),
    LIST_TEXT("entity_id", " AND entity_id = ?"),
    LIST_FROM_ID("id", "evt"),
    LIST_TO_ID("id", "evt"),
    LIST_END,
};

const struct list_spec api_events_list_spec = {
    .name = "events",
    .params = event_params,
    .select = "SELECT " STORE_EVENT_COLS " FROM events WHERE tenant_id = ?",
    .binds = "T",
    LIST_NEWEST_FIRST("id", 0),
    .row = store_event_row,
};

void api_events_get(struct http_req *req)
{
    struct db *db = http_reader(req);
    if (!db)
        return;
    json_t *ev;
    enum err rc = store_event_get(db, req->auth.tenant, http_param(req, 0), &ev);
    if (rc != ERR_OK) {
        http_problem_err(req, rc, rc == ERR_NOT_FOUND ? "no such event" : NULL);
        return;
    }
    http_json(req, 200, ev);
}
