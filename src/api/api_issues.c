/* Alert policies, notification channels, issues and notifications: /v1/alert-policies,
 * /v1/notification-channels, /v1/issues, /v1/notifications. HTTP threads; every change
 * goes through http_defer() and renders its answer inside the job, so the answer shows
 * exactly what committed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/channels.h"
#include "alert/issues.h"
#include "alert/policies.h"
#include "api/api.h"
#include "api/list.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "notify/notifier.h"

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
    /* A batch run again (store.c) runs its jobs again: drop a rolled-back run's answer. */
    json_decref(c->answer);
    c->answer = NULL;
    enum err rc = policy_store(db, &c->p, c->update);
    if (rc == ERR_OK && !(c->answer = policy_to_json(db, &c->p)))
        rc = ERR_STORAGE;
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
    json_t *o = policy_to_json(db, &p);
    policy_cleanup(&p);
    if (o)
        http_json(req, 200, o);
    else
        http_problem_err(req, ERR_STORAGE, NULL);
}

static json_t *id_row(struct db_stmt *st)
{
    return json_pack("{s:s}", "id", db_col_text(st, 0));
}

/* Replaces the id-only item with the whole policy; ERR_DONE when it went away. */
static enum err policy_expand(struct db *db, struct list_ctx *c, json_t *item)
{
    struct policy p;
    enum err rc = policy_load(db, c->tenant, json_string_value(json_object_get(item, "id")), &p);
    if (rc != ERR_OK)
        return rc == ERR_NOT_FOUND ? ERR_DONE : rc;
    json_t *o = policy_to_json(db, &p);
    policy_cleanup(&p);
    if (!o)
        return ERR_STORAGE;
    json_object_update(item, o);
    json_decref(o);
    return ERR_OK;
}

const struct list_spec api_policies_list_spec = {
    .name = "policies",
    .select = "SELECT id FROM alert_policies WHERE tenant_id = ?",
    .binds = "T",
    LIST_NEWEST_FIRST("id", 0),
    .row = id_row,
    .expand = policy_expand,
};

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

/* Replaces the id-only item with the whole channel; ERR_DONE when it went away. */
static enum err channel_expand(struct db *db, struct list_ctx *c, json_t *item)
{
    struct channel ch;
    enum err rc = channel_load(db, c->tenant, json_string_value(json_object_get(item, "id")), &ch);
    if (rc != ERR_OK)
        return rc == ERR_NOT_FOUND ? ERR_DONE : rc;
    json_t *o = channel_to_json(&ch);
    channel_cleanup(&ch);
    json_object_update(item, o);
    json_decref(o);
    return ERR_OK;
}

const struct list_spec api_channels_list_spec = {
    .name = "channels",
    .select = "SELECT id FROM notification_channels WHERE tenant_id = ?",
    .binds = "T",
    LIST_NEWEST_FIRST("id", 0),
    .row = id_row,
    .expand = channel_expand,
};

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
    if ((rc = db_next(st)) != ERR_OK && rc != ERR_DONE) {
        chn_test_free(t);
        http_problem_err(req, rc, NULL);
        return;
    }
    snprintf(t->tname, sizeof t->tname, "%s", rc == ERR_OK ? db_col_text(st, 0) : req->auth.tenant);
    store_reader_release();
    http_defer_blocking(req, chn_test_send, chn_tested, t, chn_test_free);
}

/* --- issues --------------------------------------------------------------------------- */

static const char *const issue_statuses[] = {"open", "acknowledged", "closed", NULL};

static const struct list_param issue_params[] = {
    LIST_ENUM("status", " AND status = ?", issue_statuses),
    LIST_ID("policy_id", " AND policy_id = ?", "pol"),
    LIST_TEXT(
        "connection",
        " AND EXISTS (SELECT 1 FROM issue_alerts ia JOIN alerts a ON a.tenant_id = ia.tenant_id "
        "AND a.id = ia.alert_id WHERE ia.tenant_id = i.tenant_id AND ia.issue_id = i.id AND "
        "a.connection = ?)"),
    LIST_FROM_ID("id", "iss"),
    LIST_TO_ID("id", "iss"),
    LIST_END,
};

const struct list_spec api_issues_list_spec = {
    .name = "issues",
    .params = issue_params,
    .select = "SELECT " ISSUE_JSON_COLS " FROM issues i WHERE tenant_id = ?",
    .binds = "T",
    LIST_NEWEST_FIRST("id", 0),
    .row = issue_json_row,
};

void api_issues_get(struct http_req *req)
{
    struct db *db = http_reader(req);
    if (!db)
        return;
    json_t *o;
    enum err rc = issue_json_load(db, req->auth.tenant, http_param(req, 0), &o);
    if (rc != ERR_OK) {
        http_problem_err(req, rc, rc == ERR_NOT_FOUND ? "no such issue" : NULL);
        return;
    }
    http_json(req, 200, o);
}

/* The lists under /v1/issues/{id}/: 404 unless the issue exists in the tenant. */
static enum err issue_parent(struct db *db, struct list_ctx *c)
{
    struct db_stmt *st = db_stmt(db, "SELECT 1 FROM issues WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, c->tenant);
    db_bind_text(st, 2, http_param(c->req, 0));
    enum err rc = db_next(st);
    db_release(db);
    if (rc == ERR_OK)
        return ERR_OK;
    return list_fail(c, rc == ERR_DONE ? ERR_NOT_FOUND : rc, "no such issue");
}

static enum err alert_expand(struct db *db, struct list_ctx *c, json_t *item)
{
    return alert_json_issue_ids(db, c->tenant, item);
}

const struct list_spec api_issue_alerts_list_spec = {
    .name = "issue-alerts",
    .parent = issue_parent,
    .select = "SELECT a.id, a.event, a.category, a.connection, a.entity_id, a.task_id, "
              "a.message, a.details, a.occurred_at, a.created_at, a.resolved_at FROM "
              "issue_alerts ia JOIN alerts a ON a.tenant_id = ia.tenant_id AND a.id = "
              "ia.alert_id WHERE ia.tenant_id = ? AND ia.issue_id = ?",
    .binds = "T0",
    LIST_NEWEST_FIRST("a.id", 0),
    .row = alert_json_row,
    .expand = alert_expand,
};

static json_t *timeline_row(struct db_stmt *st)
{
    json_t *o = json_object();
    json_set_str(o, "id", db_col_text(st, 0));
    json_set_time(o, "at", db_col_int(st, 1));
    json_set_str(o, "kind", db_col_text(st, 2));
    json_set_str(o, "actor", db_col_text(st, 3));
    json_set_str(o, "detail", db_col_text(st, 4));
    json_object_set_new(o, "count", json_integer(db_col_int(st, 5)));
    return o;
}

const struct list_spec api_issue_timeline_list_spec = {
    .name = "issue-timeline",
    .parent = issue_parent,
    .select = "SELECT id, at, kind, actor, detail, count FROM issue_timeline WHERE tenant_id = ? "
              "AND issue_id = ?",
    .binds = "T0",
    LIST_NEWEST_FIRST("id", 0),
    .row = timeline_row,
};

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
    /* A batch run again (store.c) runs its jobs again: drop a rolled-back run's answer. */
    json_decref(c->answer);
    c->answer = NULL;
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
        rc = issue_json_load(db, c->tenant, c->id, &c->answer);
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

static json_t *notification_row(struct db_stmt *st)
{
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
    return o;
}

/* Adds the ids of the issues a notification tells about. */
static enum err notification_expand(struct db *db, struct list_ctx *c, json_t *item)
{
    json_t *ids = json_array();
    struct db_stmt *st =
        db_stmt(db, "SELECT DISTINCT issue_id FROM notification_items WHERE tenant_id = ? "
                    "AND notification_id = ? ORDER BY issue_id");
    db_bind_text(st, 1, c->tenant);
    db_bind_text(st, 2, json_string_value(json_object_get(item, "id")));
    enum err rc = list_strings(st, ids);
    if (rc != ERR_OK) {
        json_decref(ids);
        return rc;
    }
    json_object_set_new(item, "issue_ids", ids);
    return ERR_OK;
}

static const char *const notification_statuses[] = {"pending", "sending", "sent", "failed", NULL};

static const struct list_param notification_params[] = {
    LIST_ID("channel_id", " AND n.channel_id = ?", "chn"),
    LIST_ENUM("status", " AND n.state = ?", notification_statuses),
    LIST_END,
};

const struct list_spec api_notifications_list_spec = {
    .name = "notifications",
    .params = notification_params,
    .select = "SELECT n.id, n.channel_id, n.state, n.attempts, n.recipients, n.subject, "
              "n.sent_at, n.due_at, n.last_error, n.created_at, n.batched, n.window_start, "
              "c.addresses FROM notifications n LEFT JOIN notification_channels c ON "
              "c.tenant_id = n.tenant_id AND c.id = n.channel_id WHERE n.tenant_id = ?",
    .binds = "T",
    LIST_NEWEST_FIRST("n.id", 0),
    .row = notification_row,
    .expand = notification_expand,
};
