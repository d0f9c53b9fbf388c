/* Event Stream integrations: CRUD, pause/resume, test, audit views, redeliver, logs.
 * HTTP threads; writes go through http_defer() and commit with their log rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/list.h"
#include "core/buf.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "stream/deliveries.h"
#include "stream/integrations.h"
#include "stream/routing.h"
#include "stream/targets.h"

/* Loads the integration named in the path; answers 404/503 and returns false on failure. */
static bool load_path_integration(struct http_req *req, struct db *db, struct integration *in)
{
    enum err rc = integration_load(db, req->auth.tenant, http_param(req, 0), in);
    if (rc == ERR_OK)
        return true;
    http_problem_err(req, rc, rc == ERR_NOT_FOUND ? "no such integration" : NULL);
    return false;
}

/* --- create / patch ------------------------------------------------------------------ */

struct integ_ctx {
    struct integration in;
    char *signing_secret; /* plaintext, only in the create answer */
    char actor[160];
    int64_t backfilled;
    bool create;
    json_t *answer;
};

static void integ_ctx_free(void *p)
{
    struct integ_ctx *c = p;
    integration_cleanup(&c->in);
    if (c->signing_secret) {
        memset(c->signing_secret, 0, strlen(c->signing_secret));
        free(c->signing_secret);
    }
    json_decref(c->answer);
    free(c);
}

static enum err integ_create_run(struct db *db, void *arg)
{
    struct integ_ctx *c = arg;
    /* A batch run again (store.c) runs its jobs again: drop a rolled-back run's answer. */
    json_decref(c->answer);
    c->answer = NULL;
    c->backfilled = 0;
    enum err rc = integration_insert(db, &c->in);
    if (rc == ERR_OK)
        rc = integration_log(db, c->in.tenant, c->in.id, "started", "created", c->actor);
    int64_t now = time_now_ms();
    if (rc == ERR_OK && c->in.start_at >= 0 && c->in.start_at < now) {
        int64_t to = c->in.end_at >= 0 && c->in.end_at < now ? c->in.end_at : now + 1;
        rc =
            routing_backfill(db, c->in.tenant, c->in.id, c->in.events,
                             !strcmp(c->in.ordering, "entity"), c->in.start_at, to, &c->backfilled);
    }
    if (rc == ERR_OK && !(c->answer = integration_to_json(db, &c->in)))
        rc = ERR_STORAGE;
    return rc;
}

static enum err integ_patch_run(struct db *db, void *arg)
{
    struct integ_ctx *c = arg;
    /* A batch run again (store.c) runs its jobs again: drop a rolled-back run's answer. */
    json_decref(c->answer);
    c->answer = NULL;
    enum err rc = integration_update(db, &c->in);
    if (rc == ERR_OK) {
        struct integration fresh;
        if ((rc = integration_load(db, c->in.tenant, c->in.id, &fresh)) == ERR_OK) {
            if (!(c->answer = integration_to_json(db, &fresh)))
                rc = ERR_STORAGE;
            integration_cleanup(&fresh);
        }
    }
    return rc;
}

static void integ_written(struct http_req *req)
{
    struct integ_ctx *c = req->ctx;
    if (req->job.rc == ERR_CONFLICT) {
        char d[160];
        snprintf(d, sizeof d, "an integration with id \"%s\" already exists", c->in.id);
        http_problem(req, 409, d, NULL);
        return;
    }
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc,
                         req->job.rc == ERR_NOT_FOUND ? "no such integration" : NULL);
        return;
    }
    json_t *o = c->answer;
    c->answer = NULL;
    if (c->create && c->signing_secret)
        json_object_set_new(o, "signing_secret", json_string(c->signing_secret));
    if (c->create && c->backfilled)
        json_object_set_new(o, "backfilled", json_integer(c->backfilled));
    http_json(req, c->create ? 201 : 200, o);
}

/* The target field an S3 error code points at, so a form can show it by that field. */
static const char *s3_error_field(const char *code)
{
    static const struct {
        const char *code, *field;
    } map[] = {
        {"SignatureDoesNotMatch", "target.secret_access_key"},
        {"InvalidAccessKeyId", "target.access_key_id"},
        {"NoSuchBucket", "target.bucket"},
        {"InvalidBucketName", "target.bucket"},
        {"AuthorizationHeaderMalformed", "target.region"},
        {"PermanentRedirect", "target.region"},
    };
    for (size_t i = 0; code && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(code, map[i].code))
            return map[i].field;
    return "target";
}

/* On its own thread (http_defer_blocking): the target's test with the new target (for S3,
 * the probe object), before anything is written. */
static void integ_verify(void *arg)
{
    struct integ_ctx *c = arg;
    c->answer = target_find(c->in.target_type)->test(&c->in, api_config());
}

/* Back on an HTTP thread: a failed test answers 422 with the target's error (S3's code and
 * message); a passed one goes on to the write. */
static void integ_verified(struct http_req *req)
{
    struct integ_ctx *c = req->ctx;
    json_t *r = c->answer;
    c->answer = NULL;
    if (json_is_true(json_object_get(r, "ok"))) {
        http_defer(req, c->create ? integ_create_run : integ_patch_run, integ_written, c,
                   integ_ctx_free, 0);
    } else {
        char d[900];
        snprintf(d, sizeof d, "the probe object could not be put: %s",
                 json_string_value(json_object_get(r, "error")));
        json_t *e =
            json_pack("[{s:s,s:s}]", "field",
                      s3_error_field(json_string_value(json_object_get(r, "code"))), "message", d);
        json_t *first = json_array_get(e, 0);
        json_object_set(first, "code", json_object_get(r, "code"));
        json_object_set(first, "s3_message", json_object_get(r, "message"));
        json_object_set(first, "status", json_object_get(r, "status"));
        http_problem(req, 422, d, e);
    }
    json_decref(r);
}

static void integ_write(struct http_req *req, bool create)
{
    json_t *body;
    if (!http_body_json(req, &body))
        return;
    struct db *db = http_reader(req);
    if (!db) {
        json_decref(body);
        return;
    }
    struct integration existing;
    if (!create && !load_path_integration(req, db, &existing)) {
        json_decref(body);
        return;
    }
    struct integ_ctx *c = xcalloc(1, sizeof *c);
    c->create = create;
    http_actor(req, c->actor, sizeof c->actor);
    struct verrs v;
    verrs_init(&v);
    enum err rc =
        integration_parse(body, create ? NULL : &existing, req->auth.tenant, db,
                          api_config()->allow_private_targets, &c->in, &c->signing_secret, &v);
    if (!create)
        integration_cleanup(&existing);
    if (rc != ERR_OK) {
        http_problem_err(req, rc, NULL);
        integ_ctx_free(c);
    } else if (verrs_any(&v)) {
        http_problem_verrs(req, &v);
        integ_ctx_free(c);
    } else if (target_find(c->in.target_type)->verify &&
               (create || json_object_get(body, "target")) &&
               !json_is_false(json_object_get(body, "verify"))) {
        /* the test blocks on the target: never on this thread */
        http_defer_blocking(req, integ_verify, integ_verified, c, integ_ctx_free);
    } else {
        http_defer(req, create ? integ_create_run : integ_patch_run, integ_written, c,
                   integ_ctx_free, 0);
    }
    verrs_cleanup(&v);
    json_decref(body);
}

void api_integrations_create(struct http_req *req)
{
    integ_write(req, true);
}

void api_integrations_patch(struct http_req *req)
{
    integ_write(req, false);
}

/* --- read ---------------------------------------------------------------------------- */

void api_integrations_get(struct http_req *req)
{
    struct db *db = http_reader(req);
    struct integration in;
    if (!db || !load_path_integration(req, db, &in))
        return;
    json_t *o = integration_to_json(db, &in);
    integration_cleanup(&in);
    if (o)
        http_json(req, 200, o);
    else
        http_problem_err(req, ERR_STORAGE, NULL);
}

static json_t *integration_id_row(struct db_stmt *st)
{
    return json_pack("{s:s}", "id", db_col_text(st, 0));
}

/* Replaces the id-only item with the whole integration; ERR_DONE when it went away. */
static enum err integration_expand(struct db *db, struct list_ctx *c, json_t *item)
{
    struct integration in;
    enum err rc =
        integration_load(db, c->tenant, json_string_value(json_object_get(item, "id")), &in);
    if (rc != ERR_OK)
        return rc == ERR_NOT_FOUND ? ERR_DONE : rc;
    json_t *o = integration_to_json(db, &in);
    integration_cleanup(&in);
    if (!o)
        return ERR_STORAGE;
    json_object_clear(item);
    json_object_update(item, o);
    json_decref(o);
    return ERR_OK;
}

static const char *const integration_states[] = {"active", "paused", "stopped", NULL};

static const struct list_param integration_params[] = {
    LIST_ENUM("state", " AND state = ?", integration_states),
    LIST_END,
};

const struct list_spec api_integrations_list_spec = {
    .name = "integrations",
    .params = integration_params,
    .select = "SELECT id, created_at FROM integrations WHERE tenant_id = ?",
    .binds = "T",
    .after = " AND (created_at < ? OR (created_at = ? AND id > ?))",
    .after_parts = "001",
    .order = " ORDER BY created_at DESC, id",
    .key_cols = {1, 0},
    .key_types = "is",
    .row = integration_id_row,
    .expand = integration_expand,
};

/* --- pause / resume / delete --------------------------------------------------------- */

struct state_ctx {
    char tenant[72];
    char id[72];
    char actor[160]; /* "key:<name>" */
    char by[160];    /* "key <name>", for reasons */
    char *reason;
    bool skip;
    int64_t skipped;
    const char *conflict;
};

static void state_ctx_free(void *p)
{
    struct state_ctx *c = p;
    free(c->reason);
    free(c);
}

static enum err pause_run(struct db *db, void *arg)
{
    struct state_ctx *c = arg;
    struct integration in;
    enum err rc = integration_load(db, c->tenant, c->id, &in);
    if (rc != ERR_OK)
        return rc;
    bool active = !strcmp(in.state, "active");
    integration_cleanup(&in);
    if (!active) {
        c->conflict = "the integration is not active";
        return ERR_CONFLICT;
    }
    int64_t now = time_now_ms();
    if ((rc = integration_set_state(db, c->tenant, c->id, "paused", now)) != ERR_OK ||
        (rc = deliveries_hold(db, c->tenant, c->id)) != ERR_OK)
        return rc;
    char reason[700];
    if (c->reason && *c->reason)
        snprintf(reason, sizeof reason, "paused by %s: %s", c->by, c->reason);
    else
        snprintf(reason, sizeof reason, "paused by %s", c->by);
    return integration_log(db, c->tenant, c->id, "stopped", reason, c->actor);
}

static enum err resume_run(struct db *db, void *arg)
{
    struct state_ctx *c = arg;
    struct integration in;
    enum err rc = integration_load(db, c->tenant, c->id, &in);
    if (rc != ERR_OK)
        return rc;
    char state[12];
    snprintf(state, sizeof state, "%s", in.state);
    int64_t paused_at = in.paused_at;
    integration_cleanup(&in);
    if (!strcmp(state, "stopped")) {
        c->conflict = "a stopped integration (past its end date) cannot be resumed";
        return ERR_CONFLICT;
    }
    if (!strcmp(state, "active")) {
        c->conflict = "the integration is already active";
        return ERR_CONFLICT;
    }
    if ((rc = integration_set_state(db, c->tenant, c->id, "active", time_now_ms())) != ERR_OK ||
        (rc = deliveries_resume(db, c->tenant, c->id, paused_at, c->skip, &c->skipped)) != ERR_OK)
        return rc;
    char reason[300];
    if (c->skip)
        snprintf(reason, sizeof reason, "resumed by %s, backlog of %lld skipped", c->by,
                 (long long)c->skipped);
    else
        snprintf(reason, sizeof reason, "resumed by %s", c->by);
    return integration_log(db, c->tenant, c->id, "started", reason, c->actor);
}

static void state_written(struct http_req *req)
{
    struct state_ctx *c = req->ctx;
    if (req->job.rc == ERR_CONFLICT) {
        http_problem(req, 409, c->conflict, NULL);
        return;
    }
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc,
                         req->job.rc == ERR_NOT_FOUND ? "no such integration" : NULL);
        return;
    }
    api_integrations_get(req);
}

static struct state_ctx *state_ctx_new(struct http_req *req)
{
    struct state_ctx *c = xcalloc(1, sizeof *c);
    snprintf(c->tenant, sizeof c->tenant, "%s", req->auth.tenant);
    snprintf(c->id, sizeof c->id, "%s", http_param(req, 0));
    http_actor(req, c->actor, sizeof c->actor);
    snprintf(c->by, sizeof c->by, "key %s", req->auth.key_name);
    return c;
}

/* Parses an optional JSON object body (empty body allowed). */
static bool optional_body(struct http_req *req, json_t **out)
{
    *out = NULL;
    if (req->body.len == 0)
        return true;
    if (!http_body_json(req, out))
        return false;
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        http_problem(req, 422, "the body must be a JSON object", NULL);
        return false;
    }
    return true;
}

void api_integrations_pause(struct http_req *req)
{
    json_t *body;
    if (!optional_body(req, &body))
        return;
    struct verrs v;
    verrs_init(&v);
    static const char *const fields[] = {"reason", NULL};
    json_t *r = NULL;
    if (body) {
        json_check_fields(body, fields, "", &v);
        r = json_object_get(body, "reason");
        if (r && !json_is_null(r) && (!json_is_string(r) || strlen(json_string_value(r)) > 500))
            verrs_add(&v, "reason", "must be a string of at most 500 characters");
    }
    if (verrs_any(&v)) {
        http_problem_verrs(req, &v);
    } else {
        struct state_ctx *c = state_ctx_new(req);
        c->reason = xstrdup(json_string_value(r));
        http_defer(req, pause_run, state_written, c, state_ctx_free, 0);
    }
    verrs_cleanup(&v);
    json_decref(body);
}

void api_integrations_resume(struct http_req *req)
{
    json_t *body;
    if (!optional_body(req, &body))
        return;
    struct verrs v;
    verrs_init(&v);
    static const char *const fields[] = {"skip_backlog", NULL};
    json_t *skip = NULL;
    if (body) {
        json_check_fields(body, fields, "", &v);
        skip = json_object_get(body, "skip_backlog");
        if (skip && !json_is_boolean(skip))
            verrs_add(&v, "skip_backlog", "must be true or false");
    }
    if (verrs_any(&v)) {
        http_problem_verrs(req, &v);
    } else {
        struct state_ctx *c = state_ctx_new(req);
        c->skip = skip && json_is_true(skip);
        http_defer(req, resume_run, state_written, c, state_ctx_free, 0);
    }
    verrs_cleanup(&v);
    json_decref(body);
}

static enum err delete_run(struct db *db, void *arg)
{
    struct state_ctx *c = arg;
    enum err rc = integration_delete(db, c->tenant, c->id);
    if (rc != ERR_OK)
        return rc;
    char reason[200];
    snprintf(reason, sizeof reason, "deleted by %s", c->by);
    return integration_log(db, c->tenant, c->id, "deleted", reason, c->actor);
}

static void deleted(struct http_req *req)
{
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc,
                         req->job.rc == ERR_NOT_FOUND ? "no such integration" : NULL);
        return;
    }
    http_no_content(req);
}

void api_integrations_delete(struct http_req *req)
{
    http_defer(req, delete_run, deleted, state_ctx_new(req), state_ctx_free, 0);
}

struct int_test {
    struct integration in;
    json_t *result;
};

static void int_test_free(void *arg)
{
    struct int_test *t = arg;
    integration_cleanup(&t->in);
    json_decref(t->result);
    free(t);
}

/* On its own thread (http_defer_blocking): the target driver's test. */
static void int_test_send(void *arg)
{
    struct int_test *t = arg;
    t->result = target_find(t->in.target_type)->test(&t->in, api_config());
}

static void int_tested(struct http_req *req)
{
    struct int_test *t = req->ctx;
    http_json(req, 200, t->result);
    t->result = NULL; /* http_json took the reference */
}

void api_integrations_test(struct http_req *req)
{
    struct db *db = http_reader(req);
    struct int_test *t = xcalloc(1, sizeof *t);
    if (!db || !load_path_integration(req, db, &t->in)) {
        free(t);
        return;
    }
    db_release(db);
    if (!target_find(t->in.target_type)) { /* stored by a newer node */
        http_problem(req, 409, "this node cannot reach the integration's kind of target", NULL);
        int_test_free(t);
        return;
    }
    http_defer_blocking(req, int_test_send, int_tested, t, int_test_free);
}

/* --- audit views --------------------------------------------------------------------- */

/* The lists under /v1/integrations/{id}/: 404 unless the integration exists. */
static enum err integration_parent(struct db *db, struct list_ctx *c)
{
    struct integration in;
    enum err rc = integration_load(db, c->tenant, http_param(c->req, 0), &in);
    if (rc != ERR_OK)
        return list_fail(c, rc, "no such integration");
    integration_cleanup(&in);
    return ERR_OK;
}

static const char *status_of_state(const char *state)
{
    if (!strcmp(state, "succeeded"))
        return "success";
    if (!strcmp(state, "failed"))
        return "failure";
    if (!strcmp(state, "rejected") || !strcmp(state, "skipped"))
        return state;
    return "pending";
}

static json_t *delivery_row(struct db_stmt *st)
{
    json_t *o =
        json_pack("{s:s,s:s}", "event_id", db_col_text(st, 0), "delivery_id", db_col_text(st, 9));
    json_set_str(o, "type", db_col_text(st, 1));
    json_set_str(o, "entity_id", db_col_text(st, 2));
    json_object_set_new(o, "status", json_string(status_of_state(db_col_text(st, 3))));
    json_object_set_new(o, "state", json_string(db_col_text(st, 3)));
    json_object_set_new(o, "attempts", json_integer(db_col_int(st, 4)));
    json_set_time(o, "attempted_at", db_col_opt_int(st, 5));
    json_object_set_new(o, "response_status",
                        db_col_null(st, 6) ? json_null() : json_integer(db_col_int(st, 6)));
    json_set_str(o, "error", db_col_text(st, 7));
    json_set_str(o, "batch_key", db_col_text(st, 8));
    return o;
}

static const char *const delivery_statuses[] = {"success",  "failure", "pending",
                                                "rejected", "skipped", NULL};
/* The filters repeat the expressions of the indexes deliveries_status and
 * deliveries_entity_id (migration 008) exactly, so each is an index range in d.id order. */
#define DELIVERY_CLASS                                                                             \
    " AND (CASE WHEN d.state IN ('succeeded', 'failed', 'rejected', 'skipped') THEN d.state "      \
    "ELSE 'pending' END) = "
static const char *const delivery_status_sql[] = {
    DELIVERY_CLASS "'succeeded'", DELIVERY_CLASS "'failed'", DELIVERY_CLASS "'pending'",
    DELIVERY_CLASS "'rejected'", DELIVERY_CLASS "'skipped'"};

static const struct list_param delivery_params[] = {
    LIST_TEXT("entity_id", " AND substr(d.entity_key, instr(d.entity_key, '/') + 1) = ?"),
    LIST_ENUM_SQL("status", delivery_statuses, delivery_status_sql),
    LIST_FROM_ID("d.id", "dlv"),
    LIST_TO_ID("d.id", "dlv"),
    LIST_END,
};

const struct list_spec api_integration_events_list_spec = {
    .name = "integration-events",
    .params = delivery_params,
    .parent = integration_parent,
    .select = "SELECT d.event_id, e.type, e.entity_id, d.state, d.attempts, d.last_attempt_at, "
              "d.last_status, d.last_error, (SELECT b.object_key FROM s3_batches b WHERE "
              "b.tenant_id = d.tenant_id AND b.id = d.batch_id), d.id FROM deliveries d LEFT "
              "JOIN events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id WHERE "
              "d.tenant_id = ? AND d.integration_id = ?",
    .binds = "T0",
    LIST_NEWEST_FIRST("d.id", 9),
    .row = delivery_row,
};

/* 404 unless the integration exists and the event was routed to it. */
static enum err attempts_parent(struct db *db, struct list_ctx *c)
{
    enum err rc = integration_parent(db, c);
    if (rc != ERR_OK)
        return rc;
    struct db_stmt *st = db_stmt(db, "SELECT 1 FROM deliveries WHERE tenant_id = ? AND "
                                     "integration_id = ? AND event_id = ? LIMIT 1");
    db_bind_text(st, 1, c->tenant);
    db_bind_text(st, 2, http_param(c->req, 0));
    db_bind_text(st, 3, http_param(c->req, 1));
    rc = db_next(st);
    db_release(db);
    if (rc == ERR_OK)
        return ERR_OK;
    return list_fail(c, rc == ERR_DONE ? ERR_NOT_FOUND : rc,
                     "the integration never had this event");
}

static json_t *attempt_row(struct db_stmt *st)
{
    json_t *o = json_pack("{s:I}", "attempt", (json_int_t)db_col_int(st, 0));
    json_set_time(o, "at", db_col_int(st, 1));
    json_object_set_new(o, "duration_ms", json_integer(db_col_int(st, 2)));
    json_object_set_new(o, "status",
                        db_col_null(st, 3) ? json_null() : json_integer(db_col_int(st, 3)));
    json_set_str(o, "error", db_col_text(st, 4));
    json_set_str(o, "response_body", db_col_text(st, 5));
    json_set_str(o, "node_id", db_col_text(st, 6));
    json_set_str(o, "delivery_id", db_col_text(st, 7));
    return o;
}

/* A webhook delivery's own attempts; for S3, the upload attempts of its batch. Oldest
 * first: the story of one event. */
const struct list_spec api_attempts_list_spec = {
    .name = "attempts",
    .parent = attempts_parent,
    /* The deliveries of the event first (deliveries_event), then their attempts by key:
     * never a walk over every attempt. */
    .select = "SELECT * FROM (SELECT a.attempt, a.started_at, a.duration_ms, a.status, a.error, "
              "a.response_body, a.node_id, a.delivery_id FROM delivery_attempts a WHERE "
              "a.tenant_id = ? AND a.delivery_id IN (SELECT d.id FROM deliveries d WHERE "
              "d.tenant_id = ? AND d.integration_id = ? AND d.event_id = ?) UNION ALL SELECT "
              "b.attempt, b.started_at, b.duration_ms, b.status, b.error, NULL, b.node_id, d.id "
              "FROM s3_batch_attempts b JOIN deliveries d ON d.tenant_id = b.tenant_id AND "
              "d.batch_id = b.batch_id WHERE d.tenant_id = ? AND d.integration_id = ? AND "
              "d.event_id = ?) x WHERE 1 = 1",
    .binds = "TT01T01",
    .after = " AND (x.started_at > ? OR (x.started_at = ? AND (x.delivery_id > ? OR "
             "(x.delivery_id = ? AND x.attempt > ?))))",
    .after_parts = "00112",
    .order = " ORDER BY x.started_at, x.delivery_id, x.attempt",
    .key_cols = {1, 7, 0},
    .key_types = "isi",
    .row = attempt_row,
};

static json_t *rejected_row(struct db_stmt *st)
{
    json_t *o = json_pack("{s:s}", "event_id", db_col_text(st, 0));
    json_set_str(o, "type", db_col_text(st, 1));
    json_set_str(o, "entity_id", db_col_text(st, 2));
    json_set_time(o, "created_at", db_col_int(st, 3));
    json_object_set_new(o, "response_status",
                        db_col_null(st, 4) ? json_null() : json_integer(db_col_int(st, 4)));
    char reason[300];
    if (db_col_text(st, 5))
        snprintf(reason, sizeof reason, "%s", db_col_text(st, 5));
    else
        snprintf(reason, sizeof reason, "the consumer answered HTTP %lld",
                 (long long)db_col_int(st, 4));
    json_object_set_new(o, "reason", json_string(reason));
    return o;
}

static const struct list_param rejected_params[] = {
    LIST_FROM_MS("d.finished_at"),
    LIST_TO_MS("d.finished_at"),
    LIST_END,
};

/* Newest rejection first. */
const struct list_spec api_rejected_list_spec = {
    .name = "rejected-events",
    .params = rejected_params,
    .parent = integration_parent,
    .select = "SELECT d.event_id, e.type, e.entity_id, d.finished_at, d.last_status, "
              "d.last_error, d.id FROM deliveries d LEFT JOIN events e ON e.tenant_id = "
              "d.tenant_id AND e.id = d.event_id WHERE d.tenant_id = ? AND d.integration_id = ? "
              "AND d.state = 'rejected'",
    .binds = "T0",
    .after = " AND (d.finished_at < ? OR (d.finished_at = ? AND d.id < ?))",
    .after_parts = "001",
    .order = " ORDER BY d.finished_at DESC, d.id DESC",
    .key_cols = {3, 6},
    .key_types = "is",
    .row = rejected_row,
};

static json_t *log_row(struct db_stmt *st)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "action", db_col_text(st, 0), "reason",
                          db_col_text(st, 1), "actor", db_col_text(st, 2));
    json_set_time(o, "created_at", db_col_int(st, 3));
    return o;
}

static const struct list_param log_params[] = {
    LIST_FROM_ID("l.id", "log"),
    LIST_TO_ID("l.id", "log"),
    LIST_END,
};

const struct list_spec api_logs_list_spec = {
    .name = "logs",
    .params = log_params,
    .parent = integration_parent,
    /* The current incarnation's rows: an integration deleted and created again with the
     * same id starts a new log. */
    .select = "SELECT l.action, l.reason, l.actor, l.created_at, l.id FROM integration_logs l "
              "JOIN integrations i ON i.tenant_id = l.tenant_id AND i.id = l.integration_id "
              "AND i.incarnation = l.incarnation WHERE l.tenant_id = ? AND l.integration_id = ?",
    .binds = "T0",
    LIST_NEWEST_FIRST("l.id", 4),
    .row = log_row,
};

/* --- redeliver ----------------------------------------------------------------------- */

#define REDELIVER_MAX 10000 /* events one redeliver by status may queue */

struct redeliver_ctx {
    char tenant[72];
    char id[72];
    json_t *requested; /* event_ids as given, or NULL: select by status/time */
    json_t *event_ids; /* the same, in publish order */
    const char *state;
    int64_t from, to;
    int64_t queued, not_selected;
    /* why the job refused: the field at fault and what is wrong with it */
    char field[40];
    char problem[200];
};

static void redeliver_ctx_free(void *p)
{
    struct redeliver_ctx *c = p;
    json_decref(c->requested);
    json_decref(c->event_ids);
    free(c);
}

/* The ids redeliver by status picks: the integration's own finished deliveries in that
 * state and window, in publish order. More than REDELIVER_MAX is refused, not cut. */
static enum err redeliver_select(struct db *db, struct redeliver_ctx *c, json_t *ids)
{
    struct db_stmt *st = db_stmt(db, "SELECT DISTINCT event_id FROM deliveries WHERE "
                                     "tenant_id = ? AND integration_id = ? AND state = ? AND "
                                     "finished_at >= ? AND finished_at < ? ORDER BY event_id "
                                     "LIMIT ?");
    db_bind_text(st, 1, c->tenant);
    db_bind_text(st, 2, c->id);
    db_bind_text(st, 3, c->state);
    db_bind_int(st, 4, c->from >= 0 ? c->from : 0);
    db_bind_int(st, 5, c->to >= 0 ? c->to : INT64_MAX);
    db_bind_int(st, 6, REDELIVER_MAX + 1);
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK)
        json_array_append_new(ids, json_string(db_col_text(st, 0)));
    db_release(db);
    if (rc != ERR_DONE)
        return rc;
    if (json_array_size(ids) > REDELIVER_MAX) {
        snprintf(c->field, sizeof c->field, "from");
        snprintf(c->problem, sizeof c->problem,
                 "more than %d events match; give a narrower from/to", REDELIVER_MAX);
        return ERR_INVALID;
    }
    return ERR_OK;
}

/* Names event id e of the request in c->field ("event_ids[i]"). */
static void redeliver_blame(struct redeliver_ctx *c, const char *e, const char *why)
{
    size_t i;
    json_t *x;
    json_array_foreach(c->requested, i, x)
    {
        if (!strcmp(json_string_value(x), e))
            break;
    }
    snprintf(c->field, sizeof c->field, "event_ids[%zu]", i);
    snprintf(c->problem, sizeof c->problem, "%.40s %s", e, why);
}

/* Validates like routing does, then queues: a stopped integration takes nothing (409); an
 * event_ids entry the integration does not select (its events, start and end) or that does
 * not exist is refused with nothing queued (422); a redeliver by status queues only what
 * the integration selects and counts the rest. One job: all or nothing. */
static enum err redeliver_run(struct db *db, void *arg)
{
    struct redeliver_ctx *c = arg;
    c->queued = c->not_selected = 0;
    struct integration in;
    enum err rc = integration_load(db, c->tenant, c->id, &in);
    if (rc != ERR_OK)
        return rc;
    bool stopped = !strcmp(in.state, "stopped"), paused = !strcmp(in.state, "paused");
    bool order = !strcmp(in.ordering, "entity");
    if (paused && (rc = integration_paused_locked(db, c->tenant, c->id, &paused)) != ERR_OK) {
        integration_cleanup(&in);
        return rc;
    }
    int64_t start_at = in.start_at, end_at = in.end_at;
    json_t *patterns = json_loads(in.events, 0, NULL);
    integration_cleanup(&in);
    if (!patterns)
        return ERR_INTERNAL;
    json_t *ids = c->event_ids ? json_incref(c->event_ids) : json_array();
    if (stopped) {
        snprintf(c->problem, sizeof c->problem,
                 "the integration is stopped (past its end date): it takes no events");
        rc = ERR_CONFLICT;
    } else if (!c->event_ids) {
        rc = redeliver_select(db, c, ids);
    }
    size_t i;
    json_t *e;
    json_array_foreach(ids, i, e)
    {
        if (rc != ERR_OK)
            break;
        const char *eid = json_string_value(e);
        struct db_stmt *st = db_stmt(db, "SELECT type, entity, entity_id, published_at FROM "
                                         "events WHERE tenant_id = ? AND id = ?");
        db_bind_text(st, 1, c->tenant);
        db_bind_text(st, 2, eid);
        if ((rc = db_next(st)) != ERR_OK) {
            if (rc == ERR_DONE) {
                redeliver_blame(c, eid, "does not exist (or was purged)");
                rc = ERR_INVALID;
            }
            break;
        }
        bool selected = integration_selects(patterns, start_at, end_at, db_col_text(st, 0),
                                            db_col_text(st, 1), db_col_int(st, 3));
        char entity[72], *entity_id = xstrdup(db_col_text(st, 2));
        snprintf(entity, sizeof entity, "%s", db_col_text(st, 1));
        db_release(db);
        if (selected)
            rc = deliveries_insert(db, c->tenant, c->id, paused, order, eid, entity, entity_id,
                                   time_now_ms());
        free(entity_id);
        if (selected && rc == ERR_OK) {
            c->queued++;
        } else if (!selected && c->event_ids) {
            redeliver_blame(c, eid,
                            "is not selected by this integration (its events, start_at and "
                            "end_at), so it is not sent");
            rc = ERR_INVALID;
        } else if (!selected) {
            c->not_selected++;
        }
    }
    json_decref(ids);
    json_decref(patterns);
    return rc;
}

static void redelivered(struct http_req *req)
{
    struct redeliver_ctx *c = req->ctx;
    if (req->job.rc == ERR_INVALID) {
        json_t *e = json_pack("[{s:s,s:s}]", "field", c->field, "message", c->problem);
        char d[300];
        snprintf(d, sizeof d, "%s: %s", c->field, c->problem);
        http_problem(req, 422, d, e);
        return;
    }
    if (req->job.rc == ERR_CONFLICT) {
        http_problem(req, 409, c->problem, NULL);
        return;
    }
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc,
                         req->job.rc == ERR_NOT_FOUND ? "no such integration" : NULL);
        return;
    }
    http_json(req, 202,
              json_pack("{s:I,s:I}", "queued", (json_int_t)c->queued, "not_selected",
                        (json_int_t)c->not_selected));
}

static int cmp_json_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

void api_integrations_redeliver(struct http_req *req)
{
    json_t *body;
    if (!http_body_json(req, &body))
        return;
    struct verrs v;
    verrs_init(&v);
    struct redeliver_ctx *c = xcalloc(1, sizeof *c);
    c->from = c->to = -1;
    snprintf(c->tenant, sizeof c->tenant, "%s", req->auth.tenant);
    snprintf(c->id, sizeof c->id, "%s", http_param(req, 0));
    if (!json_is_object(body)) {
        verrs_add(&v, "", "the body must be a JSON object");
    } else {
        static const char *const fields[] = {"event_ids", "status", "from", "to", NULL};
        json_check_fields(body, fields, "", &v);
        json_t *ids = json_object_get(body, "event_ids");
        const char *status = json_string_value(json_object_get(body, "status"));
        if (ids && json_object_get(body, "status")) {
            verrs_add(&v, "event_ids", "give either event_ids or status, not both");
        } else if (ids) {
            if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 1000)
                verrs_add(&v, "event_ids", "must be a list of 1 to 1000 event ids");
            size_t i;
            json_t *e;
            json_t *sorted = json_array();
            json_array_foreach(ids, i, e)
            {
                if (!json_is_string(e)) {
                    char f[32];
                    snprintf(f, sizeof f, "event_ids[%zu]", i);
                    verrs_add(&v, f, "must be an event id (evt_...)");
                } else {
                    json_array_append(sorted, e);
                }
            }
            c->requested = json_incref(sorted);
            size_t n = json_array_size(sorted);
            json_t **items = xcalloc(n ? n : 1, sizeof *items);
            for (size_t k = 0; k < n; k++)
                items[k] = json_array_get(sorted, k);
            qsort(items, n, sizeof *items, cmp_json_str);
            c->event_ids = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append(c->event_ids, items[k]);
            free(items);
            json_decref(sorted);
        } else if (status) {
            if (!strcmp(status, "rejected"))
                c->state = "rejected";
            else if (!strcmp(status, "failure"))
                c->state = "failed";
            else
                verrs_add(&v, "status", "must be \"rejected\" or \"failure\"");
            const char *f = json_string_value(json_object_get(body, "from"));
            const char *t = json_string_value(json_object_get(body, "to"));
            if (json_object_get(body, "from") && (!f || time_parse(f, &c->from) != ERR_OK))
                verrs_add(&v, "from", "must be an RFC 3339 date-time");
            if (json_object_get(body, "to") && (!t || time_parse(t, &c->to) != ERR_OK))
                verrs_add(&v, "to", "must be an RFC 3339 date-time");
        } else {
            verrs_add(&v, "event_ids", "give event_ids, or status with an optional from/to");
        }
    }
    if (verrs_any(&v)) {
        http_problem_verrs(req, &v);
        redeliver_ctx_free(c);
    } else {
        http_defer(req, redeliver_run, redelivered, c, redeliver_ctx_free, 0);
    }
    verrs_cleanup(&v);
    json_decref(body);
}
