"""Durability and shutdown: a 202 survives SIGKILL; SIGTERM under load loses nothing."""

import http.client
import json
import threading

from conftest import SLOW, list_all_events, make_key, make_tenant, publish, wait_for


def setup_tenant(server):
    make_tenant(server, "acme")
    return make_key(server, "acme", ["events:publish", "tools:view"])


def test_single_event_survives_sigkill(server):
    key = setup_tenant(server)
    body = publish(server, key, {"id": "durable-1", "type": "order.created",
                                 "entity_id": "ORD-1", "payload": {"total": 99}})
    server.kill()  # immediately after the 202
    server.restart()
    status, _, ev = server.request("GET", f"/v1/events/{body['ids'][0]}", token=key)
    assert status == 200, ev
    assert ev["client_id"] == "durable-1" and ev["payload"] == {"total": 99}
    # Republishing after the restart is still recognised as a duplicate.
    again = publish(server, key, {"id": "durable-1", "type": "order.created",
                                  "entity_id": "ORD-1"})
    assert again == {"accepted": 0, "duplicates": 1, "ids": body["ids"]}


def test_batch_of_100_survives_sigkill(server):
    key = setup_tenant(server)
    body = publish(server, key, {"events": [
        {"type": "order.updated", "entity_id": f"ORD-{i % 7}", "payload": {"i": i}}
        for i in range(100)]})
    assert body["accepted"] == 100
    server.kill()
    server.restart()
    events = list_all_events(server, key)
    assert {e["id"] for e in events} == set(body["ids"])
    assert sorted(e["payload"]["i"] for e in events) == list(range(100))


def test_sequence_continues_after_restart(server):
    key = setup_tenant(server)
    publish(server, key, {"events": [{"type": "order.updated", "entity_id": "ORD-S"}] * 3})
    server.kill()
    server.restart()
    ids = publish(server, key, {"type": "order.updated", "entity_id": "ORD-S"})["ids"]
    assert server.request("GET", f"/v1/events/{ids[0]}", token=key)[2]["sequence"] == 4
    assert server.stop() == 0
    server.restart()
    ids = publish(server, key, {"type": "order.updated", "entity_id": "ORD-S"})["ids"]
    assert server.request("GET", f"/v1/events/{ids[0]}", token=key)[2]["sequence"] == 5


def test_sigterm_idle_exits_zero(server):
    assert server.request("GET", "/healthz")[0] == 200
    assert server.stop() == 0


def test_sigterm_during_publish_burst_loses_nothing(server):
    key = setup_tenant(server)
    accepted = {}  # client id -> server id, for every 202
    lock = threading.Lock()
    counts = {"202": 0, "other": 0, "errors": 0}
    stop = threading.Event()

    def worker(n):
        for i in range(2000):  # bounded
            if stop.is_set():
                return
            cid = f"w{n}-{i}"
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30 * SLOW)
            try:
                conn.request("POST", "/v1/events",
                             body=json.dumps({"id": cid, "type": "order.created",
                                              "entity_id": f"ORD-{n}-{i}"}),
                             headers={"Content-Type": "application/json",
                                      "Authorization": f"Bearer {key}"})
                resp = conn.getresponse()
                data = resp.read()
                with lock:
                    if resp.status == 202:
                        accepted[cid] = json.loads(data)["ids"][0]
                        counts["202"] += 1
                    else:
                        counts["other"] += 1
            except OSError:
                # Refused or reset: the server is going away. Anything after this is refused.
                with lock:
                    counts["errors"] += 1
                if not server.running():
                    return
            finally:
                conn.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(8)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: counts["202"] >= 100, 30, what="100 accepted publishes")
        code = server.stop(timeout=30)
    finally:
        stop.set()
        for t in threads:
            t.join(60 * SLOW)
    print(f"burst: {counts}, accepted {len(accepted)}")
    assert not any(t.is_alive() for t in threads)
    assert code == 0, f"exit code after SIGTERM: {code}"
    assert counts["202"] >= 100

    server.restart()
    stored = {e["client_id"]: e["id"] for e in list_all_events(server, key)}
    lost = {cid for cid in accepted if cid not in stored}
    assert not lost, f"{len(lost)} of {len(accepted)} acknowledged events were lost"
    for cid, eid in accepted.items():
        assert stored[cid] == eid, "the stored id is the one the 202 named"


def test_sigterm_with_a_test_action_arriving_on_a_kept_alive_connection(start_server, db):
    """A test action (sent from its own thread) that arrives on a kept-alive connection
    while the server drains at SIGTERM is answered (503) or cut off, never left suspended:
    libmicrohttpd aborts the process if it stops with a suspended connection."""
    import signal
    import time

    from receiver import Receiver

    rcv = Receiver()
    rcv.set("/slow", "hang")
    try:
        srv = start_server(db=db, args=["--allow-private-targets", "--webhook-timeout", "5s"])
        make_tenant(srv, "acme")
        key = make_key(srv, "acme", ["tools:manage", "tools:view"])
        assert srv.request("POST", "/v1/integrations", {
            "id": "slow", "events": ["order"],
            "target": {"type": "webhook", "url": rcv.url("/slow")}}, token=key)[0] == 201
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30 * SLOW)
        hdrs = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        conn.request("GET", "/v1/integrations/slow", headers=hdrs)
        assert conn.getresponse().read()  # the connection is open and kept alive
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)  # inside the server's drain window for open connections
        try:
            conn.request("POST", "/v1/integrations/slow/test", body="{}", headers=hdrs)
            resp = conn.getresponse()
            assert resp.status in (200, 503), resp.status
            resp.read()
        except (OSError, http.client.HTTPException):
            pass  # cut off by the stop: fine
        finally:
            conn.close()
        assert srv.stop() == 0  # no abort (exit -6) on the way out
    finally:
        rcv.stop()
