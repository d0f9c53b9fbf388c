#!/usr/bin/env python3
"""Alerting throughput: alerts/s reported in batches of 100 over keep-alive connections,
recorded and matched against 10 policies (3 grouping modes: per policy, per event, per
event and connection), next to the rate of storing the same alerts with no policy, in the
same run on the same database.

    python3 bench/alerting.py [--bin build/sluice] [--db postgres://...] [--seconds 8]
                              [--threads 16]

Prints one JSON object: {"no_policies": {...}, "ten_policies": {...}, "ratio"}. Each server
gets a fresh tenant (and, on SQLite, a fresh data dir); with --db the database must exist.
"""

import argparse
import http.client
import json
import os
import secrets
import socket
import subprocess
import tempfile
import threading
import time

EVENTS = ["order.import_failed", "order.export_failed", "shipment.export_failed",
          "inventory.sync_failed", "return.refund_failed"]
CATEGORIES = ["order.*", "shipment.*", "inventory.*", "return.*", "purchase_order.*"]
GROUPINGS = [[], ["event"], ["event", "connection"]]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(binary, db, policies, seconds, threads):
    data = tempfile.mkdtemp(prefix="sluice-bench-")
    port, token = free_port(), secrets.token_hex(8)
    cmd = [binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
           "--admin-token", token, "--log-level", "warn"]
    if db:
        cmd += ["--db", db]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def call(method, path, body=None, key=token):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                c.request(method, path, json.dumps(body) if body is not None else None,
                          {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
                r = c.getresponse()
                return r.status, r.read()
            finally:
                c.close()

        deadline = time.monotonic() + 20
        while True:
            try:
                if call("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("sluice did not become ready")
            time.sleep(0.05)
        tenant = "b" + secrets.token_hex(4)
        call("POST", "/v1/admin/tenants", {"id": tenant, "name": "Bench"})
        key = json.loads(call("POST", f"/v1/admin/tenants/{tenant}/keys",
                              {"name": "bench", "permissions": ["alerts:report",
                                                                "alerts:manage"]})[1])["key"]
        for i in range(policies):
            status, body = call("POST", "/v1/alert-policies",
                                {"name": f"p{i}", "group_by": GROUPINGS[i % 3],
                                 "monitored_events": [{"event": CATEGORIES[i % 5]},
                                                      {"event": "order.import_failed"}]}, key)
            assert status == 201, body
        batch = json.dumps({"alerts": [
            {"event": EVENTS[i % 5], "connection": f"conn-{i % 7}", "entity_id": f"E{i}",
             "message": "the thing failed with a moderately long message"} for i in range(100)]})
        stop = time.monotonic() + seconds
        counts = []

        def worker():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            n = 0
            while time.monotonic() < stop:
                c.request("POST", "/v1/alerts", batch,
                          {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                assert r.status == 202, r.status
                n += 100
            counts.append(n)

        ts = [threading.Thread(target=worker) for _ in range(threads)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        elapsed = time.monotonic() - t0
        with open(f"/proc/{proc.pid}/status") as f:
            rss_kb = int(f.read().split("VmRSS:")[1].split()[0])
        return {"alerts_per_s": round(sum(counts) / elapsed), "rss_mb": rss_kb // 1024}
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                  "sluice"))
    ap.add_argument("--db")
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--threads", type=int, default=16)
    a = ap.parse_args()
    none = run(a.bin, a.db, 0, a.seconds, a.threads)
    ten = run(a.bin, a.db, 10, a.seconds, a.threads)
    print(json.dumps({"database": "postgres" if a.db else "sqlite", "no_policies": none,
                      "ten_policies": ten,
                      "ratio": round(ten["alerts_per_s"] / none["alerts_per_s"], 2)}))


if __name__ == "__main__":
    main()
