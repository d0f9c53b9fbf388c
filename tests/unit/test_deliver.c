/* Tests for src/deliver/: the SSRF guard (outbound.c), the envelope and its Standard
 * Webhooks signature (envelope.c), both outcome paths on a migrated SQLite database — a
 * webhook delivery's (webhook_record_outcome: success and recovery, rejection, 410, retry,
 * final failure, lost lease) and an S3 batch's (s3_batch_*: append with size and age
 * closes, claim with its lease, upload, retry, the 403 alert, final failure, renewal) —
 * and the consequences both share (outcome.c: auto-pause, lag episodes). Single-threaded,
 * like the writer. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alerts.h"
#include "alert/policies.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "deliver/envelope.h"
#include "deliver/outbound.h"
#include "deliver/outcome.h"
#include "deliver/s3_int.h"
#include "deliver/webhook.h"
#include "store/db.h"
#include "stream/deliveries.h"
#include "stream/integrations.h"
#include "stream/targets.h"
#include "unit.h"

#define DAY_MS (24LL * 3600 * 1000)

/* --- the SSRF guard ------------------------------------------------------------------ */

static bool blocked4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return outbound_address_blocked((struct sockaddr *)&a);
}

static bool blocked6(const char *ip)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return outbound_address_blocked((struct sockaddr *)&a);
}

static void test_ssrf_guard(void)
{
    static const char *const no4[] = {
        "127.0.0.1",       "10.1.2.3",   "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "169.254.169.254", "100.64.0.1", "0.0.0.0",    "224.0.0.1",      "255.255.255.255"};
    for (size_t i = 0; i < sizeof no4 / sizeof no4[0]; i++)
        if (!blocked4(no4[i]))
            unit_fail(__FILE__, __LINE__, "%s is not blocked", no4[i]);
    ASSERT_TRUE(!blocked4("8.8.8.8"));
    ASSERT_TRUE(!blocked4("172.32.0.1"));
    ASSERT_TRUE(!blocked4("100.128.0.1"));
    ASSERT_TRUE(blocked6("::1") && blocked6("::") && blocked6("fe80::1") && blocked6("fd00::1"));
    ASSERT_TRUE(blocked6("ff02::1") && blocked6("::ffff:10.0.0.1"));
    ASSERT_TRUE(!blocked6("2001:4860:4860::8888") && !blocked6("::ffff:8.8.8.8"));

    char why[256];
    ASSERT_EQ_ERR(outbound_check_url("ftp://example.com/", true, why, sizeof why), ERR_INVALID);
    ASSERT_EQ_ERR(outbound_check_url("not a url", true, why, sizeof why), ERR_INVALID);
    ASSERT_EQ_ERR(outbound_check_url("http://127.0.0.1:8080/x", false, why, sizeof why),
                  ERR_INVALID);
    ASSERT_TRUE(strstr(why, "private") != NULL);
    ASSERT_EQ_ERR(outbound_check_url("http://[::1]/x", false, why, sizeof why), ERR_INVALID);
    ASSERT_EQ_ERR(outbound_check_url("http://127.0.0.1:8080/x", true, why, sizeof why), ERR_OK);
    ASSERT_EQ_ERR(outbound_check_url("https://8.8.8.8/hook", false, why, sizeof why), ERR_OK);
}

static void test_test_answer_has_every_member(void)
{
    json_t *o = outbound_test_json(false, 0, 12, "timed out", NULL);
    static const char *const members[] = {"ok", "status", "latency_ms", "error", "response_body"};
    for (size_t i = 0; i < 5; i++)
        if (!json_object_get(o, members[i]))
            unit_fail(__FILE__, __LINE__, "the test answer lacks \"%s\"", members[i]);
    ASSERT_TRUE(json_is_null(json_object_get(o, "status")));
    ASSERT_TRUE(json_is_null(json_object_get(o, "response_body")));
    json_decref(o);
    o = outbound_test_json(true, 204, 3, "ignored when ok", "");
    ASSERT_TRUE(json_is_null(json_object_get(o, "error")));
    ASSERT_EQ_INT(json_integer_value(json_object_get(o, "status")), 204);
    json_decref(o);
}

/* --- the envelope and its signature -------------------------------------------------- */

static void test_signature(void)
{
    /* The Standard Webhooks specification's test vector. */
    char *sig = envelope_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                              "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "{\"test\": 2432232314}");
    ASSERT_EQ_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    free(sig);
    ASSERT_TRUE(envelope_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, "{}") == NULL);
    ASSERT_TRUE(envelope_sign("whsec_not*base64", "m", 1, "{}") == NULL);
    ASSERT_TRUE(envelope_sign(NULL, "m", 1, "{}") == NULL);
}

static void test_envelope(void)
{
    struct envelope_event ev = {.id = "evt_01",
                                .type = "order.created",
                                .entity = "order",
                                .entity_id = "O-1",
                                .sequence = 7,
                                .occurred_at = 1000,
                                .published_at = 2000,
                                .payload = "{\"b\":1,\"a\":[2]}"};
    char *s = envelope_build(&ev, "acme", "erp", 3);
    /* the payload text stays as stored, byte for byte (it is signed) */
    ASSERT_TRUE(strstr(s, ",\"payload\":{\"b\":1,\"a\":[2]}}") != NULL);
    json_t *o = json_loads(s, 0, NULL);
    REQUIRE_TRUE(o != NULL);
    ASSERT_EQ_STR(json_string_value(json_object_get(o, "name")), "order.created");
    ASSERT_EQ_STR(json_string_value(json_object_get(o, "integration_id")), "erp");
    ASSERT_EQ_STR(json_string_value(json_object_get(o, "occurred_at")), "1970-01-01T00:00:01.000Z");
    ASSERT_EQ_INT(json_integer_value(json_object_get(o, "attempt")), 3);
    ASSERT_EQ_INT(json_integer_value(json_object_get(o, "sequence")), 7);
    json_decref(o);
    free(s);
    ev.payload = NULL;
    s = envelope_build(&ev, "acme", "erp", -1); /* an S3 line: no attempt */
    o = json_loads(s, 0, NULL);
    ASSERT_TRUE(o && !json_object_get(o, "attempt") &&
                json_is_object(json_object_get(o, "payload")));
    json_decref(o);
    free(s);
}

/* --- the webhook outcome path -------------------------------------------------------- */

static void add_integration(struct db *db, const char *id, const char *target_type,
                            const char *target, const char *ordering)
{
    struct integration in;
    memset(&in, 0, sizeof in);
    snprintf(in.tenant, sizeof in.tenant, "acme");
    snprintf(in.id, sizeof in.id, "%s", id);
    snprintf(in.type, sizeof in.type, "permanent");
    snprintf(in.state, sizeof in.state, "active");
    snprintf(in.ordering, sizeof in.ordering, "%s", ordering);
    snprintf(in.target_type, sizeof in.target_type, "%s", target_type);
    in.start_at = in.end_at = in.paused_at = in.last_attempt_at = in.failing_since = -1;
    in.max_in_flight = 16;
    in.events = (char *)"[\"order\"]";
    in.target = (char *)target;
    in.created_at = in.updated_at = time_now_ms();
    ASSERT_EQ_ERR(integration_insert(db, &in), ERR_OK);
}

/* Routes a delivery of a new event id for the entity and claims it for n1. */
static struct attempt_outcome claimed(struct db *db, const char *integration, const char *entity_id)
{
    static int seq;
    char event[ID_MAX];
    snprintf(event, sizeof event, "evt_%d", ++seq);
    ASSERT_EQ_ERR(deliveries_insert(db, "acme", integration, false, true, event, "order", entity_id,
                                    time_now_ms()),
                  ERR_OK);
    struct claimed *c = NULL;
    int n = 0;
    int64_t next_due;
    ASSERT_EQ_ERR(deliveries_claim(db, "acme", integration, "n1", 30000, 16, &c, &n, &next_due),
                  ERR_OK);
    struct attempt_outcome o;
    memset(&o, 0, sizeof o);
    snprintf(o.tenant, sizeof o.tenant, "acme");
    snprintf(o.integration, sizeof o.integration, "%s", integration);
    snprintf(o.node, sizeof o.node, "n1");
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i].event_id, event)) {
            snprintf(o.delivery_id, sizeof o.delivery_id, "%s", c[i].delivery_id);
            snprintf(o.event_id, sizeof o.event_id, "%s", c[i].event_id);
            o.attempt = c[i].attempt;
        }
    free(c);
    o.started_at = time_now_ms();
    o.retry_after = -1;
    return o;
}

static enum outcome_kind record(struct db *db, struct attempt_outcome *o, long status,
                                const char *error)
{
    o->status = status;
    o->error = (char *)error;
    enum outcome_kind kind = OUTCOME_STALE;
    ASSERT_EQ_ERR(webhook_record_outcome(db, o, &kind), ERR_OK);
    return kind;
}

static const char *delivery_state(struct db *db, const struct attempt_outcome *o, char *buf)
{
    struct db_stmt *st = db_stmt(db, "SELECT state FROM deliveries WHERE id = ?");
    db_bind_text(st, 1, o->delivery_id);
    snprintf(buf, 16, "%s", db_next(st) == ERR_OK ? db_col_text(st, 0) : "");
    db_release(db);
    return buf;
}

static const char *integration_state(struct db *db, const char *id)
{
    static char buf[16];
    struct db_stmt *st = db_stmt(db, "SELECT state FROM integrations WHERE id = ?");
    db_bind_text(st, 1, id);
    snprintf(buf, sizeof buf, "%s", db_next(st) == ERR_OK ? db_col_text(st, 0) : "");
    db_release(db);
    return buf;
}

static long long alerts_of(struct db *db, const char *event)
{
    return unit_db_int(db, "SELECT COUNT(*) FROM alerts WHERE event = ?", event);
}

static void test_webhook_outcomes(void)
{
    char *dir;
    struct db *db = unit_db_open(&dir);
    if (!db)
        return;
    add_integration(db, "erp", "webhook", "{\"type\":\"webhook\",\"url\":\"http://x.test/\"}",
                    "entity");
    char st[16];

    /* a retryable failure: pending again later, counted against the integration */
    struct attempt_outcome o = claimed(db, "erp", "O-1");
    ASSERT_EQ_INT(record(db, &o, 503, NULL), OUTCOME_RETRY);
    ASSERT_EQ_STR(delivery_state(db, &o, st), "pending");
    ASSERT_EQ_INT(unit_db_int(db, "SELECT failing_count FROM integrations", NULL), 1);
    ASSERT_EQ_INT(unit_db_int(db,
                              "SELECT next_attempt_at > last_attempt_at FROM deliveries "
                              "WHERE id = ?",
                              o.delivery_id),
                  1);

    /* a lost lease records the attempt and nothing else */
    struct attempt_outcome lost = claimed(db, "erp", "O-2");
    snprintf(lost.node, sizeof lost.node, "n2");
    ASSERT_EQ_INT(record(db, &lost, 200, NULL), OUTCOME_STALE);
    ASSERT_EQ_STR(delivery_state(db, &lost, st), "in_flight");
    snprintf(lost.node, sizeof lost.node, "n1");

    /* success: the failure counts clear, an earlier failed task of the entity recovers */
    char task[ID_MAX];
    ASSERT_EQ_ERR(task_record(db, "acme", "webhook_delivery", "erp", "O-2", "failed", NULL, task),
                  ERR_OK);
    struct alert_in a = {.event = "event_stream.event_rejected",
                         .connection = "erp",
                         .entity_id = "O-2",
                         .task_id = task,
                         .message = "earlier",
                         .occurred_at = -1};
    ASSERT_EQ_ERR(alert_record(db, "acme", &a, NULL), ERR_OK);
    ASSERT_EQ_INT(record(db, &lost, 200, NULL), OUTCOME_SUCCEEDED);
    ASSERT_EQ_STR(delivery_state(db, &lost, st), "succeeded");
    ASSERT_EQ_INT(unit_db_int(db, "SELECT failing_count FROM integrations", NULL), 0);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT status = 'succeeded' FROM tasks WHERE id = ?", task), 1);
    ASSERT_EQ_INT(
        unit_db_int(db, "SELECT resolved_at IS NOT NULL FROM alerts WHERE task_id = ?", task), 1);

    /* a rejection is final, alerts with a task, and releases the entity's next delivery */
    struct attempt_outcome r = claimed(db, "erp", "O-3");
    ASSERT_EQ_ERR(deliveries_insert(db, "acme", "erp", false, true, "evt_next", "order", "O-3",
                                    time_now_ms()),
                  ERR_OK);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT COUNT(*) FROM deliveries WHERE state = 'waiting'", NULL),
                  1);
    ASSERT_EQ_INT(record(db, &r, 400, NULL), OUTCOME_REJECTED);
    ASSERT_EQ_STR(delivery_state(db, &r, st), "rejected");
    ASSERT_EQ_INT(alerts_of(db, "event_stream.event_rejected"), 2);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT COUNT(*) FROM deliveries WHERE state = 'waiting'", NULL),
                  0);

    /* final failure: 24 h after the first attempt */
    struct attempt_outcome f = claimed(db, "erp", "O-4");
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE deliveries SET first_attempt_at = %lld WHERE id = '%s'",
             (long long)(time_now_ms() - DAY_MS - 1000), f.delivery_id);
    ASSERT_EQ_ERR(db_exec(db, sql), ERR_OK);
    ASSERT_EQ_INT(record(db, &f, 0, "connection refused"), OUTCOME_FAILED);
    ASSERT_EQ_STR(delivery_state(db, &f, st), "failed");
    ASSERT_EQ_INT(alerts_of(db, "event_stream.delivery_failed"), 1);
    ASSERT_EQ_STR(integration_state(db, "erp"), "active"); /* only one failing attempt so far */

    /* 410 Gone: rejected, and the integration is paused by Sluice at once */
    struct attempt_outcome g = claimed(db, "erp", "O-5");
    ASSERT_EQ_INT(record(db, &g, 410, NULL), OUTCOME_REJECTED);
    ASSERT_EQ_STR(integration_state(db, "erp"), "paused");
    ASSERT_EQ_INT(alerts_of(db, "event_stream.integration_stopped"), 1);
    ASSERT_EQ_INT(unit_db_int(db,
                              "SELECT COUNT(*) FROM integration_logs WHERE reason = "
                              "'paused: the consumer answered 410 Gone' AND actor = 'system'",
                              NULL),
                  1);
    policy_index_cleanup();
    db_close(db);
    unit_rmdir(dir);
}

static void test_auto_pause(void)
{
    char *dir;
    struct db *db = unit_db_open(&dir);
    if (!db)
        return;
    add_integration(db, "erp", "webhook", "{\"type\":\"webhook\",\"url\":\"http://x.test/\"}",
                    "none");
    int64_t day_ago = time_now_ms() - DAY_MS - 1000;
    char sql[200];
    /* failing for 24 h, but only 8 attempts so far: the 9th does not pause */
    snprintf(sql, sizeof sql, "UPDATE integrations SET failing_since = %lld, failing_count = 8",
             (long long)day_ago);
    ASSERT_EQ_ERR(db_exec(db, sql), ERR_OK);
    ASSERT_EQ_ERR(outcome_integration(db, "acme", "erp", false, time_now_ms(), NULL), ERR_OK);
    ASSERT_EQ_STR(integration_state(db, "erp"), "active");
    /* a success resets the clock */
    ASSERT_EQ_ERR(outcome_integration(db, "acme", "erp", true, time_now_ms(), NULL), ERR_OK);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT failing_since IS NULL FROM integrations", NULL), 1);
    /* the 10th failed attempt of a 24 h failure pauses */
    snprintf(sql, sizeof sql, "UPDATE integrations SET failing_since = %lld, failing_count = 9",
             (long long)day_ago);
    ASSERT_EQ_ERR(db_exec(db, sql), ERR_OK);
    ASSERT_EQ_ERR(outcome_integration(db, "acme", "erp", false, time_now_ms(), NULL), ERR_OK);
    ASSERT_EQ_STR(integration_state(db, "erp"), "paused");
    ASSERT_EQ_INT(unit_db_int(db,
                              "SELECT COUNT(*) FROM integration_logs WHERE reason = "
                              "'auto-paused: every delivery failed for 24h'",
                              NULL),
                  1);
    ASSERT_EQ_INT(alerts_of(db, "event_stream.integration_stopped"), 1);
    /* paused already: more failures change nothing more */
    ASSERT_EQ_ERR(outcome_integration(db, "acme", "erp", false, time_now_ms(), NULL), ERR_OK);
    ASSERT_EQ_INT(alerts_of(db, "event_stream.integration_stopped"), 1);
    /* an integration deleted meanwhile is no error */
    ASSERT_EQ_ERR(outcome_integration(db, "acme", "gone", false, time_now_ms(), NULL), ERR_OK);
    policy_index_cleanup();
    db_close(db);
    unit_rmdir(dir);
}

/* --- the S3 outcome path ------------------------------------------------------------- */

static char *s3_stored_target(void)
{
    json_t *t = json_pack("{s:s,s:s,s:s,s:s,s:s,s:n,s:s}", "type", "s3", "bucket", "b", "region",
                          "us-east-1", "key_prefix", "p/", "access_key_id", "AKIATEST", "endpoint",
                          "compression", "gzip");
    target_secret_seal(t, "secret_access_key", "secret_hint", "secret0123");
    char *s = json_dump_compact(t);
    json_decref(t);
    return s;
}

/* Routes n deliveries to the S3 integration and returns them as append candidates of
 * `bytes` each. */
static struct s3_candidate *candidates(struct db *db, int n, int64_t bytes)
{
    static int seq;
    struct s3_candidate *c = xcalloc((size_t)n, sizeof *c);
    for (int i = 0; i < n; i++) {
        char event[ID_MAX];
        snprintf(event, sizeof event, "evt_s%04d", ++seq);
        ASSERT_EQ_ERR(deliveries_insert(db, "acme", "lake", false, false, event, "order", event,
                                        time_now_ms()),
                      ERR_OK);
        struct db_stmt *st = db_stmt(db, "SELECT id FROM deliveries WHERE event_id = ?");
        db_bind_text(st, 1, event);
        if (db_next(st) == ERR_OK)
            snprintf(c[i].delivery_id, sizeof c[i].delivery_id, "%s", db_col_text(st, 0));
        db_release(db);
        c[i].bytes = bytes;
        c[i].published_at = time_now_ms();
    }
    return c;
}

static struct s3_outcome s3_outcome_of(const struct s3_claim *cl, long status, const char *error,
                                       const char *code)
{
    struct s3_outcome o;
    memset(&o, 0, sizeof o);
    snprintf(o.tenant, sizeof o.tenant, "acme");
    snprintf(o.integration, sizeof o.integration, "lake");
    snprintf(o.node, sizeof o.node, "n1");
    snprintf(o.batch_id, sizeof o.batch_id, "%s", cl->id);
    snprintf(o.key, sizeof o.key, "%s", cl->key);
    snprintf(o.code, sizeof o.code, "%s", code ? code : "");
    o.attempt = cl->attempt;
    o.started_at = time_now_ms();
    o.status = status;
    o.error = (char *)error;
    o.retry_after = -1;
    return o;
}

static void test_s3_batches(void)
{
    char *dir;
    struct db *db = unit_db_open(&dir);
    if (!db)
        return;
    char *target = s3_stored_target();
    add_integration(db, "lake", "s3", target, "none");
    free(target);

    /* size: 5 candidates of 400 bytes in batches of at most 1000 close two batches */
    struct s3_candidate *c = candidates(db, 5, 400);
    int64_t next_close = -1;
    int closed = -1;
    ASSERT_EQ_ERR(s3_batch_append(db, "acme", "lake", c, 5, 1000, 60000, &next_close, &closed),
                  ERR_OK);
    free(c);
    ASSERT_EQ_INT(closed, 2);
    ASSERT_TRUE(next_close > time_now_ms());
    ASSERT_EQ_INT(unit_db_int(db, "SELECT COUNT(*) FROM s3_batches WHERE state = 'closing'", NULL),
                  2);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT count FROM s3_batches WHERE state = 'open'", NULL), 1);
    ASSERT_EQ_INT(unit_db_int(db,
                              "SELECT COUNT(*) FROM deliveries WHERE batch_id IS NOT NULL "
                              "AND state = 'in_flight'",
                              NULL),
                  5);
    /* age: the open batch closes once its age is due (here: at once, max age 0) */
    ASSERT_EQ_ERR(s3_batch_append(db, "acme", "lake", NULL, 0, 1000, 0, &next_close, &closed),
                  ERR_OK);
    ASSERT_EQ_INT(closed, 1);

    /* claim: the oldest closed batch with a lease; the others are due */
    struct s3_claim cl;
    int64_t next_due = -1;
    ASSERT_EQ_ERR(s3_batch_claim(db, "acme", "lake", "n1", 30000, &cl, &next_due), ERR_OK);
    ASSERT_EQ_INT(cl.seq, 1);
    ASSERT_EQ_INT(cl.attempt, 1);
    ASSERT_TRUE(strncmp(cl.key, "p/", 2) == 0 && strstr(cl.key, "lake-") && cl.gzip);
    ASSERT_TRUE(next_due >= 0);
    bool held = false;
    ASSERT_EQ_ERR(s3_batch_renew(db, "acme", cl.id, "n2", time_now_ms() + 60000, &held), ERR_OK);
    ASSERT_TRUE(!held); /* not n2's */
    ASSERT_EQ_ERR(s3_batch_renew(db, "acme", cl.id, "n1", time_now_ms() + 60000, &held), ERR_OK);
    ASSERT_TRUE(held);

    /* 403: retried, and alerted at once, once per batch */
    enum outcome_kind kind;
    struct s3_outcome o =
        s3_outcome_of(&cl, 403, "HTTP 403 SignatureDoesNotMatch", "SignatureDoesNotMatch");
    ASSERT_EQ_ERR(s3_batch_outcome(db, &o, &kind), ERR_OK);
    ASSERT_EQ_INT(kind, OUTCOME_RETRY);
    ASSERT_EQ_INT(alerts_of(db, "event_stream.delivery_failed"), 1);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT failing_count FROM integrations", NULL), 1);
    ASSERT_EQ_INT(unit_db_int(db,
                              "SELECT COUNT(*) FROM deliveries WHERE batch_id = ? AND "
                              "last_status = 403 AND state = 'in_flight'",
                              cl.id),
                  2);
    db_exec(db, "UPDATE s3_batches SET next_attempt_at = 0");
    ASSERT_EQ_ERR(s3_batch_claim(db, "acme", "lake", "n1", 30000, &cl, &next_due), ERR_OK);
    ASSERT_EQ_INT(cl.attempt, 2);
    o = s3_outcome_of(&cl, 403, "HTTP 403 SignatureDoesNotMatch", "SignatureDoesNotMatch");
    ASSERT_EQ_ERR(s3_batch_outcome(db, &o, &kind), ERR_OK);
    ASSERT_EQ_INT(alerts_of(db, "event_stream.delivery_failed"), 1);

    /* uploaded: members succeed, the batch's task recovers, failure counts clear */
    db_exec(db, "UPDATE s3_batches SET next_attempt_at = 0");
    ASSERT_EQ_ERR(s3_batch_claim(db, "acme", "lake", "n1", 30000, &cl, &next_due), ERR_OK);
    o = s3_outcome_of(&cl, 200, NULL, NULL);
    o.object_bytes = 321;
    ASSERT_EQ_ERR(s3_batch_outcome(db, &o, &kind), ERR_OK);
    ASSERT_EQ_INT(kind, OUTCOME_SUCCEEDED);
    ASSERT_EQ_INT(unit_db_int(db,
                              "SELECT COUNT(*) FROM deliveries WHERE batch_id = ? AND state "
                              "= 'succeeded' AND attempts = 3",
                              cl.id),
                  2);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT object_bytes FROM s3_batches WHERE id = ?", cl.id), 321);
    ASSERT_EQ_INT(unit_db_int(db,
                              "SELECT COUNT(*) FROM tasks WHERE kind = 's3_upload' AND "
                              "status = 'succeeded'",
                              NULL),
                  1);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT COUNT(*) FROM alerts WHERE resolved_at IS NULL", NULL),
                  0);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT failing_count FROM integrations", NULL), 0);

    /* a stale outcome (the lease went to n2) changes nothing */
    ASSERT_EQ_ERR(s3_batch_claim(db, "acme", "lake", "n2", 30000, &cl, &next_due), ERR_OK);
    o = s3_outcome_of(&cl, 200, NULL, NULL);
    ASSERT_EQ_ERR(s3_batch_outcome(db, &o, &kind), ERR_OK);
    ASSERT_EQ_INT(kind, OUTCOME_STALE);

    /* a failure 24 h after the first attempt fails the batch and its members for good */
    snprintf(o.node, sizeof o.node, "n2");
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE s3_batches SET first_attempt_at = %lld WHERE id = '%s'",
             (long long)(time_now_ms() - DAY_MS - 1000), cl.id);
    ASSERT_EQ_ERR(db_exec(db, sql), ERR_OK);
    o.status = 500;
    o.error = (char *)"HTTP 500 InternalError";
    ASSERT_EQ_ERR(s3_batch_outcome(db, &o, &kind), ERR_OK);
    ASSERT_EQ_INT(kind, OUTCOME_FAILED);
    ASSERT_EQ_INT(unit_db_int(db,
                              "SELECT COUNT(*) FROM deliveries WHERE batch_id = ? AND state "
                              "= 'failed'",
                              cl.id),
                  2);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT state = 'failed' FROM s3_batches WHERE id = ?", cl.id),
                  1);

    /* S3 integrations auto-pause like webhooks */
    snprintf(sql, sizeof sql, "UPDATE integrations SET failing_since = %lld, failing_count = 9",
             (long long)(time_now_ms() - DAY_MS - 1000));
    ASSERT_EQ_ERR(db_exec(db, sql), ERR_OK);
    db_exec(db, "UPDATE s3_batches SET next_attempt_at = 0");
    ASSERT_EQ_ERR(s3_batch_claim(db, "acme", "lake", "n1", 30000, &cl, &next_due), ERR_OK);
    o = s3_outcome_of(&cl, 503, "HTTP 503 SlowDown", "SlowDown");
    ASSERT_EQ_ERR(s3_batch_outcome(db, &o, &kind), ERR_OK);
    ASSERT_EQ_INT(kind, OUTCOME_RETRY);
    ASSERT_EQ_STR(integration_state(db, "lake"), "paused");
    policy_index_cleanup();
    db_close(db);
    unit_rmdir(dir);
}

/* --- lag episodes -------------------------------------------------------------------- */

static int lag(struct db *db, int64_t lag_ms, int64_t *alerted)
{
    struct lag_change c[8];
    int n = 0;
    ASSERT_EQ_ERR(outcome_lag_scan(db, lag_ms, c, 8, &n), ERR_OK);
    ASSERT_EQ_ERR(outcome_lag_apply(db, c, n, lag_ms, alerted), ERR_OK);
    return n;
}

static void test_lag_episodes(void)
{
    char *dir;
    struct db *db = unit_db_open(&dir);
    if (!db)
        return;
    add_integration(db, "erp", "webhook", "{\"type\":\"webhook\",\"url\":\"http://x.test/\"}",
                    "none");
    struct attempt_outcome stuck = claimed(db, "erp", "STUCK");
    db_exec(db, "UPDATE deliveries SET created_at = created_at - 120000");
    int64_t alerted = -1;
    lag(db, 60000, &alerted); /* older than a minute: an episode starts */
    ASSERT_EQ_INT(alerted, 1);
    /* other entities keep succeeding: the same episode, no new alert */
    struct attempt_outcome ok = claimed(db, "erp", "OK");
    ASSERT_EQ_INT(record(db, &ok, 200, NULL), OUTCOME_SUCCEEDED);
    lag(db, 60000, &alerted);
    ASSERT_EQ_INT(alerted, 0);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT lag_alerted_at IS NOT NULL FROM integrations", NULL), 1);
    /* the stuck one goes through: nothing old remains, the episode ends */
    ASSERT_EQ_INT(record(db, &stuck, 200, NULL), OUTCOME_SUCCEEDED);
    ASSERT_EQ_INT(lag(db, 60000, &alerted), 1);
    ASSERT_EQ_INT(alerted, 0);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT lag_alerted_at IS NULL FROM integrations", NULL), 1);
    /* a new old delivery: a new episode, a new alert */
    claimed(db, "erp", "LATER");
    db_exec(db, "UPDATE deliveries SET created_at = created_at - 120000 WHERE state = "
                "'in_flight'");
    lag(db, 60000, &alerted);
    ASSERT_EQ_INT(alerted, 1);
    /* pausing ends it too: a paused integration is not lagging */
    ASSERT_EQ_ERR(integration_set_state(db, "acme", "erp", "paused", time_now_ms()), ERR_OK);
    lag(db, 60000, &alerted);
    ASSERT_EQ_INT(unit_db_int(db, "SELECT lag_alerted_at IS NULL FROM integrations", NULL), 1);
    ASSERT_EQ_INT(alerts_of(db, "event_stream.delivery_failed"), 2);
    policy_index_cleanup();
    db_close(db);
    unit_rmdir(dir);
}

void unit_deliver(void)
{
    RUN(test_ssrf_guard);
    RUN(test_test_answer_has_every_member);
    RUN(test_signature);
    RUN(test_envelope);
    RUN(test_webhook_outcomes);
    RUN(test_auto_pause);
    RUN(test_s3_batches);
    RUN(test_lag_episodes);
}
