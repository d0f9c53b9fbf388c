#!/usr/bin/python3
"""Scale-out benchmark (PostgreSQL): delivered events per second with 1, 2 and 3 `sluice
serve` nodes on one database, to a receiver that takes 20 ms per request (nginx with the
echo module's echo_sleep: latency-bound, as real ERPs are), and the fail-over time.

Throughput. Each node is one process with its own data dir and --node-id, the same master
key file, every role, and --webhook-max-connections C (default 16): a node's connection
pool is what bounds one node against a slow receiver (C / 20 ms = 800 requests/s), so
adding nodes adds delivery capacity. The backlog (events routed to 8 integrations,
ordering none, max_in_flight 64 each: more than three nodes' pools) is built first by one
node with --roles api. For each node count the nodes are started together, given a
warm-up, and the receiver's count of requests over --seconds is the figure; then they are
stopped (SIGTERM: each drains and gives its leases back).

Fail-over. On a fresh database, two nodes and one integration whose receiver holds every
request 1 s; once node B holds deliveries in flight it is SIGKILLed, and the figure is the
time from the kill to the arrival at the receiver of the first of those deliveries sent by
node A (nginx logs each request's end and duration, and its webhook-id: the event id). It
includes the dead-node bound (--node-timeout, default 10 s).

Usage: bench/scaleout.py [--seconds S] [--connections C] [--events N] [--no-failover]
Prints one JSON object (DESIGN.md's scaleout keys, and failover_s).
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

INTEGRATIONS = 8


def throughput(a, tmp, pg, key_file):
    nginx = B.Nginx(tmp, delay_ms=a.delay_ms, log=True)
    nodes = []
    try:
        url = pg.fresh_db("scaleout")
        seed = B.Sluice(tmp, name="seed", db=url, master_key=key_file,
                        args=["--roles", "api"]).start()
        seed.tenant_key()
        for i in range(INTEGRATIONS):
            seed.api.ok("POST", "/v1/integrations", {
                "id": f"i{i}", "events": ["order"], "ordering": "none", "max_in_flight": 64,
                "target": {"type": "webhook", "url": nginx.url()}})
        # One node delivers at most connections / delay per second; with warm-ups, enough
        # events for 1 + 2 + 3 nodes' windows, with room to spare.
        per_node = a.connections / (a.delay_ms / 1000.0)
        deliveries = int(per_node * (a.seconds + 4) * 6 * 1.5)
        events = a.events or max(1000, deliveries // INTEGRATIONS)
        B.publish_backlog(seed.api, events, batch=1000, threads=4)
        seed.stop()
        out = {"delay_ms": a.delay_ms, "connections_per_node": a.connections,
               "integrations": INTEGRATIONS, "backlog_deliveries": events * INTEGRATIONS,
               "ideal_events_per_s_1_node": round(per_node)}
        for n in (1, 2, 3):
            nodes = [B.Sluice(tmp, name=f"node{n}-{k}", db=url, master_key=key_file,
                              args=["--node-id", f"bench-node-{k}",
                                    "--webhook-max-connections", str(a.connections)])
                     for k in range(n)]
            for s in nodes:
                s.start(wait=False)
            for s in nodes:
                B.wait_http(s.port, "/readyz", proc=s.proc)
            time.sleep(3)  # warm-up: connections opened, claims flowing
            c0, t0 = nginx.count(), time.monotonic()
            time.sleep(a.seconds)
            c1, t1 = nginx.count(), time.monotonic()
            for s in nodes:
                s.stop()
            nodes = []
            rate = (c1 - c0) / (t1 - t0)
            out[f"events_per_s_{n}_node" + ("s" if n > 1 else "")] = round(rate)
            if c1 >= events * INTEGRATIONS:
                raise RuntimeError("the backlog ran out during the measurement")
        one = out["events_per_s_1_node"]
        out["ratio_3_to_1"] = round(out["events_per_s_3_nodes"] / one, 3) if one else None
        return out
    finally:
        for s in nodes:
            s.stop()
        nginx.stop()


def failover(tmp, pg, key_file):
    # $msec is when the request ended; minus $request_time, when it arrived.
    nginx = B.Nginx(tmp, delay_ms=1000, log=True,
                    log_format="$msec $request_time $http_webhook_id")
    nodes = []
    try:
        url = pg.fresh_db("failover")
        nodes = [B.Sluice(tmp, name=f"fo-{k}", db=url, master_key=key_file,
                          args=["--node-id", f"bench-fo-{k}", "--webhook-max-connections", "64"])
                 for k in range(2)]
        for s in nodes:
            s.start()
        a = nodes[0]
        a.tenant_key()
        a.api.ok("POST", "/v1/integrations", {
            "id": "fo", "events": ["order"], "ordering": "none", "max_in_flight": 64,
            "target": {"type": "webhook", "url": nginx.url()}})
        B.publish_backlog(a.api, 2000, batch=500, threads=1)
        held_sql = ("SELECT event_id FROM deliveries WHERE state = 'in_flight' AND "
                    "lease_owner = 'bench-fo-1'")
        deadline = time.monotonic() + 30
        while not pg.psql(held_sql, db="failover") and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = nodes[1]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        t_kill = time.time()
        held = set(pg.psql(held_sql, db="failover").split())
        if not held:
            raise RuntimeError("node B held nothing when it was killed")
        end = time.monotonic() + 60
        while time.monotonic() < end:
            arrivals = []
            for line in nginx.lines():
                f = line.split()
                if len(f) == 3 and f[2] in held:
                    t = float(f[0]) - float(f[1])
                    if t > t_kill:
                        arrivals.append(t)
            if arrivals:
                return {"held": len(held), "seconds": round(min(arrivals) - t_kill, 2)}
            time.sleep(0.1)
        return {"held": len(held), "seconds": None}
    finally:
        for s in nodes:
            s.stop()
        nginx.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--events", type=int, default=0, help="default: enough for every run")
    ap.add_argument("--delay-ms", type=int, default=20)
    ap.add_argument("--no-failover", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sluice-bench-scaleout-")
    pg = B.Postgres().start()
    try:
        key_file = B.master_key_file(tmp)
        out = throughput(a, tmp, pg, key_file)
        if not a.no_failover:
            fo = failover(tmp, pg, key_file)
            out["failover_s"] = fo["seconds"]
            out["failover_held"] = fo["held"]
        B.emit(out)
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
