"""A later successful delivery of the same entity recovers the failed webhook_delivery task
and resolves its alert (API.md: "their later success resolves that alert")."""
from conftest import wait_for


def test_redelivery_success_resolves_the_rejection_alert(stream):
    s = stream()
    s.create("erp")
    s.rcv.set("/erp", 400, 200)
    ids = s.publish([{"type": "order.created", "entity_id": "ORD-7"}])
    s.wait_status("erp", ids, "rejected")

    def alert():
        body = s.ok("GET", "/v1/alerts?event=event_stream.event_rejected&connection=erp")
        return body["data"][0] if body["data"] else None
    a = wait_for(alert, 10, what="the rejection alert")
    assert a["entity_id"] == "ORD-7" and a.get("resolved_at") is None, a
    task = s.ok("GET", f"/v1/tasks/{a['task_id']}")
    assert task["kind"] == "webhook_delivery" and task["status"] == "failed", task

    s.ok("POST", "/v1/integrations/erp/redeliver", {"event_ids": ids}, expect=202)
    s.rcv.wait("/erp", 2)
    resolved = wait_for(lambda: (lambda x: x if x.get("resolved_at") else None)(
        s.ok("GET", f"/v1/alerts/{a['id']}")), 10, what="the alert to be resolved")
    assert resolved["resolved_at"]
    assert s.ok("GET", f"/v1/tasks/{a['task_id']}")["status"] == "succeeded"
