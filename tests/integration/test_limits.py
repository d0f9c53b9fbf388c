"""Limits on everything that grows: body size, JSON depth, payload size."""

import json

from conftest import assert_problem, list_all_events

MiB = 1024 * 1024
KiB = 1024


def event_with_pad(n, entity_id="O"):
    return {"type": "order.created", "entity_id": entity_id, "payload": {"pad": "a" * n}}


def test_body_over_8_mib_is_413(tenant):
    server, key = tenant
    body = json.dumps(event_with_pad(8 * MiB + 100)).encode()
    assert len(body) > 8 * MiB
    resp = server.send_streaming("POST", "/v1/events", body,
                                 headers={"Authorization": f"Bearer {key}"})
    assert_problem(resp, 413)
    assert list_all_events(server, key) == []
    assert server.request("GET", "/healthz")[0] == 200


def test_chunked_body_over_8_mib_is_413(tenant):
    server, key = tenant
    events = [event_with_pad(200 * KiB, f"O-{i}") for i in range(45)]
    body = json.dumps({"events": events}).encode()
    assert len(body) > 8 * MiB
    resp = server.send_streaming("POST", "/v1/events", body, chunked=True,
                                 headers={"Authorization": f"Bearer {key}"})
    assert_problem(resp, 413)
    assert list_all_events(server, key) == []


def test_body_just_under_8_mib_is_accepted(tenant):
    server, key = tenant
    events = [event_with_pad(200 * KiB, f"O-{i}") for i in range(40)]
    body = json.dumps({"events": events}).encode()
    assert 7 * MiB < len(body) < 8 * MiB
    status, _, resp = server.request("POST", "/v1/events", raw=body, token=key, timeout=120)
    assert status == 202, resp
    assert resp["accepted"] == 40
    assert len(list_all_events(server, key, limit=10)) == 40


def nested(depth):
    """A JSON value `depth` levels deep: [[[...]]]."""
    return "[" * depth + "]" * depth


def test_payload_nested_within_64_levels_is_fine(tenant):
    server, key = tenant
    # Body object (1) + payload object (1) + 60 arrays = 62 levels.
    raw = '{"type":"order.created","entity_id":"O","payload":{"deep":' + nested(60) + "}}"
    status, _, body = server.request("POST", "/v1/events", raw=raw, token=key)
    assert status == 202, body
    ev = server.request("GET", f"/v1/events/{body['ids'][0]}", token=key)[2]
    depth, v = 0, ev["payload"]["deep"]
    while isinstance(v, list):
        depth += 1
        v = v[0] if v else None
    assert depth == 60


def test_json_nested_over_64_levels_is_400(tenant):
    server, key = tenant
    raw = '{"type":"order.created","entity_id":"O","payload":{"deep":' + nested(70) + "}}"
    assert_problem(server.request("POST", "/v1/events", raw=raw, token=key), 400)
    assert list_all_events(server, key) == []


def test_absurdly_deep_json_is_400_not_a_crash(tenant):
    server, key = tenant
    raw = '{"payload":' + nested(200000) + "}"
    assert_problem(server.request("POST", "/v1/events", raw=raw, token=key), 400)
    raw = '{"a":' * 100000 + "1" + "}" * 100000
    assert_problem(server.request("POST", "/v1/events", raw=raw, token=key), 400)
    assert server.request("GET", "/healthz")[0] == 200


def test_payload_over_256_kib_is_422(tenant):
    server, key = tenant
    # {"pad":"…"} serializes to n + 10 bytes.
    over = event_with_pad(256 * KiB)
    assert_problem(server.request("POST", "/v1/events", over, token=key), 422, "payload")
    batch = {"events": [event_with_pad(10), event_with_pad(256 * KiB + 1)]}
    assert_problem(server.request("POST", "/v1/events", batch, token=key), 422,
                   "events[1].payload")
    assert list_all_events(server, key) == []


def test_payload_just_under_256_kib_is_fine(tenant):
    server, key = tenant
    ok = event_with_pad(256 * KiB - 64)
    status, _, body = server.request("POST", "/v1/events", ok, token=key)
    assert status == 202, body
    ev = server.request("GET", f"/v1/events/{body['ids'][0]}", token=key)[2]
    assert len(ev["payload"]["pad"]) == 256 * KiB - 64
