/* Tests for the alert engine: channel address and batching validation, policy validation,
 * and alerts_record_batch() on a migrated SQLite database — matching (exact, wildcard,
 * connection lists, disabled), grouping, one open issue per key (the schema refuses a
 * second), timeline folding and close/reopen. Single-threaded, like the writer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alerts.h"
#include "alert/channels.h"
#include "alert/issues.h"
#include "alert/policies.h"
#include "core/xalloc.h"
#include "store/db.h"
#include "store/store.h"
#include "unit.h"

static void test_addresses(void)
{
    ASSERT_TRUE(channel_address_valid("ops@acme.example"));
    ASSERT_TRUE(channel_address_valid("first.last+tag@sub.acme.example"));
    ASSERT_TRUE(!channel_address_valid("ops"));
    ASSERT_TRUE(!channel_address_valid("ops@"));
    ASSERT_TRUE(!channel_address_valid("@acme.example"));
    ASSERT_TRUE(!channel_address_valid("ops@acme"));
    ASSERT_TRUE(!channel_address_valid("a b@acme.example"));
    ASSERT_TRUE(!channel_address_valid("ops@acme.example\r\nBcc: x@y.z"));
    ASSERT_TRUE(!channel_address_valid("<ops@acme.example>"));
    ASSERT_TRUE(!channel_address_valid("a@b@acme.example"));
}

static void test_batching(void)
{
    int64_t ms = -1;
    ASSERT_TRUE(channel_batching_window("immediate", &ms));
    ASSERT_EQ_INT(ms, 0);
    ASSERT_TRUE(channel_batching_window("15m", &ms));
    ASSERT_EQ_INT(ms, 15 * 60 * 1000);
    ASSERT_TRUE(channel_batching_window("1d", &ms));
    ASSERT_EQ_INT(ms, 24 * 3600 * 1000LL);
    ASSERT_TRUE(!channel_batching_window("2m", &ms));
    ASSERT_TRUE(!channel_batching_window(NULL, &ms));
}

/* Parses body (JSON text) as a create body; returns the first error's field or "". */
static char *parse_field(const char *text)
{
    json_t *body = json_loads(text, 0, NULL);
    struct verrs v;
    verrs_init(&v);
    struct policy p;
    policy_parse(body, NULL, false, NULL, "acme", &p, &v);
    json_t *first = json_array_get(v.list, 0);
    char *field = xstrdup(first ? json_string_value(json_object_get(first, "field")) : "");
    policy_cleanup(&p);
    verrs_cleanup(&v);
    json_decref(body);
    return field;
}

static void test_policy_validation(void)
{
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"name\":\"p\",\"monitored_events\":[{\"event\":\"order.*\"}]}", ""},
        {"{\"name\":\"p\",\"monitored_events\":[{\"event\":\"event_stream.*\","
         "\"connections\":[\"erp\"]}],\"group_by\":[],\"auto_close_after\":null}",
         ""},
        {"{\"name\":\"  \",\"monitored_events\":[{\"event\":\"order.*\"}]}", "name"},
        {"{\"name\":\"p\",\"monitored_events\":[{\"event\":\"order.created\"}]}",
         "monitored_events[0].event"},
        {"{\"name\":\"p\",\"monitored_events\":[{\"event\":\"*\"}]}", "monitored_events[0].event"},
        {"{\"name\":\"p\",\"monitored_events\":[{\"event\":\"order.*\",\"connections\":[1]}]}",
         "monitored_events[0].connections[0]"},
        {"{\"name\":\"p\",\"monitored_events\":[{\"event\":\"order.*\"}],"
         "\"auto_close_after\":\"0s\"}",
         "auto_close_after"},
        {"{\"name\":\"p\",\"monitored_events\":[{\"event\":\"order.*\"}],"
         "\"group_by\":[\"event\",\"event\"]}",
         "group_by[1]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *f = parse_field(cases[i].body);
        ASSERT_EQ_STR(f, cases[i].field);
        free(f);
    }
}

struct fixture {
    char *dir;
    struct db *db;
};

static bool setup(struct fixture *f)
{
    f->dir = unit_tmpdir();
    char *url = xasprintf("sqlite:%s/test.db", f->dir);
    char errmsg[256] = "";
    f->db = NULL;
    enum err rc = db_open(url, &f->db, errmsg, sizeof errmsg);
    free(url);
    if (rc == ERR_OK)
        rc = store_migrate(f->db, errmsg, sizeof errmsg);
    if (rc == ERR_OK)
        rc = db_exec(f->db, "INSERT INTO tenants (id, name, created_at) VALUES ('acme', 'Acme', "
                            "0), ('globex', 'Globex', 0)");
    if (rc != ERR_OK) {
        unit_fail(__FILE__, __LINE__, "setup: %s %s", errmsg, f->db ? db_errmsg(f->db) : "");
        return false;
    }
    return true;
}

static void teardown(struct fixture *f)
{
    db_close(f->db);
    policy_index_cleanup();
    unit_rmdir(f->dir);
}

static void add_policy(struct fixture *f, const char *tenant, const char *json, char id[ID_MAX])
{
    json_t *body = json_loads(json, 0, NULL);
    struct verrs v;
    verrs_init(&v);
    struct policy p;
    policy_parse(body, NULL, false, f->db, tenant, &p, &v);
    ASSERT_TRUE(!verrs_any(&v));
    ASSERT_EQ_ERR(policy_store(f->db, &p, false), ERR_OK);
    memcpy(id, p.id, ID_MAX);
    policy_cleanup(&p);
    verrs_cleanup(&v);
    json_decref(body);
}

static int64_t count(struct fixture *f, const char *sql, const char *arg)
{
    struct db_stmt *st = db_stmt(f->db, sql);
    if (arg)
        db_bind_text(st, 1, arg);
    int64_t n = db_next(st) == ERR_OK ? db_col_int(st, 0) : -1;
    db_release(f->db);
    return n;
}

static void test_engine(void)
{
    struct fixture f;
    if (!setup(&f))
        return;
    char exact[ID_MAX], wild[ID_MAX], scoped[ID_MAX], off[ID_MAX];
    add_policy(&f, "acme",
               "{\"name\":\"exact\",\"monitored_events\":[{\"event\":"
               "\"order.import_failed\"}],\"group_by\":[\"event\"]}",
               exact);
    add_policy(&f, "acme", "{\"name\":\"wild\",\"monitored_events\":[{\"event\":\"order.*\"}]}",
               wild);
    add_policy(&f, "acme",
               "{\"name\":\"scoped\",\"monitored_events\":[{\"event\":"
               "\"shipment.*\",\"connections\":[\"ups\"]}],\"group_by\":[]}",
               scoped);
    add_policy(&f, "acme",
               "{\"name\":\"off\",\"enabled\":false,\"monitored_events\":[{\"event\":"
               "\"return.*\"}]}",
               off);

    struct alert_in a[] = {
        {.event = "order.import_failed", .connection = "shop-a", .message = "m", .occurred_at = -1},
        {.event = "order.import_failed", .connection = "shop-b", .message = "m", .occurred_at = -1},
        {.event = "order.export_failed", .connection = "shop-a", .message = "m", .occurred_at = -1},
        {.event = "shipment.export_failed", .connection = "ups", .message = "m", .occurred_at = -1},
        {.event = "shipment.export_failed", .connection = "dhl", .message = "m", .occurred_at = -1},
        {.event = "return.refund_failed", .connection = "pos", .message = "m", .occurred_at = -1},
    };
    char ids[6][ID_MAX];
    ASSERT_EQ_ERR(alerts_record_batch(f.db, "acme", a, 6, ids), ERR_OK);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM alerts", NULL), 6);
    /* exact: one issue (per event) with 2 alerts; wild: 3 issues (event+connection); scoped:
     * one issue with the ups alert; off: nothing */
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issues WHERE policy_id = ?", exact), 1);
    ASSERT_EQ_INT(count(&f, "SELECT alert_count FROM issues WHERE policy_id = ?", exact), 2);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issues WHERE policy_id = ?", wild), 3);
    ASSERT_EQ_INT(count(&f, "SELECT alert_count FROM issues WHERE policy_id = ?", scoped), 1);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issues WHERE policy_id = ?", off), 0);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issue_alerts", NULL), 6);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issue_alerts WHERE alert_id = ?", ids[5]), 0);
    /* the batch folded its second alert into one alert_added entry */
    ASSERT_EQ_INT(count(&f,
                        "SELECT SUM(count) FROM issue_timeline t JOIN issues i ON i.id = "
                        "t.issue_id WHERE t.kind = 'alert_added' AND i.policy_id = ?",
                        exact),
                  1);

    /* more alerts for the same key move the same issue; a later single alert folds */
    ASSERT_EQ_ERR(alert_record(f.db, "acme", &a[0], NULL), ERR_OK);
    ASSERT_EQ_ERR(alert_record(f.db, "acme", &a[1], NULL), ERR_OK);
    ASSERT_EQ_INT(count(&f, "SELECT alert_count FROM issues WHERE policy_id = ?", exact), 4);
    ASSERT_EQ_INT(count(&f,
                        "SELECT COUNT(*) FROM issue_timeline t JOIN issues i ON i.id = "
                        "t.issue_id WHERE t.kind = 'alert_added' AND i.policy_id = ?",
                        exact),
                  1);

    /* the schema refuses a second open issue for a key */
    struct db_stmt *st = db_stmt(f.db, "SELECT id, group_key FROM issues WHERE policy_id = ?");
    db_bind_text(st, 1, exact);
    REQUIRE_TRUE(db_next(st) == ERR_OK);
    char issue[ID_MAX], key[128];
    snprintf(issue, sizeof issue, "%s", db_col_text(st, 0));
    snprintf(key, sizeof key, "%s", db_col_text(st, 1));
    db_release(f.db);
    st = db_stmt(f.db, "INSERT INTO issues (tenant_id, id, policy_id, group_key, group_json, "
                       "title, status, opened_at, last_alert_at) VALUES ('acme', 'iss_x', ?, ?, "
                       "'{}', 't', 'acknowledged', 0, 0)");
    db_bind_text(st, 1, exact);
    db_bind_text(st, 2, key);
    ASSERT_EQ_ERR(db_run(st), ERR_CONFLICT);

    /* close, then a new alert opens a new issue linking the previous one; reopen clashes */
    ASSERT_EQ_ERR(issue_close(f.db, "acme", issue, "manual", "test", NULL, 1), ERR_OK);
    ASSERT_EQ_ERR(issue_close(f.db, "acme", issue, "manual", "test", NULL, 1), ERR_CONFLICT);
    ASSERT_EQ_ERR(alert_record(f.db, "acme", &a[0], NULL), ERR_OK);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issues WHERE previous_issue_id = ?", issue), 1);
    ASSERT_EQ_ERR(issue_reopen(f.db, "acme", issue, "test", 2), ERR_CONFLICT);
    ASSERT_EQ_ERR(issue_acknowledge(f.db, "globex", issue, "test", 2), ERR_NOT_FOUND);

    /* another tenant's alert matches nothing of acme's */
    ASSERT_EQ_ERR(alert_record(f.db, "globex", &a[0], NULL), ERR_OK);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issues WHERE tenant_id = ?", "globex"), 0);
    teardown(&f);
}

/* Several callers' batches at once (a group commit of reports): each tenant's alerts are
 * matched together, so an issue is opened once and moved by every batch's alerts, and no
 * tenant's alerts reach another's issues. */
static void test_record_many(void)
{
    struct fixture f;
    if (!setup(&f))
        return;
    char acme_p[ID_MAX], globex_p[ID_MAX];
    add_policy(&f, "acme",
               "{\"name\":\"orders\",\"monitored_events\":[{\"event\":\"order.*\"}],"
               "\"group_by\":[\"connection\"]}",
               acme_p);
    add_policy(&f, "globex",
               "{\"name\":\"orders\",\"monitored_events\":[{\"event\":\"order.*\"}],"
               "\"group_by\":[]}",
               globex_p);
    struct alert_in a1[] = {
        {.event = "order.import_failed", .connection = "shop-a", .message = "m", .occurred_at = -1},
        {.event = "order.export_failed", .connection = "shop-b", .message = "m", .occurred_at = -1},
    };
    struct alert_in g1[] = {
        {.event = "order.import_failed", .connection = "shop-a", .message = "m", .occurred_at = -1},
    };
    struct alert_in a2[] = {
        {.event = "order.import_failed", .connection = "shop-a", .message = "m", .occurred_at = -1},
        {.event = "order.import_failed", .connection = "shop-a", .message = "m", .occurred_at = 5},
        {.event = "shipment.export_failed",
         .connection = "shop-a",
         .message = "m",
         .occurred_at = -1},
    };
    char ia1[2][ID_MAX], ig1[1][ID_MAX], ia2[3][ID_MAX];
    struct alert_batch b[] = {{.tenant = "acme", .alerts = a1, .n = 2, .ids = ia1},
                              {.tenant = "globex", .alerts = g1, .n = 1, .ids = ig1},
                              {.tenant = "acme", .alerts = a2, .n = 3, .ids = ia2}};
    ASSERT_EQ_ERR(alerts_record_many(f.db, b, 3), ERR_OK);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM alerts WHERE tenant_id = ?", "acme"), 5);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM alerts WHERE tenant_id = ?", "globex"), 1);
    ASSERT_EQ_INT(count(&f, "SELECT occurred_at FROM alerts WHERE id = ?", ia2[1]), 5);
    /* acme: shop-a has 3 order alerts from two batches in one issue, shop-b one */
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issues WHERE policy_id = ?", acme_p), 2);
    ASSERT_EQ_INT(count(&f,
                        "SELECT alert_count FROM issues WHERE policy_id = ? AND group_key LIKE "
                        "'%shop-a%'",
                        acme_p),
                  3);
    ASSERT_EQ_INT(count(&f,
                        "SELECT COUNT(*) FROM issue_alerts ia JOIN issues i ON i.id = "
                        "ia.issue_id WHERE i.policy_id = ? AND i.group_key LIKE '%shop-a%'",
                        acme_p),
                  3);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issue_alerts WHERE alert_id = ?", ia2[0]), 1);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issue_alerts WHERE alert_id = ?", ia2[2]), 0);
    /* opened once, by the first batch's alert, the rest folded */
    ASSERT_EQ_INT(count(&f,
                        "SELECT COUNT(*) FROM issue_timeline t JOIN issues i ON i.id = "
                        "t.issue_id WHERE t.kind = 'opened' AND t.detail = 'opened by alert ' "
                        "|| ? AND i.group_key LIKE '%shop-a%'",
                        ia1[0]),
                  1);
    ASSERT_EQ_INT(count(&f,
                        "SELECT SUM(count) FROM issue_timeline t JOIN issues i ON i.id = "
                        "t.issue_id WHERE t.kind = 'alert_added' AND i.policy_id = ? AND "
                        "i.group_key LIKE '%shop-a%'",
                        acme_p),
                  2);
    /* globex: its own issue, with its one alert; no link crosses tenants */
    ASSERT_EQ_INT(count(&f, "SELECT alert_count FROM issues WHERE policy_id = ?", globex_p), 1);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issue_alerts WHERE tenant_id = ?", "globex"), 1);
    ASSERT_EQ_INT(count(&f,
                        "SELECT COUNT(*) FROM issue_alerts ia JOIN alerts a ON a.id = "
                        "ia.alert_id JOIN issues i ON i.id = ia.issue_id WHERE a.tenant_id <> "
                        "i.tenant_id OR ia.tenant_id <> a.tenant_id",
                        NULL),
                  0);
    /* a second group commit moves the same issues once more */
    ASSERT_EQ_ERR(alerts_record_many(f.db, b, 3), ERR_OK);
    ASSERT_EQ_INT(count(&f,
                        "SELECT alert_count FROM issues WHERE policy_id = ? AND group_key LIKE "
                        "'%shop-a%'",
                        acme_p),
                  6);
    ASSERT_EQ_INT(count(&f, "SELECT alert_count FROM issues WHERE policy_id = ?", globex_p), 2);
    ASSERT_EQ_INT(count(&f, "SELECT COUNT(*) FROM issue_alerts", NULL), 10);
    teardown(&f);
}

void unit_alert(void)
{
    RUN(test_addresses);
    RUN(test_batching);
    RUN(test_policy_validation);
    RUN(test_engine);
    RUN(test_record_many);
}
