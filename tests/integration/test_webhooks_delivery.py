"""Webhook delivery end to end (issue 3): the request a consumer receives (headers, Standard
Webhooks signature checked with npm's standardwebhooks, envelope), every outcome class with
the retry schedule under --time-scale, Retry-After, timeouts and dropped connections, final
failure and auto-pause with their alerts, and per-entity ordering under retries. Every test
runs on SQLite and PostgreSQL against a real HTTP receiver (receiver.py)."""

import json
import threading
import time

import pytest

from conftest import wait_for
from receiver import SLOW, parse_time, verify_each, verify_signatures

ENVELOPE_KEYS = {"id", "type", "name", "entity", "entity_id", "sequence", "occurred_at",
                 "published_at", "tenant", "integration_id", "attempt", "payload"}


def order(entity_id, type_="order.created", **payload):
    return {"type": type_, "entity_id": entity_id, "payload": payload}


def idle(seconds):
    """A short fixed wait, used only to check that something did NOT happen."""
    time.sleep(seconds)


# --------------------------------------------------------------------------- the request


def test_delivery_headers_envelope_and_signature(stream):
    s = stream(args=["--time-scale", "100"])
    a = s.create("erp-orders", events=["order", "return.created"],
                 target={"type": "webhook", "url": s.rcv.url("/erp"),
                         "api_key": "erp-secret-key-c3d4"})
    b = s.create("wms", events=["order.created"],
                 target={"type": "webhook", "url": s.rcv.url("/wms"), "api_key": "wms-raw-key-9f",
                         "api_key_header": "X-API-Key"})
    for created in (a, b):
        assert created["signing_secret"].startswith("whsec_"), created
        assert created["target"]["api_key"].startswith("****"), created
    assert a["target"]["api_key"] == "****c3d4"
    assert a["target"]["api_key_header"] == "Authorization"
    assert b["target"]["api_key_header"] == "X-API-Key"
    s.rcv.set("/wms", 204)  # any 2xx is success

    before = time.time()
    ids = s.publish([
        {"type": "order.created", "entity_id": "ORD-1001", "occurred_at": "2026-11-20T08:00:00.000Z",
         "payload": {"total": 12.5, "note": "caf\u00e9 \u2603", "lines": [{"sku": "A", "qty": 2}]}},
        {"type": "order.updated", "entity_id": "ORD-1001", "payload": {"total": 13}},
        {"type": "return.created", "entity_id": "RET-7", "payload": {}},
        {"type": "shipment.created", "entity_id": "SHP-1", "payload": {}},  # matches neither
    ])
    erp = s.rcv.wait("/erp", 3)
    wms = s.rcv.wait("/wms", 1)
    after = time.time()
    s.wait_status("erp-orders", ids[:3], "success")
    s.wait_status("wms", ids[:1], "success")
    idle(0.2)
    assert len(s.rcv.got("/erp")) == 3 and len(s.rcv.got("/wms")) == 1, s.rcv.got()

    stored = {i: s.ok("GET", f"/v1/events/{i}") for i in ids}
    for req, iid, key_header, key in ((r, "erp-orders", "authorization", "Bearer erp-secret-key-c3d4")
                                      for r in erp):
        body = req.json
        assert req.headers["content-type"] == "application/json", req.header_list
        assert req.headers[key_header] == key, req.header_list
        assert req.headers["user-agent"].startswith("sluice/"), req.header_list
        assert req.headers["webhook-id"] == body["id"], req.header_list
        ts = int(req.headers["webhook-timestamp"])
        assert before - 2 <= ts <= after + 2, (ts, before, after)
        assert req.headers["webhook-signature"].startswith("v1,"), req.header_list
        assert set(body) == ENVELOPE_KEYS, body
        ev = stored[body["id"]]
        assert body["type"] == body["name"] == ev["type"]
        assert body["entity"] == ev["entity"] == ev["type"].split(".")[0]
        assert body["entity_id"] == ev["entity_id"]
        assert body["sequence"] == ev["sequence"]
        assert body["occurred_at"] == ev["occurred_at"]
        assert body["published_at"] == ev["published_at"]
        assert body["payload"] == ev["payload"]
        assert body["tenant"] == "acme"
        assert body["integration_id"] == iid
        assert body["attempt"] == 1
    by_id = {r.json["id"]: r.json for r in erp}
    assert set(by_id) == set(ids[:3])
    assert by_id[ids[0]]["occurred_at"] == "2026-11-20T08:00:00.000Z"
    assert by_id[ids[0]]["payload"]["note"] == "caf\u00e9 \u2603"
    assert [by_id[ids[0]]["sequence"], by_id[ids[1]]["sequence"]] == [1, 2]
    assert by_id[ids[2]]["sequence"] == 1

    # The custom header carries the key raw, and no Authorization header is sent.
    w = wms[0]
    assert w.headers["x-api-key"] == "wms-raw-key-9f", w.header_list
    assert "authorization" not in w.headers, w.header_list
    assert w.json["integration_id"] == "wms" and w.json["id"] == ids[0]
    assert w.headers["webhook-id"] == ids[0]

    # Signatures, checked by npm's standardwebhooks with each integration's own secret.
    res = verify_signatures(a["signing_secret"], erp)
    assert all(ok for ok, _ in res), res
    assert [d["id"] for _, d in res] == [r.json["id"] for r in erp]
    assert verify_signatures(b["signing_secret"], wms)[0][0], "wms signature"
    # ...and the verifier does reject a wrong secret or a tampered body.
    assert not verify_signatures(b["signing_secret"], erp[:1])[0][0]
    tampered = erp[0]
    orig = tampered.body
    tampered.body = orig.replace(b'"tenant":"acme"', b'"tenant":"evil"')
    assert tampered.body != orig
    assert not verify_signatures(a["signing_secret"], [tampered])[0][0]
    tampered.body = orig

    got = s.get("erp-orders")
    assert got["stats"]["succeeded"] == 3 and got["stats"]["pending"] == 0, got
    assert got["stats"]["last_attempt_at"] is not None, got


def test_test_action_sends_a_signed_sluice_test_event(stream):
    s = stream()
    created = s.create("erp", events=["order"])
    st, _, out = s.req("POST", "/v1/integrations/erp/test")
    assert st == 200, out
    assert out["ok"] is True and out["status"] == 200, out
    assert isinstance(out["latency_ms"], int), out
    req = s.rcv.wait("/erp", 1)[0]
    assert req.json["type"] == "sluice.test", req.json
    assert req.headers["authorization"] == "Bearer key-erp-0123456789"
    assert verify_signatures(created["signing_secret"], [req])[0][0]
    # An unhappy consumer: the outcome says so, and nothing enters the delivery log.
    s.rcv.set("/erp", 503)
    st, _, out = s.req("POST", "/v1/integrations/erp/test")
    assert st == 200 and out["ok"] is False and out["status"] == 503 and out["error"], out
    assert s.events("erp") == []


TEST_MEMBERS = {"ok", "status", "latency_ms", "error", "response_body"}


@pytest.mark.parametrize("roles", ["api,webhook", "api,s3"])
def test_test_action_answers_every_documented_member(stream, roles):
    """Every answer of the test action has every documented member, whatever happened (an
    empty 2xx, an answer with a body, no answer at all), also on a node without the
    webhook role."""
    s = stream(args=["--roles", roles, "--webhook-timeout", "2s"])
    s.create("erp")
    s.rcv.set("/erp", (204, {}, b""))
    out = s.ok("POST", "/v1/integrations/erp/test")
    assert set(out) == TEST_MEMBERS, out
    assert out["ok"] is True and out["status"] == 204, out
    assert out["error"] is None and out["response_body"] is None, out
    s.rcv.set("/erp", (422, {"Content-Type": "text/plain"}, b"no such customer"))
    out = s.ok("POST", "/v1/integrations/erp/test")
    assert set(out) == TEST_MEMBERS, out
    assert out["ok"] is False and out["status"] == 422 and out["error"], out
    assert out["response_body"] == "no such customer", out
    s.rcv.set("/erp", "close")
    out = s.ok("POST", "/v1/integrations/erp/test")
    assert set(out) == TEST_MEMBERS, out
    assert out["ok"] is False and out["status"] is None and out["error"], out


def test_fan_out_of_a_large_payload(stream):
    s = stream()
    secrets_ = {}
    for i in range(10):
        created = s.create(f"fan{i}", events=["order.created"], target={
            "type": "webhook", "url": s.rcv.url(f"/fan{i}") + f"?src=sluice&n={i}",
            "api_key": f"fan-key-{i}"})
        secrets_[f"/fan{i}"] = created["signing_secret"]
    payload = {"note": "\u00e9\u2603\U0001F600 " * 2000, "lines": [{"sku": f"S-{k}", "qty": k}
                                                                for k in range(4000)]}
    assert 150_000 < len(json.dumps(payload)) < 256 * 1024
    ids = s.publish([{"type": "order.created", "entity_id": "BIG", "payload": payload}])
    reqs = [s.rcv.wait(f"/fan{i}", 1)[0] for i in range(10)]
    for i, req in enumerate(reqs):
        assert req.target == f"/fan{i}?src=sluice&n={i}", req.target
        assert req.json["payload"] == payload and req.json["id"] == ids[0]
        assert req.headers["authorization"] == f"Bearer fan-key-{i}"
    res = verify_each([(secrets_[r.path], r) for r in reqs])
    assert all(ok for ok, _ in res), res
    # ...and a request does not verify under another integration's secret
    assert not verify_each([(secrets_["/fan1"], reqs[0])])[0][0]
    for i in range(10):
        s.wait_status(f"fan{i}", ids, "success")


def test_test_action_honours_the_timeout(stream):
    s = stream(args=["--webhook-timeout", "1s"])
    s.create("erp")
    s.rcv.set("/erp", "hang")
    t0 = time.monotonic()
    st, _, out = s.req("POST", "/v1/integrations/erp/test")
    took = time.monotonic() - t0
    assert st == 200 and out["ok"] is False and out["status"] is None, out
    assert "time" in out["error"].lower(), out
    assert 0.9 <= took <= 5 * SLOW, took


# --------------------------------------------------------------------------- outcomes


def test_rejection_400_is_final_and_releases_only_that_event(stream):
    s = stream(args=["--time-scale", "100"])
    s.create("erp", events=["order"])
    s.rcv.set("/erp", lambda r: (400, {}, '{"error":"bad sku"}')
              if r.json["entity_id"] == "ORD-R" and r.json["sequence"] == 1 else 200)
    ids = s.publish([
        {"type": "order.created", "entity_id": "ORD-R", "payload": {}},
        {"type": "order.updated", "entity_id": "ORD-R", "payload": {}},
        {"type": "order.created", "entity_id": "ORD-OK", "payload": {}},
    ])
    s.wait_status("erp", [ids[1], ids[2]], "success")
    s.wait_status("erp", [ids[0]], "rejected")
    idle(0.3)  # no retry of the rejected event
    first = [r for r in s.rcv.got("/erp") if r.json["id"] == ids[0]]
    assert len(first) == 1, first
    # the entity's next event came after the rejection, in order
    order = [r.json["id"] for r in s.rcv.got("/erp") if r.json["entity_id"] == "ORD-R"]
    assert order == [ids[0], ids[1]], order

    rows = s.events("erp", "status=rejected")
    assert [r["event_id"] for r in rows] == [ids[0]], rows
    assert rows[0]["response_status"] == 400 and rows[0]["attempts"] == 1, rows
    rej = s.ok("GET", "/v1/integrations/erp/rejected-events")["data"]
    assert len(rej) == 1, rej
    assert rej[0]["event_id"] == ids[0] and rej[0]["type"] == "order.created"
    assert rej[0]["entity_id"] == "ORD-R" and rej[0]["response_status"] == 400, rej
    assert rej[0]["reason"] and rej[0]["created_at"], rej
    att = s.attempts("erp", ids[0])
    assert len(att) == 1 and att[0]["status"] == 400, att
    assert att[0]["response_body"] == '{"error":"bad sku"}', att
    got = s.get("erp")
    assert got["state"] == "active", got
    assert got["stats"]["rejected"] == 1 and got["stats"]["succeeded"] == 2, got

    alerts = s.wait_alert("event_stream.event_rejected", "erp")
    assert len(alerts) == 1, alerts
    assert alerts[0]["entity_id"] == "ORD-R", alerts
    assert ids[0] in (alerts[0]["message"] or "") + (alerts[0].get("details") or ""), alerts


@pytest.mark.parametrize("status", [404, 422])
def test_other_4xx_are_rejections(stream, status):
    s = stream(args=["--time-scale", "100"])
    s.create("erp")
    s.rcv.set("/erp", status)
    ids = s.publish([{"type": "order.created", "entity_id": "O-1", "payload": {}}])
    s.wait_status("erp", ids, "rejected")
    idle(0.2)
    assert len(s.rcv.got("/erp")) == 1


def test_retryable_4xx_and_redirects_are_retried_not_followed(stream):
    s = stream(args=["--time-scale", "100"])
    cases = {"r408": 408, "r409": 409, "r425": 425, "r302": 302, "r301": 301}
    for iid, status in cases.items():
        s.create(iid)
        first = (status, {"Location": s.rcv.url("/elsewhere")}) if status < 400 else status
        s.rcv.set("/" + iid, first, 200)
    ids = s.publish([order("O-1")])
    for iid, status in cases.items():
        s.wait_status(iid, ids, "success")
        assert [a["status"] for a in s.attempts(iid, ids[0])] == [status, 200], iid
    idle(0.2)
    assert s.rcv.got("/elsewhere") == [], "redirects are never followed"


def test_max_in_flight_is_respected(stream):
    s = stream()
    s.create("erp", ordering="none", max_in_flight=3)
    lock = threading.Lock()
    cur, peak = [0], [0]

    def answer(req):
        with lock:
            cur[0] += 1
            peak[0] = max(peak[0], cur[0])
        time.sleep(0.05)
        with lock:
            cur[0] -= 1
        return 200

    s.rcv.set("/erp", answer)
    ids = s.publish([order(f"O-{i}") for i in range(24)])
    s.wait_status("erp", ids, "success")
    assert peak[0] <= 3, peak
    assert peak[0] >= 2, f"deliveries never overlapped (peak {peak[0]})"


def test_gone_410_rejects_and_pauses(stream):
    s = stream(args=["--time-scale", "100"])
    s.create("erp")
    s.rcv.set("/erp", 410)
    ids = s.publish([{"type": "order.created", "entity_id": "O-1", "payload": {}}])
    s.wait_status("erp", ids, "rejected")
    got = s.wait_state("erp", "paused")
    assert got["stats"]["rejected"] == 1, got
    log = s.wait_log("erp", "410")
    assert log["action"] == "stopped" and log["actor"] == "system", log
    assert [i["id"] for i in s.ok("GET", "/v1/integrations?state=paused")["data"]] == ["erp"]
    alerts = s.wait_alert("event_stream.integration_stopped", "erp")
    assert len(alerts) == 1, alerts
    s.wait_alert("event_stream.event_rejected", "erp")
    # paused: a new event is kept, not sent
    s.rcv.set("/erp", 200)
    more = s.publish([{"type": "order.created", "entity_id": "O-2", "payload": {}}])
    idle(0.3)
    assert len(s.rcv.got("/erp")) == 1
    assert s.status_of("erp", more[0]) == "pending"


def test_5xx_retried_on_schedule_with_attempts_recorded(stream):
    s = stream(args=["--time-scale", "100"])
    secret = s.create("erp")["signing_secret"]
    big = "x" * 3000
    s.rcv.set("/erp", (500, {}, big), (503, {}, "try later"), 200)
    ids = s.publish([{"type": "order.created", "entity_id": "O-1", "payload": {"n": 1}}])
    reqs = s.rcv.wait("/erp", 3)
    s.wait_status("erp", ids, "success")
    idle(0.2)
    reqs = s.rcv.got("/erp")
    assert len(reqs) == 3, reqs
    assert [r.json["attempt"] for r in reqs] == [1, 2, 3]
    assert {r.headers["webhook-id"] for r in reqs} == {ids[0]}
    assert {r.json["sequence"] for r in reqs} == {1}
    res = verify_signatures(secret, reqs)
    assert all(ok for ok, _ in res), res  # each attempt is signed afresh
    # schedule 5 s then 30 s, divided by 100, jitter +-20 %
    g1, g2 = reqs[1].t - reqs[0].t, reqs[2].t - reqs[1].t
    assert 0.04 <= g1 <= 1.0 * SLOW, g1
    assert 0.24 <= g2 <= 2.0 * SLOW, g2

    att = s.attempts("erp", ids[0])
    assert [a["attempt"] for a in att] == [1, 2, 3], att
    assert [a["status"] for a in att] == [500, 503, 200], att
    assert att[0]["response_body"] == big[:1024], len(att[0]["response_body"] or "")
    assert att[1]["response_body"] == "try later"
    for a in att:
        assert a["node_id"], a
        assert isinstance(a["duration_ms"], int) and a["duration_ms"] >= 0, a
        parse_time(a["at"])
    row = s.events("erp")[0]
    assert row["attempts"] == 3 and row["response_status"] == 200, row

    # ...and the metrics count them.
    st, _, text = s.server.request("GET", "/metrics")
    assert st == 200
    metrics = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            metrics[name] = float(value)
    assert metrics.get('sluice_webhook_deliveries_total{outcome="retried"}', 0) >= 2, metrics
    assert metrics.get('sluice_webhook_deliveries_total{outcome="succeeded"}', 0) >= 1, metrics
    assert metrics.get("sluice_webhook_attempt_duration_seconds_count", 0) >= 3, metrics
    assert 'sluice_deliveries{state="pending"}' in metrics, metrics
    assert 'sluice_deliveries{state="in_flight"}' in metrics, metrics


@pytest.mark.parametrize("status,form", [(429, "seconds"), (503, "seconds"), (429, "date")])
def test_retry_after_is_honoured_unscaled(stream, status, form):
    s = stream(args=["--time-scale", "100"])
    s.create("erp")
    import email.utils
    value = lambda r: "1" if form == "seconds" else email.utils.formatdate(  # noqa: E731
        time.time() + 2, usegmt=True)
    s.rcv.set("/erp", lambda r: (status, {"Retry-After": value(r)}) if r.json["attempt"] == 1
              else 200)
    ids = s.publish([{"type": "order.created", "entity_id": "O-1", "payload": {}}])
    reqs = s.rcv.wait("/erp", 2)
    gap = reqs[1].t - reqs[0].t
    # without Retry-After the next try would come after ~50 ms (5 s / 100)
    assert gap >= 0.95, gap
    assert gap <= 3.0 * SLOW, gap
    s.wait_status("erp", ids, "success")
    assert [a["status"] for a in s.attempts("erp", ids[0])] == [status, 200]


def test_timeout_and_dropped_connection_are_retried(stream):
    s = stream(args=["--time-scale", "100", "--webhook-timeout", "1s"])
    s.create("slow")
    s.create("drop")
    s.rcv.set("/slow", "hang", 200)
    s.rcv.set("/drop", "close", 200)
    ids = s.publish([{"type": "order.created", "entity_id": "O-1", "payload": {}}])
    s.wait_status("slow", ids, "success", timeout=15)
    s.wait_status("drop", ids, "success", timeout=15)
    for iid in ("slow", "drop"):
        att = s.attempts(iid, ids[0])
        assert len(att) == 2, (iid, att)
        assert att[0]["status"] is None and att[0]["error"], (iid, att)
        assert att[1]["status"] == 200 and att[1]["error"] is None, (iid, att)
    slow = s.attempts("slow", ids[0])
    assert 900 <= slow[0]["duration_ms"] <= 5000 * SLOW, slow
    assert "time" in slow[0]["error"].lower(), slow
    reqs = s.rcv.got("/slow")
    assert reqs[1].t - reqs[0].t >= 0.95, "the retry comes after the 1 s timeout"


def test_final_failure_after_24h_and_auto_pause(stream):
    # --time-scale 20000: 24 h is 4.32 s; the schedule runs quickly through its steps.
    s = stream(args=["--time-scale", "20000"])
    s.create("erp")
    s.rcv.set("/erp", 500)
    t0 = time.monotonic()
    ids = s.publish([{"type": "order.created", "entity_id": "O-1", "payload": {}}])
    s.wait_status("erp", ids, "failure", timeout=30)
    elapsed = time.monotonic() - t0
    assert elapsed >= 4.2, f"failed after {elapsed:.2f}s, before the scaled 24 h"
    reqs = s.rcv.got("/erp")
    assert reqs[-1].t - reqs[0].t >= 4.2, (reqs[0].t, reqs[-1].t)
    att = s.attempts("erp", ids[0])
    assert len(att) >= 10, len(att)
    assert all(a["status"] == 500 for a in att), att
    assert [a["attempt"] for a in att] == list(range(1, len(att) + 1))
    row = s.events("erp", "status=failure")
    assert [r["event_id"] for r in row] == ids and row[0]["response_status"] == 500, row
    alerts = [a for a in s.wait_alert("event_stream.delivery_failed", "erp")
              if "lagging" not in a["message"]]  # the (scaled) lag alert may come too
    assert len(alerts) == 1 and alerts[0]["entity_id"] == "O-1", alerts

    # Every attempt failed for the (scaled) 24 h, and there were >= 10: auto-paused.
    got = s.wait_state("erp", "paused")
    assert got["stats"]["failed"] == 1, got
    log = s.wait_log("erp", "auto-paused")
    assert log["reason"] == "auto-paused: every delivery failed for 24h", log
    assert log["action"] == "stopped" and log["actor"] == "system", log
    s.wait_alert("event_stream.integration_stopped", "erp")
    n = len(s.rcv.got("/erp"))
    s.rcv.set("/erp", 200)
    more = s.publish([{"type": "order.created", "entity_id": "O-2", "payload": {}}])
    idle(0.3)
    assert len(s.rcv.got("/erp")) == n, "a paused integration sends nothing"
    assert s.status_of("erp", more[0]) == "pending"


def test_no_auto_pause_while_some_deliveries_succeed(stream):
    s = stream(args=["--time-scale", "20000"])
    s.create("erp", events=["order"])  # ordering: entity
    s.rcv.set("/erp", lambda r: 500 if r.json["entity_id"] == "BAD" and r.json["sequence"] == 1
              else 200)
    ids = s.publish([{"type": "order.created", "entity_id": "BAD", "payload": {}},
                     {"type": "order.updated", "entity_id": "BAD", "payload": {}}])
    deadline = time.monotonic() + 4.6
    good = []
    while time.monotonic() < deadline:  # a success every ~0.25 s resets the failing clock
        good += s.publish([{"type": "order.created", "entity_id": f"G-{len(good)}",
                            "payload": {}}])
        time.sleep(0.25)
    s.wait_status("erp", ids[:1], "failure", timeout=30)
    s.wait_status("erp", good, "success")
    # the entity's next event was held back while the first was retried, and is released
    # by its final failure
    s.wait_status("erp", ids[1:], "success")
    bad = [r for r in s.rcv.got("/erp") if r.json["entity_id"] == "BAD"]
    assert bad[-1].json["id"] == ids[1] and [r.json["id"] for r in bad].count(ids[1]) == 1
    idle(0.3)
    assert s.get("erp")["state"] == "active"
    assert not [l for l in s.logs("erp") if "auto-paused" in l["reason"]]


# --------------------------------------------------------------------------- ordering


def test_entity_ordering_under_concurrency_and_retries(stream):
    s = stream(args=["--time-scale", "100"])
    s.create("erp", events=["order"])
    release = threading.Event()
    lock = threading.Lock()
    inflight, overlaps = {}, []

    def answer(req):
        body = req.json
        ent = body["entity_id"]
        with lock:
            inflight[ent] = inflight.get(ent, 0) + 1
            if inflight[ent] > 1:
                overlaps.append((ent, body["sequence"]))
        time.sleep(0.01)
        with lock:
            inflight[ent] -= 1
        if ent == "A" and body["sequence"] == 1:
            tries = len([r for r in s.rcv.got("/erp") if r.json["id"] == body["id"]])
            if tries <= 2 or not release.is_set():
                return 500
        return 200

    s.rcv.set("/erp", answer)
    first = s.publish([{"type": "order.created", "entity_id": "A", "payload": {"i": 0}}])
    s.rcv.wait("/erp", 1)

    # Four threads publish 5 batches each of events over entities A..E, concurrently.
    entities = ["A", "B", "C", "D", "E"]
    acked, errors = [], []

    def publisher(t):
        try:
            for b in range(5):
                evs = [{"type": "order.updated", "entity_id": entities[(t + b + k) % 5],
                        "payload": {"t": t, "b": b, "k": k}} for k in range(3)]
                acked.extend(s.publish(evs))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=publisher, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    total = 1 + len(acked)
    by_entity = {}
    for i in [first[0]] + acked:
        ev = s.ok("GET", f"/v1/events/{i}")
        by_entity.setdefault(ev["entity_id"], []).append(ev["sequence"])
    others = [i for i in acked if s.ok("GET", f"/v1/events/{i}")["entity_id"] != "A"]

    # Other entities are not held up while A's first event is being retried.
    s.wait_status("erp", others, "success")
    a1 = [r for r in s.rcv.got("/erp") if r.json["id"] == first[0]]
    assert len(a1) >= 2 and all(r.answer == 500 for r in a1), a1
    assert not [r for r in s.rcv.got("/erp") if r.json["entity_id"] == "A"
                and r.json["sequence"] > 1], "A's later events must wait for its first"
    release.set()
    s.wait_status("erp", [first[0]] + acked, "success", timeout=20)
    reqs = s.rcv.got("/erp")
    assert not overlaps, f"two deliveries of one entity at once: {overlaps}"
    for ent in entities:
        seqs = [r.json["sequence"] for r in reqs if r.json["entity_id"] == ent
                and r.answer == 200]
        assert seqs == list(range(1, len(by_entity[ent]) + 1)), (ent, seqs)
    a_first_ok = [r.seq for r in reqs if r.json["id"] == first[0] and r.answer == 200][0]
    later_a = [r.seq for r in reqs if r.json["entity_id"] == "A" and r.json["sequence"] > 1]
    assert all(x > a_first_ok for x in later_a)
    assert len([r for r in reqs if r.answer == 200]) == total


def test_lag_alert_once_per_episode(stream):
    # --time-scale 600: the 15-minute lag limit is 1.5 s; the check runs every 5 s.
    s = stream(args=["--time-scale", "600"])
    s.create("erp")
    s.create("ok", events=["order"])
    s.rcv.set("/erp", 500)  # retried for (scaled) hours: the event stays pending
    ids = s.publish([{"type": "order.created", "entity_id": "O-1", "payload": {}}])
    s.wait_status("ok", ids, "success")

    def lagging():
        return [a for a in s.alerts("event_stream.delivery_failed")
                if "lagging" in a["message"]] or None

    (lag,) = wait_for(lagging, 20, interval=0.2, what="the lag alert")
    assert lag["connection"] == "erp" and json.loads(lag["details"])["reason"] == "lagging"
    assert s.get("erp")["stats"]["pending"] == 1
    # Two more checks run (every 5 s) while it still lags: still one alert for the episode,
    # and none for the integration that keeps up.
    time.sleep(11)
    assert [a["connection"] for a in lagging()] == ["erp"]


def test_lag_episode_ends_only_when_nothing_is_old(stream):
    """One stuck entity while other entities keep succeeding is one lag episode (not one
    alert per check: a success of another entity does not end it); once the stuck event is
    delivered nothing is old any more, the episode ends, and a new stuck event is a new
    episode with its own alert."""
    # --time-scale 600: the 15-minute lag limit is 1.5 s; the check runs every 5 s.
    s = stream(args=["--time-scale", "600"])
    s.create("erp", ordering="none")
    stuck = {"S-1"}
    s.rcv.set("/erp", lambda r: 500 if r.json["entity_id"] in stuck else 200)

    def lagging():
        return [a for a in s.alerts("event_stream.delivery_failed")
                if "lagging" in a["message"] and a["connection"] == "erp"]

    first = s.publish([order("S-1")])
    deadline = time.monotonic() + 20 * SLOW
    n = 0
    while not lagging():  # traffic: a success every ~0.2 s
        assert time.monotonic() < deadline, "no lag alert"
        s.publish([order(f"G-{n}")])
        n += 1
        time.sleep(0.2)
    # Two more checks run (every 5 s) while S-1 still lags and others succeed.
    end = time.monotonic() + 11
    while time.monotonic() < end:
        s.publish([order(f"G-{n}")])
        n += 1
        time.sleep(0.2)
    assert len(lagging()) == 1, lagging()
    assert s.status_of("erp", first[0]) == "pending"
    # S-1 goes through: nothing is older than the limit any more, the episode ends at the
    # next check; a new stuck entity lags again and gets the next episode's alert.
    stuck.clear()
    s.wait_status("erp", first, "success", timeout=30)
    idle(6)  # a check runs (every 5 s) while nothing lags: it ends the episode
    stuck.add("S-2")
    s.publish([order("S-2")])
    wait_for(lambda: len(lagging()) == 2, 20, interval=0.2, what="the second episode's alert")
