"""Scale-out (issue 15): several `sluice serve` nodes on one PostgreSQL, under load.

- A SIGTERMed node drains (its requests in flight finish and are recorded) while a second
  node takes over: the consumer never works on more than max_in_flight at once and gets no
  event twice.
- Three nodes, requests spread over them, one SIGKILLed and one SIGTERMed mid-run, 20,000
  events (SLUICE_SCALEOUT_EVENTS to change) to a webhook and an S3 integration: every
  acknowledged event arrives at least once, order per entity holds, max_in_flight is never
  exceeded, the S3 objects hold every event exactly once; duplicates are counted and printed
  (and may only be events the killed node held); the time from the SIGKILL to the first
  delivery of the orphaned work by another node is at most --node-timeout + 5 s; the killed
  node restarted with its own id delivers again at once.
- Alerts reported to all three nodes at once open one issue per key and one digest per
  channel window; a pause made on one node stops deliveries from every node within one
  second, and a resume made on another node leaves nothing stranded.

Real peers: the sluice binary, a PostgreSQL cluster (conftest), the recording receiver
(receiver.py), s3rver behind the SigV4 front (test_s3.py), aiosmtpd (alerting_helpers.py).
PostgreSQL only: SQLite runs one node."""

import concurrent.futures
import os
import secrets
import threading
import time

import pytest

from alerting_helpers import Smtp, alert, channel, issues, policy, report, req
from conftest import ALL_PERMS, SLOW, make_key, make_tenant, wait_for
from test_s3 import BUCKET, S3, lines_of, s3_target

N_EVENTS = int(os.environ.get("SLUICE_SCALEOUT_EVENTS", "20000"))
NODE_TIMEOUT = 10.0  # --node-timeout's default, which the fail-over bound is asserted on
TOKEN = "scaleout-admin-" + secrets.token_hex(8)


@pytest.fixture
def pgdb(pg):
    name = "s_" + secrets.token_hex(6)
    pg.psql(f"CREATE DATABASE {name}")
    yield pg.url(name)
    try:
        pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except RuntimeError:
        pass


@pytest.fixture(scope="module")
def s3():
    s = S3()
    try:
        yield s
    finally:
        s.stop()


def sql(pg, url, query):
    """Rows of a query on the nodes' database (tests may look; the nodes are what write)."""
    out = pg.psql(query, db=url.rsplit("/", 1)[1])
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def node_id(srv):
    with open(os.path.join(srv.data_dir, "node-id")) as f:
        return f.read().strip()


def start_nodes(start_server, url, n, args=()):
    """n nodes on one database, one admin token and one master key (secrets at rest)."""
    first = start_server(db=url, admin_token=TOKEN, args=list(args))
    key_file = os.path.join(first.data_dir, "master-key")
    return [first] + [start_server(db=url, admin_token=TOKEN,
                                   args=["--master-key-file", key_file, *args])
                      for _ in range(n - 1)]


def live_peers(srv):
    status, _, body = srv.admin("GET", "/v1/admin/nodes")
    assert status == 200, body
    return sum(1 for n in body["data"] if n["alive"])


def held(pg, url, nid):
    return {r[0] for r in sql(pg, url, "SELECT event_id FROM deliveries WHERE state = "
                                       f"'in_flight' AND lease_owner = '{nid}'")}


def ok_ids(rcv, path):
    return [r.json["id"] for r in rcv.got(path) if r.answer == 200]


# ------------------------------------------------------------------------ API key revocation


def test_revoked_key_is_refused_by_every_node_within_a_second(pg, pgdb, start_server):
    """Nodes keep the API keys they found for a second (src/http/auth.c): a key revoked on
    one node is refused there at once and by the other node within that second, even
    though the other node had just used it."""
    a, b = start_nodes(start_server, pgdb, 2)
    make_tenant(a, "acme")
    _, _, created = a.admin("POST", "/v1/admin/tenants/acme/keys",
                            {"name": "short-lived", "permissions": ["tools:view"]})
    key = created["key"]
    for srv in (a, b):  # both nodes know the key now
        assert srv.request("GET", "/v1/integrations", token=key)[0] == 200
    assert a.admin("DELETE", f"/v1/admin/tenants/acme/keys/{created['id']}")[0] == 204
    t0 = time.monotonic()
    assert a.request("GET", "/v1/integrations", token=key)[0] == 401
    wait_for(lambda: b.request("GET", "/v1/integrations", token=key)[0] == 401, 3,
             what="the other node to refuse the revoked key")
    assert time.monotonic() - t0 < 1.5 * SLOW, "kept past the key cache's second"


# ------------------------------------------------------------------------ drain + take-over


def test_sigterm_drain_while_another_node_takes_over(pg, pgdb, start_server, receiver):
    """max_in_flight 6, a consumer taking 1 s per request: node A holds six requests when it
    is SIGTERMed while node B runs. A lets them finish and records them, B carries on: the
    consumer never sees more than six at once and no event twice."""
    args = ["--allow-private-targets"]
    (a,) = start_nodes(start_server, pgdb, 1, args)
    make_tenant(a, "acme")
    key = make_key(a, "acme", ALL_PERMS)
    receiver.set("/slow", ("delay", 1.0, 200))
    st, _, body = a.request("POST", "/v1/integrations", {
        "id": "erp", "events": ["order"], "max_in_flight": 6,
        "target": {"type": "webhook", "url": receiver.url("/slow")}}, token=key)
    assert st == 201, body
    st, _, body = a.request("POST", "/v1/events", {"events": [
        {"type": "order.created", "entity_id": f"O{i}"} for i in range(30)]}, token=key)
    assert st == 202, body
    receiver.wait("/slow", 6)
    a_id = node_id(a)
    assert len(held(pg, pgdb, a_id)) == 6
    b = start_server(db=pgdb, admin_token=TOKEN,
                     args=["--master-key-file", os.path.join(a.data_dir, "master-key"), *args])
    wait_for(lambda: live_peers(b) == 2, 10, what="B sees A")
    before = len(receiver.got("/slow"))
    t0 = time.monotonic()
    assert a.stop() == 0
    took = time.monotonic() - t0
    assert took < 6 * SLOW, f"the drain took {took:.1f}s"
    assert "requests still in flight after the drain" not in a.output(), a.output()
    # A's requests were answered, and recorded: none is left leased to A
    assert not held(pg, pgdb, a_id)
    answered = [r for r in receiver.got("/slow")[:before] if r.answer == 200]
    assert len(answered) == before, "A's requests in flight were answered"
    wait_for(lambda: len(set(ok_ids(receiver, "/slow"))) == 30, 40 * SLOW,
             what="all 30 delivered")
    time.sleep(0.5)
    ids = [r.json["id"] for r in receiver.got("/slow")]
    assert len(ids) == len(set(ids)) == 30, f"sent twice: {len(ids) - len(set(ids))}"
    assert receiver.peak("/slow") <= 6, receiver.peak("/slow")
    b_id = node_id(b)
    (n_b,) = sql(pg, pgdb, f"SELECT COUNT(*) FROM delivery_attempts WHERE node_id = '{b_id}'")[0]
    assert int(n_b) >= 30 - 12, f"B made {n_b} attempts"


# ------------------------------------------------------------------------ three nodes


class Publisher(threading.Thread):
    """Publishes n events in batches, round robin over the nodes up, at a bounded rate, with
    client ids: a batch whose answer is lost (its node was killed or stopped) is sent again
    to the next node, as a client would, and idempotency keeps it stored once. Keeps the
    server ids of the acknowledged events."""

    def __init__(self, nodes, key, n, entities, batch=50, rate=800.0):
        super().__init__(daemon=True)
        self.nodes, self.key, self.n, self.entities = nodes, key, n, entities
        self.batch, self.rate = batch, rate
        self.acked = []  # server ids, in publish order
        self.retried = 0  # batches sent again after a lost answer
        self.down = set()  # node indexes not to use (being stopped)
        self.lock = threading.Lock()
        self.error = None

    def run(self):
        try:
            t0 = time.monotonic()
            i, turn = 0, 0
            while i < self.n:
                k = min(self.batch, self.n - i)
                evs = [{"id": f"c{i + j}", "type": "order.updated",
                        "entity_id": f"E{(i + j) % self.entities}",
                        "payload": {"i": i + j}} for j in range(k)]
                for tries in range(20):
                    with self.lock:
                        up = [x for x in range(len(self.nodes)) if x not in self.down]
                    srv = self.nodes[up[turn % len(up)]]
                    turn += 1
                    try:
                        st, _, body = srv.request("POST", "/v1/events", {"events": evs},
                                                  token=self.key, timeout=30)
                    except OSError:
                        st, body = None, None
                    if st == 202:
                        break
                    assert st in (None, 503), (st, body)
                    self.retried += 1
                    time.sleep(0.05)
                else:
                    raise AssertionError(f"batch at {i} never acknowledged")
                with self.lock:
                    self.acked += body["ids"]
                i += k
                ahead = t0 + i / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except BaseException as e:  # reported by the test
            self.error = e


def test_three_nodes_sigkill_and_sigterm_under_load(pg, pgdb, start_server, receiver, s3):
    s3.reset()
    prefix = "so" + secrets.token_hex(4) + "/"
    args = ["--allow-private-targets", "--s3-batch-max-bytes", "256KB",
            "--s3-batch-max-age", "2s"]
    nodes = start_nodes(start_server, pgdb, 3, args)
    a, b, c = nodes
    ids = [node_id(n) for n in nodes]
    make_tenant(a, "acme")
    key = make_key(a, "acme", ALL_PERMS)
    receiver.set("/erp", ("delay", 0.002, 200))
    st, _, body = b.request("POST", "/v1/integrations", {
        "id": "erp", "events": ["order"], "max_in_flight": 16,
        "target": {"type": "webhook", "url": receiver.url("/erp")}}, token=key)
    assert st == 201, body
    st, _, body = c.request("POST", "/v1/integrations", {
        "id": "lake", "events": ["order"], "ordering": "none",
        "target": s3_target(s3, prefix)}, token=key)
    assert st == 201, body
    wait_for(lambda: all(live_peers(n) == 3 for n in nodes), 10, what="three live nodes")

    pub = Publisher(nodes, key, N_EVENTS, entities=max(20, N_EVENTS // 100))
    t_start = time.monotonic()
    pub.start()

    # --- SIGKILL node b while it holds requests (the consumer slows down for a moment so
    # that every node has some on the wire)
    receiver.wait("/erp", N_EVENTS // 6, timeout=120)
    receiver.set("/erp", ("delay", 1.0, 200))
    wait_for(lambda: held(pg, pgdb, ids[1]), 15, what="node b holds deliveries")
    with pub.lock:
        pub.down.add(1)
    b.kill()
    t_kill = time.monotonic()
    orphans = held(pg, pgdb, ids[1])  # the rows say what it held when it died
    assert orphans
    receiver.set("/erp", ("delay", 0.002, 200))
    first = wait_for(lambda: min((r.t for r in receiver.got("/erp")
                                  if r.t > t_kill and r.json["id"] in orphans), default=None),
                     NODE_TIMEOUT + 20, interval=0.05, what="the orphaned work delivered")
    failover = first - t_kill
    print(f"\nfail-over: SIGKILL to the first delivery of the orphaned work by another "
          f"node: {failover:.2f} s ({len(orphans)} deliveries held)")
    assert failover <= NODE_TIMEOUT + 5, f"fail-over took {failover:.1f}s"

    # --- node b comes back with its own id and delivers again at once
    t_restart_ms = int(time.time() * 1000)
    b.start()
    t_ready = time.monotonic()
    assert node_id(b) == ids[1]
    wait_for(lambda: int(sql(pg, pgdb, "SELECT COUNT(*) FROM delivery_attempts WHERE "
                                       f"node_id = '{ids[1]}' AND started_at > "
                                       f"{t_restart_ms}")[0][0]) > 0,
             10, interval=0.1, what="the restarted node delivering")
    print(f"restarted node delivered again {time.monotonic() - t_ready:.2f} s after ready")
    with pub.lock:
        pub.down.discard(1)

    # --- SIGTERM node c mid-run: it drains
    receiver.wait("/erp", len(receiver.got("/erp")) + N_EVENTS // 10, timeout=120)
    with pub.lock:
        pub.down.add(2)
    assert c.stop() == 0
    assert "requests still in flight after the drain" not in c.output(), c.output()
    assert not held(pg, pgdb, ids[2]), "a drained node holds nothing"

    pub.join(timeout=600)
    assert not pub.is_alive() and pub.error is None, pub.error
    acked = list(pub.acked)
    assert len(acked) == len(set(acked)) == N_EVENTS, (len(acked), len(set(acked)))

    # --- every acknowledged event at least once, order per entity, max_in_flight
    want = set(acked)
    wait_for(lambda: want <= set(ok_ids(receiver, "/erp")), 240, interval=0.5,
             what="every acknowledged event delivered to the webhook")
    took = time.monotonic() - t_start
    got = receiver.got("/erp")
    delivered = ok_ids(receiver, "/erp")
    dups = len(delivered) - len(set(delivered))
    sent_twice = {i for i in delivered if delivered.count(i) > 1} if dups else set()
    print(f"webhook: {len(acked)} acknowledged ({pub.retried} batch(es) sent again), {len(got)} requests, "
          f"{len(set(delivered))} delivered, {dups} duplicate(s) in {took:.1f} s; "
          f"peak concurrency {receiver.peak('/erp')}")
    assert receiver.peak("/erp") <= 16, receiver.peak("/erp")
    assert sent_twice <= orphans, f"sent twice but not held by the killed node: " \
                                  f"{sorted(sent_twice - orphans)[:5]}"
    last = {}
    for r in got:
        i = r.json["payload"]["i"]
        e = r.json["entity_id"]
        assert i >= last.get(e, -1), f"entity {e}: event {i} after {last[e]}"
        last[e] = i

    # --- the S3 objects hold every acknowledged event exactly once
    def s3_done():
        rows = sql(pg, pgdb, "SELECT COUNT(*) FROM deliveries WHERE integration_id = 'lake' "
                             "AND state <> 'succeeded'")
        return int(rows[0][0]) == 0
    wait_for(s3_done, 120, interval=0.5, what="every S3 delivery succeeded")
    objs = s3.objects(prefix)
    seen = {}
    for o in objs:
        for line in lines_of(o)[0]:
            assert line["id"] not in seen, f"{line['id']} in {seen[line['id']]} and {o['key']}"
            seen[line["id"]] = o["key"]
    assert want <= set(seen), f"{len(want - set(seen))} acknowledged event(s) not in S3"
    stored = {r[0] for r in sql(pg, pgdb, "SELECT id FROM events")}
    assert set(seen) <= stored
    print(f"s3: {len(objs)} objects in {BUCKET}, {len(seen)} events, each once")


# ------------------------------------------------------------------------ alerts, pause


def test_three_nodes_alerts_and_pause(pg, pgdb, start_server, receiver, tmp_path):
    smtp = Smtp(tmp_path).start()
    try:
        _alerts_and_pause(start_server, pg, pgdb, receiver, smtp)
    finally:
        smtp.stop()


def _alerts_and_pause(start_server, pg, pgdb, receiver, smtp):
    # --time-scale 1800: a 1h digest window is 2 s
    args = ["--allow-private-targets", "--time-scale", "1800", "--smtp-url", smtp.url,
            "--smtp-from", "Sluice <alerts@sluice.example>"]
    nodes = start_nodes(start_server, pgdb, 3, args)
    a, b, c = nodes
    make_tenant(a, "acme", "Acme")
    key = make_key(a, "acme", ALL_PERMS)
    ch = channel(a, key, batching="1h")
    policy(b, key, [{"event": "order.*"}], channel_ids=[ch["id"]])
    wait_for(lambda: all(live_peers(n) == 3 for n in nodes), 10, what="three live nodes")

    # --- alerts to all three nodes at once: one open issue per key, one digest per window
    keys = [f"shop-{k}" for k in range(10)]

    def send(t):
        srv = nodes[t % 3]
        report(srv, key, [alert(connection=k, entity_id=f"ORD-{t}") for k in keys])
    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        list(ex.map(send, range(36)))
    open_issues = issues(a, key, "limit=100")
    assert sorted(i["group"]["connection"] for i in open_issues) == sorted(keys), open_issues
    for i in open_issues:
        assert i["alert_count"] == 36, i
    mails = wait_for(lambda: smtp.messages() or None, 30, what="a digest")
    time.sleep(4)  # the next windows: nothing more is due
    mails = smtp.messages()
    rows = sql(pg, pgdb, "SELECT window_start, COUNT(*) FROM notifications WHERE "
                         f"channel_id = '{ch['id']}' GROUP BY window_start")
    assert rows and all(int(n) == 1 for _, n in rows), rows
    assert len(mails) == len(rows), [m["Subject"] for m in mails]
    ntfs = req(a, key, "GET", f"/v1/notifications?channel_id={ch['id']}", expect=200)["data"]
    covered = [i for n in ntfs for i in n["issue_ids"]]
    assert sorted(covered) == sorted(i["id"] for i in open_issues), ntfs

    # --- pause on one node: every node stops within a second; resume on another: nothing
    # is stranded. Several rounds, over every pair of nodes.
    receiver.set("/p", ("delay", 0.05, 200))
    st, _, body = c.request("POST", "/v1/integrations", {
        "id": "p", "events": ["order"], "max_in_flight": 6,
        "target": {"type": "webhook", "url": receiver.url("/p")}}, token=key)
    assert st == 201, body
    total = 0
    for rnd in range(4):
        pauser, resumer = nodes[rnd % 3], nodes[(rnd + 1 + rnd // 3) % 3]
        evs = [{"type": "order.updated", "entity_id": f"P{j % 40}", "payload": {"r": rnd}}
               for j in range(240)]
        for k in range(0, len(evs), 80):
            st, _, body = nodes[(rnd + k) % 3].request("POST", "/v1/events",
                                                       {"events": evs[k:k + 80]}, token=key)
            assert st == 202, body
        total += len(evs)
        receiver.wait("/p", len(receiver.got("/p")) + 30, timeout=30)
        st, _, body = pauser.request("POST", "/v1/integrations/p/pause", token=key)
        assert st == 200, body
        t_pause = time.monotonic()
        time.sleep(2.5)
        late = [r for r in receiver.got("/p") if r.t > t_pause + 1.0]
        assert not late, f"round {rnd}: {len(late)} request(s) more than 1 s after the pause"
        # published while paused (held), and right after the resume on the third node,
        # whose cached routing may still say paused
        third = nodes[3 - (rnd % 3) - ((rnd + 1 + rnd // 3) % 3)]
        more = [{"type": "order.updated", "entity_id": f"P{j % 40}", "payload": {"r": rnd}}
                for j in range(40)]
        st, _, body = resumer.request("POST", "/v1/events", {"events": more}, token=key)
        assert st == 202, body
        st, _, body = resumer.request("POST", "/v1/integrations/p/resume", token=key)
        assert st == 200, body
        st, _, body = third.request("POST", "/v1/events", {"events": more}, token=key)
        assert st == 202, body
        total += 2 * len(more)
        wait_for(lambda: len(set(ok_ids(receiver, "/p"))) >= total, 60, interval=0.1,
                 what=f"round {rnd}: every event delivered after a resume on another node")
    # the last answers' outcomes are committed a moment after the receiver answered them
    def left():
        return sql(pg, pgdb, "SELECT state, COUNT(*) FROM deliveries WHERE integration_id = "
                             "'p' AND state <> 'succeeded' GROUP BY state")
    wait_for(lambda: not left(), 10, interval=0.1, what="every delivery of p succeeded")
    ids = ok_ids(receiver, "/p")
    assert len(ids) == len(set(ids)) == total, f"{len(ids) - len(set(ids))} sent twice"
    assert receiver.peak("/p") <= 6
