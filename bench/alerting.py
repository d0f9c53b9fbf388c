#!/usr/bin/python3
"""Alerting throughput: distinct alerts reported in batches of 100 over keep-alive
connections, matched against 10 policies (3 groupings: per policy, per event, per event
and connection), grouped into issues and committed — next to, in the same run:

- the alert storage limit (`storage_limit --alerts`: the same alert rows and
  alert-to-issue links, the same indexes, 1,000 alerts per transaction, one update per
  touched issue per transaction);
- Prometheus Alertmanager (Debian's prometheus-alertmanager, started here with one route
  per policy matching the same alert names and grouping by the same labels, continue: true
  so an alert joins every policy it matches, as in Sluice), fed the same alerts through
  its v2 API by the same client;
- the RSS of both processes at the end.

Every alert is distinct (its entity id is unique), so Alertmanager cannot fold repeats.

Usage: bench/alerting.py [--db postgres://…] [--seconds S] [--threads N]
Prints one JSON object (DESIGN.md's alerting keys).
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

EVENTS = ["order.import_failed", "order.export_failed", "shipment.export_failed",
          "inventory.sync_failed", "return.refund_failed"]
CATEGORIES = ["order", "shipment", "inventory", "return", "purchase_order"]
GROUPINGS = [[], ["event"], ["event", "connection"]]
MESSAGE = "the thing failed with a moderately long message"


def sluice_batch(worker, seq):
    """A request body of 100 distinct alerts (entity ids unique per worker and batch)."""
    return '{"alerts":[' + ",".join(
        '{"event":"%s","connection":"conn-%d","entity_id":"E%d-%d-%d","message":"%s"}'
        % (EVENTS[i % 5], i % 7, worker, seq, i, MESSAGE) for i in range(100)) + "]}"


def am_batch(worker, seq):
    """The same 100 alerts for Alertmanager's v2 API."""
    return "[" + ",".join(
        '{"labels":{"alertname":"%s","category":"%s","connection":"conn-%d",'
        '"entity_id":"E%d-%d-%d"},"annotations":{"message":"%s"}}'
        % (EVENTS[i % 5], EVENTS[i % 5].split(".")[0], i % 7, worker, seq, i, MESSAGE)
        for i in range(100)) + "]"


def load(port, path, headers, make_body, seconds, threads):
    """Posts batches from `threads` connections for `seconds`; returns alerts per second."""
    stop = time.monotonic() + seconds
    counts = [0] * threads
    errors = []

    def worker(w):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        seq = 0
        while time.monotonic() < stop and not errors:
            c.request("POST", path, make_body(w, seq), headers)
            r = c.getresponse()
            r.read()
            if r.status not in (200, 202):
                errors.append(r.status)
                return
            counts[w] += 100
            seq += 1

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError(f"{path}: HTTP {errors[0]}")
    return sum(counts) / (time.monotonic() - t0)


def run_sluice(tmp, db, policies, seconds, threads):
    srv = B.Sluice(tmp, name=f"alerting-{policies}", db=db).start()
    try:
        srv.tenant_key()
        for i in range(policies):
            srv.api.ok("POST", "/v1/alert-policies", {
                "name": f"p{i}", "group_by": GROUPINGS[i % 3],
                "monitored_events": [{"event": CATEGORIES[i % 5] + ".*"},
                                     {"event": "order.import_failed"}]})
        rate = load(srv.port, "/v1/alerts", {"Authorization": "Bearer " + srv.api.token,
                                             "Content-Type": "application/json"},
                    sluice_batch, seconds, threads)
        return rate, srv.rss_mb()
    finally:
        srv.stop()


def run_alertmanager(tmp, seconds, threads):
    d = os.path.join(tmp, "am")
    os.makedirs(d)
    routes = []
    for p in range(10):
        by = {0: ["policy"], 1: ["alertname"], 2: ["alertname", "connection"]}[p % 3]
        routes.append({"receiver": "null", "continue": True, "group_by": by,
                       "matchers": ['alertname=~"%s\\\\..*|order\\\\.import_failed"'
                                    % CATEGORIES[p % 5]]})
    cfg = {"route": {"receiver": "null", "group_wait": "1h", "group_interval": "1h",
                     "repeat_interval": "24h", "routes": routes},
           "receivers": [{"name": "null"}]}
    with open(os.path.join(d, "am.yml"), "w") as f:
        json.dump(cfg, f)  # JSON is YAML
    port = B.free_port()
    proc = subprocess.Popen(["prometheus-alertmanager", "--config.file", os.path.join(d, "am.yml"),
                             "--storage.path", d, "--web.listen-address", f"127.0.0.1:{port}",
                             "--cluster.listen-address="],
                            stdout=open(os.path.join(d, "log"), "w"), stderr=subprocess.STDOUT)
    try:
        B.wait_http(port, "/-/ready", proc=proc)
        rate = load(port, "/api/v2/alerts", {"Content-Type": "application/json"}, am_batch,
                    seconds, threads)
        time.sleep(1)  # its aggregation groups take the alerts in asynchronously
        return rate, B.rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=16)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sluice-bench-alerting-")
    try:
        ten, rss = run_sluice(tmp, a.db, 10, a.seconds, a.threads)
        none, _ = run_sluice(tmp, a.db, 0, a.seconds, a.threads)
        am, am_rss = run_alertmanager(tmp, a.seconds, a.threads)
        lim = B.storage_limit(a.db or "sqlite:" + os.path.join(tmp, "limit.db"),
                              max(1, int(a.seconds)), "--alerts")
        B.emit({"database": "postgres" if a.db else "sqlite",
                "alerts_per_s": round(ten), "rss_mb": rss,
                "storage_limit_alerts_per_s": lim["storage_limit_alerts_per_s"],
                "storage_limit": lim,
                "storage_ratio": round(ten / lim["storage_limit_alerts_per_s"], 3),
                "alertmanager_alerts_per_s": round(am), "alertmanager_rss_mb": am_rss,
                "ratio": round(ten / am, 3),
                "rss_ratio": round(rss / am_rss, 3) if rss and am_rss else None,
                "no_policies_alerts_per_s": round(none)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
