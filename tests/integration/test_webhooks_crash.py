"""Crash safety of webhook delivery (issue 3): 10,000 events published in batches of 100 from
several threads to 3 integrations while the server is SIGKILLed twice at random moments and
restarted on the same data dir / database. Every event acknowledged with 202 must reach every
integration at least once; duplicates are allowed (at-least-once) and counted."""

import http.client
import os
import random
import threading
import time

from receiver import SLOW

EVENTS = int(os.environ.get("SLUICE_CRASH_EVENTS", "10000"))  # a multiple of BATCH
BATCH = 100
THREADS = 4
INTEGRATIONS = ("crash-a", "crash-b", "crash-c")


def test_crash_safety_under_sigkill(stream, record_property):
    s = stream(args=["--time-scale", "100", "--lease", "2s", "--webhook-timeout", "2s"])
    srv = s.server
    for iid in INTEGRATIONS:
        s.create(iid, events=["order"])
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)

    batches = list(range(EVENTS // BATCH))
    next_batch = [0]
    lock = threading.Lock()
    acked = {}          # batch -> server ids
    errors = []
    server_up = threading.Event()
    server_up.set()

    def make_batch(b):
        return {"events": [{"id": f"c-{b}-{k}", "type": "order.updated",
                            "entity_id": f"ORD-{(b * BATCH + k) % 500}",
                            "payload": {"b": b, "k": k}} for k in range(BATCH)]}

    def publisher():
        while True:
            with lock:
                if next_batch[0] >= len(batches):
                    return
                b = batches[next_batch[0]]
                next_batch[0] += 1
            body = make_batch(b)
            deadline = time.monotonic() + 60 * SLOW
            while True:
                if time.monotonic() > deadline:
                    errors.append(f"batch {b} never acknowledged")
                    return
                server_up.wait(30)
                try:
                    st, _, resp = srv.request("POST", "/v1/events", body, token=s.key, timeout=20)
                except (OSError, http.client.HTTPException):
                    time.sleep(0.02)
                    continue
                if st == 202:
                    assert len(resp["ids"]) == BATCH
                    with lock:
                        acked[b] = resp["ids"]
                    break
                if st == 503:
                    time.sleep(0.02)
                    continue
                errors.append(f"batch {b}: {st} {resp}")
                return

    # Kill when publishing is at random points of its progress (and deliveries are running).
    n = len(batches)
    kill_at = sorted(rng.sample(range(n // 10, n * 85 // 100), 2))
    kills = []

    def killer():
        for point in kill_at:
            while len(acked) < point:
                if errors:
                    return
                time.sleep(0.005)
            time.sleep(rng.random() * 0.05)
            server_up.clear()
            srv.kill()
            kills.append((point, len(acked), sum(len(r.got()) for r in [s.rcv])))
            srv.restart()
            server_up.set()

    t0 = time.monotonic()
    k = threading.Thread(target=killer)
    pubs = [threading.Thread(target=publisher) for _ in range(THREADS)]
    k.start()
    for p in pubs:
        p.start()
    for p in pubs:
        p.join()
    k.join()
    publish_s = time.monotonic() - t0
    assert not errors, errors
    assert len(kills) == 2, kills
    assert srv.exit_codes.count("killed") == 2, srv.exit_codes
    all_ids = [i for b in sorted(acked) for i in acked[b]]
    assert len(all_ids) == EVENTS and len(set(all_ids)) == EVENTS

    # Every acknowledged event reaches every integration at least once.
    want = set(all_ids)
    seen = {iid: {} for iid in INTEGRATIONS}
    scanned = [0]

    def scan(reqs):
        for r in reqs[scanned[0]:]:
            iid = r.path.lstrip("/")
            if iid in seen:
                eid = r.headers.get("webhook-id")
                seen[iid][eid] = seen[iid].get(eid, 0) + 1
        scanned[0] = len(reqs)
        return all(want <= set(seen[iid]) for iid in INTEGRATIONS)

    try:
        # PostgreSQL delivers far slower than SQLite today (~170/s against ~780/s, see the
        # issue note), hence the longer deadline there.
        s.rcv.wait_for(scan, timeout=90 if srv.db is None else 300,
                       what="every event at every integration")
    finally:
        missing = {iid: len(want - set(seen[iid])) for iid in INTEGRATIONS}
        print(f"\ncrash test ({srv.db and 'postgres' or 'sqlite'}): seed {seed}, kills at {kills}, "
              f"publish {publish_s:.1f}s, missing {missing}")
    deliver_s = time.monotonic() - t0
    for iid in INTEGRATIONS:
        stray = set(seen[iid]) - want
        assert not stray, f"{iid} got events nobody published: {list(stray)[:3]}"
    # Each integration's stats settle: nothing pending, every delivery succeeded.
    deadline = time.monotonic() + 30 * SLOW
    while True:
        stats = {iid: s.get(iid)["stats"] for iid in INTEGRATIONS}
        if all(st["pending"] == 0 for st in stats.values()):
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.2)
    for iid, st in stats.items():
        assert st["succeeded"] == EVENTS and st["failed"] == 0 and st["rejected"] == 0, (iid, st)

    # Entity ordering survives the crashes: per integration and entity, the first arrival of
    # each event comes in sequence order (a duplicate may repeat an earlier one, later).
    for iid in INTEGRATIONS:
        firsts, last_seq = set(), {}
        for r in s.rcv.got("/" + iid):
            body = r.json
            if body["id"] in firsts:
                continue
            firsts.add(body["id"])
            ent = body["entity_id"]
            assert body["sequence"] > last_seq.get(ent, 0), (iid, ent, body["sequence"],
                                                            last_seq.get(ent))
            last_seq[ent] = body["sequence"]

    dups = {iid: sum(c - 1 for c in seen[iid].values()) for iid in INTEGRATIONS}
    total = sum(dups.values())
    record_property("duplicates", total)
    print(f"crash test ({srv.db and 'postgres' or 'sqlite'}): {EVENTS} events x "
          f"{len(INTEGRATIONS)} integrations delivered in {deliver_s:.1f}s "
          f"(publishing {publish_s:.1f}s); duplicates per integration {dups}, total {total}")
