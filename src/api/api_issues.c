/* Alert policies, notification channels, issues and notifications: /v1/alert-policies,
 * /v1/notification-channels, /v1/issues, /v1/notifications. HTTP threads; every change
 * goes through http_defer() and renders its answer inside the job, so the answer shows
 * exactly what committed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/issues.h"
#include "alert/policies.h"
#include "api/api.h"
#include "api/api_alerting.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "notify/channels.h"
#include "notify/notifier.h"

/* --- issues rendering ----------------------------------------------------------------- */

#define ISSUE_COLS                                                                                 \
    "id, policy_id, title, group_json, status, alert_count, opened_at, last_alert_at, "            \
    "acknowledged_at, closed_at, close_reason, previous_issue_id"

static json_t *issue_row(struct db_stmt *st)
{
    json_t *o = json_object();
    json_set_str(o, "id", db_col_text(st, 0));
    json_set_str(o, "policy_id", db_col_text(st, 1));
    json_set_str(o, "title", db_col_text(st, 2));
    json_t *g = json_loads(db_col_text(st, 3), 0, NULL);
    json_object_set_new(o, "group", g ? g : json_object());
    json_set_str(o, "status", db_col_text(st, 4));
    json_object_set_new(o, "alert_count", json_integer(db_col_int(st, 5)));
    json_set_time(o, "opened_at", db_col_int(st, 6));
    json_set_time(o, "last_alert_at", db_col_int(st, 7));
    json_set_time(o, "acknowledged_at", db_col_opt_int(st, 8));
    json_set_time(o, "closed_at", db_col_opt_int(st, 9));
    json_set_str(o, "close_reason", db_col_text(st, 10));
    json_set_str(o, "previous_issue_id", db_col_text(st, 11));
    return o;
}

enum err alerting_issue_json(struct db *db, const char *tenant, const char *id, json_t **out)
{
    struct db_stmt *st =
        db_stmt(db, "SELECT " ISSUE_COLS " FROM issues WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    *out = issue_row(st);
    return ERR_OK;
}

/* --- policies ------------------------------------------------------------------------- */

struct pol_ctx {
    struct policy p;
    bool update;
    json_t *answer;
};

static void pol_ctx_free(void *arg)
{
    struct pol_ctx *c = arg;
    policy_cleanup(&c->p);
    json_decref(c->answer);
    free(c);
}

static enum err pol_write_run(struct db *db, void *arg)
{
    struct pol_ctx *c = arg;
    enum err rc = policy_store(db, &c->p, c->update);
    if (rc == ERR_OK)
        c->answer = policy_to_json(db, &c->p);
    return rc;
}

static void pol_written(struct http_req *req)
{
    struct pol_ctx *c = req->ctx;
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc,
                         req->job.rc == ERR_NOT_FOUND ? "no such alert policy" : NULL);
        return;
    }
    http_json(req, c->update ? 200 : 201, c->answer);
    c->answer = NULL;
}

/* mode 0: create, 1: patch, 2: append monitored events */
static void pol_write(struct http_req *req, int mode)
{
    json_t *body;
    if (!http_body_json(req, &body))
        return;
    struct db *db = http_reader(req);
    if (!db) {
        json_decref(body);
        return;
    }
    struct policy existing;
    if (mode) {
        enum err rc = policy_load(db, req->auth.tenant, http_param(req, 0), &existing);
        if (rc != ERR_OK) {
            http_problem_err(req, rc, rc == ERR_NOT_FOUND ? "no such alert policy" : NULL);
            json_decref(body);
            return;
        }
    }
    struct pol_ctx *c = xcalloc(1, sizeof *c);
    c->update = mode != 0;
    struct verrs v;
    verrs_init(&v);
    enum err rc =
        policy_parse(body, mode ? &existing : NULL, mode == 2, db, req->auth.tenant, &c->p, &v);
    if (mode)
        policy_cleanup(&existing);
    if (rc != ERR_OK) {
        http_problem_err(req, rc, NULL);
        pol_ctx_free(c);
    } else if (verrs_any(&v)) {
        http_problem_verrs(req, &v);
        pol_ctx_free(c);
    } else {
        http_defer(req, pol_write_run, pol_written, c, pol_ctx_free, 0);
    }
    verrs_cleanup(&v);
    json_decref(body);
}

void api_policies_create(struct http_req *req)
{
    pol_write(req, 0);
}

void api_policies_patch(struct http_req *req)
{
    pol_write(req, 1);
}

void api_policies_append_events(struct http_req *req)
{
    pol_write(req, 2);
}

void api_policies_get(struct http_req *req)
{
    struct db *db = http_reader(req);
    if (!db)
        return;
    struct policy p;
    enum err rc = policy_load(db, req->auth.tenant, http_param(req, 0), &p);
    if (rc != ERR_OK) {
        http_problem_err(req, rc, rc == ERR_NOT_FOUND ? "no such alert policy" : NULL);
        return;
    }
    http_json(req, 200, policy_to_json(db, &p));
    policy_cleanup(&p);
}

void api_policies_list(struct http_req *req)
{
    int limit;
    const char *cursor;
    if (!http_query_limit(req, &limit) || !alerting_cursor(req, "pol", &cursor))
        return;
    struct db *db = http_reader(req);
    if (!db)
        return;
    struct db_query q;
    db_query_init(&q, "SELECT id FROM alert_policies WHERE tenant_id = ?");
    db_query_arg(&q, req->auth.tenant);
    db_query_where(&q, " AND id < ?", cursor);
    struct db_stmt *st;
    enum err qrc = db_query_stmt(db, &q, " ORDER BY id DESC LIMIT ?", limit + 1, &st);
    if (qrc != ERR_OK) {
        http_problem_err(req, qrc, NULL);
        return;
    }
    json_t *ids = json_array();
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK)
        json_array_append_new(ids, json_string(db_col_text(st, 0)));
    json_t *arr = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(ids, i, e)
    {
        struct policy p;
        if (policy_load(db, req->auth.tenant, json_string_value(e), &p) == ERR_OK) {
            json_array_append_new(arr, policy_to_json(db, &p));
            policy_cleanup(&p);
        }
    }
    json_decref(ids);
    alerting_list_answer(req, arr, limit, rc);
}

struct del_ctx {
    char tenant[72];
    char id[ID_MAX];
    bool force;
};

static enum err pol_delete_run(struct db *db, void *arg)
{
    struct del_ctx *c = arg;
    return policy_delete(db, c->tenant, c->id);
}

static void deleted(struct http_req *req)
{
    if (req->job.rc == ERR_CONFLICT) {
        http_problem(req, 409,
                     "a policy uses this channel; remove it from the policy or use ?force=true",
                     NULL);
        return;
    }
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc, req->job.rc == ERR_NOT_FOUND ? "not found" : NULL);
        return;
    }
    http_no_content(req);
}

void api_policies_delete(struct http_req *req)
{
    struct del_ctx *c = xcalloc(1, sizeof *c);
    snprintf(c->tenant, sizeof c->tenant, "%s", req->auth.tenant);
    snprintf(c->id, sizeof c->id, "%s", http_param(req, 0));
    http_defer(req, pol_delete_run, deleted, c, free, 0);
}

/* --- channels ------------------------------------------------------------------------- */

struct chn_ctx {
    struct channel c;
    bool update;
};

static void chn_ctx_free(void *arg)
{
    struct chn_ctx *c = arg;
    channel_cleanup(&c->c);
    free(c);
}

static enum err chn_write_run(struct db *db, void *arg)
{
    struct chn_ctx *c = arg;
    return channel_store(db, &c->c, c->update);
}

static void chn_written(struct http_req *req)
{
    struct chn_ctx *c = req->ctx;
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc,
                         req->job.rc == ERR_NOT_FOUND ? "no such notification channel" : NULL);
        return;
    }
    http_json(req, c->update ? 200 : 201, channel_to_json(&c->c));
}

static void chn_write(struct http_req *req, bool update)
{
    json_t *body;
    if (!http_body_json(req, &body))
        return;
    struct channel existing;
    if (update) {
        struct db *db = http_reader(req);
        if (!db) {
            json_decref(body);
            return;
        }
        enum err rc = channel_load(db, req->auth.tenant, http_param(req, 0), &existing);
        if (rc != ERR_OK) {
            http_problem_err(req, rc, rc == ERR_NOT_FOUND ? "no such notification channel" : NULL);
            json_decref(body);
            return;
        }
    }
    struct chn_ctx *c = xcalloc(1, sizeof *c);
    c->update = update;
    struct verrs v;
    verrs_init(&v);
    channel_parse(body, update ? &existing : NULL, req->auth.tenant, &c->c, &v);
    if (update)
        channel_cleanup(&existing);
    if (verrs_any(&v)) {
        http_problem_verrs(req, &v);
        chn_ctx_free(c);
    } else {
        http_defer(req, chn_write_run, chn_written, c, chn_ctx_free, 0);
    }
    verrs_cleanup(&v);
    json_decref(body);
}

void api_channels_create(struct http_req *req)
{
    chn_write(req, false);
}

void api_channels_patch(struct http_req *req)
{
    chn_write(req, true);
}

void api_channels_get(struct http_req *req)
{
    struct db *db = http_reader(req);
    if (!db)
        return;
    struct channel c;
    enum err rc = channel_load(db, req->auth.tenant, http_param(req, 0), &c);
    if (rc != ERR_OK) {
        http_problem_err(req, rc, rc == ERR_NOT_FOUND ? "no such notification channel" : NULL);
        return;
    }
    http_json(req, 200, channel_to_json(&c));
    channel_cleanup(&c);
}

void api_channels_list(struct http_req *req)
{
    int limit;
    const char *cursor;
    if (!http_query_limit(req, &limit) || !alerting_cursor(req, "chn", &cursor))
        return;
    struct db *db = http_reader(req);
    if (!db)
        return;
    struct db_query q;
    db_query_init(&q, "SELECT id FROM notification_channels WHERE tenant_id = ?");
    db_query_arg(&q, req->auth.tenant);
    db_query_where(&q, " AND id < ?", cursor);
    struct db_stmt *st;
    enum err qrc = db_query_stmt(db, &q, " ORDER BY id DESC LIMIT ?", limit + 1, &st);
    if (qrc != ERR_OK) {
        http_problem_err(req, qrc, NULL);
        return;
    }
    json_t *ids = json_array();
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK)
        json_array_append_new(ids, json_string(db_col_text(st, 0)));
    json_t *arr = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(ids, i, e)
    {
        struct channel c;
        if (channel_load(db, req->auth.tenant, json_string_value(e), &c) == ERR_OK) {
            json_array_append_new(arr, channel_to_json(&c));
            channel_cleanup(&c);
        }
    }
    json_decref(ids);
    alerting_list_answer(req, arr, limit, rc);
}

static enum err chn_delete_run(struct db *db, void *arg)
{
    struct del_ctx *c = arg;
    return channel_delete(db, c->tenant, c->id, c->force);
}

void api_channels_delete(struct http_req *req)
{
    struct del_ctx *c = xcalloc(1, sizeof *c);
    snprintf(c->tenant, sizeof c->tenant, "%s", req->auth.tenant);
    snprintf(c->id, sizeof c->id, "%s", http_param(req, 0));
    const char *force = http_query(req, "force");
    c->force = force && (!strcmp(force, "true") || !strcmp(force, "1"));
    http_defer(req, chn_delete_run, deleted, c, free, 0);
}

struct chn_test {
    struct channel c;
    char tname[256];
    char err[512];
    enum err rc;
    int64_t ms;
};

static void chn_test_free(void *arg)
{
    struct chn_test *t = arg;
    channel_cleanup(&t->c);
    free(t);
}

/* On its own thread (http_defer_blocking): the SMTP conversation. */
static void chn_test_send(void *arg)
{
    struct chn_test *t = arg;
    int64_t t0 = time_mono_ms();
    t->rc = notifier_send_test(&t->c, t->tname, t->err, sizeof t->err);
    t->ms = time_mono_ms() - t0;
}

static void chn_tested(struct http_req *req)
{
    struct chn_test *t = req->ctx;
    if (t->rc == ERR_CONFLICT) {
        http_problem(req, 409, t->err, NULL);
        return;
    }
    json_t *o = json_pack("{s:b,s:I,s:O}", "ok", t->rc == ERR_OK, "latency_ms", (json_int_t)t->ms,
                          "recipients", t->c.addresses);
    json_set_str(o, "error", t->rc == ERR_OK ? NULL : t->err);
    http_json(req, 200, o);
}

void api_channels_test(struct http_req *req)
{
    struct db *db = http_reader(req);
    if (!db)
        return;
    struct chn_test *t = xcalloc(1, sizeof *t);
    enum err rc = channel_load(db, req->auth.tenant, http_param(req, 0), &t->c);
    if (rc != ERR_OK) {
        free(t);
        http_problem_err(req, rc, rc == ERR_NOT_FOUND ? "no such notification channel" : NULL);
        return;
    }
    struct db_stmt *st = db_stmt(db, "SELECT name FROM tenants WHERE id = ?");
    db_bind_text(st, 1, req->auth.tenant);
    snprintf(t->tname, sizeof t->tname, "%s",
             db_next(st) == ERR_OK ? db_col_text(st, 0) : req->auth.tenant);
    store_reader_release();
    http_defer_blocking(req, chn_test_send, chn_tested, t, chn_test_free);
}

/* --- issues --------------------------------------------------------------------------- */

void api_issues_list(struct http_req *req)
{
    int limit;
    int64_t from = -1, to = -1;
    const char *cursor;
    if (!http_query_limit(req, &limit) || !http_query_time(req, "from", &from) ||
        !http_query_time(req, "to", &to) || !alerting_cursor(req, "iss", &cursor))
        return;
    const char *status = http_query(req, "status");
    if (status && strcmp(status, "open") && strcmp(status, "acknowledged") &&
        strcmp(status, "closed")) {
        json_t *e = json_pack("[{s:s,s:s}]", "field", "status", "message",
                              "must be open, acknowledged or closed");
        http_problem(req, 400, "status must be open, acknowledged or closed", e);
        return;
    }
    struct db *db = http_reader(req);
    if (!db)
        return;
    const char *policy = http_query(req, "policy_id"), *conn = http_query(req, "connection");
    struct db_query q;
    db_query_init(&q, "SELECT " ISSUE_COLS " FROM issues i WHERE tenant_id = ?");
    db_query_arg(&q, req->auth.tenant);
    db_query_where(&q, " AND status = ?", status);
    db_query_where(&q, " AND policy_id = ?", policy);
    db_query_where(&q,
                   " AND EXISTS (SELECT 1 FROM issue_alerts ia JOIN alerts a ON a.tenant_id = "
                   "ia.tenant_id AND a.id = ia.alert_id WHERE ia.tenant_id = i.tenant_id AND "
                   "ia.issue_id = i.id AND a.connection = ?)",
                   conn);
    db_query_since(&q, "id", "iss", from);
    db_query_before(&q, "id", "iss", to);
    db_query_where(&q, " AND id < ?", cursor);
    struct db_stmt *st;
    enum err qrc = db_query_stmt(db, &q, " ORDER BY id DESC LIMIT ?", limit + 1, &st);
    if (qrc != ERR_OK) {
        http_problem_err(req, qrc, NULL);
        return;
    }
    json_t *arr = json_array();
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK)
        json_array_append_new(arr, issue_row(st));
    alerting_list_answer(req, arr, limit, rc);
}

void api_issues_get(struct http_req *req)
{
    struct db *db = http_reader(req);
    if (!db)
        return;
    json_t *o;
    enum err rc = alerting_issue_json(db, req->auth.tenant, http_param(req, 0), &o);
    if (rc != ERR_OK) {
        http_problem_err(req, rc, rc == ERR_NOT_FOUND ? "no such issue" : NULL);
        return;
    }
    http_json(req, 200, o);
}

/* Answers 404 and returns false unless the path's issue exists in the tenant. */
static bool issue_exists(struct http_req *req, struct db *db)
{
    struct db_stmt *st = db_stmt(db, "SELECT 1 FROM issues WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, req->auth.tenant);
    db_bind_text(st, 2, http_param(req, 0));
    enum err rc = db_next(st);
    if (rc == ERR_OK)
        return true;
    http_problem_err(req, rc == ERR_DONE ? ERR_NOT_FOUND : rc, "no such issue");
    return false;
}

void api_issues_alerts(struct http_req *req)
{
    int limit;
    const char *cursor;
    if (!http_query_limit(req, &limit) || !alerting_cursor(req, "alr", &cursor))
        return;
    struct db *db = http_reader(req);
    if (!db || !issue_exists(req, db))
        return;
    struct db_stmt *st = db_stmt(
        db, cursor ? "SELECT a.id, a.event, a.category, a.connection, a.entity_id, a.task_id, "
                     "a.message, a.details, a.occurred_at, a.created_at, a.resolved_at FROM "
                     "issue_alerts ia JOIN alerts a ON a.tenant_id = ia.tenant_id AND a.id = "
                     "ia.alert_id WHERE ia.tenant_id = ? AND ia.issue_id = ? AND a.id < ? ORDER "
                     "BY a.id DESC LIMIT ?"
                   : "SELECT a.id, a.event, a.category, a.connection, a.entity_id, a.task_id, "
                     "a.message, a.details, a.occurred_at, a.created_at, a.resolved_at FROM "
                     "issue_alerts ia JOIN alerts a ON a.tenant_id = ia.tenant_id AND a.id = "
                     "ia.alert_id WHERE ia.tenant_id = ? AND ia.issue_id = ? ORDER BY a.id "
                     "DESC LIMIT ?");
    int k = 1;
    db_bind_text(st, k++, req->auth.tenant);
    db_bind_text(st, k++, http_param(req, 0));
    if (cursor)
        db_bind_text(st, k++, cursor);
    db_bind_int(st, k, limit + 1);
    json_t *arr = json_array();
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK)
        json_array_append_new(arr, alerting_alert_json(db, req->auth.tenant, st));
    alerting_list_answer(req, arr, limit, rc);
}

void api_issues_timeline(struct http_req *req)
{
    int limit;
    const char *cursor;
    if (!http_query_limit(req, &limit) || !alerting_cursor(req, "itl", &cursor))
        return;
    struct db *db = http_reader(req);
    if (!db || !issue_exists(req, db))
        return;
    struct db_stmt *st =
        db_stmt(db, cursor ? "SELECT id, at, kind, actor, detail, count FROM issue_timeline WHERE "
                             "tenant_id = ? AND issue_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
                           : "SELECT id, at, kind, actor, detail, count FROM issue_timeline WHERE "
                             "tenant_id = ? AND issue_id = ? ORDER BY id DESC LIMIT ?");
    int k = 1;
    db_bind_text(st, k++, req->auth.tenant);
    db_bind_text(st, k++, http_param(req, 0));
    if (cursor)
        db_bind_text(st, k++, cursor);
    db_bind_int(st, k, limit + 1);
    json_t *arr = json_array();
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK) {
        json_t *o = json_object();
        json_set_str(o, "id", db_col_text(st, 0));
        json_set_time(o, "at", db_col_int(st, 1));
        json_set_str(o, "kind", db_col_text(st, 2));
        json_set_str(o, "actor", db_col_text(st, 3));
        json_set_str(o, "detail", db_col_text(st, 4));
        json_object_set_new(o, "count", json_integer(db_col_int(st, 5)));
        json_array_append_new(arr, o);
    }
    alerting_list_answer(req, arr, limit, rc);
}

enum issue_action { ACT_ACK, ACT_CLOSE, ACT_REOPEN, ACT_COMMENT };

struct act_ctx {
    char tenant[72];
    char id[ID_MAX];
    char actor[160];
    enum issue_action act;
    char *comment;
    json_t *answer;
};

static void act_ctx_free(void *arg)
{
    struct act_ctx *c = arg;
    free(c->comment);
    json_decref(c->answer);
    free(c);
}

static enum err act_run(struct db *db, void *arg)
{
    struct act_ctx *c = arg;
    int64_t now = time_now_ms();
    enum err rc;
    switch (c->act) {
    case ACT_ACK:
        rc = issue_acknowledge(db, c->tenant, c->id, c->actor, now);
        break;
    case ACT_CLOSE:
        rc = issue_close(db, c->tenant, c->id, "manual", c->actor, c->comment, now);
        break;
    case ACT_REOPEN:
        rc = issue_reopen(db, c->tenant, c->id, c->actor, now);
        break;
    default:
        rc = issue_comment(db, c->tenant, c->id, c->actor, c->comment, now);
        break;
    }
    if (rc == ERR_OK)
        rc = alerting_issue_json(db, c->tenant, c->id, &c->answer);
    return rc;
}

static void act_done(struct http_req *req)
{
    struct act_ctx *c = req->ctx;
    if (req->job.rc == ERR_CONFLICT) {
        const char *d = c->act == ACT_ACK ? "only an open issue can be acknowledged"
                        : c->act == ACT_CLOSE
                            ? "the issue is already closed"
                            : "the issue is not closed, or its group key already has another "
                              "open issue";
        http_problem(req, 409, d, NULL);
        return;
    }
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc, req->job.rc == ERR_NOT_FOUND ? "no such issue" : NULL);
        return;
    }
    http_json(req, c->act == ACT_COMMENT ? 201 : 200, c->answer);
    c->answer = NULL;
}

static void issue_act(struct http_req *req, enum issue_action act)
{
    json_t *body = NULL;
    struct act_ctx *c = xcalloc(1, sizeof *c);
    c->act = act;
    snprintf(c->tenant, sizeof c->tenant, "%s", req->auth.tenant);
    snprintf(c->id, sizeof c->id, "%s", http_param(req, 0));
    http_actor(req, c->actor, sizeof c->actor);
    if (req->body.len > 0 || act == ACT_COMMENT) {
        if (!http_body_json(req, &body)) {
            act_ctx_free(c);
            return;
        }
        struct verrs v;
        verrs_init(&v);
        if (!json_is_object(body)) {
            verrs_add(&v, "", "the body must be a JSON object");
        } else {
            static const char *const fields[] = {"comment", NULL};
            static const char *const none[] = {NULL};
            json_check_fields(body, act == ACT_CLOSE || act == ACT_COMMENT ? fields : none, "", &v);
            json_t *x = json_object_get(body, "comment");
            const char *s = json_string_value(x);
            if ((x && !json_is_null(x) && (!s || strlen(s) > 4000)) ||
                (act == ACT_COMMENT && (!s || !*s)))
                verrs_add(&v, "comment",
                          act == ACT_COMMENT ? "is required: a string of 1 to 4000 characters"
                                             : "must be a string of at most 4000 characters");
            else if (s)
                c->comment = xstrdup(s);
        }
        json_decref(body);
        if (verrs_any(&v)) {
            http_problem_verrs(req, &v);
            verrs_cleanup(&v);
            act_ctx_free(c);
            return;
        }
        verrs_cleanup(&v);
    }
    http_defer(req, act_run, act_done, c, act_ctx_free, STORE_WAKE_NOTIFY);
}

void api_issues_acknowledge(struct http_req *req)
{
    issue_act(req, ACT_ACK);
}

void api_issues_close(struct http_req *req)
{
    issue_act(req, ACT_CLOSE);
}

void api_issues_reopen(struct http_req *req)
{
    issue_act(req, ACT_REOPEN);
}

void api_issues_comment(struct http_req *req)
{
    issue_act(req, ACT_COMMENT);
}

/* --- notifications -------------------------------------------------------------------- */

void api_notifications_list(struct http_req *req)
{
    int limit;
    const char *cursor;
    if (!http_query_limit(req, &limit) || !alerting_cursor(req, "ntf", &cursor))
        return;
    const char *status = http_query(req, "status");
    if (status && strcmp(status, "pending") && strcmp(status, "sending") &&
        strcmp(status, "sent") && strcmp(status, "failed")) {
        json_t *e = json_pack("[{s:s,s:s}]", "field", "status", "message",
                              "must be pending, sending, sent or failed");
        http_problem(req, 400, "status must be pending, sending, sent or failed", e);
        return;
    }
    struct db *db = http_reader(req);
    if (!db)
        return;
    const char *channel = http_query(req, "channel_id");
    struct db_query q;
    db_query_init(&q, "SELECT n.id, n.channel_id, n.state, n.attempts, n.recipients, "
                      "n.subject, n.sent_at, n.due_at, n.last_error, n.created_at, n.batched, "
                      "n.window_start, c.addresses FROM notifications n LEFT JOIN "
                      "notification_channels c ON c.tenant_id = n.tenant_id AND c.id = "
                      "n.channel_id WHERE n.tenant_id = ?");
    db_query_arg(&q, req->auth.tenant);
    db_query_where(&q, " AND n.channel_id = ?", channel);
    db_query_where(&q, " AND n.state = ?", status);
    db_query_where(&q, " AND n.id < ?", cursor);
    struct db_stmt *st;
    enum err qrc = db_query_stmt(db, &q, " ORDER BY n.id DESC LIMIT ?", limit + 1, &st);
    if (qrc != ERR_OK) {
        http_problem_err(req, qrc, NULL);
        return;
    }
    json_t *arr = json_array();
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK) {
        json_t *o = json_object();
        json_set_str(o, "id", db_col_text(st, 0));
        json_set_str(o, "channel_id", db_col_text(st, 1));
        json_set_str(o, "status", db_col_text(st, 2));
        json_object_set_new(o, "attempts", json_integer(db_col_int(st, 3)));
        const char *r = db_col_text(st, 4) ? db_col_text(st, 4) : db_col_text(st, 12);
        json_t *rj = r ? json_loads(r, 0, NULL) : NULL;
        json_object_set_new(o, "recipients", rj ? rj : json_array());
        json_set_str(o, "subject", db_col_text(st, 5));
        json_set_time(o, "sent_at", db_col_opt_int(st, 6));
        json_set_time(o, "due_at", db_col_int(st, 7));
        json_set_str(o, "last_error", db_col_text(st, 8));
        json_set_time(o, "created_at", db_col_int(st, 9));
        json_object_set_new(o, "batched", json_boolean(db_col_int(st, 10) != 0));
        json_set_time(o, "window_start", db_col_int(st, 11));
        json_array_append_new(arr, o);
    }
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        json_t *ids = json_array();
        st = db_stmt(db, "SELECT DISTINCT issue_id FROM notification_items WHERE tenant_id = ? "
                         "AND notification_id = ? ORDER BY issue_id");
        db_bind_text(st, 1, req->auth.tenant);
        db_bind_text(st, 2, json_string_value(json_object_get(o, "id")));
        while (db_next(st) == ERR_OK)
            json_array_append_new(ids, json_string(db_col_text(st, 0)));
        json_object_set_new(o, "issue_ids", ids);
    }
    alerting_list_answer(req, arr, limit, rc);
}
