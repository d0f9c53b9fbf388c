"""The node registry (scale-out, issue 15): every node has a row in `nodes` with a heartbeat,
GET /v1/admin/nodes and /metrics show them, a second live process with a node's id is
refused with one clear line and a non-zero exit, a node restarted after a crash takes its
work back at once, and the default node id stays the same across restarts.

Real peers: the sluice binary, SQLite and a PostgreSQL cluster (conftest), the recording
receiver (receiver.py). The multi-node behaviour under load is in test_scaleout.py."""

import os
import re
import subprocess
import time

import pytest

from conftest import (ALL_PERMS, SLOW, assert_problem, clean_env, make_key, make_tenant,
                      wait_for)


def nodes(srv):
    status, _, body = srv.admin("GET", "/v1/admin/nodes")
    assert status == 200, body
    assert body["next_cursor"] is None, body
    return {n["id"]: n for n in body["data"]}


def node_id_of(srv):
    with open(os.path.join(srv.data_dir, "node-id")) as f:
        return f.read().strip()


def run_refused(srv, extra=()):
    """Starts the same command as srv (another port) and expects a refusal: returns the
    one line it printed on stderr."""
    cmd = srv.command()
    i = cmd.index("--listen")
    cmd[i + 1] = "127.0.0.1:0"
    r = subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=60 * SLOW,
                       env=clean_env(), cwd=os.path.dirname(srv.data_dir))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.startswith("sluice: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_node_row_and_default_id_kept_across_restarts(start_server, db):
    srv = start_server(db=db, args=["--roles", "api,webhook,alerts"])
    nid = node_id_of(srv)
    assert re.fullmatch(r"[A-Za-z0-9-]+-[0-9a-f]{6}", nid), nid
    rows = nodes(srv)
    assert list(rows) == [nid], rows
    n = rows[nid]
    assert n["alive"] is True
    assert n["roles"] == ["api", "webhook", "alerts"]
    assert n["version"] and isinstance(n["version"], str)
    assert n["holding"] == {"deliveries": 0, "batches": 0, "notifications": 0}
    assert set(n) == {"id", "roles", "version", "started_at", "last_seen_at", "alive",
                      "holding"}
    started = n["started_at"]
    # the heartbeat moves (every 2 s with the default 10 s timeout)
    wait_for(lambda: nodes(srv)[nid]["last_seen_at"] > n["last_seen_at"], 6,
             what="a heartbeat")
    # the admin token only
    make_tenant(srv, "acme")
    key = make_key(srv, "acme", ALL_PERMS)
    assert_problem(srv.request("GET", "/v1/admin/nodes", token=key), 403)
    assert_problem(srv.request("GET", "/v1/admin/nodes"), 401)
    # /metrics shows the same
    _, _, text = srv.request("GET", "/metrics")
    assert re.search(rf'^sluice_node_up{{node="{nid}",roles="api,webhook,alerts",'
                     rf'version="[^"]+"}} 1$', text, re.M), text
    assert re.search(rf'^sluice_node_heartbeat_age_seconds{{node="{nid}"}} \d+\.\d+$', text,
                     re.M)
    assert f'sluice_node_holding{{node="{nid}",kind="deliveries"}} 0' in text
    # a clean stop says so; the restart keeps the id and starts again
    assert srv.stop() == 0
    srv.start()
    assert node_id_of(srv) == nid
    rows = nodes(srv)
    assert list(rows) == [nid] and rows[nid]["alive"] and rows[nid]["started_at"] > started
    assert "took back" not in srv.output(), "a clean stop leaves nothing to take back"


def test_second_live_process_with_the_same_id_is_refused(start_server, db):
    srv = start_server(db=db)
    nid = node_id_of(srv)
    line = run_refused(srv)
    assert f'node id "{nid}" is in use by a running process' in line, line
    assert f"pid {srv.proc.pid}" in line, line
    # the running node is untouched
    assert srv.running() and nodes(srv)[nid]["alive"]
    if db is None:
        # SQLite runs one node: another id on the same database is refused too
        line = run_refused(srv, ["--node-id", "other"])
        assert "another sluice process" in line and "SQLite runs one node" in line, line
    else:
        # PostgreSQL: the same id from another data dir (another machine) is refused too
        key_file = os.path.join(srv.data_dir, "master-key")
        other = start_server(db=db, args=["--node-id", nid, "--master-key-file", key_file],
                             wait=False)
        other.proc.wait(30 * SLOW)
        assert other.proc.returncode == 1, other.output()
        assert f'node id "{nid}" is in use by a running process' in other.output()


def test_restart_after_sigkill_takes_the_work_back_at_once(start_server, db, receiver):
    """A node killed while requests are in flight and started again with its own id (the
    same data dir) sends them again at once: it does not wait for its own leases (30 s
    here) to expire."""
    srv = start_server(db=db, args=["--allow-private-targets", "--webhook-timeout", "25s"])
    nid = node_id_of(srv)
    make_tenant(srv, "acme")
    key = make_key(srv, "acme", ALL_PERMS)
    receiver.set("/hook", "hang")
    st, _, body = srv.request("POST", "/v1/integrations", {
        "id": "erp", "events": ["order"], "max_in_flight": 3,
        "target": {"type": "webhook", "url": receiver.url("/hook")}}, token=key)
    assert st == 201, body
    st, _, body = srv.request("POST", "/v1/events", {"events": [
        {"type": "order.created", "entity_id": f"O{i}"} for i in range(5)]}, token=key)
    assert st == 202, body
    receiver.wait("/hook", 3)
    wait_for(lambda: nodes(srv)[nid]["holding"]["deliveries"] == 3, 10,
             what="three deliveries held")
    srv.kill()
    receiver.set("/hook", 200)
    t0 = time.monotonic()
    srv.start()
    got = receiver.wait("/hook", 8, timeout=20)
    first_again = min(r.t for r in got[3:])
    assert first_again - t0 < 8 * SLOW, f"redelivered {first_again - t0:.1f}s after the restart"
    assert "took back the work of its previous run" in srv.output(), srv.output()
    assert re.search(r"took back .*: 3 delivery", srv.output()), srv.output()
    wait_for(lambda: len({r.json["id"] for r in receiver.got("/hook")
                          if r.answer == 200}) == 5, 20, what="all five delivered")


def test_sigterm_drains_requests_in_flight(start_server, db, receiver):
    """SIGTERM lets the requests in flight finish and records their outcomes before the node
    gives the rest back: the consumer (1 s per request, max_in_flight 6) never works on more
    than 6 at once and never gets an event twice, across the stop and the restart."""
    srv = start_server(db=db, args=["--allow-private-targets"])
    make_tenant(srv, "acme")
    key = make_key(srv, "acme", ALL_PERMS)
    receiver.set("/slow", ("delay", 1.0, 200))
    st, _, body = srv.request("POST", "/v1/integrations", {
        "id": "erp", "events": ["order"], "max_in_flight": 6,
        "target": {"type": "webhook", "url": receiver.url("/slow")}}, token=key)
    assert st == 201, body
    st, _, body = srv.request("POST", "/v1/events", {"events": [
        {"type": "order.created", "entity_id": f"O{i}"} for i in range(12)]}, token=key)
    assert st == 202, body
    receiver.wait("/slow", 6)
    assert receiver.active("/slow") == 6
    t0 = time.monotonic()
    assert srv.stop() == 0
    took = time.monotonic() - t0
    # the six in flight were answered and recorded, not cut off
    answered = [r for r in receiver.got("/slow") if r.answer == 200]
    assert len(answered) == 6, receiver.got("/slow")
    assert took < 6 * SLOW, f"the drain took {took:.1f}s"
    assert "requests still in flight after the drain" not in srv.output()
    srv.start()
    wait_for(lambda: len([r for r in receiver.got("/slow") if r.answer == 200]) == 12, 30,
             what="the other six after the restart")
    time.sleep(0.5)
    ids = [r.json["id"] for r in receiver.got("/slow")]
    assert len(ids) == 12 and len(set(ids)) == 12, f"sent twice: {len(ids) - len(set(ids))}"
    assert receiver.peak("/slow") <= 6, receiver.peak("/slow")
