"""Retention purge (--retention-events, --retention-deliveries, --retention-alerts): old
events and finished deliveries go, an event with an unfinished delivery never does
(DESIGN.md); old alerts go unless an open issue holds them."""
import time

from alerting_helpers import alert, issues, policy, report, req
from conftest import ALL_PERMS, make_key, make_tenant, wait_for


def test_retention_keeps_unfinished(stream):
    s = stream(args=["--retention-events", "2s", "--retention-deliveries", "2s"])
    s.create("done", events=["order"])
    s.create("held", events=["return"])
    s.ok("POST", "/v1/integrations/held/pause", {"reason": "keep the backlog"})
    delivered = s.publish([{"type": "order.created", "entity_id": f"O-{i}"} for i in range(5)])
    held = s.publish([{"type": "return.created", "entity_id": f"R-{i}"} for i in range(3)])
    s.wait_status("done", delivered, "success")

    # Each event becomes purgeable 2 s after its own delivery finished, and a purge pass
    # takes what is old enough at that moment: wait until every one of them is gone.
    def purged():
        return all(s.req("GET", f"/v1/events/{eid}")[0] == 404 for eid in delivered)
    wait_for(purged, 20, interval=0.2, what="the delivered events to be purged")
    assert s.events("done") == []  # finished deliveries went too
    # The paused integration's events wait, whatever their age.
    time.sleep(2.5)
    for eid in held:
        assert s.req("GET", f"/v1/events/{eid}")[0] == 200
    assert len(s.events("held")) == 3
    # Resume: they are delivered and only then may go.
    s.ok("POST", "/v1/integrations/held/resume", {})
    s.wait_status("held", held, "success")
    assert len(s.rcv.got("/held")) == 3


def test_default_retention_keeps_recent(stream):
    s = stream()
    s.create("erp")
    ids = s.publish([{"type": "order.created", "entity_id": "O-1"}])
    s.wait_status("erp", ids, "success")
    time.sleep(2.5)  # a purge pass ran; nothing is 14 days old
    assert s.req("GET", f"/v1/events/{ids[0]}")[0] == 200


def test_alert_retention_keeps_open_issues(start_server, db):
    """--retention-alerts: old alerts go, with the finished tasks no alert refers to any
    more; an alert of an open issue stays until the issue closes, and the issue keeps its
    count; a running task stays."""
    srv = start_server(db=db, args=["--retention-alerts", "2s"])
    make_tenant(srv, "acme", "Acme Retail")
    key = make_key(srv, "acme", ALL_PERMS, name="ops")
    policy(srv, key, [{"event": "order.import_failed"}], auto_close_after=None)
    kept = report(srv, key, alert())["ids"][0]  # opens an issue
    (iss,) = issues(srv, key)
    task = req(srv, key, "POST", "/v1/tasks", {"kind": "shipment_sync", "status": "failed"},
               expect=201)["id"]
    gone = report(srv, key, alert(event="shipment.tracking_failed", task_id=task))["ids"][0]
    done = req(srv, key, "POST", "/v1/tasks", {"kind": "inventory_sync", "status": "succeeded"},
               expect=201)["id"]
    busy = req(srv, key, "POST", "/v1/tasks", {"kind": "inventory_sync", "status": "running"},
               expect=201)["id"]

    def status(path):
        return req(srv, key, "GET", path)[0]

    wait_for(lambda: status(f"/v1/alerts/{gone}") == 404, 20, interval=0.2,
             what="the unlinked alert to be purged")
    wait_for(lambda: status(f"/v1/tasks/{task}") == 404, 10, interval=0.2,
             what="its task to be purged")
    wait_for(lambda: status(f"/v1/tasks/{done}") == 404, 10, interval=0.2,
             what="the old finished task without alerts to be purged")
    # Several purge passes later the open issue's alert and the running task are still there.
    time.sleep(2.5)
    assert status(f"/v1/alerts/{kept}") == 200
    assert status(f"/v1/tasks/{busy}") == 200
    got = req(srv, key, "GET", f"/v1/issues/{iss['id']}", expect=200)
    assert got["status"] == "open" and got["alert_count"] == 1

    req(srv, key, "POST", f"/v1/issues/{iss['id']}/close", {"comment": "done"}, expect=200)
    wait_for(lambda: status(f"/v1/alerts/{kept}") == 404, 20, interval=0.2,
             what="the closed issue's alert to be purged")
    got = req(srv, key, "GET", f"/v1/issues/{iss['id']}", expect=200)
    assert got["status"] == "closed" and got["alert_count"] == 1
    assert req(srv, key, "GET", "/v1/alerts", expect=200)["data"] == []
