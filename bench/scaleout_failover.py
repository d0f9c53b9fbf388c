#!/usr/bin/python3
"""Scale-out benchmark (PostgreSQL): delivered events/s with 1, 2 and 3 `sluice serve` nodes
on one database to a receiver that takes 20 ms per request, and the fail-over time (SIGKILL
of a node holding work to the first delivery of that work by another node).

Starts a throwaway PostgreSQL 15 cluster (the test suite's conftest.Postgres: fsync on) and
the test suite's recording receiver (tests/integration/receiver.py, one thread per request).
For each node count: a fresh database, the nodes, INTEGRATIONS webhook integrations
(max_in_flight MAX_IN_FLIGHT each, ordering none), a backlog of EVENTS events published
with the engines' wake-ups running, then the rate is measured at the receiver over the
middle of the run (the first and last 10% of receipts left out).

Usage: bench/scaleout_failover.py SLUICE_BIN [EVENTS]
Environment: INTEGRATIONS (4), MAX_IN_FLIGHT (64), DELAY_MS (20), NODES ("1,2,3").
Prints one JSON object.
"""
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from conftest import Postgres, Server  # noqa: E402
from receiver import Receiver  # noqa: E402

EVENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
INTEGRATIONS = int(os.environ.get("INTEGRATIONS", "4"))
MAX_IN_FLIGHT = int(os.environ.get("MAX_IN_FLIGHT", "64"))
DELAY = int(os.environ.get("DELAY_MS", "20")) / 1000.0
PERMS = ["events:publish", "tools:view", "tools:manage"]


def start_nodes(bin_, pg, n, tmp, args=()):
    name = "b_" + secrets.token_hex(5)
    pg.psql(f"CREATE DATABASE {name}")
    token = secrets.token_hex(12)
    os.environ["SLUICE_BIN"] = bin_
    nodes = []
    for i in range(n):
        extra = ["--allow-private-targets", "--log-level", "warn", *args]
        if nodes:
            extra += ["--master-key-file", os.path.join(nodes[0].data_dir, "master-key")]
        srv = Server(os.path.join(tmp, f"{name}-n{i}"), db=pg.url(name), admin_token=token,
                     args=extra)
        nodes.append(srv.start())
    return nodes


def setup(nodes, rcv):
    a = nodes[0]
    st, _, body = a.admin("POST", "/v1/admin/tenants", {"id": "acme", "name": "Acme"})
    assert st == 201, body
    st, _, body = a.admin("POST", "/v1/admin/tenants/acme/keys",
                          {"name": "bench", "permissions": PERMS})
    assert st == 201, body
    key = body["key"]
    for k in range(INTEGRATIONS):
        st, _, body = a.request("POST", "/v1/integrations", {
            "id": f"w{k}", "events": ["order"], "ordering": "none",
            "max_in_flight": MAX_IN_FLIGHT,
            "target": {"type": "webhook", "url": rcv.url(f"/w{k}")}}, token=key)
        assert st == 201, body
    return key


def publish(nodes, key, n, batch=500):
    i = 0
    while i < n:
        k = min(batch, n - i)
        srv = nodes[(i // batch) % len(nodes)]
        st, _, body = srv.request("POST", "/v1/events", {"events": [
            {"type": "order.updated", "entity_id": f"E{(i + j) % 1000}"} for j in range(k)]},
            token=key, timeout=60)
        assert st == 202, body
        i += k


def rate(bin_, pg, n, tmp):
    rcv = Receiver()
    for k in range(INTEGRATIONS):
        rcv.set(f"/w{k}", ("delay", DELAY, 200))
    nodes = start_nodes(bin_, pg, n, tmp)
    try:
        key = setup(nodes, rcv)
        t0 = time.monotonic()
        publish(nodes, key, EVENTS)
        want = EVENTS * INTEGRATIONS
        deadline = time.monotonic() + 600
        while len(rcv.got()) < want and time.monotonic() < deadline:
            time.sleep(0.2)
        got = sorted(r.t for r in rcv.got())
        assert len(got) >= want, f"{len(got)} of {want} delivered in 600 s"
        lo, hi = got[len(got) // 10], got[len(got) * 9 // 10]
        mid = (len(got) * 9 // 10 - len(got) // 10) / (hi - lo)
        return {"nodes": n, "events_per_s": round(mid), "total_s": round(got[-1] - t0, 1),
                "delivered": len(got)}
    finally:
        for s in nodes:
            s.stop()
        rcv.stop()


def failover(bin_, pg, tmp):
    """Two nodes; the receiver holds requests 1 s; B is SIGKILLed while it holds some; the
    time to the first receipt of one of them by A."""
    rcv = Receiver()
    rcv.set("/w0", ("delay", 1.0, 200))
    nodes = start_nodes(bin_, pg, 2, tmp)
    global INTEGRATIONS
    saved, INTEGRATIONS = INTEGRATIONS, 1
    try:
        key = setup(nodes, rcv)
        publish(nodes, key, 2000)
        b = nodes[1]
        with open(os.path.join(b.data_dir, "node-id")) as f:
            bid = f.read().strip()
        dbname = b.db.rsplit("/", 1)[1]
        for _ in range(100):
            held = pg.psql("SELECT event_id FROM deliveries WHERE state = 'in_flight' AND "
                           f"lease_owner = '{bid}'", db=dbname).split()
            if held:
                break
            time.sleep(0.1)
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        t_kill = time.monotonic()
        held = set(pg.psql("SELECT event_id FROM deliveries WHERE state = 'in_flight' AND "
                           f"lease_owner = '{bid}'", db=dbname).split())
        rcv.set("/w0", ("delay", DELAY, 200))
        while time.monotonic() < t_kill + 60:
            hits = [r.t for r in rcv.got() if r.t > t_kill and r.json["id"] in held]
            if hits:
                return {"held": len(held), "seconds": round(min(hits) - t_kill, 2)}
            time.sleep(0.05)
        return {"held": len(held), "seconds": None}
    finally:
        INTEGRATIONS = saved
        for s in nodes:
            s.stop()
        rcv.stop()


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: bench/scaleout.py SLUICE_BIN [EVENTS]")
    bin_ = os.path.abspath(sys.argv[1])
    counts = [int(x) for x in os.environ.get("NODES", "1,2,3").split(",")]
    pg = Postgres()
    tmp = tempfile.mkdtemp(prefix="sluice-scaleout-")
    try:
        pg.start()
        runs = [rate(bin_, pg, n, tmp) for n in counts]
        out = {"events": EVENTS, "integrations": INTEGRATIONS, "max_in_flight": MAX_IN_FLIGHT,
               "receiver_delay_ms": DELAY * 1000, "cores": os.cpu_count(), "runs": runs,
               "failover": failover(bin_, pg, tmp)}
        base = runs[0]["events_per_s"]
        out["ratios"] = {str(r["nodes"]): round(r["events_per_s"] / base, 2) for r in runs}
        print(json.dumps(out))
    finally:
        pg.stop()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
