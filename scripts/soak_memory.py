#!/usr/bin/env python3
"""The memory soak (`make soak-memory`, issue 17 §5): one `sluice serve` under mixed load for
--seconds (default 1800), its resident memory sampled every --every seconds (default 10).

Load, all at once: publishers (~--rate events/s in batches of 20) to three webhook
integrations on a real receiver (one answering 200, one failing half the time, one always
500, so deliveries succeed, retry and fail for good), alerts that open and grow issues under
a policy, and a console reader going through the lists and pages the console shows (events,
integrations and their events and logs, alerts, issues, connections, stats, the console's
own files). Retention is shortened (--retention-events 10m, --retention-deliveries 10m) so
the database reaches a steady size within the run, as a long-running server's does.

Writes build/soak/memory-<db>.csv (t_s, rss_mb, anon_mb, threads, fds, db_mb, events/s,
requests) and prints the curve and a verdict: RSS over the last half of the run must grow
less than --max-growth MB (default 8) for the run to pass (exit status 0).

Uses the integration suite's Server, Postgres and Receiver (tests/integration)."""

import argparse
import json
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from conftest import ALL_PERMS, Postgres, Server, make_key, make_tenant  # noqa: E402
from receiver import Receiver  # noqa: E402


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    anon = 0.0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Anonymous:"):
                    anon = int(line.split()[1]) / 1024
    except OSError:
        pass
    return (int(out["VmRSS"].split()[0]) / 1024, anon, int(out["Threads"]),
            len(os.listdir(f"/proc/{pid}/fd")))


def db_mb(srv):
    if srv.db:
        return 0.0
    total = 0
    for f in os.listdir(srv.data_dir):
        if f.startswith("sluice.db"):
            total += os.path.getsize(os.path.join(srv.data_dir, f))
    return total / (1 << 20)


class Load:
    def __init__(self, srv, key, rate):
        self.srv, self.key, self.rate = srv, key, rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.events = 0
        self.requests = 0
        self.errors = {}

    def count(self, status, n_events=0):
        with self.lock:
            self.requests += 1
            self.events += n_events
            if status is None or status >= 500:
                self.errors[status] = self.errors.get(status, 0) + 1

    def call(self, method, path, body=None):
        try:
            st, _, resp = self.srv.request(method, path, body, token=self.key, timeout=30)
        except OSError:
            st, resp = None, None
        return st, resp

    def publisher(self, seed):
        rng = random.Random(seed)
        interval = 20 / (self.rate / 2)  # two publishers, batches of 20
        n = 0
        while not self.stop.is_set():
            t0 = time.monotonic()
            evs = [{"type": rng.choice(["order.created", "order.updated", "shipment.created"]),
                    "entity_id": f"ORD-{rng.randrange(5000)}",
                    "payload": {"n": n, "lines": [{"sku": f"SKU-{rng.randrange(900)}",
                                                   "qty": rng.randrange(1, 9)}] * 3}}
                   for _ in range(20)]
            n += 1
            st, _ = self.call("POST", "/v1/events", {"events": evs})
            self.count(st, 20 if st == 202 else 0)
            self.stop.wait(max(0.0, interval - (time.monotonic() - t0)))

    def reporter(self):
        rng = random.Random(7)
        i = 0
        while not self.stop.is_set():
            i += 1
            st, _ = self.call("POST", "/v1/alerts", {
                "event": rng.choice(["order.import_failed", "inventory.sync_failed"]),
                "message": f"SKU {rng.randrange(50)} not found", "entity_id": f"ORD-{i}",
                "connection": f"shop-{rng.randrange(20)}"})
            self.count(st)
            self.stop.wait(0.2)

    def console(self):
        pages = ["/v1/events?limit=100", "/v1/integrations", "/v1/integrations/ok/events",
                 "/v1/integrations/flaky/events?status=failure", "/v1/integrations/down/logs",
                 "/v1/integrations/flaky/rejected-events", "/v1/alerts?limit=100",
                 "/v1/issues?status=open", "/v1/connections", "/v1/stats", "/v1/tasks",
                 "/v1/notifications", "/v1/event-types", "/v1/failure-types", "/v1/me", "/",
                 "/ui/app.js", "/metrics"]
        while not self.stop.is_set():
            for p in pages:
                st, resp = self.call("GET", p)
                self.count(st)
                # Follow one page of a list's cursor, as the console's "next" does.
                if st == 200 and isinstance(resp, dict) and resp.get("next_cursor"):
                    sep = "&" if "?" in p else "?"
                    st, _ = self.call("GET", f"{p}{sep}cursor={resp['next_cursor']}")
                    self.count(st)
                if self.stop.wait(0.1):
                    return
            st, resp = self.call("GET", "/v1/issues?limit=5")
            if st == 200 and resp["data"]:
                iid = resp["data"][0]["id"]
                for p in (f"/v1/issues/{iid}", f"/v1/issues/{iid}/alerts",
                          f"/v1/issues/{iid}/timeline"):
                    self.count(self.call("GET", p)[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=1800)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--rate", type=int, default=200, help="events per second")
    ap.add_argument("--max-growth", type=float, default=8.0)
    ap.add_argument("--extra", default="", help="more sluice serve flags")
    args = ap.parse_args()

    os.makedirs(os.path.join(REPO, "build", "soak"), exist_ok=True)
    work = os.path.join(REPO, "build", "soak", f"memory-{args.db}")
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    pg = None
    rcv = Receiver()
    rng = random.Random(1)
    rcv.set("/ok", 200)
    rcv.set("/flaky", lambda r: 500 if rng.random() < 0.5 else 200)
    rcv.set("/down", 500)
    url = None
    if args.db == "postgres":
        pg = Postgres()
        pg.start()
        pg.psql("CREATE DATABASE soak")
        url = pg.url("soak")
    srv = Server(os.path.join(work, "data"), db=url,
                 args=["--allow-private-targets", "--time-scale", "60", "--retention-events",
                       "10m", "--retention-deliveries", "10m", "--retention-alerts", "10m",
                       "--log-level", "warn"] + args.extra.split())
    csv_path = os.path.join(REPO, "build", "soak", f"memory-{args.db}.csv")
    samples = []
    load = None
    try:
        srv.start()
        make_tenant(srv, "acme", "Acme")
        key = make_key(srv, "acme", ALL_PERMS)
        for iid in ("ok", "flaky", "down"):
            st, _, b = srv.request("POST", "/v1/integrations", {
                "id": iid, "events": ["order", "shipment"], "ordering": "none",
                "target": {"type": "webhook", "url": rcv.url("/" + iid)}}, token=key)
            assert st == 201, b
        st, _, b = srv.request("POST", "/v1/alert-policies", {
            "name": "all", "monitored_events": [{"event": "order.*"},
                                                {"event": "inventory.*"}]}, token=key)
        assert st == 201, b
        load = Load(srv, key, args.rate)
        threads = [threading.Thread(target=load.publisher, args=(s,), daemon=True)
                   for s in (1, 2)]
        threads += [threading.Thread(target=load.reporter, daemon=True),
                    threading.Thread(target=load.console, daemon=True)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        last_events = 0
        with open(csv_path, "w") as f:
            f.write("t_s,rss_mb,anon_mb,threads,fds,db_mb,events_per_s,requests\n")
            while True:
                t = time.monotonic() - t0
                if not srv.running():
                    print(f"memory soak: sluice exited with {srv.proc.returncode} at {t:.0f}s",
                          flush=True)
                    break
                rss, anon, nthreads, nfds = proc_status(srv.proc.pid)
                with load.lock:
                    ev, reqs = load.events, load.requests
                rate = (ev - last_events) / args.every if samples else 0.0
                last_events = ev
                row = (round(t), round(rss, 1), round(anon, 1), nthreads, nfds,
                       round(db_mb(srv), 1), round(rate), reqs)
                samples.append(row)
                f.write(",".join(map(str, row)) + "\n")
                f.flush()
                print("t=%5ds rss=%7.1f MB anon=%7.1f MB threads=%d fds=%d db=%.1f MB "
                      "%d ev/s %d requests" % row, flush=True)
                if t >= args.seconds or not srv.running():
                    break
                time.sleep(max(0.0, args.every - ((time.monotonic() - t0) - t)))
        load.stop.set()
        for t in threads:
            t.join(60)
    finally:
        if load:
            load.stop.set()
        code = srv.stop() if srv.running() else srv.proc.returncode if srv.proc else None
        rcv.stop()
        if pg:
            pg.stop()
    half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    growth = half[-1][1] - half[0][1] if len(half) > 1 else 0.0
    # Least-squares slope of RSS over the last half, MB per minute.
    n = len(half)
    mx = sum(s[0] for s in half) / n
    my = sum(s[1] for s in half) / n
    den = sum((s[0] - mx) ** 2 for s in half) or 1
    slope = sum((s[0] - mx) * (s[1] - my) for s in half) / den * 60
    peak = max(s[1] for s in samples)
    summary = {"db": args.db, "seconds": samples[-1][0], "rss_start_mb": samples[0][1],
               "rss_1min_mb": next((s[1] for s in samples if s[0] >= 60), None),
               "rss_end_mb": samples[-1][1], "rss_peak_mb": peak,
               "last_half_growth_mb": round(growth, 1),
               "last_half_slope_mb_per_min": round(slope, 3),
               "events": load.events if load else 0, "requests": load.requests if load else 0,
               "5xx_or_refused": load.errors if load else {}, "exit_code": code}
    with open(os.path.join(REPO, "build", "soak", f"memory-{args.db}.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    ok = growth < args.max_growth and code == 0
    print(f"memory soak: {json.dumps(summary, default=str)}")
    print(f"memory soak: {'flat' if ok else 'GROWING'} (last half +{growth:.1f} MB, "
          f"{slope:+.3f} MB/min; limit +{args.max_growth} MB)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
