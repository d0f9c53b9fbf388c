"""Alerting: alerts, tasks and recovery, policies (validation, matching), issues (grouping,
one open issue per key under concurrency, lifecycle, auto-close, close on recovery), tenant
isolation and the console's helper endpoints. Every test runs on SQLite and PostgreSQL."""

import concurrent.futures
import time

import pytest

from alerting_helpers import alert, channel, issues, policy, report, req, timeline
from conftest import ALL_PERMS, RFC3339_MS, assert_problem, make_key, make_tenant, wait_for


@pytest.fixture
def acme(start_server, db):
    srv = start_server(db=db, args=["--time-scale", "3600"])
    make_tenant(srv, "acme", "Acme Retail")
    return srv, make_key(srv, "acme", ALL_PERMS, name="ops-admin")


# ------------------------------------------------------------------ alerts and tasks


def test_report_validate_list_and_get(acme):
    srv, key = acme
    one = report(srv, key, alert(details={"sku": "ABC-1"}))
    assert one["accepted"] == 1 and one["ids"][0].startswith("alr_")
    batch = report(srv, key, [alert(event="shipment.tracking_failed", connection="ups",
                                    entity_id="SHP-9"),
                              alert(event="order.export_failed", connection="erp",
                                    entity_id="ORD-2")])
    assert batch["accepted"] == 2 and len(batch["ids"]) == 2

    # validated whole: one bad alert stores nothing
    before = req(srv, key, "GET", "/v1/alerts", expect=200)["data"]
    r = srv.request("POST", "/v1/alerts", {"alerts": [alert(), alert(event="order.created")]},
                    token=key)
    assert_problem(r, 422, "alerts[1].event")
    assert_problem(srv.request("POST", "/v1/alerts", {"event": "order.import_failed"},
                               token=key), 422, "message")
    assert_problem(srv.request("POST", "/v1/alerts", alert(task_id="tsk_nope"), token=key),
                   422, "task_id")
    assert_problem(srv.request("POST", "/v1/alerts", alert(bogus=1), token=key), 422, "bogus")
    assert req(srv, key, "GET", "/v1/alerts", expect=200)["data"] == before

    got = req(srv, key, "GET", f"/v1/alerts/{one['ids'][0]}", expect=200)
    assert got["event"] == "order.import_failed" and got["category"] == "order"
    assert got["connection"] == "shopify-main" and got["entity_id"] == "ORD-1"
    assert got["details"] == {"sku": "ABC-1"} and got["issue_ids"] == []
    assert got["task"] is None and got["issues"] == [] and got["resolved_at"] is None
    assert RFC3339_MS.match(got["created_at"])

    def ids(q):
        return [a["id"] for a in req(srv, key, "GET", f"/v1/alerts?{q}", expect=200)["data"]]

    assert ids("") == [batch["ids"][1], batch["ids"][0], one["ids"][0]]  # newest first
    assert ids("event=shipment.tracking_failed") == [batch["ids"][0]]
    assert ids("category=order") == [batch["ids"][1], one["ids"][0]]
    assert ids("connection=erp") == [batch["ids"][1]]
    assert ids("entity_id=ORD-1") == [one["ids"][0]]
    assert ids("from=2999-01-01T00:00:00Z") == []
    assert ids("to=2000-01-01T00:00:00Z") == []
    page = req(srv, key, "GET", "/v1/alerts?limit=2", expect=200)
    assert len(page["data"]) == 2 and page["next_cursor"]
    rest = req(srv, key, "GET", f"/v1/alerts?limit=2&cursor={page['next_cursor']}", expect=200)
    assert [a["id"] for a in rest["data"]] == [one["ids"][0]] and rest["next_cursor"] is None
    assert_problem(srv.request("GET", "/v1/alerts/alr_missing", token=key), 404)


def test_event_stream_failures_cannot_be_reported(acme):
    """event_stream.* alerts are raised by Sluice itself for its integrations; a tenant's key
    cannot report one (it would pass for a real delivery failure): 422, nothing stored."""
    srv, key = acme
    for ev in ("event_stream.delivery_failed", "event_stream.event_rejected",
               "event_stream.integration_stopped"):
        body = assert_problem(srv.request("POST", "/v1/alerts", alert(event=ev), token=key),
                              422, "event")
        assert "raised by Sluice itself" in body["detail"], body
    body = assert_problem(srv.request("POST", "/v1/alerts", {"alerts": [
        alert(), alert(event="event_stream.delivery_failed")]}, token=key), 422,
        "alerts[1].event")
    assert req(srv, key, "GET", "/v1/alerts", expect=200)["data"] == []
    # they are still failure types one can watch with a policy
    assert "event_stream.delivery_failed" in [
        t["name"] for t in req(srv, key, "GET", "/v1/failure-types", expect=200)["data"]]


def test_tasks_and_recovery(acme):
    srv, key = acme
    t1 = req(srv, key, "POST", "/v1/tasks",
             {"kind": "order_import", "connection": "shopify-main", "entity_id": "ORD-7",
              "status": "failed", "details": {"try": 1}}, expect=201)
    assert t1["id"].startswith("tsk_") and t1["alerts"] == []
    a1 = report(srv, key, alert(entity_id="ORD-7", task_id=t1["id"]))["ids"][0]
    a2 = report(srv, key, alert(entity_id="ORD-7", task_id=t1["id"],
                                message="again"))["ids"][0]
    got = req(srv, key, "GET", f"/v1/tasks/{t1['id']}", expect=200)
    assert {a["id"] for a in got["alerts"]} == {a1, a2}
    assert req(srv, key, "GET", f"/v1/alerts/{a1}", expect=200)["task"]["id"] == t1["id"]
    assert [t["id"] for t in req(srv, key, "GET", "/v1/tasks?connection=shopify-main&"
                                                  "kind=order_import", expect=200)["data"]] == [t1["id"]]
    assert req(srv, key, "GET", "/v1/tasks?kind=other", expect=200)["data"] == []
    assert_problem(srv.request("POST", "/v1/tasks", {"kind": "x", "status": "weird"},
                               token=key), 422, "status")

    # a later succeeded task for the same work resolves the earlier task's alerts
    req(srv, key, "POST", "/v1/tasks", {"kind": "order_import", "connection": "shopify-main",
                                        "entity_id": "ORD-7", "status": "succeeded"},
        expect=201)
    for a in (a1, a2):
        assert RFC3339_MS.match(req(srv, key, "GET", f"/v1/alerts/{a}",
                                    expect=200)["resolved_at"])

    # PATCH the task itself, and the resolve endpoint
    t2 = req(srv, key, "POST", "/v1/tasks", {"kind": "inventory_sync", "status": "running"},
             expect=201)
    a3 = report(srv, key, alert(event="inventory.sync_failed", task_id=t2["id"]))["ids"][0]
    a4 = report(srv, key, alert(event="inventory.sync_failed"))["ids"][0]
    assert req(srv, key, "GET", f"/v1/alerts/{a3}", expect=200)["resolved_at"] is None
    p = req(srv, key, "PATCH", f"/v1/tasks/{t2['id']}", {"status": "succeeded"}, expect=200)
    assert p["status"] == "succeeded" and p["alerts"][0]["resolved_at"]
    r = req(srv, key, "POST", f"/v1/alerts/{a4}/resolve", expect=200)
    assert r["resolved_at"]
    assert_problem(srv.request("POST", "/v1/alerts/alr_nope/resolve", token=key), 404)
    assert_problem(srv.request("PATCH", "/v1/tasks/tsk_nope", {"status": "failed"},
                               token=key), 404)


# ------------------------------------------------------------------ policies


def test_policy_crud_and_validation(acme):
    srv, key = acme
    ch = channel(srv, key)
    bad = [
        ({"name": "", "monitored_events": [{"event": "order.import_failed"}]}, "name"),
        ({"name": "x", "monitored_events": [{"event": "order.created"}]},
         "monitored_events[0].event"),
        ({"name": "x", "monitored_events": [{"event": "nothing.*"}]},
         "monitored_events[0].event"),
        ({"name": "x", "monitored_events": []}, "monitored_events"),
        ({"name": "x", "monitored_events": [{"event": "order.*"}], "channel_ids": ["chn_no"]},
         "channel_ids[0]"),
        ({"name": "x", "monitored_events": [{"event": "order.*"}], "auto_close_after": "soon"},
         "auto_close_after"),
        ({"name": "x", "monitored_events": [{"event": "order.*"}], "group_by": ["colour"]},
         "group_by[0]"),
        ({"name": "x", "monitored_events": [{"event": "order.*"}], "notify_on": ["never"]},
         "notify_on[0]"),
        ({"name": "x", "monitored_events": [{"event": "order.*"}], "enabled": "yes"}, "enabled"),
        ({"name": "x", "monitored_events": [{"event": "order.*"}], "extra": 1}, "extra"),
    ]
    for body, field in bad:
        assert_problem(srv.request("POST", "/v1/alert-policies", body, token=key), 422, field)
    assert req(srv, key, "GET", "/v1/alert-policies", expect=200)["data"] == []

    p = policy(srv, key, [{"event": "order.import_failed", "connections": ["shopify-main"]},
                          {"event": "shipment.*"}], name="Order imports",
               channel_ids=[ch["id"]])
    assert p["id"].startswith("pol_") and p["enabled"] is True
    assert p["group_by"] == ["event", "connection"] and p["auto_close_after"] == "24h"
    assert p["notify_on"] == ["opened"] and p["close_on_recovery"] is False
    assert p["monitored_events"][1] == {"event": "shipment.*", "connections": []}
    assert p["channel_ids"] == [ch["id"]] and p["open_issue_count"] == 0

    q = req(srv, key, "PATCH", f"/v1/alert-policies/{p['id']}",
            {"auto_close_after": None, "group_by": [], "enabled": False}, expect=200)
    assert q["auto_close_after"] is None and q["group_by"] == [] and q["enabled"] is False
    assert q["name"] == "Order imports"
    assert_problem(srv.request("PATCH", f"/v1/alert-policies/{p['id']}", {"id": "x"},
                               token=key), 422, "id")
    r = req(srv, key, "POST", f"/v1/alert-policies/{p['id']}/monitored-events",
            {"monitored_events": [{"event": "return.refund_failed", "connections": ["pos"]}]},
            expect=200)
    assert [e["event"] for e in r["monitored_events"]] == ["order.import_failed", "shipment.*",
                                                          "return.refund_failed"]
    assert req(srv, key, "GET", f"/v1/alert-policies/{p['id']}", expect=200) == r
    assert [x["id"] for x in req(srv, key, "GET", "/v1/alert-policies",
                                 expect=200)["data"]] == [p["id"]]

    # a channel in use cannot be deleted without force
    assert_problem(srv.request("DELETE", f"/v1/notification-channels/{ch['id']}", token=key),
                   409)
    assert srv.request("DELETE", f"/v1/notification-channels/{ch['id']}?force=true",
                       token=key)[0] == 204
    assert req(srv, key, "GET", f"/v1/alert-policies/{p['id']}", expect=200)["channel_ids"] == []

    assert srv.request("DELETE", f"/v1/alert-policies/{p['id']}", token=key)[0] == 204
    assert_problem(srv.request("GET", f"/v1/alert-policies/{p['id']}", token=key), 404)
    assert_problem(srv.request("DELETE", f"/v1/alert-policies/{p['id']}", token=key), 404)


def test_matching(acme):
    srv, key = acme
    exact = policy(srv, key, [{"event": "order.import_failed"}], name="exact")
    wild = policy(srv, key, [{"event": "shipment.*"}], name="wildcard")
    scoped = policy(srv, key, [{"event": "inventory.sync_failed", "connections": ["wms-1"]}],
                    name="scoped")
    both = policy(srv, key, [{"event": "order.*"}, {"event": "order.import_failed"}],
                  name="overlap")
    off = policy(srv, key, [{"event": "return.*"}], name="disabled", enabled=False)

    def issue_policies(alert_id):
        got = req(srv, key, "GET", f"/v1/alerts/{alert_id}", expect=200)
        return sorted(i["policy_id"] for i in got["issues"])

    a = report(srv, key, alert(event="order.import_failed"))["ids"][0]
    assert issue_policies(a) == sorted([exact["id"], both["id"]])  # several, once each
    a = report(srv, key, alert(event="order.cancel_failed"))["ids"][0]
    assert issue_policies(a) == [both["id"]]
    a = report(srv, key, alert(event="shipment.export_failed", connection="ups"))["ids"][0]
    assert issue_policies(a) == [wild["id"]]
    a = report(srv, key, alert(event="inventory.sync_failed", connection="wms-2"))["ids"][0]
    assert issue_policies(a) == []
    a = report(srv, key, alert(event="inventory.sync_failed", connection="wms-1"))["ids"][0]
    assert issue_policies(a) == [scoped["id"]]
    a = report(srv, key, alert(event="inventory.sync_failed", connection=None))["ids"][0]
    assert issue_policies(a) == []
    a = report(srv, key, alert(event="return.refund_failed"))["ids"][0]
    assert issue_policies(a) == []  # disabled policy
    a = report(srv, key, alert(event="purchase_order.export_failed"))["ids"][0]
    assert issue_policies(a) == []  # no policy at all

    # enabling takes effect at once (the index rebuilds on change)
    req(srv, key, "PATCH", f"/v1/alert-policies/{off['id']}", {"enabled": True}, expect=200)
    a = report(srv, key, alert(event="return.refund_failed"))["ids"][0]
    assert issue_policies(a) == [off["id"]]
    pol = req(srv, key, "GET", f"/v1/alert-policies/{both['id']}", expect=200)
    assert pol["open_issue_count"] == 2


@pytest.mark.parametrize("group_by,expected", [
    ([], 1),                             # per policy
    (["event"], 2),                      # per event type
    (["event", "connection"], 3),        # per event and connection (the default)
    (["entity_id"], 4),                  # custom
])
def test_grouping(acme, group_by, expected):
    srv, key = acme
    p = policy(srv, key, [{"event": "order.*"}], group_by=group_by, name="g")
    sent = [alert("order.import_failed", "shop-a", "E1"), alert("order.import_failed", "shop-a", "E2"),
            alert("order.import_failed", "shop-b", "E3"), alert("order.export_failed", "shop-a", "E4"),
            alert("order.export_failed", "shop-a", "E1")]
    report(srv, key, sent[:2])
    for a in sent[2:]:
        report(srv, key, a)
    got = issues(srv, key, f"policy_id={p['id']}")
    assert len(got) == expected, got
    assert sum(i["alert_count"] for i in got) == 5
    assert all(i["status"] == "open" for i in got)
    fields = group_by
    for i in got:
        assert sorted(i["group"].keys()) == sorted(fields)
        alerts = req(srv, key, "GET", f"/v1/issues/{i['id']}/alerts", expect=200)["data"]
        assert len(alerts) == i["alert_count"]
        for a in alerts:
            for f in fields:
                assert a[f] == i["group"][f]
    if group_by == ["event", "connection"]:
        titles = sorted(i["title"] for i in got)
        assert "order.import_failed on shop-a" in titles


def test_one_open_issue_per_key_under_concurrency(acme):
    srv, key = acme
    p = policy(srv, key, [{"event": "order.import_failed"}], name="storm")

    def one(i):
        return srv.request("POST", "/v1/alerts", alert(entity_id=f"ORD-{i}"), token=key)[0]

    with concurrent.futures.ThreadPoolExecutor(32) as ex:
        codes = list(ex.map(one, range(100)))
    assert codes == [202] * 100
    got = issues(srv, key, f"policy_id={p['id']}")
    assert len(got) == 1 and got[0]["alert_count"] == 100 and got[0]["status"] == "open"
    tl = timeline(srv, key, got[0]["id"])
    kinds = [e["kind"] for e in tl]
    assert kinds.count("opened") == 1
    # consecutive additions fold into entries with a count
    assert sum(e["count"] for e in tl if e["kind"] == "alert_added") == 99
    alerts = req(srv, key, "GET", f"/v1/issues/{got[0]['id']}/alerts?limit=1000",
                 expect=200)["data"]
    assert len(alerts) == 100


def test_concurrent_batches_of_two_tenants(acme):
    """Reports in flight together commit together (one group commit, each tenant's alerts
    matched as one set): every count, link and timeline entry is what one report at a time
    gives, and no tenant's alerts reach the other's issues."""
    srv, key = acme
    make_tenant(srv, "globex")
    other = make_key(srv, "globex", ALL_PERMS)
    pa = policy(srv, key, [{"event": "order.*"}], group_by=["connection"], name="acme orders")
    pg_ = policy(srv, other, [{"event": "order.*"}], group_by=[], name="globex orders")

    def batch(j):
        return [alert(connection=f"c{i % 3}", entity_id=f"E{j}-{i}") for i in range(9)] + [
            alert(event="shipment.export_failed", entity_id=f"S{j}")]

    def one(j):
        k = key if j % 2 == 0 else other
        status, _, body = srv.request("POST", "/v1/alerts", {"alerts": batch(j)}, token=k)
        return status, body

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        got = list(ex.map(one, range(40)))
    assert [s for s, _ in got] == [202] * 40
    ids = [i for _, b in got for i in b["ids"]]
    assert len(ids) == len(set(ids)) == 400

    acme_issues = issues(srv, key, f"policy_id={pa['id']}")
    assert sorted(i["group"]["connection"] for i in acme_issues) == ["c0", "c1", "c2"]
    assert [i["alert_count"] for i in acme_issues] == [60, 60, 60]
    for i in acme_issues:
        linked = req(srv, key, "GET", f"/v1/issues/{i['id']}/alerts?limit=1000",
                     expect=200)["data"]
        assert len(linked) == 60
        assert {a["connection"] for a in linked} == {i["group"]["connection"]}
        tl = timeline(srv, key, i["id"])
        assert [e["kind"] for e in tl].count("opened") == 1
        assert sum(e["count"] for e in tl if e["kind"] == "alert_added") == 59
    (g,) = issues(srv, other, f"policy_id={pg_['id']}")
    assert g["alert_count"] == 180
    assert len(req(srv, other, "GET", f"/v1/issues/{g['id']}/alerts?limit=1000",
                   expect=200)["data"]) == 180
    assert issues(srv, other, f"policy_id={pa['id']}") == []
    mine = req(srv, key, "GET", "/v1/alerts?limit=1000", expect=200)["data"]
    assert len(mine) == 200
    for a in mine:
        assert len(a["issue_ids"]) == (0 if a["event"] == "shipment.export_failed" else 1)
        assert a["issue_ids"] == [] or a["issue_ids"][0] in {i["id"] for i in acme_issues}
    _, _, text = srv.request("GET", "/metrics")
    assert "sluice_alerts_recorded_total 400" in text
    assert "sluice_alerts_matched_total 360" in text


def test_issue_lifecycle(acme):
    srv, key = acme
    p = policy(srv, key, [{"event": "order.import_failed"}], auto_close_after=None)
    report(srv, key, alert())
    (iss,) = issues(srv, key)
    assert iss["status"] == "open" and iss["previous_issue_id"] is None
    assert iss["title"] == "order.import_failed on shopify-main"
    assert iss["group"] == {"event": "order.import_failed", "connection": "shopify-main"}

    a = req(srv, key, "POST", f"/v1/issues/{iss['id']}/acknowledge", expect=200)
    assert a["status"] == "acknowledged" and RFC3339_MS.match(a["acknowledged_at"])
    assert_problem(srv.request("POST", f"/v1/issues/{iss['id']}/acknowledge", token=key), 409)
    report(srv, key, alert())  # an acknowledged issue still collects its key's alerts
    assert req(srv, key, "GET", f"/v1/issues/{iss['id']}", expect=200)["alert_count"] == 2

    c = req(srv, key, "POST", f"/v1/issues/{iss['id']}/comments", {"comment": "looking"},
            expect=201)
    assert c["id"] == iss["id"]
    assert_problem(srv.request("POST", f"/v1/issues/{iss['id']}/comments", {}, token=key),
                   422, "comment")
    closed = req(srv, key, "POST", f"/v1/issues/{iss['id']}/close",
                 {"comment": "fixed the SKU"}, expect=200)
    assert closed["status"] == "closed" and closed["close_reason"] == "manual"
    assert_problem(srv.request("POST", f"/v1/issues/{iss['id']}/close", token=key), 409)

    # a new alert for a closed key opens a new issue that links the previous one
    report(srv, key, alert())
    new = [i for i in issues(srv, key, "status=open")]
    assert len(new) == 1 and new[0]["id"] != iss["id"]
    assert new[0]["previous_issue_id"] == iss["id"]
    assert any(iss["id"] in (e["detail"] or "") for e in timeline(srv, key, new[0]["id"])
               if e["kind"] == "opened")
    # the old one cannot reopen while the key has an open issue
    assert_problem(srv.request("POST", f"/v1/issues/{iss['id']}/reopen", token=key), 409)
    req(srv, key, "POST", f"/v1/issues/{new[0]['id']}/close", expect=200)
    re = req(srv, key, "POST", f"/v1/issues/{iss['id']}/reopen", expect=200)
    assert re["status"] == "open" and re["closed_at"] is None and re["close_reason"] is None
    assert_problem(srv.request("POST", f"/v1/issues/{iss['id']}/reopen", token=key), 409)

    kinds = [e["kind"] for e in reversed(timeline(srv, key, iss["id"]))]
    assert kinds == ["opened", "acknowledged", "alert_added", "comment", "closed", "reopened"]
    tl = timeline(srv, key, iss["id"])
    closed_entry = [e for e in tl if e["kind"] == "closed"][0]
    assert "fixed the SKU" in closed_entry["detail"]
    assert closed_entry["actor"] == "key:ops-admin"
    assert [i["id"] for i in issues(srv, key, "status=closed")] == [new[0]["id"]]
    assert len(issues(srv, key, "connection=shopify-main")) == 2
    assert issues(srv, key, "connection=elsewhere") == []
    assert_problem(srv.request("GET", "/v1/issues?status=weird", token=key), 400)
    assert req(srv, key, "GET", f"/v1/alert-policies/{p['id']}",
               expect=200)["open_issue_count"] == 1


def test_auto_close(acme):
    srv, key = acme
    # 1h scaled by 3600 is one second; acknowledging does not stop auto-close
    policy(srv, key, [{"event": "order.*"}], auto_close_after="1h", name="short")
    keep = policy(srv, key, [{"event": "order.*"}], auto_close_after=None, name="forever")
    report(srv, key, alert())
    short = [i for i in issues(srv, key) if i["policy_id"] != keep["id"]][0]
    req(srv, key, "POST", f"/v1/issues/{short['id']}/acknowledge", expect=200)
    got = wait_for(lambda: (lambda i: i if i["status"] == "closed" else None)(
        req(srv, key, "GET", f"/v1/issues/{short['id']}", expect=200)), 15,
        what="auto-close")
    assert got["close_reason"] == "auto"
    assert [e["kind"] for e in timeline(srv, key, short["id"])][0] == "closed"
    time.sleep(0.5)  # the other policy's issue must stay open (null auto_close_after)
    assert [i["status"] for i in issues(srv, key, f"policy_id={keep['id']}")] == ["open"]


def test_close_on_recovery(acme):
    srv, key = acme
    p = policy(srv, key, [{"event": "order.import_failed"}], close_on_recovery=True,
               auto_close_after=None)
    plain = policy(srv, key, [{"event": "order.import_failed"}], auto_close_after=None,
                   name="no recovery")
    t1 = req(srv, key, "POST", "/v1/tasks", {"kind": "order_import", "connection":
                                             "shopify-main", "entity_id": "ORD-1",
                                             "status": "failed"}, expect=201)
    t2 = req(srv, key, "POST", "/v1/tasks", {"kind": "order_import", "connection":
                                             "shopify-main", "entity_id": "ORD-2",
                                             "status": "failed"}, expect=201)
    report(srv, key, [alert(entity_id="ORD-1", task_id=t1["id"]),
                      alert(entity_id="ORD-2", task_id=t2["id"])])
    (iss,) = issues(srv, key, f"policy_id={p['id']}")
    assert iss["alert_count"] == 2
    req(srv, key, "PATCH", f"/v1/tasks/{t1['id']}", {"status": "succeeded"}, expect=200)
    assert req(srv, key, "GET", f"/v1/issues/{iss['id']}", expect=200)["status"] == "open"
    req(srv, key, "POST", "/v1/tasks", {"kind": "order_import", "connection": "shopify-main",
                                        "entity_id": "ORD-2", "status": "succeeded"},
        expect=201)
    got = req(srv, key, "GET", f"/v1/issues/{iss['id']}", expect=200)
    assert got["status"] == "closed" and got["close_reason"] == "recovered"
    assert [i["status"] for i in issues(srv, key, f"policy_id={plain['id']}")] == ["open"]


# ------------------------------------------------------------------ isolation, helpers


def test_tenant_isolation_and_permissions(acme):
    srv, key = acme
    make_tenant(srv, "globex")
    other = make_key(srv, "globex", ALL_PERMS)
    ch = channel(srv, key)
    p = policy(srv, key, [{"event": "order.*"}], channel_ids=[ch["id"]])
    t = req(srv, key, "POST", "/v1/tasks", {"kind": "k", "status": "failed"}, expect=201)
    a = report(srv, key, alert(task_id=t["id"]))["ids"][0]
    (iss,) = issues(srv, key)
    for method, path, body in [
        ("GET", f"/v1/alerts/{a}", None), ("POST", f"/v1/alerts/{a}/resolve", None),
        ("GET", f"/v1/tasks/{t['id']}", None),
        ("PATCH", f"/v1/tasks/{t['id']}", {"status": "succeeded"}),
        ("GET", f"/v1/alert-policies/{p['id']}", None),
        ("PATCH", f"/v1/alert-policies/{p['id']}", {"name": "mine"}),
        ("POST", f"/v1/alert-policies/{p['id']}/monitored-events",
         {"monitored_events": [{"event": "order.*"}]}),
        ("DELETE", f"/v1/alert-policies/{p['id']}", None),
        ("GET", f"/v1/notification-channels/{ch['id']}", None),
        ("PATCH", f"/v1/notification-channels/{ch['id']}", {"name": "mine"}),
        ("POST", f"/v1/notification-channels/{ch['id']}/test", None),
        ("DELETE", f"/v1/notification-channels/{ch['id']}?force=true", None),
        ("GET", f"/v1/issues/{iss['id']}", None), ("GET", f"/v1/issues/{iss['id']}/alerts", None),
        ("GET", f"/v1/issues/{iss['id']}/timeline", None),
        ("POST", f"/v1/issues/{iss['id']}/acknowledge", None),
        ("POST", f"/v1/issues/{iss['id']}/close", None),
        ("POST", f"/v1/issues/{iss['id']}/reopen", None),
        ("POST", f"/v1/issues/{iss['id']}/comments", {"comment": "x"}),
    ]:
        assert_problem(srv.request(method, path, body, token=other), 404)
    # a foreign channel cannot be attached; a foreign task cannot be referenced
    assert_problem(srv.request("POST", "/v1/alert-policies",
                               {"name": "x", "monitored_events": [{"event": "order.*"}],
                                "channel_ids": [ch["id"]]}, token=other), 422, "channel_ids[0]")
    assert_problem(srv.request("POST", "/v1/alerts", alert(task_id=t["id"]), token=other), 422,
                   "task_id")
    for path in ["/v1/alerts", "/v1/tasks", "/v1/alert-policies", "/v1/notification-channels",
                 "/v1/issues", "/v1/notifications", "/v1/connections"]:
        assert req(srv, other, "GET", path, expect=200)["data"] == [], path
    # the other tenant's alert opens nothing here
    report(srv, other, alert())
    assert len(issues(srv, key)) == 1 and issues(srv, other) == []
    # and nothing changed for acme
    assert req(srv, key, "GET", f"/v1/issues/{iss['id']}", expect=200)["status"] == "open"

    view = make_key(srv, "acme", ["alerts:view"])
    reporter = make_key(srv, "acme", ["alerts:report"])
    assert_problem(srv.request("POST", "/v1/alert-policies", {"name": "x"}, token=view), 403)
    assert_problem(srv.request("POST", f"/v1/issues/{iss['id']}/close", token=reporter), 403)
    assert_problem(srv.request("POST", "/v1/alerts", alert(), token=view), 403)
    assert_problem(srv.request("GET", "/v1/alerts", token=reporter), 403)
    assert srv.request("GET", "/v1/issues", token=view)[0] == 200
    assert srv.request("POST", "/v1/alerts", alert(), token=reporter)[0] == 202


def test_failure_types_connections_stats_metrics(acme):
    srv, key = acme
    ft = req(srv, key, "GET", "/v1/failure-types", expect=200)["data"]
    names = {f["name"]: f["category"] for f in ft}
    assert names["order.import_failed"] == "order"
    assert names["event_stream.delivery_failed"] == "event_stream"
    assert "order.created" not in names
    policy(srv, key, [{"event": "order.*"}])
    report(srv, key, [alert(connection="shop-a"), alert(connection="shop-a"),
                      alert(event="shipment.export_failed", connection="ups")])
    conns = {c["connection"]: c for c in req(srv, key, "GET", "/v1/connections",
                                             expect=200)["data"]}
    assert conns["shop-a"]["alert_count"] == 2 and conns["shop-a"]["open_issue_count"] == 1
    assert conns["ups"]["alert_count"] == 1 and conns["ups"]["open_issue_count"] == 0
    assert RFC3339_MS.match(conns["ups"]["last_alert_at"])
    st = req(srv, key, "GET", "/v1/stats?bucket=1m", expect=200)
    assert sum(b["alerts"] for b in st["buckets"]) == 3
    assert all({"at", "deliveries", "alerts", "events"} <= set(b) for b in st["buckets"])
    assert "oldest_pending_at" in st
    assert_problem(srv.request("GET", "/v1/stats?bucket=2m", token=key), 400)
    status, _, text = srv.request("GET", "/metrics")
    assert status == 200
    assert "sluice_alerts_recorded_total 3" in text
    assert "sluice_issues_opened_total 1" in text
    assert 'sluice_issues_closed_total{reason="auto"}' in text
    assert "sluice_issues_open 1" in text


def test_event_stream_failures_open_issues(stream):
    """A consumer's rejection is recorded as an alert (connection = integration id) and opens
    an issue like any other failure; no delivery task appears unless an alert is recorded."""
    s = stream(args=["--time-scale", "3600"])
    p = policy(s.server, s.key, [{"event": "event_stream.*", "connections": ["erp"]}],
               group_by=["event", "connection"], name="ERP feed")
    s.create("erp", events=["order"])
    s.create("bi", events=["order"])
    s.rcv.set("/erp", lambda r: (400, {}, '{"error":"bad sku"}'))
    s.rcv.set("/bi", lambda r: (400, {}, '{"error":"nope"}'))
    s.publish([{"type": "order.created", "entity_id": "ORD-1", "payload": {}},
               {"type": "order.created", "entity_id": "ORD-2", "payload": {}}])

    def erp_issue():
        got = issues(s.server, s.key, f"policy_id={p['id']}")
        return got if got and got[0]["alert_count"] == 2 else None

    (iss,) = wait_for(erp_issue, 20, what="the rejection issue")
    assert iss["group"] == {"event": "event_stream.event_rejected", "connection": "erp"}
    alerts = req(s.server, s.key, "GET", f"/v1/issues/{iss['id']}/alerts", expect=200)["data"]
    assert {a["entity_id"] for a in alerts} == {"ORD-1", "ORD-2"}
    assert all(a["connection"] == "erp" and a["task_id"] for a in alerts)
    task = req(s.server, s.key, "GET", f"/v1/tasks/{alerts[0]['task_id']}", expect=200)
    assert task["kind"] == "webhook_delivery" and task["alerts"][0]["id"] == alerts[0]["id"]
    # "bi" rejections are alerts too, but the policy only watches "erp"
    wait_for(lambda: req(s.server, s.key, "GET", "/v1/alerts?connection=bi",
                         expect=200)["data"], 20, what="bi alerts")
    assert len(issues(s.server, s.key)) == 1


def test_two_nodes_one_open_issue_per_key(start_server, pg):
    """Two nodes on one PostgreSQL race to open the same key's issue: the partial unique
    index lets one win; the other adds to the winner's issue."""
    import secrets as _secrets
    name = "t_" + _secrets.token_hex(6)
    pg.psql(f"CREATE DATABASE {name}")
    a = start_server(db=pg.url(name), args=["--time-scale", "3600"])
    b = start_server(db=pg.url(name), admin_token=a.admin_token,
                     args=["--time-scale", "3600", "--master-key-file",
                           f"{a.data_dir}/master-key"])
    make_tenant(a, "acme")
    key = make_key(a, "acme", ALL_PERMS)
    p = policy(a, key, [{"event": "order.*"}], group_by=["connection"])

    def one(i):
        srv = a if i % 2 else b
        return srv.request("POST", "/v1/alerts",
                           {"alerts": [alert(connection=f"shop-{k}", entity_id=f"E{i}")
                                       for k in range(5)]}, token=key)[0]

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(one, range(60)))
    assert codes == [202] * 60
    got = issues(a, key, f"policy_id={p['id']}")
    assert len(got) == 5, got
    assert all(i["alert_count"] == 60 and i["status"] == "open" for i in got)
    assert sorted(i["group"]["connection"] for i in got) == [f"shop-{k}" for k in range(5)]


def test_policies_and_channels_paginate(acme):
    srv, key = acme
    pols = [policy(srv, key, [{"event": "order.*"}], name=f"P{i}")["id"] for i in range(3)]
    chans = [channel(srv, key, name=f"C{i}")["id"] for i in range(3)]
    for path, made in (("/v1/alert-policies", pols), ("/v1/notification-channels", chans)):
        page = req(srv, key, "GET", f"{path}?limit=2", expect=200)
        assert [x["id"] for x in page["data"]] == made[::-1][:2] and page["next_cursor"], page
        rest = req(srv, key, "GET", f"{path}?limit=2&cursor={page['next_cursor']}", expect=200)
        assert [x["id"] for x in rest["data"]] == [made[0]] and rest["next_cursor"] is None
