#!/usr/bin/python3
"""Scale-out benchmark (PostgreSQL): delivered events per second with 1, 2 and 3 `sluice
serve` nodes on one database, to a receiver that takes 20 ms per request (nginx with the
echo module's echo_sleep: latency-bound, as real ERPs are).

Each node is one process with its own data dir and --node-id, the same master key file,
every role, and --webhook-max-connections C (default 16): a node's connection pool is what
bounds one node against a slow receiver, so adding nodes adds delivery capacity. The
backlog (events routed to 8 integrations, ordering none, max_in_flight 64 each: more than
three nodes' pools) is built first by one node with --roles api. For each node count the
nodes are started together, given a warm-up, and the receiver's count of requests over
--seconds is the figure; then they are stopped (SIGTERM: each gives its leases back).

Usage: bench/scaleout.py [--seconds S] [--connections C] [--events N]
Prints one JSON object (DESIGN.md's scaleout keys).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

INTEGRATIONS = 8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--events", type=int, default=0, help="default: enough for every run")
    ap.add_argument("--delay-ms", type=int, default=20)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sluice-bench-scaleout-")
    pg = B.Postgres().start()
    nginx = B.Nginx(tmp, delay_ms=a.delay_ms, log=True)
    nodes = []
    try:
        url = pg.fresh_db("scaleout")
        key_file = os.path.join(tmp, "master-key")
        with open(key_file, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(key_file, 0o600)
        seed = B.Sluice(tmp, name="seed", db=url, master_key=key_file,
                        args=["--roles", "api"]).start()
        key = seed.tenant_key()
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
               "integrations": INTEGRATIONS, "backlog_deliveries": events * INTEGRATIONS}
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
        out["ideal_events_per_s_1_node"] = round(per_node)
        B.emit(out)
    finally:
        for s in nodes:
            s.stop()
        nginx.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
