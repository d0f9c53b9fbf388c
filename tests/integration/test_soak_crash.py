"""Crash soak (issue 17 §4): the server is SIGKILLed every 0.5-2.5 s of uptime and restarted
on the same data, SLUICE_SOAK_ROUNDS times (10 inside `make test`, 100 with `make soak`),
while publishers send batches with client ids (retried until acknowledged), reporters send
alerts that open issues, and a webhook receiver takes the deliveries (answering 500 now and
then). Both databases.

At the end, once the backlog drains: every acknowledged event is stored exactly once and
every batch whole or not at all, every stored event has exactly one delivery to the
integration and it succeeded, every acknowledged event reached the receiver at least once,
every acknowledged alert is stored, and the counts the API reports match the database. The
figures (kills, events acknowledged, duplicates delivered, drain time after the last kill)
are printed and written to build/soak/crash-<db>.json."""

import json
import os
import random
import sqlite3
import subprocess
import threading
import time

from conftest import ALL_PERMS, PG_BIN, REPO, SLOW, make_key, make_tenant
from fault_helpers import Publisher

ROUNDS = int(os.environ.get("SLUICE_SOAK_ROUNDS", "10"))


def sql(srv, statement):
    """Rows of a query on the server's database, through the database's own client."""
    if srv.db is None:
        con = sqlite3.connect(os.path.join(srv.data_dir, "sluice.db"), timeout=30)
        try:
            return con.execute(statement).fetchall()
        finally:
            con.close()
    r = subprocess.run([f"{PG_BIN}/psql", srv.db, "-v", "ON_ERROR_STOP=1", "-At", "-F", "|",
                        "-c", statement], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [tuple(line.split("|")) for line in r.stdout.splitlines() if line]


class Reporter(threading.Thread):
    """Reports one alert at a time (connections shop-0..9 open and grow issues); keeps the
    ids of the acknowledged ones. No retry: an alert has no client id."""

    def __init__(self, srv, key):
        super().__init__(daemon=True)
        self.srv, self.key = srv, key
        self.acked, self.stopping = [], threading.Event()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            i += 1
            body = {"event": "order.import_failed", "message": f"SKU {i} not found",
                    "connection": f"shop-{i % 10}", "entity_id": f"ORD-{i}"}
            try:
                st, _, resp = self.srv.request("POST", "/v1/alerts", body, token=self.key,
                                               timeout=20)
            except OSError:
                st = None
            if st == 202:
                self.acked += resp["ids"]
            time.sleep(0.1)


def test_crash_soak(start_server, db, receiver):
    srv = start_server(db=db, args=["--allow-private-targets", "--time-scale", "100",
                                    "--lease", "2s", "--webhook-timeout", "2s"])
    make_tenant(srv, "acme")
    key = make_key(srv, "acme", ALL_PERMS)
    st, _, body = srv.request("POST", "/v1/integrations", {
        "id": "erp", "events": ["order"], "max_in_flight": 32,
        "target": {"type": "webhook", "url": receiver.url("/erp")}}, token=key)
    assert st == 201, body
    st, _, body = srv.request("POST", "/v1/alert-policies", {
        "name": "all", "monitored_events": [{"event": "order.*"}]}, token=key)
    assert st == 201, body
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    receiver.set("/erp", lambda req: 500 if rng.random() < 0.05 else 200)

    pub = Publisher(srv, key, tag="s", threads=2, batch=10, pause=0.05).start()
    rep = Reporter(srv, key)
    rep.start()
    kills = 0
    last_restart = None
    t0 = time.monotonic()
    try:
        for _ in range(ROUNDS):
            time.sleep(rng.uniform(0.5, 2.5))
            assert not pub.errors, pub.errors
            srv.kill()
            kills += 1
            srv.start()
            last_restart = time.monotonic()
        pub.wait_acked(len(pub.acked) + 5, 60, "batches after the last restart")
    finally:
        pub.stop()
        rep.stopping.set()
        rep.join(30)
    load_s = time.monotonic() - t0
    assert kills == ROUNDS and srv.exit_codes.count("killed") == ROUNDS, srv.exit_codes

    # Drain: every acknowledged event at the receiver.
    want = set(pub.ids())
    assert len(want) == len(pub.ids()), "an id acknowledged twice"

    def delivered_ok():
        return {r.headers.get("webhook-id") for r in receiver.got("/erp") if r.answer == 200}
    deadline = time.monotonic() + 300 * SLOW
    while not want <= delivered_ok():
        assert time.monotonic() < deadline, \
            f"{len(want - delivered_ok())} acknowledged events never delivered (seed {seed})"
        time.sleep(0.2)
    drain_s = time.monotonic() - last_restart if last_restart else 0.0

    # Stored exactly once, batches whole, one successful delivery per stored event.
    stored = dict(sql(srv, "SELECT client_id, count(*) FROM events WHERE tenant_id = 'acme' "
                           "GROUP BY client_id"))
    stored = {k: int(v) for k, v in stored.items()}
    assert all(n == 1 for n in stored.values()), "an event stored twice"
    for b in set(pub.acked) | set(pub.refused):
        have = sum(1 for k in range(pub.batch) if f"s-{b}-{k}" in stored)
        assert have in (0, pub.batch), f"batch {b} half-written ({have})"
        assert b not in pub.acked or have == pub.batch, f"acknowledged batch {b} missing"
    n_events = len(stored)

    def deliveries():
        return dict(sql(srv, "SELECT state, count(*) FROM deliveries WHERE tenant_id = 'acme' "
                             "AND integration_id = 'erp' GROUP BY state"))
    deadline = time.monotonic() + 120 * SLOW
    while True:  # the events of unacknowledged but committed batches drain too
        d = {k: int(v) for k, v in deliveries().items()}
        if d.get("succeeded", 0) == n_events and sum(d.values()) == n_events:
            break
        assert time.monotonic() < deadline, (d, n_events)
        time.sleep(0.2)
    # The API's count agrees with the database.
    st, _, integ = srv.request("GET", "/v1/integrations/erp", token=key)
    assert st == 200 and integ["stats"]["succeeded"] == n_events, (integ["stats"], n_events)
    # Acknowledged alerts are stored (each once: their ids are the server's).
    alert_ids = {r[0] for r in sql(srv, "SELECT id FROM alerts WHERE tenant_id = 'acme'")}
    assert set(rep.acked) <= alert_ids and len(rep.acked) == len(set(rep.acked))
    got = [r.headers.get("webhook-id") for r in receiver.got("/erp") if r.answer == 200]
    duplicates = len(got) - len(set(got))

    figures = {"db": "postgres" if db else "sqlite", "rounds": ROUNDS, "kills": kills,
               "seed": seed, "load_seconds": round(load_s, 1),
               "events_acknowledged": len(want), "events_stored": n_events,
               "batches_refused_then_retried": len(pub.refused),
               "alerts_acknowledged": len(rep.acked), "deliveries_received": len(got),
               "duplicates_delivered": duplicates,
               "drain_seconds_after_last_kill": round(drain_s, 2)}
    os.makedirs(os.path.join(REPO, "build", "soak"), exist_ok=True)
    with open(os.path.join(REPO, "build", "soak", f"crash-{figures['db']}.json"), "w") as f:
        json.dump(figures, f, indent=1)
    print("\ncrash soak: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    assert srv.running()
