"""Retention purge (--retention-events, --retention-deliveries): old events and finished
deliveries go; an event with an unfinished delivery never does (DESIGN.md)."""
import time

from conftest import wait_for


def test_retention_keeps_unfinished(stream):
    s = stream(args=["--retention-events", "2s", "--retention-deliveries", "2s"])
    s.create("done", events=["order"])
    s.create("held", events=["return"])
    s.ok("POST", "/v1/integrations/held/pause", {"reason": "keep the backlog"})
    delivered = s.publish([{"type": "order.created", "entity_id": f"O-{i}"} for i in range(5)])
    held = s.publish([{"type": "return.created", "entity_id": f"R-{i}"} for i in range(3)])
    s.wait_status("done", delivered, "success")

    def purged():
        code, _, _ = s.req("GET", f"/v1/events/{delivered[0]}")
        return code == 404
    wait_for(purged, 20, interval=0.2, what="the delivered events to be purged")
    for eid in delivered:
        assert s.req("GET", f"/v1/events/{eid}")[0] == 404
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
