"""Managing webhook integrations (issue 3): pause/resume with and without the backlog,
delete, PATCH rules, temporary integrations (end date, backfill window), redeliver, logs,
the SSRF guard, secrets at rest and in responses/logs, tenant isolation and permissions.
Every test runs on SQLite and PostgreSQL against a real HTTP receiver (receiver.py)."""

import concurrent.futures
import json
import os
import subprocess
import time

from conftest import PG_BIN, assert_problem, make_key, make_tenant
from receiver import fmt_time, parse_time, verify_signatures


def idle(seconds):
    """A short fixed wait, used only to check that something did NOT happen."""
    time.sleep(seconds)


def order(entity_id, type_="order.created", **payload):
    return {"type": type_, "entity_id": entity_id, "payload": payload}


# --------------------------------------------------------------------------- pause / resume


def test_pause_keeps_backlog_and_resume_delivers_it(stream):
    s = stream(args=["--time-scale", "100"])
    s.create("erp")
    first = s.publish([order("O-1")])
    s.rcv.wait("/erp", 1)
    s.wait_status("erp", first, "success")

    st, _, got = s.req("POST", "/v1/integrations/erp/pause", {"reason": "ERP maintenance"})
    assert st == 200 and got["state"] == "paused", (st, got)
    assert_problem(s.req("POST", "/v1/integrations/erp/pause", {}), 409)
    assert [i["id"] for i in s.ok("GET", "/v1/integrations?state=paused")["data"]] == ["erp"]
    assert s.ok("GET", "/v1/integrations?state=active")["data"] == []

    backlog = s.publish([order("O-1", "order.updated", n=1), order("O-2"),
                         order("O-1", "order.completed", n=2)])
    idle(0.4)
    assert len(s.rcv.got("/erp")) == 1, "a paused integration sends nothing"
    assert {s.status_of("erp", e) for e in backlog} == {"pending"}
    assert s.get("erp")["stats"]["pending"] == 3

    st, _, got = s.req("POST", "/v1/integrations/erp/resume", {})
    assert st == 200 and got["state"] == "active", (st, got)
    assert_problem(s.req("POST", "/v1/integrations/erp/resume", {}), 409)
    s.wait_status("erp", backlog, "success")
    reqs = s.rcv.wait("/erp", 4)
    o1 = [r.json["id"] for r in reqs if r.json["entity_id"] == "O-1"]
    assert o1 == [first[0], backlog[0], backlog[2]], "the backlog keeps entity order"

    logs = s.logs("erp")  # newest first
    assert [(l["action"], l["reason"]) for l in logs] == [
        ("started", "resumed by key manager"),
        ("stopped", "paused by key manager: ERP maintenance"),
        ("started", "created"),
    ], logs
    for l in logs:
        assert l["actor"] == "key:manager", l
        assert l["created_at"].endswith("Z"), l


def test_pause_freezes_retries(stream):
    s = stream(args=["--time-scale", "100"])
    s.create("erp")
    s.rcv.set("/erp", 500)
    ids = s.publish([order("O-1")])
    s.rcv.wait("/erp", 2)
    s.ok("POST", "/v1/integrations/erp/pause", {})
    n = len(s.rcv.got("/erp"))
    idle(1.0)  # the next retry (2 m / 100 = 1.2 s) may be at most one in flight
    assert len(s.rcv.got("/erp")) <= n + 1
    m = len(s.rcv.got("/erp"))
    idle(1.5)
    assert len(s.rcv.got("/erp")) == m, "no retries while paused"
    s.rcv.set("/erp", 200)
    s.ok("POST", "/v1/integrations/erp/resume", {"skip_backlog": False})
    s.wait_status("erp", ids, "success")


def test_resume_with_skip_backlog(stream):
    s = stream(args=["--time-scale", "100"])
    s.create("erp")
    s.ok("POST", "/v1/integrations/erp/pause")
    held = s.publish([order("O-1"), order("O-1", "order.updated"), order("O-2")])
    st, _, got = s.req("POST", "/v1/integrations/erp/resume", {"skip_backlog": True})
    assert st == 200 and got["state"] == "active", got
    idle(0.4)
    assert s.rcv.got("/erp") == [], "skipped events are not delivered"
    for e in held:
        assert s.status_of("erp", e) == "skipped"
    assert {r["event_id"] for r in s.events("erp", "status=skipped")} == set(held)
    assert s.get("erp")["stats"]["skipped"] == 3
    log = s.logs("erp")[0]
    assert log["action"] == "started" and "skip" in log["reason"], log
    live = s.publish([order("O-1", "order.completed")])
    s.wait_status("erp", live, "success")
    assert [r.json["id"] for r in s.rcv.got("/erp")] == live
    assert_problem(s.req("POST", "/v1/integrations/erp/resume", {"skip_backlog": "yes"}), 422,
                   "skip_backlog")
    assert log["actor"] == "key:manager", log


# --------------------------------------------------------------------------- delete


def test_delete_drops_pending_and_keeps_the_event_log(stream):
    s = stream(args=["--time-scale", "100"])
    s.create("erp")
    s.ok("POST", "/v1/integrations/erp/pause")
    ids = s.publish([order("O-1"), order("O-2")])
    st, headers, body = s.req("DELETE", "/v1/integrations/erp")
    assert st == 204, (st, body)
    assert body in ("", None), body
    assert_problem(s.req("GET", "/v1/integrations/erp"), 404)
    assert_problem(s.req("GET", "/v1/integrations/erp/events"), 404)
    assert_problem(s.req("DELETE", "/v1/integrations/erp"), 404)
    assert_problem(s.req("POST", "/v1/integrations/erp/resume"), 404)
    assert s.ok("GET", "/v1/integrations")["data"] == []
    for e in ids:  # the event log is untouched
        assert s.ok("GET", f"/v1/events/{e}")["id"] == e
    # A new integration with the same id starts empty: the dropped backlog does not return,
    # and neither do the old integration's log rows (created, paused, deleted).
    s.create("erp")
    assert [(l["action"], l["reason"]) for l in s.logs("erp")] == [("started", "created")]
    live = s.publish([order("O-3")])
    s.wait_status("erp", live, "success")
    idle(0.3)
    assert [r.json["id"] for r in s.rcv.got("/erp")] == live
    assert [r["event_id"] for r in s.events("erp")] == live


# --------------------------------------------------------------------------- PATCH


def test_patch_rules(stream):
    s = stream(args=["--time-scale", "100"])
    created = s.create("erp", events=["order"], target={
        "type": "webhook", "url": s.rcv.url("/v1"), "api_key": "first-key-AAAA"})
    assert created["max_in_flight"] == 16

    # events: re-routes from now on
    got = s.ok("PATCH", "/v1/integrations/erp", {"events": ["shipment.created"]})
    assert got["events"] == ["shipment.created"] and got["target"]["api_key"] == "****AAAA", got
    assert "signing_secret" not in got
    ids = s.publish([order("O-1"), {"type": "shipment.created", "entity_id": "S-1",
                                    "payload": {}},
                     {"type": "shipment.delivered", "entity_id": "S-1", "payload": {}}])
    s.wait_status("erp", [ids[1]], "success")
    idle(0.2)
    assert [r.json["id"] for r in s.rcv.got("/v1")] == [ids[1]]
    assert [r["event_id"] for r in s.events("erp")] == [ids[1]]

    # target with the key masked, then left out: the stored key is kept
    got = s.ok("PATCH", "/v1/integrations/erp", {"target": {
        "type": "webhook", "url": s.rcv.url("/v2"), "api_key": "****AAAA"}})
    assert got["target"]["url"] == s.rcv.url("/v2") and got["target"]["api_key"] == "****AAAA"
    got = s.ok("PATCH", "/v1/integrations/erp", {"target": {"url": s.rcv.url("/v3")},
                                                  "max_in_flight": 4})
    assert got["target"]["api_key"] == "****AAAA" and got["max_in_flight"] == 4, got
    assert got["target"]["type"] == "webhook", got
    ids = s.publish([{"type": "shipment.created", "entity_id": "S-2", "payload": {}}])
    req = s.rcv.wait("/v3", 1)[0]
    assert req.headers["authorization"] == "Bearer first-key-AAAA", req.header_list
    assert s.rcv.got("/v2") == []

    # a new key and a custom header
    got = s.ok("PATCH", "/v1/integrations/erp", {"target": {
        "type": "webhook", "url": s.rcv.url("/v4"), "api_key": "second-key-BBBB",
        "api_key_header": "X-API-Key"}})
    assert got["target"]["api_key"] == "****BBBB" and got["target"]["api_key_header"] == \
        "X-API-Key", got
    s.publish([{"type": "shipment.created", "entity_id": "S-3", "payload": {}}])
    req = s.rcv.wait("/v4", 1)[0]
    assert req.headers["x-api-key"] == "second-key-BBBB" and "authorization" not in req.headers

    # what may not change
    for body, field in [({"ordering": "none"}, "ordering"), ({"id": "other"}, "id"),
                        ({"type": "temporary"}, "type"), ({"end_at": fmt_time(time.time() + 60)},
                                                          "end_at"),
                        ({"start_at": fmt_time(time.time())}, "start_at"),
                        ({"state": "paused"}, "state"), ({"signing_secret": "whsec_x"},
                                                         "signing_secret"),
                        ({"target": {"type": "s3", "bucket": "b", "region": "eu-central-1"}},
                         "target.type"),
                        ({"target": {"url": "ftp://example.com/x"}}, "target.url"),
                        ({"max_in_flight": 0}, "max_in_flight"),
                        ({"max_in_flight": 257}, "max_in_flight"),
                        ({"events": []}, "events"),
                        ({"events": ["nosuch.thing"]}, "events[0]")]:
        assert_problem(s.req("PATCH", "/v1/integrations/erp", body), 422, field)
    got = s.get("erp")
    assert got["events"] == ["shipment.created"] and got["ordering"] == "entity", got
    assert got["target"]["url"] == s.rcv.url("/v4") and got["max_in_flight"] == 4, got
    assert_problem(s.req("PATCH", "/v1/integrations/nosuch", {"events": ["order"]}), 404)


# --------------------------------------------------------------------------- temporary


def test_temporary_integration_stops_at_end_date(stream):
    s = stream(args=["--time-scale", "100"])
    assert_problem(s.req("POST", "/v1/integrations", {
        "id": "t", "type": "temporary", "events": ["order"],
        "target": {"type": "webhook", "url": s.rcv.url("/t")}}), 422, "end_at")
    assert_problem(s.req("POST", "/v1/integrations", {
        "id": "t", "type": "permanent", "end_at": fmt_time(time.time() + 60), "events": ["order"],
        "target": {"type": "webhook", "url": s.rcv.url("/t")}}), 422, "end_at")
    end = time.time() + 1.5
    created = s.create("promo", type="temporary", end_at=fmt_time(end))
    assert created["type"] == "temporary" and created["end_at"] == fmt_time(end), created
    before = s.publish([order("O-1")])
    s.wait_status("promo", before, "success")
    got = s.wait_state("promo", "stopped", timeout=10)
    assert time.time() >= end - 0.05
    log = s.wait_log("promo", "reached end date")
    assert log["action"] == "stopped" and log["actor"] == "system", log
    assert [i["id"] for i in s.ok("GET", "/v1/integrations?state=stopped")["data"]] == ["promo"]
    assert_problem(s.req("POST", "/v1/integrations/promo/resume", {}), 409)
    after = s.publish([order("O-2")])
    idle(0.3)
    assert [r.json["id"] for r in s.rcv.got("/promo")] == before
    assert [r["event_id"] for r in s.events("promo")] == before, "nothing routed after end"
    assert got["stats"]["succeeded"] == 1
    assert after
    # a planned end is not an incident: no integration_stopped alert
    assert not [a for a in s.alerts("event_stream.integration_stopped")
                if a["connection"] == "promo"]


def test_backfill_window_in_publish_order(stream):
    s = stream(args=["--time-scale", "100"])
    s.publish([order("O-1"), {"type": "return.created", "entity_id": "R-0", "payload": {}}])
    time.sleep(0.05)
    start = time.time()
    time.sleep(0.02)
    window = []
    for i in range(4):  # several requests, several entities and types
        window += s.publish([order(f"O-{i % 2}", "order.updated", i=i),
                             {"type": "shipment.created", "entity_id": f"S-{i}", "payload": {}},
                             {"type": "return.created", "entity_id": f"R-{i}", "payload": {}},
                             {"type": "return.processed", "entity_id": f"R-{i}", "payload": {}}])
    time.sleep(0.02)
    end = time.time()
    time.sleep(0.05)
    late = s.publish([order("O-1", "order.completed"),
                      {"type": "return.created", "entity_id": "R-9", "payload": {}}])
    matching = [e for e in window
                if s.ok("GET", f"/v1/events/{e}")["type"] in ("order.updated", "return.created")]
    assert len(matching) == 8

    # The replay tool: a temporary integration for a past window. ordering "none" and one
    # request at a time, so the arrival order is the routing order.
    created = s.create("replay", events=["order", "return.created"], type="temporary",
                       start_at=fmt_time(start), end_at=fmt_time(end), ordering="none",
                       max_in_flight=1)
    assert created.get("backfilled", len(matching)) == len(matching), created
    s.wait_status("replay", matching, "success")
    idle(0.3)
    reqs = s.rcv.got("/replay")
    assert [r.json["id"] for r in reqs] == matching, "exactly the window's events, in order"
    seqs = {e: s.ok("GET", f"/v1/events/{e}")["sequence"] for e in matching}
    assert all(r.json["sequence"] == seqs[r.json["id"]] for r in reqs), "original sequence"
    s.wait_state("replay", "stopped")

    # A permanent integration starting in the past (default entity ordering): the backfill,
    # then live events; each entity's events in publish order.
    s.create("since", events=["order", "return.created"], start_at=fmt_time(start))
    live = s.publish([order("O-0", "order.cancelled"), order("O-1", "order.cancelled")])
    expected = matching + late + live  # every one of them matches
    s.wait_status("since", expected, "success")
    idle(0.2)
    reqs = s.rcv.got("/since")
    assert sorted(r.json["id"] for r in reqs) == sorted(expected)
    for ent in {r.json["entity_id"] for r in reqs}:
        got = [r.json["id"] for r in reqs if r.json["entity_id"] == ent]
        assert got == [e for e in expected if e in got], (ent, got)


# --------------------------------------------------------------------------- audit views


def test_events_view_filters_and_pagination(stream):
    s = stream(args=["--time-scale", "100"])
    s.create("erp", ordering="none")
    s.rcv.set("/erp", lambda r: 400 if r.json["entity_id"] == "BAD" else 200)
    first = s.publish([order(f"E-{i % 3}", i=i) for i in range(12)])
    time.sleep(0.02)
    mid = time.time()
    time.sleep(0.02)
    second = s.publish([order(f"E-{i % 3}", i=i) for i in range(13)] + [order("BAD")])
    every = first + second
    s.wait_status("erp", every[:-1], "success")
    s.wait_status("erp", every[-1:], "rejected")

    # cursor pagination: newest first, no gaps, no repeats
    seen, cursor, pages = [], None, 0
    while True:
        path = "/v1/integrations/erp/events?limit=10" + (f"&cursor={cursor}" if cursor else "")
        body = s.ok("GET", path)
        assert len(body["data"]) <= 10
        seen += [r["event_id"] for r in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and seen == list(reversed(every)), (pages, seen)
    for r in s.events("erp"):
        assert set(r) >= {"event_id", "type", "entity_id", "status", "attempts",
                          "attempted_at", "response_status", "error", "batch_key"}, r

    e1 = s.events("erp", "entity_id=E-1")
    assert {r["entity_id"] for r in e1} == {"E-1"} and len(e1) == 4 + 4, e1
    assert [r["event_id"] for r in s.events("erp", "status=rejected")] == every[-1:]
    assert len(s.events("erp", "status=success")) == 25
    assert s.events("erp", "status=pending") == []
    assert s.events("erp", "status=failure") == []
    assert [r["event_id"] for r in s.events("erp", f"from={fmt_time(mid)}")] == \
        list(reversed(second))
    assert [r["event_id"] for r in s.events("erp", f"to={fmt_time(mid)}")] == \
        list(reversed(first))
    assert_problem(s.req("GET", "/v1/integrations/erp/events?status=bogus"), 400)
    assert_problem(s.req("GET", "/v1/integrations/erp/events?from=yesterday"), 400)
    assert_problem(s.req("GET", "/v1/integrations/erp/events?limit=0"), 400)
    rej = s.ok("GET", f"/v1/integrations/erp/rejected-events?from={fmt_time(mid)}")["data"]
    assert [r["event_id"] for r in rej] == every[-1:], rej
    rej = s.ok("GET", f"/v1/integrations/erp/rejected-events?to={fmt_time(mid)}")["data"]
    assert rej == [], rej
    # the attempts of an event the integration never had: 404, not an empty list
    assert_problem(s.req("GET", "/v1/integrations/erp/events/evt_01NOSUCH0000000000000000000"
                                "/attempts"), 404)


# --------------------------------------------------------------------------- redeliver


def test_redeliver_by_ids_and_by_status(stream):
    s = stream(args=["--time-scale", "100"])
    s.create("erp", ordering="none")
    s.rcv.set("/erp", lambda r: 400 if r.json["payload"].get("bad") else 200)
    ids = s.publish([order("O-1", bad=True), order("O-2", bad=True), order("O-3")])
    s.wait_status("erp", ids[:2], "rejected")
    s.wait_status("erp", ids[2:], "success")
    assert len(s.rcv.got("/erp")) == 3

    s.rcv.set("/erp", 200)
    assert s.ok("POST", "/v1/integrations/erp/redeliver", {"status": "rejected"},
                expect=202) == {"queued": 2, "not_selected": 0}
    reqs = s.rcv.wait("/erp", 5)
    again = reqs[3:]
    deadline = time.monotonic() + 10
    while any(r["status"] == "pending" for r in s.events("erp")):
        assert time.monotonic() < deadline, s.events("erp")
        time.sleep(0.05)
    assert sorted(r.json["id"] for r in again) == sorted(ids[:2])
    for r in again:
        assert r.headers["webhook-id"] == r.json["id"]
        assert r.json["sequence"] == 1 and r.json["attempt"] == 1, r.json
    rows = s.events("erp")
    assert len(rows) == 5, rows  # each redelivery is a new delivery row
    assert sorted(r["status"] for r in rows) == ["rejected", "rejected", "success", "success",
                                                 "success"], rows

    assert s.ok("POST", "/v1/integrations/erp/redeliver", {"event_ids": [ids[2]]},
                expect=202) == {"queued": 1, "not_selected": 0}
    s.rcv.wait("/erp", 6)
    assert s.rcv.got("/erp")[5].json["id"] == ids[2]
    # a window that holds no rejections
    assert s.ok("POST", "/v1/integrations/erp/redeliver",
                {"status": "rejected", "from": fmt_time(time.time() + 3600)},
                expect=202) == {"queued": 0, "not_selected": 0}
    assert_problem(s.req("POST", "/v1/integrations/erp/redeliver",
                         {"event_ids": ["evt_01NOSUCHEVENT0000000000000"]}), 422)
    assert_problem(s.req("POST", "/v1/integrations/erp/redeliver", {"status": "success"}), 422,
                   "status")
    assert_problem(s.req("POST", "/v1/integrations/erp/redeliver",
                         {"event_ids": [ids[0]], "status": "rejected"}), 422)
    assert_problem(s.req("POST", "/v1/integrations/nosuch/redeliver", {"event_ids": [ids[0]]}),
                   404)
    # redelivering to a paused integration queues the event until resume
    s.ok("POST", "/v1/integrations/erp/pause")
    assert s.ok("POST", "/v1/integrations/erp/redeliver", {"event_ids": [ids[2]]},
                expect=202) == {"queued": 1, "not_selected": 0}
    idle(0.3)
    assert len(s.rcv.got("/erp")) == 6
    s.ok("POST", "/v1/integrations/erp/resume")
    assert s.rcv.wait("/erp", 7)[6].json["id"] == ids[2]


def test_redeliver_validates_like_routing(stream):
    """Redeliver sends only what routing would: an event the integration does not select
    (its events, its start and end) is refused by name, a stopped integration takes
    nothing, and in both cases nothing is sent."""
    s = stream(args=["--time-scale", "100"])
    s.create("erp", ordering="none")
    s.rcv.set("/erp", lambda r: 400 if r.json["entity_id"] == "BAD" else 200)
    o1, bad, shp = s.publish([order("O-1"), order("BAD"),
                              {"type": "shipment.created", "entity_id": "S-1", "payload": {}}])
    s.wait_status("erp", [o1], "success")
    s.wait_status("erp", [bad], "rejected")
    sent = len(s.rcv.got("/erp"))
    assert sent == 2
    # an event the integration does not select, among ones it does: refused, by name
    body = assert_problem(s.req("POST", "/v1/integrations/erp/redeliver",
                                {"event_ids": [o1, shp]}), 422, "event_ids[1]")
    assert shp in body["detail"], body
    # by status, after the subscription changed: what it no longer selects is not sent
    s.ok("PATCH", "/v1/integrations/erp", {"events": ["shipment"]})
    assert s.ok("POST", "/v1/integrations/erp/redeliver", {"status": "rejected"},
                expect=202) == {"queued": 0, "not_selected": 1}
    assert_problem(s.req("POST", "/v1/integrations/erp/redeliver", {"event_ids": [bad]}), 422,
                   "event_ids[0]")
    # an event published before a start_at is not selected either
    s.create("late", start_at=fmt_time(time.time()))
    assert_problem(s.req("POST", "/v1/integrations/late/redeliver", {"event_ids": [o1]}), 422,
                   "event_ids[0]")
    # a stopped integration (past its end date) takes nothing, selected or not
    s.create("promo", type="temporary", end_at=fmt_time(time.time() + 1), ordering="none")
    p1 = s.publish([order("O-2")])[0]
    s.wait_status("promo", [p1], "success")
    s.wait_status("late", [p1], "success")  # live events after its start_at: selected
    s.wait_state("promo", "stopped", timeout=10)
    for body in ({"event_ids": [p1]}, {"status": "failure"}):
        assert_problem(s.req("POST", "/v1/integrations/promo/redeliver", body), 409)
    idle(0.3)
    assert len(s.rcv.got("/erp")) == sent and len(s.rcv.got("/promo")) == 1, "nothing sent"
    assert [r.json["id"] for r in s.rcv.got("/late")] == [p1]
    assert len(s.events("erp")) == 2 and len(s.events("promo")) == 1
    assert [r["event_id"] for r in s.events("late")] == [p1]


def test_temporary_integration_ending_in_the_past_is_refused(stream):
    """It would take nothing and stop at once: 422, and nothing is created. With a start_at
    before it, a past end_at is the replay of that window (test_backfill_window...)."""
    s = stream()
    past = fmt_time(time.time() - 60)
    assert_problem(s.req("POST", "/v1/integrations", {
        "id": "t", "type": "temporary", "end_at": past, "events": ["order"],
        "target": {"type": "webhook", "url": s.rcv.url("/t")}}), 422, "end_at")
    assert_problem(s.req("GET", "/v1/integrations/t"), 404)
    assert s.ok("GET", "/v1/integrations")["data"] == []
    created = s.create("t", type="temporary", start_at=fmt_time(time.time() - 120), end_at=past)
    assert created["state"] in ("active", "stopped"), created


# --------------------------------------------------------------------------- SSRF guard


def test_ssrf_guard_refuses_private_targets(stream, receiver):
    s = stream(private=False)
    for url in [receiver.url("/x"), "http://localhost:8080/x", "http://10.1.2.3/x",
                "http://192.168.0.10/x", "http://172.16.5.4/x", "http://169.254.169.254/latest",
                "http://[::1]:8080/x", "http://0.0.0.0/x", "http://100.64.0.1/x",
                "ftp://example.com/x", "not a url"]:
        assert_problem(s.req("POST", "/v1/integrations", {
            "id": "x", "events": ["order"], "target": {"type": "webhook", "url": url}}), 422,
            "target.url")
    assert s.ok("GET", "/v1/integrations")["data"] == []


def test_ssrf_guard_at_connect_time(stream, receiver):
    """An integration created while private targets were allowed is not delivered to its
    loopback URL by a server that runs without --allow-private-targets."""
    s = stream(args=["--time-scale", "100"])
    s.create("erp")
    srv = s.server
    srv.stop()
    srv.args = [a for a in srv.args if a != "--allow-private-targets"]
    srv.start()
    ids = s.publish([order("O-1")])
    deadline = time.monotonic() + 10
    while not (s.events("erp") and s.events("erp")[0]["attempts"] >= 2):
        assert time.monotonic() < deadline, s.events("erp")
        time.sleep(0.05)
    assert receiver.got() == [], "the SSRF guard must refuse the connection"
    att = s.attempts("erp", ids[0])
    assert att[0]["status"] is None and att[0]["error"], att
    assert_problem(s.req("PATCH", "/v1/integrations/erp",
                         {"target": {"url": receiver.url("/other")}}), 422, "target.url")


# --------------------------------------------------------------------------- secrets


def test_secrets_never_shown_logged_or_stored_in_plain_text(stream):
    s = stream(args=["--time-scale", "100"])
    api_key = "sk-live-" + os.urandom(12).hex() + "-wxyz"
    created = s.create("erp", target={"type": "webhook", "url": s.rcv.url("/erp"),
                                      "api_key": api_key, "api_key_header": "X-API-Key"})
    secret = created["signing_secret"]
    assert secret.startswith("whsec_") and len(secret) > 20
    assert created["target"]["api_key"] == "****wxyz", created
    raw_secret = secret[len("whsec_"):]

    ids = s.publish([order("O-1")])
    s.wait_status("erp", ids, "success")
    assert s.rcv.got("/erp")[0].headers["x-api-key"] == api_key
    s.ok("POST", "/v1/integrations/erp/test")

    answers = [
        s.get("erp"), s.ok("GET", "/v1/integrations"),
        s.ok("PATCH", "/v1/integrations/erp", {"events": ["order", "return"]}),
        s.ok("PATCH", "/v1/integrations/erp", {"target": {"url": s.rcv.url("/erp"),
                                                           "api_key": "****wxyz"}}),
        s.ok("POST", "/v1/integrations/erp/pause", {}),
        s.ok("POST", "/v1/integrations/erp/resume", {}),
        s.ok("POST", "/v1/integrations/erp/test"),
        s.events("erp"), s.attempts("erp", ids[0]), s.logs("erp"),
    ]
    text = json.dumps(answers)
    assert api_key not in text and api_key[8:-5] not in text
    assert raw_secret not in text and "signing_secret" not in text
    assert "****wxyz" in text

    # a second integration to be sure its create answer holds its own, new secret
    other = s.create("erp2")
    assert other["signing_secret"] != secret

    log = s.server.full_log()
    assert api_key not in log and raw_secret not in log, "secret in the server log"

    if s.server.db is None:
        blob = b""
        for name in os.listdir(s.server.data_dir):
            if name.startswith("sluice.db"):
                with open(os.path.join(s.server.data_dir, name), "rb") as f:
                    blob += f.read()
        assert b"CREATE TABLE integrations" in blob  # we did read the database
    else:
        r = subprocess.run([f"{PG_BIN}/pg_dump", "--data-only", s.server.db],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        blob = r.stdout
        assert b"integrations" in blob
    for needle in (api_key, raw_secret, secret):
        assert needle.encode() not in blob, f"{needle[:10]}... stored in plain text"


def test_secrets_survive_restart_and_master_key_must_match(stream, tmp_path):
    s = stream(args=["--time-scale", "100"])
    created = s.create("erp")
    srv = s.server
    key_file = os.path.join(srv.data_dir, "master-key")
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    srv.stop()
    srv.start()
    ids = s.publish([order("O-1")])
    req = s.rcv.wait("/erp", 1)[0]
    assert req.headers["authorization"] == "Bearer key-erp-0123456789"
    assert verify_signatures(created["signing_secret"], [req])[0][0], "secret lost at restart"
    s.wait_status("erp", ids, "success")

    srv.stop()
    other = tmp_path / "other-master-key"
    other.write_text(os.urandom(32).hex() + "\n")
    os.chmod(other, 0o600)
    srv.args += ["--master-key-file", str(other)]
    srv.start(wait=False)
    try:
        code = srv.proc.wait(20)
    except subprocess.TimeoutExpired:
        srv.kill()
        raise AssertionError("a server with the wrong master key must refuse to start")
    assert code != 0
    assert "master key" in srv.output(), srv.output()


def test_future_start_at_routes_only_later_events(stream):
    s = stream()
    start = time.time() + 3.0
    s.create("later", start_at=fmt_time(start))
    early = s.publish([order("O-1")])
    # The premise: the first event was published before start_at (3 s of margin).
    assert parse_time(s.ok("GET", f"/v1/events/{early[0]}")["published_at"]).timestamp() < start
    while time.time() < start + 0.01:  # a clock condition, not a guess
        time.sleep(0.05)
    late = s.publish([order("O-1", "order.updated")])
    s.wait_status("later", late, "success")
    assert [r["event_id"] for r in s.events("later")] == late
    assert [r.json["id"] for r in s.rcv.got("/later")] == late
    assert early


# --------------------------------------------------------------------------- tenants, perms


ENDPOINTS = [
    ("GET", "/v1/integrations/{id}", None),
    ("PATCH", "/v1/integrations/{id}", {"events": ["order"]}),
    ("DELETE", "/v1/integrations/{id}", None),
    ("POST", "/v1/integrations/{id}/pause", {}),
    ("POST", "/v1/integrations/{id}/resume", {}),
    ("POST", "/v1/integrations/{id}/test", None),
    ("GET", "/v1/integrations/{id}/events", None),
    ("GET", "/v1/integrations/{id}/events/{event}/attempts", None),
    ("GET", "/v1/integrations/{id}/rejected-events", None),
    ("POST", "/v1/integrations/{id}/redeliver", {"event_ids": ["{event}"]}),
    ("GET", "/v1/integrations/{id}/logs", None),
]


def _fill(method, path, body, iid, event):
    p = path.replace("{id}", iid).replace("{event}", event)
    b = json.loads(json.dumps(body).replace("{event}", event)) if body is not None else None
    return method, p, b


def test_tenant_isolation_on_every_endpoint(stream):
    s = stream(args=["--time-scale", "100"])
    s.create("acme-erp")
    ids = s.publish([order("O-1")])
    s.wait_status("acme-erp", ids, "success")
    make_tenant(s.server, "globex")
    other = make_key(s.server, "globex", ["events:publish", "tools:manage"], name="g")

    for method, path, body in ENDPOINTS:
        m, p, b = _fill(method, path, body, "acme-erp", ids[0])
        assert_problem(s.req(m, p, b, key=other), 404)
    st, _, lst = s.req("GET", "/v1/integrations", key=other)
    assert st == 200 and lst["data"] == [], lst
    # ids are per tenant: globex may use the same id, and sees only its own
    st, _, mine = s.req("POST", "/v1/integrations", {
        "id": "acme-erp", "events": ["order"],
        "target": {"type": "webhook", "url": s.rcv.url("/globex")}}, key=other)
    assert st == 201, mine
    g = s.server.request("POST", "/v1/events", {"events": [order("G-1")]}, token=other)[2]["ids"]
    s.rcv.wait("/globex", 1)
    st, _, rows = s.req("GET", "/v1/integrations/acme-erp/events", key=other)
    assert [r["event_id"] for r in rows["data"]] == g, rows
    assert [r["event_id"] for r in s.events("acme-erp")] == ids
    assert [r.json["tenant"] for r in s.rcv.got("/globex")] == ["globex"]
    assert [r.json["id"] for r in s.rcv.got("/acme-erp")] == ids
    # acme's event id through globex's integration of the same name: unknown there
    st, _, att = s.req("GET", f"/v1/integrations/acme-erp/events/{ids[0]}/attempts", key=other)
    assert st in (200, 404) and (st == 404 or att["data"] == []), (st, att)
    assert_problem(s.req("POST", "/v1/integrations/acme-erp/redeliver",
                         {"event_ids": [ids[0]]}, key=other), 422)
    assert s.get("acme-erp")["state"] == "active"


def test_permissions(stream):
    s = stream()
    s.create("erp")
    ids = s.publish([order("O-1")])
    s.wait_status("erp", ids, "success")
    viewer = make_key(s.server, "acme", ["tools:view"], name="viewer")
    publisher = make_key(s.server, "acme", ["events:publish", "alerts:manage"], name="pub")

    for method, path, body in ENDPOINTS:
        m, p, b = _fill(method, path, body, "erp", ids[0])
        st, _, resp = s.req(m, p, b, key=viewer)
        if m == "GET":
            assert st == 200, (m, p, st, resp)
        else:
            assert_problem((st, _, resp), 403)
        assert_problem(s.req(m, p, b, key=publisher), 403)
        assert_problem(s.server.request(m, p, body=b), 401)
    st, _, lst = s.req("GET", "/v1/integrations", key=viewer)
    assert st == 200 and [i["id"] for i in lst["data"]] == ["erp"]
    assert_problem(s.req("POST", "/v1/integrations", {
        "id": "x", "events": ["order"], "target": {"type": "webhook", "url": s.rcv.url("/x")}},
        key=viewer), 403)
    assert_problem(s.req("GET", "/v1/integrations", key=publisher), 403)
    assert s.get("erp")["state"] == "active", "nothing changed"


# --------------------------------------------------------------------------- validation


def test_create_validation_and_duplicate_id(stream):
    s = stream()
    s.create("erp")
    assert_problem(s.req("POST", "/v1/integrations", {
        "id": "erp", "events": ["order"], "target": {"type": "webhook",
                                                     "url": s.rcv.url("/x")}}), 409)
    base = {"id": "ok", "events": ["order"], "target": {"type": "webhook",
                                                          "url": s.rcv.url("/x")}}
    for patch, field in [({"id": "bad id!"}, "id"), ({"id": "x" * 65}, "id"),
                         ({"events": []}, "events"), ({"events": ["nosuch"]}, "events[0]"),
                         ({"ordering": "global"}, "ordering"),
                         ({"type": "forever"}, "type"),
                         ({"max_in_flight": 0}, "max_in_flight"),
                         ({"target": {"type": "webhook"}}, "target.url"),
                         ({"target": {"type": "carrier-pigeon", "url": "http://x"}},
                          "target.type"),
                         ({"target": {"type": "webhook", "url": s.rcv.url("/x"),
                                      "api_key_header": "Bad Header:"}},
                          "target.api_key_header"),
                         ({"start_at": "yesterday"}, "start_at"),
                         ({"colour": "blue"}, "colour")]:
        body = dict(base)
        body.update(patch)
        assert_problem(s.req("POST", "/v1/integrations", body), 422, field)
    assert [i["id"] for i in s.ok("GET", "/v1/integrations")["data"]] == ["erp"]


def test_test_actions_do_not_hold_http_threads(stream):
    """Six test actions wait on a consumer that never answers, more than the two HTTP
    threads: the API still answers at once meanwhile, and each test reports the timeout."""
    s = stream(args=["--webhook-timeout", "3s", "--http-threads", "2"])
    s.create("slow")
    s.rcv.set("/slow", "hang")
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        futs = [ex.submit(s.req, "POST", "/v1/integrations/slow/test") for _ in range(6)]
        s.rcv.wait("/slow", 6, what="six test requests in progress")
        t0 = time.monotonic()
        code, _, got = s.req("GET", "/v1/integrations/slow")
        took = time.monotonic() - t0
        pending = sum(not f.done() for f in futs)
        assert code == 200 and got["id"] == "slow", got
        assert pending == 6 and took < 1.5, (pending, took)  # not queued behind the tests
        for f in futs:
            code, _, body = f.result()
            assert code == 200 and body["ok"] is False and body["error"], body
