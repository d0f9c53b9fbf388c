/* Alerts and tasks: POST/GET /v1/alerts, /v1/alerts/{id}/resolve, /v1/tasks, and the
 * console's /v1/failure-types, /v1/connections, /v1/stats. HTTP threads: validation runs
 * whole before anything is written; writes go through http_defer() so a 2xx means the
 * alerts and everything they cause (issues, timeline, notifications) committed together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alerts.h"
#include "alert/issues.h"
#include "api/api.h"
#include "api/list.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "stream/catalog.h"

#define MAX_ALERT_BATCH 1000
#define MAX_MESSAGE 4096
#define MAX_DETAILS (64 * 1024)

/* The list helper's expansion of an alert: its issue ids. */
static enum err alert_expand(struct db *db, struct list_ctx *c, json_t *item)
{
    return alert_json_issue_ids(db, c->tenant, item);
}

/* Reads one alert by id with its issue ids into *out; ERR_NOT_FOUND when absent. */
static enum err alert_load(struct db *db, const char *tenant, const char *id, json_t **out);

static enum err alert_load(struct db *db, const char *tenant, const char *id, json_t **out)
{
    struct db_stmt *st =
        db_stmt(db, "SELECT " ALERT_JSON_COLS " FROM alerts a WHERE a.tenant_id = ? AND a.id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    json_t *o = alert_json_row(st);
    if ((rc = alert_json_issue_ids(db, tenant, o)) != ERR_OK) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return ERR_OK;
}

/* --- POST /v1/alerts ------------------------------------------------------------------ */

struct report_ctx {
    char tenant[72];
    size_t n;
    struct alert_in *alerts;
    char (*ids)[ID_MAX];
};

static void report_ctx_free(void *p)
{
    struct report_ctx *c = p;
    for (size_t i = 0; i < c->n; i++) {
        free((char *)c->alerts[i].event);
        free((char *)c->alerts[i].connection);
        free((char *)c->alerts[i].entity_id);
        free((char *)c->alerts[i].task_id);
        free((char *)c->alerts[i].message);
        free((char *)c->alerts[i].details);
    }
    free(c->alerts);
    free(c->ids);
    free(c);
}

static const char *opt_string(json_t *o, const char *key, const char *prefix, size_t max,
                              struct verrs *v)
{
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x))
        return NULL;
    const char *s = json_string_value(x);
    if (!s || !*s || strlen(s) > max) {
        char f[96];
        verrs_add(v, json_field(f, sizeof f, prefix, key),
                  "must be a non-empty string of at most %zu characters", max);
        return NULL;
    }
    return s;
}

static void validate_alert(struct db *db, const char *tenant, json_t *e, const char *prefix,
                           struct alert_in *a, struct verrs *v, enum err *dbrc)
{
    char f[96];
    a->occurred_at = -1;
    if (!json_is_object(e)) {
        size_t n = strlen(prefix);
        snprintf(f, sizeof f, "%.*s", (int)(n ? n - 1 : 0), prefix);
        verrs_add(v, f, "each alert must be a JSON object");
        return;
    }
    static const char *const fields[] = {"event",   "connection", "entity_id",   "task_id",
                                         "message", "details",    "occurred_at", NULL};
    json_check_fields(e, fields, prefix, v);
    const char *ev = json_string_value(json_object_get(e, "event"));
    if (!ev || !catalog_is_failure(ev))
        verrs_add(v, json_field(f, sizeof f, prefix, "event"),
                  "must be a failure event of the catalog (see GET /v1/failure-types)");
    else if (!strncmp(ev, "event_stream.", 13))
        verrs_add(v, json_field(f, sizeof f, prefix, "event"),
                  "%s is raised by Sluice itself (for its Event Stream integrations) and cannot "
                  "be reported",
                  ev);
    else
        a->event = xstrdup(ev);
    a->connection = xstrdup(opt_string(e, "connection", prefix, 128, v));
    a->entity_id = xstrdup(opt_string(e, "entity_id", prefix, 256, v));
    const char *task = opt_string(e, "task_id", prefix, ID_MAX - 1, v);
    if (task) {
        struct db_stmt *st = db_stmt(db, "SELECT 1 FROM tasks WHERE tenant_id = ? AND id = ?");
        db_bind_text(st, 1, tenant);
        db_bind_text(st, 2, task);
        enum err rc = db_next(st);
        if (rc == ERR_DONE)
            verrs_add(v, json_field(f, sizeof f, prefix, "task_id"), "no such task");
        else if (rc != ERR_OK)
            *dbrc = rc;
        else
            a->task_id = xstrdup(task);
    }
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (!msg || !*msg || strlen(msg) > MAX_MESSAGE)
        verrs_add(v, json_field(f, sizeof f, prefix, "message"),
                  "is required: a non-empty string of at most %d characters", MAX_MESSAGE);
    else
        a->message = xstrdup(msg);
    json_t *d = json_object_get(e, "details");
    if (d && !json_is_null(d)) {
        char *s = json_is_object(d) ? json_dump_compact(d) : NULL;
        if (!s || strlen(s) > MAX_DETAILS) {
            verrs_add(v, json_field(f, sizeof f, prefix, "details"),
                      "must be a JSON object of at most 64 KiB");
            free(s);
        } else {
            a->details = s;
        }
    }
    json_t *occ = json_object_get(e, "occurred_at");
    if (occ && !json_is_null(occ) &&
        (!json_is_string(occ) || time_parse(json_string_value(occ), &a->occurred_at) != ERR_OK))
        verrs_add(v, json_field(f, sizeof f, prefix, "occurred_at"),
                  "must be an RFC 3339 date-time such as 2026-11-22T10:15:30.123Z");
}

static enum err report_run(struct db *db, void *arg)
{
    struct report_ctx *c = arg;
    return alerts_record_batch(db, c->tenant, c->alerts, c->n, c->ids);
}

/* Consecutive reports in one group commit: every alert in a few set-based statements, and
 * each issue they touch moved once (alerts_record_many). */
static enum err report_many(struct db *db, struct store_job **jobs, size_t n)
{
    struct alert_batch *b = xcalloc(n, sizeof *b);
    for (size_t j = 0; j < n; j++) {
        struct report_ctx *c = http_job_ctx(jobs[j]);
        b[j] = (struct alert_batch){
            .tenant = c->tenant, .alerts = c->alerts, .n = c->n, .ids = c->ids};
    }
    enum err rc = alerts_record_many(db, b, n);
    free(b);
    return rc;
}

static const struct store_group report_group = {.run_many = report_many};

static void report_done(struct http_req *req)
{
    struct report_ctx *c = req->ctx;
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc == ERR_CONFLICT ? ERR_STORAGE : req->job.rc, NULL);
        return;
    }
    json_t *ids = json_array();
    for (size_t i = 0; i < c->n; i++)
        json_array_append_new(ids, json_string(c->ids[i]));
    http_json(req, 202, json_pack("{s:I,s:o}", "accepted", (json_int_t)c->n, "ids", ids));
}

void api_alerts_report(struct http_req *req)
{
    json_t *body;
    if (!http_body_json(req, &body))
        return;
    struct verrs v;
    verrs_init(&v);
    struct report_ctx *c = xcalloc(1, sizeof *c);
    snprintf(c->tenant, sizeof c->tenant, "%s", req->auth.tenant);
    enum err dbrc = ERR_OK;
    struct db *db = http_reader(req);
    if (!db)
        goto fail;
    if (!json_is_object(body)) {
        verrs_add(&v, "", "the body must be an alert object or {\"alerts\": [...]}");
    } else if (json_object_get(body, "alerts")) {
        json_t *list = json_object_get(body, "alerts");
        static const char *const fields[] = {"alerts", NULL};
        json_check_fields(body, fields, "", &v);
        size_t n = json_array_size(list);
        if (!json_is_array(list) || n == 0 || n > MAX_ALERT_BATCH) {
            verrs_add(&v, "alerts", "must be a list of 1 to %d alerts", MAX_ALERT_BATCH);
        } else {
            c->n = n;
            c->alerts = xcalloc(n, sizeof *c->alerts);
            for (size_t i = 0; i < n && dbrc == ERR_OK; i++) {
                char prefix[32];
                snprintf(prefix, sizeof prefix, "alerts[%zu].", i);
                validate_alert(db, c->tenant, json_array_get(list, i), prefix, &c->alerts[i], &v,
                               &dbrc);
            }
        }
    } else {
        c->n = 1;
        c->alerts = xcalloc(1, sizeof *c->alerts);
        validate_alert(db, c->tenant, body, "", &c->alerts[0], &v, &dbrc);
    }
    if (dbrc != ERR_OK) {
        http_problem_err(req, dbrc, NULL);
        goto fail;
    }
    if (verrs_any(&v)) {
        http_problem_verrs(req, &v);
        goto fail;
    }
    c->ids = xcalloc(c->n, sizeof *c->ids);
    json_decref(body);
    verrs_cleanup(&v);
    http_defer_group(req, &report_group, report_run, report_done, c, report_ctx_free,
                     STORE_WAKE_NOTIFY);
    return;
fail:
    report_ctx_free(c);
    verrs_cleanup(&v);
    json_decref(body);
}

/* --- GET /v1/alerts ------------------------------------------------------------------- */

static const struct list_param alert_params[] = {
    LIST_TEXT("event", " AND a.event = ?"),
    LIST_TEXT("category", " AND a.category = ?"),
    LIST_TEXT("connection", " AND a.connection = ?"),
    LIST_TEXT("entity_id", " AND a.entity_id = ?"),
    LIST_ID("task_id", " AND a.task_id = ?", "tsk"),
    LIST_ID(
        "issue_id",
        " AND a.id IN (SELECT ia.alert_id FROM issue_alerts ia WHERE ia.tenant_id = a.tenant_id "
        "AND ia.issue_id = ?)",
        "iss"),
    LIST_FROM_ID("a.id", "alr"),
    LIST_TO_ID("a.id", "alr"),
    LIST_END,
};

const struct list_spec api_alerts_list_spec = {
    .name = "alerts",
    .params = alert_params,
    .select = "SELECT " ALERT_JSON_COLS " FROM alerts a WHERE a.tenant_id = ?",
    .binds = "T",
    LIST_NEWEST_FIRST("a.id", 0),
    .row = alert_json_row,
    .expand = alert_expand,
};

#define TASK_ALERTS_SHOWN 100

/* Renders a task with its newest alerts (more_alerts: there are more than shown);
 * ERR_NOT_FOUND when absent. */
static enum err task_json(struct db *db, const char *tenant, const char *id, json_t **out)
{
    struct db_stmt *st =
        db_stmt(db, "SELECT id, kind, connection, entity_id, status, started_at, finished_at, "
                    "details, created_at, updated_at FROM tasks WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    json_t *o = json_object();
    json_set_str(o, "id", db_col_text(st, 0));
    json_set_str(o, "kind", db_col_text(st, 1));
    json_set_str(o, "connection", db_col_text(st, 2));
    json_set_str(o, "entity_id", db_col_text(st, 3));
    json_set_str(o, "status", db_col_text(st, 4));
    json_set_time(o, "started_at", db_col_opt_int(st, 5));
    json_set_time(o, "finished_at", db_col_opt_int(st, 6));
    json_object_set_new(o, "details", json_stored(db_col_text(st, 7)));
    json_set_time(o, "created_at", db_col_int(st, 8));
    json_set_time(o, "updated_at", db_col_int(st, 9));
    /* The task's newest alerts; all of them page through GET /v1/alerts?task_id=. */
    json_t *alerts = json_array();
    st = db_stmt(db,
                 "SELECT " ALERT_JSON_COLS " FROM alerts a WHERE a.tenant_id = ? AND a.task_id = "
                 "? ORDER BY a.id DESC LIMIT ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    db_bind_int(st, 3, TASK_ALERTS_SHOWN + 1);
    while ((rc = db_next(st)) == ERR_OK)
        json_array_append_new(alerts, alert_json_row(st));
    bool more = json_array_size(alerts) > TASK_ALERTS_SHOWN;
    if (more)
        json_array_remove(alerts, TASK_ALERTS_SHOWN);
    if (rc == ERR_DONE)
        rc = ERR_OK;
    for (size_t i = 0; i < json_array_size(alerts) && rc == ERR_OK; i++)
        rc = alert_json_issue_ids(db, tenant, json_array_get(alerts, i));
    if (rc != ERR_OK) {
        json_decref(alerts);
        json_decref(o);
        return rc;
    }
    json_object_set_new(o, "alerts", alerts);
    json_object_set_new(o, "more_alerts", json_boolean(more));
    *out = o;
    return ERR_OK;
}

void api_alerts_get(struct http_req *req)
{
    struct db *db = http_reader(req);
    if (!db)
        return;
    json_t *o;
    enum err rc = alert_load(db, req->auth.tenant, http_param(req, 0), &o);
    if (rc != ERR_OK) {
        http_problem_err(req, rc, "no such alert");
        return;
    }
    const char *task = json_string_value(json_object_get(o, "task_id"));
    json_t *t = NULL;
    if (task && (rc = task_json(db, req->auth.tenant, task, &t)) == ERR_OK)
        json_object_del(t, "alerts");
    if (rc == ERR_NOT_FOUND)
        rc = ERR_OK;
    json_object_set_new(o, "task", t ? t : json_null());
    json_t *issues = json_array();
    json_t *ids = json_object_get(o, "issue_ids");
    size_t i;
    json_t *e;
    json_array_foreach(ids, i, e)
    {
        json_t *iss;
        enum err r =
            rc == ERR_OK ? issue_json_load(db, req->auth.tenant, json_string_value(e), &iss) : rc;
        if (r == ERR_OK)
            json_array_append_new(issues, iss);
        else if (r != ERR_NOT_FOUND)
            rc = r;
    }
    json_object_set_new(o, "issues", issues);
    if (rc != ERR_OK) {
        json_decref(o);
        http_problem_err(req, rc, NULL);
        return;
    }
    http_json(req, 200, o);
}

/* --- resolve -------------------------------------------------------------------------- */

struct resolve_ctx {
    char tenant[72];
    char id[ID_MAX];
    json_t *answer;
};

static void resolve_ctx_free(void *p)
{
    struct resolve_ctx *c = p;
    json_decref(c->answer);
    free(c);
}

static enum err resolve_run(struct db *db, void *arg)
{
    struct resolve_ctx *c = arg;
    /* A batch run again (store.c) runs its jobs again: drop a rolled-back run's answer. */
    json_decref(c->answer);
    c->answer = NULL;
    enum err rc = alert_resolve(db, c->tenant, c->id);
    if (rc != ERR_OK)
        return rc;
    return alert_load(db, c->tenant, c->id, &c->answer);
}

static void resolve_done(struct http_req *req)
{
    struct resolve_ctx *c = req->ctx;
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc, req->job.rc == ERR_NOT_FOUND ? "no such alert" : NULL);
        return;
    }
    http_json(req, 200, c->answer);
    c->answer = NULL;
}

void api_alerts_resolve(struct http_req *req)
{
    struct resolve_ctx *c = xcalloc(1, sizeof *c);
    snprintf(c->tenant, sizeof c->tenant, "%s", req->auth.tenant);
    snprintf(c->id, sizeof c->id, "%s", http_param(req, 0));
    http_defer(req, resolve_run, resolve_done, c, resolve_ctx_free, STORE_WAKE_NOTIFY);
}

/* --- tasks ---------------------------------------------------------------------------- */

static const char *const task_statuses[] = {"pending", "running", "succeeded", "failed", NULL};

static bool task_status_valid(const char *s)
{
    for (int i = 0; s && task_statuses[i]; i++)
        if (!strcmp(task_statuses[i], s))
            return true;
    return false;
}

static bool kind_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
              s[n] == '.' || s[n] == '-'))
            return false;
    return n >= 1 && n <= 64;
}

struct task_ctx {
    char tenant[72];
    char id[ID_MAX];
    char *kind, *connection, *entity_id, *status, *details;
    int64_t started_at, finished_at;
    bool create;
    json_t *answer;
};

static void task_ctx_free(void *p)
{
    struct task_ctx *c = p;
    free(c->kind);
    free(c->connection);
    free(c->entity_id);
    free(c->status);
    free(c->details);
    json_decref(c->answer);
    free(c);
}

static enum err task_write_run(struct db *db, void *arg)
{
    struct task_ctx *c = arg;
    /* A batch run again (store.c) runs its jobs again: drop a rolled-back run's answer. */
    json_decref(c->answer);
    c->answer = NULL;
    int64_t now = time_now_ms();
    enum err rc;
    if (c->create) {
        struct db_stmt *st = db_stmt(
            db, "INSERT INTO tasks (tenant_id, id, kind, connection, entity_id, status, "
                "started_at, finished_at, details, created_at, updated_at) VALUES (?, ?, ?, ?, "
                "?, ?, ?, ?, ?, ?, ?)");
        db_bind_text(st, 1, c->tenant);
        db_bind_text(st, 2, c->id);
        db_bind_text(st, 3, c->kind);
        db_bind_text(st, 4, c->connection);
        db_bind_text(st, 5, c->entity_id);
        db_bind_text(st, 6, c->status);
        db_bind_opt_int(st, 7, c->started_at);
        db_bind_opt_int(st, 8, c->finished_at);
        db_bind_text(st, 9, c->details);
        db_bind_int(st, 10, now);
        db_bind_int(st, 11, now);
        if ((rc = db_run(st)) != ERR_OK)
            return rc;
        if (!strcmp(c->status, "succeeded") &&
            (rc = alerts_resolve_work(db, c->tenant, c->kind, c->connection, c->entity_id,
                                      c->id)) != ERR_OK)
            return rc;
    } else {
        struct db_stmt *st = db_stmt(
            db, "UPDATE tasks SET status = COALESCE(?, status), finished_at = COALESCE(?, "
                "finished_at), details = COALESCE(?, details), updated_at = ? WHERE tenant_id = "
                "? AND id = ?");
        db_bind_text(st, 1, c->status);
        db_bind_opt_int(st, 2, c->finished_at);
        db_bind_text(st, 3, c->details);
        db_bind_int(st, 4, now);
        db_bind_text(st, 5, c->tenant);
        db_bind_text(st, 6, c->id);
        if ((rc = db_run(st)) != ERR_OK)
            return rc;
        if (db_changes(st) == 0)
            return ERR_NOT_FOUND;
        if (c->status && !strcmp(c->status, "succeeded") &&
            (rc = alerts_resolve_task(db, c->tenant, c->id)) != ERR_OK)
            return rc;
    }
    return task_json(db, c->tenant, c->id, &c->answer);
}

static void task_written(struct http_req *req)
{
    struct task_ctx *c = req->ctx;
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc, req->job.rc == ERR_NOT_FOUND ? "no such task" : NULL);
        return;
    }
    http_json(req, c->create ? 201 : 200, c->answer);
    c->answer = NULL;
}

static void task_write(struct http_req *req, bool create)
{
    json_t *body;
    if (!http_body_json(req, &body))
        return;
    struct verrs v;
    verrs_init(&v);
    struct task_ctx *c = xcalloc(1, sizeof *c);
    c->create = create;
    c->started_at = c->finished_at = -1;
    snprintf(c->tenant, sizeof c->tenant, "%s", req->auth.tenant);
    if (create)
        id_new("tsk", time_now_ms(), c->id);
    else
        snprintf(c->id, sizeof c->id, "%s", http_param(req, 0));
    if (!json_is_object(body)) {
        verrs_add(&v, "", "the body must be a JSON object");
    } else {
        static const char *const cfields[] = {"kind",       "connection",  "entity_id", "status",
                                              "started_at", "finished_at", "details",   NULL};
        static const char *const pfields[] = {"status", "finished_at", "details", NULL};
        json_check_fields(body, create ? cfields : pfields, "", &v);
        if (create) {
            const char *kind = json_string_value(json_object_get(body, "kind"));
            if (!kind || !kind_valid(kind))
                verrs_add(&v, "kind", "is required: 1-64 characters of a-z, 0-9, '_', '.', '-'");
            else
                c->kind = xstrdup(kind);
            c->connection = xstrdup(opt_string(body, "connection", "", 128, &v));
            c->entity_id = xstrdup(opt_string(body, "entity_id", "", 256, &v));
        }
        json_t *s = json_object_get(body, "status");
        if ((s || create) && !task_status_valid(json_string_value(s)))
            verrs_add(&v, "status", "must be one of pending, running, succeeded, failed");
        else if (s)
            c->status = xstrdup(json_string_value(s));
        static const char *const times[] = {"started_at", "finished_at"};
        int64_t *dst[] = {&c->started_at, &c->finished_at};
        for (int i = create ? 0 : 1; i < 2; i++) {
            json_t *t = json_object_get(body, times[i]);
            if (t && !json_is_null(t) &&
                (!json_is_string(t) || time_parse(json_string_value(t), dst[i]) != ERR_OK))
                verrs_add(&v, times[i], "must be an RFC 3339 date-time");
        }
        json_t *d = json_object_get(body, "details");
        if (d && !json_is_null(d)) {
            char *ds = json_is_object(d) ? json_dump_compact(d) : NULL;
            if (!ds || strlen(ds) > MAX_DETAILS) {
                verrs_add(&v, "details", "must be a JSON object of at most 64 KiB");
                free(ds);
            } else {
                c->details = ds;
            }
        }
    }
    if (verrs_any(&v)) {
        http_problem_verrs(req, &v);
        task_ctx_free(c);
    } else {
        http_defer(req, task_write_run, task_written, c, task_ctx_free, STORE_WAKE_NOTIFY);
    }
    verrs_cleanup(&v);
    json_decref(body);
}

void api_tasks_create(struct http_req *req)
{
    task_write(req, true);
}

void api_tasks_patch(struct http_req *req)
{
    task_write(req, false);
}

void api_tasks_get(struct http_req *req)
{
    struct db *db = http_reader(req);
    if (!db)
        return;
    json_t *o;
    enum err rc = task_json(db, req->auth.tenant, http_param(req, 0), &o);
    if (rc != ERR_OK) {
        http_problem_err(req, rc, rc == ERR_NOT_FOUND ? "no such task" : NULL);
        return;
    }
    http_json(req, 200, o);
}

static json_t *id_row(struct db_stmt *st)
{
    return json_pack("{s:s}", "id", db_col_text(st, 0));
}

/* Replaces the id-only item with the whole task; ERR_DONE when it went away. */
static enum err task_expand(struct db *db, struct list_ctx *c, json_t *item)
{
    json_t *t;
    enum err rc = task_json(db, c->tenant, json_string_value(json_object_get(item, "id")), &t);
    if (rc != ERR_OK)
        return rc == ERR_NOT_FOUND ? ERR_DONE : rc;
    json_object_update(item, t);
    json_decref(t);
    return ERR_OK;
}

static const struct list_param task_params[] = {
    LIST_TEXT("connection", " AND connection = ?"),
    LIST_TEXT("kind", " AND kind = ?"),
    LIST_ENUM("status", " AND status = ?", task_statuses),
    LIST_END,
};

const struct list_spec api_tasks_list_spec = {
    .name = "tasks",
    .params = task_params,
    .select = "SELECT id FROM tasks WHERE tenant_id = ?",
    .binds = "T",
    LIST_NEWEST_FIRST("id", 0),
    .row = id_row,
    .expand = task_expand,
};

/* --- console helpers ------------------------------------------------------------------ */

static int cmp_failure(const void *a, const void *b)
{
    return strcmp((*(const struct catalog_type *const *)a)->name,
                  (*(const struct catalog_type *const *)b)->name);
}

/* The failure events of the catalog, by name. */
static enum err failure_types_fetch(struct db *db, struct list_ctx *c)
{
    (void)db;
    size_t n = 0;
    while (catalog_failures[n].name)
        n++;
    const struct catalog_type **sorted = xcalloc(n ? n : 1, sizeof *sorted);
    for (size_t i = 0; i < n; i++)
        sorted[i] = &catalog_failures[i];
    qsort(sorted, n, sizeof *sorted, cmp_failure);
    char cat[72];
    size_t pushed = 0;
    for (size_t i = 0; i < n && pushed <= (size_t)c->limit; i++) {
        const struct catalog_type *t = sorted[i];
        if (c->has_cursor && strcmp(t->name, c->key[0]) <= 0)
            continue;
        catalog_entity(t->name, cat, sizeof cat);
        const char *key[] = {t->name};
        list_push(c,
                  json_pack("{s:s,s:s,s:s}", "name", t->name, "category", cat, "description",
                            t->description),
                  key);
        pushed++;
    }
    free(sorted);
    return ERR_OK;
}

const struct list_spec api_failure_types_list_spec = {
    .name = "failure-types",
    .key_types = "s",
    .fetch = failure_types_fetch,
};

static json_t *connection_row(struct db_stmt *st)
{
    json_t *o = json_pack("{s:s,s:I}", "connection", db_col_text(st, 0), "alert_count",
                          (json_int_t)db_col_int(st, 1));
    json_set_time(o, "last_alert_at", db_col_int(st, 2));
    return o;
}

static enum err connection_expand(struct db *db, struct list_ctx *c, json_t *item)
{
    struct db_stmt *st =
        db_stmt(db, "SELECT COUNT(DISTINCT i.id) FROM issues i JOIN issue_alerts ia ON "
                    "ia.tenant_id = i.tenant_id AND ia.issue_id = i.id JOIN alerts a ON "
                    "a.tenant_id = ia.tenant_id AND a.id = ia.alert_id WHERE i.tenant_id = ? "
                    "AND i.status IN ('open', 'acknowledged') AND a.connection = ?");
    db_bind_text(st, 1, c->tenant);
    db_bind_text(st, 2, json_string_value(json_object_get(item, "connection")));
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_STORAGE : rc; /* COUNT always answers one row */
    json_object_set_new(item, "open_issue_count", json_integer(db_col_int(st, 0)));
    db_release(db);
    return ERR_OK;
}

/* Connections seen in the tenant's alerts, by name. */
const struct list_spec api_connections_list_spec = {
    .name = "connections",
    .select = "SELECT connection, COUNT(*), MAX(created_at) FROM alerts WHERE tenant_id = ? AND "
              "connection IS NOT NULL",
    .binds = "T",
    .after = " AND connection > ?",
    .after_parts = "0",
    .order = " GROUP BY connection ORDER BY connection",
    .key_cols = {0},
    .key_types = "s",
    .row = connection_row,
    .expand = connection_expand,
};

/* Adds the per-minute counters (stats_minutes, kept by triggers as rows change: migration
 * 008) of [from, to) to buckets (an object keyed by bucket start / step): sql groups by
 * minute / (step in minutes), and with sub by kind too. A minute counts whole in the bucket
 * it starts in: the last bucket holds every minute that starts before `to`. */
static enum err stats_fill(struct db *db, const char *sql, const char *tenant, int64_t from,
                           int64_t to, int64_t step, json_t *buckets, const char *field,
                           const char *sub)
{
    struct db_stmt *st = db_stmt(db, sql);
    db_bind_int(st, 1, step / 60000);
    db_bind_text(st, 2, tenant);
    db_bind_int(st, 3, from / 60000);
    db_bind_int(st, 4, (to + 59999) / 60000);
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK) {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)db_col_int(st, 0));
        json_t *b = json_object_get(buckets, key);
        if (!b)
            continue;
        if (sub) {
            const char *state = db_col_text(st, 2);
            json_t *d = json_object_get(b, field);
            if (state && json_object_get(d, state))
                json_object_set_new(d, state, json_integer(db_col_int(st, 1)));
        } else {
            json_object_set_new(b, field, json_integer(db_col_int(st, 1)));
        }
    }
    return rc == ERR_DONE ? ERR_OK : rc;
}

void api_stats(struct http_req *req)
{
    int64_t now = time_now_ms();
    const char *bucket = http_query(req, "bucket");
    if (bucket && strcmp(bucket, "1m") && strcmp(bucket, "1h")) {
        json_t *e = json_pack("[{s:s,s:s}]", "field", "bucket", "message", "must be 1m or 1h");
        http_problem(req, 400, "bucket must be 1m or 1h", e);
        return;
    }
    int64_t step = bucket && !strcmp(bucket, "1h") ? 3600000 : 60000;
    int64_t to = now, from = -1;
    if (!http_query_time(req, "from", &from) || !http_query_time(req, "to", &to))
        return;
    if (from < 0)
        from = to - step * 60;
    from -= from % step;
    if (to <= from || (to - from) / step > 1500) {
        json_t *e = json_pack("[{s:s,s:s}]", "field", "from", "message",
                              "the range must be positive and hold at most 1500 buckets");
        http_problem(req, 400, "the range must be positive and hold at most 1500 buckets", e);
        return;
    }
    struct db *db = http_reader(req);
    if (!db)
        return;
    json_t *byk = json_object(), *arr = json_array();
    for (int64_t t = from; t < to; t += step) {
        json_t *b = json_pack("{s:{s:i,s:i,s:i},s:i,s:i}", "deliveries", "succeeded", 0, "failed",
                              0, "rejected", 0, "alerts", 0, "events", 0);
        json_set_time(b, "at", t);
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)(t / step));
        json_object_set(byk, key, b);
        json_array_append_new(arr, b);
    }
    enum err rc = stats_fill(db,
                             "SELECT minute / ?, SUM(n) FROM stats_minutes WHERE tenant_id = ? "
                             "AND minute >= ? AND minute < ? AND kind = 'alerts' GROUP BY 1",
                             req->auth.tenant, from, to, step, byk, "alerts", NULL);
    if (rc == ERR_OK)
        rc = stats_fill(db,
                        "SELECT minute / ?, SUM(n) FROM stats_minutes WHERE tenant_id = ? AND "
                        "minute >= ? AND minute < ? AND kind = 'events' GROUP BY 1",
                        req->auth.tenant, from, to, step, byk, "events", NULL);
    if (rc == ERR_OK)
        rc = stats_fill(db,
                        "SELECT minute / ?, SUM(n), kind FROM stats_minutes WHERE tenant_id = ? "
                        "AND minute >= ? AND minute < ? AND kind IN ('succeeded', 'failed', "
                        "'rejected') GROUP BY 1, 3",
                        req->auth.tenant, from, to, step, byk, "deliveries", "state");
    json_decref(byk);
    if (rc != ERR_OK) {
        json_decref(arr);
        http_problem_err(req, rc, NULL);
        return;
    }
    int64_t oldest = -1;
    struct db_stmt *st = db_stmt(
        db, "SELECT MIN(created_at) FROM deliveries WHERE tenant_id = ? AND state IN ('waiting', "
            "'held', 'pending', 'in_flight')");
    db_bind_text(st, 1, req->auth.tenant);
    if ((rc = db_next(st)) == ERR_OK && !db_col_null(st, 0))
        oldest = db_col_int(st, 0);
    if (rc != ERR_OK) { /* MIN always answers one row */
        json_decref(arr);
        http_problem_err(req, rc == ERR_DONE ? ERR_STORAGE : rc, NULL);
        return;
    }
    json_t *o = json_pack("{s:o}", "buckets", arr);
    json_set_time(o, "oldest_pending_at", oldest);
    http_json(req, 200, o);
}
