#!/usr/bin/python3
"""Webhook delivery benchmark, publish to receipt, next to two limits measured in the same
run: wrk's raw POST rate of the same bodies to the same nginx, and the --lifecycle storage
limit (an event's whole database life: insert, claim, outcome and attempt row, 1,000 per
transaction) on the same kind of database.

Throughput: a server with every role delivers to a local nginx while publishers (4
connections, 100-event batches) publish N events as fast as it takes them; the figure is
N / (time from the first publish to the last success). With 10 integrations each event is
delivered 10 times and the figure counts deliveries. Integrations use ordering "none" and
max_in_flight 256 (the API's maximum), so the database and the engine are what is
measured, not the consumer.

Latency: a steady 1,000 events/s (10 every 10 ms) to a local nginx that logs each arrival
($msec) with the webhook-id; publish to receipt, p50/p99/p99.9 (arrival minus the time
just before the publish request was sent, ms clock). The integration has max_in_flight 256,
as in the throughput run (the consumer's limit is not what is measured); the same with the
default max_in_flight 16 is latency_max_in_flight_16: there each of the 16 slots must come
back (the outcome committed, the next claim committed) within 16 ms on average to keep up.
Each latency run first publishes 5 s at the same rate unrecorded (warmup): the figure is the
steady state, not the first seconds of an empty database, when the tables double every
second or two and their statistics and cached plans are made again each time. On
PostgreSQL also across nodes (latency_cross_node): the events published to a node with
--roles api and delivered by another with --roles webhook.

Usage: bench/webhook.py [--db sqlite|postgres] [--events N] [--seconds S] [--no-ten]
       [--no-cross-node] [--latency-only]
Prints one JSON object (DESIGN.md's webhook keys; on PostgreSQL the webhook.postgres ones).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def sample_body():
    return json.dumps({"id": "evt_01M8442BPJ9BQMRF7G0GGNBS81", "type": "order.created",
                       "name": "order.created", "entity": "order", "entity_id": "ORD-123456",
                       "sequence": 1, "occurred_at": "2026-11-23T11:53:39.282Z",
                       "published_at": "2026-11-23T11:53:39.282Z", "tenant": "bench",
                       "integration_id": "i0", "attempt": 1,
                       "payload": {"n": 1, "note": "x" * 420}})


def wrk_raw(nginx, tmp, secs):
    script = os.path.join(tmp, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = [[{sample_body()}]]\n")
    return B.wrk(nginx.url(), secs, script=script)[0]


def succeeded(api, ids):
    total = 0
    for iid in ids:
        total += api.ok("GET", f"/v1/integrations/{iid}")["stats"]["succeeded"]
    return total


def throughput(tmp, name, db, nginx, integrations, n):
    srv = B.Sluice(tmp, name=name, db=db).start()
    try:
        srv.tenant_key()
        ids = [f"i{k}" for k in range(integrations)]
        for iid in ids:
            srv.api.ok("POST", "/v1/integrations", {
                "id": iid, "events": ["order"], "ordering": "none", "max_in_flight": 256,
                "target": {"type": "webhook", "url": nginx.url()}})
        want = n * integrations
        t0 = time.monotonic()
        done = {}
        pub = threading.Thread(target=lambda: done.update(
            rate=B.publish_backlog(srv.api, n, batch=100, threads=4)))
        pub.start()
        mon = B.Api(srv.port, srv.api.token)
        while True:
            time.sleep(0.25)
            got = succeeded(mon, ids)
            if got >= want:
                break
            if time.monotonic() - t0 > 900:
                raise RuntimeError(f"only {got} of {want} delivered")
        secs = time.monotonic() - t0
        pub.join()
        return want / secs, done.get("rate"), srv.rss_mb()
    finally:
        srv.stop()


def latency(tmp, db, rate=1000, secs=10, split=False, max_in_flight=16, warmup=0):
    """Publish-to-receipt latency at a steady rate, to a local nginx that logs each request's
    time ($msec) and webhook-id (the event id): from just before the publish request was
    sent (so the publish's own round trip counts) to the event's arrival. split
    (PostgreSQL): two nodes on the database, the publishes to one with --roles api and the
    deliveries by the other with --roles webhook, so each event crosses nodes (a NOTIFY
    wakes the worker)."""
    nginx = B.Nginx(tmp, log=True, log_format="$msec $http_webhook_id")
    if split:
        key = B.master_key_file(tmp)
        nodes = [B.Sluice(tmp, name=f"lat-{role}-{max_in_flight}", db=db, master_key=key,
                          args=["--roles", role, "--node-id", "lat-" + role])
                 for role in ("api", "webhook")]
    else:  # a data dir per run: on SQLite it holds the database
        nodes = [B.Sluice(tmp, name=f"latency-{max_in_flight}", db=db)]
    srv = nodes[0]
    sent_at = {}  # event id -> wall time just before its publish request
    try:
        for s in nodes:
            s.start()
        srv.tenant_key()
        srv.api.ok("POST", "/v1/integrations", {
            "id": "lat", "events": ["order"], "ordering": "none", "max_in_flight": max_in_flight,
            "target": {"type": "webhook", "url": nginx.url()}})
        per_tick, tick = rate // 100, 0.01
        start = time.monotonic()
        sent, warm = 0, rate * warmup
        while sent < warm + rate * secs:
            t = time.time()
            ids = srv.api.ok("POST", "/v1/events", {"events": [
                {"type": "order.created", "entity_id": f"O-{sent + j}"}
                for j in range(per_tick)]})["ids"]
            if sent >= warm:
                for i in ids:
                    sent_at[i] = t
            sent += per_tick
            delay = start + (sent / per_tick) * tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        end = time.monotonic() + 30
        while nginx.count() < sent and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        for s in nodes:
            s.stop()
        nginx.stop()
    lat = []
    for line in nginx.lines():
        f = line.split()
        if len(f) == 2 and f[1] in sent_at:
            lat.append((float(f[0]) - sent_at.pop(f[1])) * 1000.0)  # first arrival only
    return lat_summary(lat, sent - warm)


def lat_summary(lat, sent):
    lat = sorted(lat)
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 1)  # noqa: E731
    return {"p50_ms": q(0.50), "p99_ms": q(0.99), "p999_ms": q(0.999), "received": len(lat),
            "sent": sent}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--no-ten", action="store_true", help="skip the 10-integration run")
    ap.add_argument("--no-cross-node", action="store_true",
                    help="PostgreSQL: skip the latency across two nodes")
    ap.add_argument("--latency-only", action="store_true",
                    help="only the latency run(s), not the throughput and limits")
    a = ap.parse_args()
    secs = max(1, int(a.seconds))
    tmp = tempfile.mkdtemp(prefix="sluice-bench-webhook-")
    pg = B.Postgres().start() if a.db == "postgres" else None
    out = {"database": a.db}
    try:
        if not a.latency_only:
            nginx = B.Nginx(tmp)
            try:
                if not pg:
                    out["wrk_raw_req_per_s"] = round(wrk_raw(nginx, tmp, secs))
                one, pub, rss = throughput(tmp, "one", pg.fresh_db("wh1") if pg else None,
                                           nginx, 1, a.events)
                out["events_per_s"] = round(one)
                out["publish_events_per_s"] = round(pub) if pub else None
                out["rss_mb"] = rss
                if not a.no_ten and not pg:
                    ten, _, _ = throughput(tmp, "ten", None, nginx, 10, a.events // 5)
                    out["events_per_s_10_integrations"] = round(ten)
            finally:
                nginx.stop()
            lim = B.storage_limit(pg.fresh_db("whlimit") if pg else "sqlite:" + os.path.join(
                tmp, "limit.db"), secs, "--lifecycle")
            out["lifecycle_limit_events_per_s"] = lim["lifecycle_limit_events_per_s"]
            out["lifecycle_limit"] = lim
            out["lifecycle_ratio"] = round(one / lim["lifecycle_limit_events_per_s"], 3)
            if not pg:
                out["ratio"] = round(one / out["wrk_raw_req_per_s"], 3)
        lat = latency(tmp, pg.fresh_db("whlat") if pg else None, max_in_flight=256, warmup=5)
        out.update(lat if not pg else {"p99_ms": lat["p99_ms"], "latency": lat})
        out["latency_max_in_flight_16"] = latency(
            tmp, pg.fresh_db("whlat16") if pg else None, max_in_flight=16, warmup=5)
        if pg and not a.no_cross_node:
            out["latency_cross_node"] = latency(tmp, pg.fresh_db("whlatx"), split=True,
                                                max_in_flight=256, warmup=5)
            out["latency_cross_node_max_in_flight_16"] = latency(
                tmp, pg.fresh_db("whlatx16"), split=True, max_in_flight=16, warmup=5)
        out["note"] = ("events_per_s: publish to receipt of N events with publishing and "
                       "delivery running together; 10 integrations: deliveries per second")
        B.emit(out)
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
