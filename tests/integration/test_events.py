"""Publishing events and reading the event log: validation, batches, idempotency, sequence,
pagination, filters, the event-type catalog."""

import time
from datetime import datetime, timezone

import pytest

from conftest import (ALL_PERMS, RFC3339_MS, assert_problem, list_all_events, make_key,
                      make_tenant, publish)


def stored(server, key):
    status, _, body = server.request("GET", "/v1/events?limit=1000", token=key)
    assert status == 200, body
    return body["data"]


def parse_time(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


# --------------------------------------------------------------------------- publish


def test_publish_single_event(tenant):
    server, key = tenant
    before = datetime.now(timezone.utc)
    status, headers, body = server.request("POST", "/v1/events", {
        "type": "order.created", "entity_id": "ORD-1001",
        "payload": {"total": 12.5, "lines": [{"sku": "A-1", "qty": 2}], "note": "caf\u00e9 \u2603"}},
        token=key)
    after = datetime.now(timezone.utc)
    assert status == 202, body
    assert headers["content-type"].startswith("application/json")
    assert body["accepted"] == 1 and body["duplicates"] == 0
    assert len(body["ids"]) == 1 and body["ids"][0].startswith("evt_")

    status, _, ev = server.request("GET", f"/v1/events/{body['ids'][0]}", token=key)
    assert status == 200, ev
    assert set(ev) == {"id", "client_id", "type", "entity", "entity_id", "sequence",
                       "occurred_at", "published_at", "payload"}, ev
    assert ev["id"] == body["ids"][0]
    assert ev["client_id"] is None
    assert ev["type"] == "order.created"
    assert ev["entity"] == "order"
    assert ev["entity_id"] == "ORD-1001"
    assert ev["sequence"] == 1
    assert ev["payload"] == {"total": 12.5, "lines": [{"sku": "A-1", "qty": 2}],
                             "note": "caf\u00e9 \u2603"}
    assert RFC3339_MS.match(ev["published_at"]), ev
    assert RFC3339_MS.match(ev["occurred_at"]), ev
    assert ev["occurred_at"] == ev["published_at"], "occurred_at defaults to publish time"
    pub = parse_time(ev["published_at"])
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= pub <= after


def test_publish_defaults_payload_to_empty_object(tenant):
    server, key = tenant
    ids = publish(server, key, {"type": "shipment.delivered", "entity_id": "SH-1"})["ids"]
    ev = server.request("GET", f"/v1/events/{ids[0]}", token=key)[2]
    assert ev["payload"] == {}
    assert ev["entity"] == "shipment"


@pytest.mark.parametrize("given,expect", [
    ("2025-01-02T03:04:05.678Z", "2025-01-02T03:04:05.678Z"),
    ("2025-01-02T03:04:05Z", "2025-01-02T03:04:05.000Z"),
    ("2025-01-02T05:04:05.678+02:00", "2025-01-02T03:04:05.678Z"),
])
def test_occurred_at_is_normalized_to_utc_ms(tenant, given, expect):
    server, key = tenant
    ids = publish(server, key, {"type": "order.updated", "entity_id": "O",
                                "occurred_at": given})["ids"]
    ev = server.request("GET", f"/v1/events/{ids[0]}", token=key)[2]
    assert ev["occurred_at"] == expect
    assert ev["published_at"] != ev["occurred_at"]


def test_publish_batch(tenant):
    server, key = tenant
    events = [{"id": f"b-{i}", "type": t, "entity_id": f"E-{i}", "payload": {"i": i}}
              for i, t in enumerate(["order.created", "return.created",
                                     "fulfillment_request.assigned", "inventory.adjusted",
                                     "purchase_order.received"])]
    body = publish(server, key, {"events": events})
    assert body["accepted"] == 5 and body["duplicates"] == 0
    assert len(body["ids"]) == 5 and len(set(body["ids"])) == 5
    for i, eid in enumerate(body["ids"]):
        ev = server.request("GET", f"/v1/events/{eid}", token=key)[2]
        assert ev["client_id"] == f"b-{i}"
        assert ev["type"] == events[i]["type"]
        assert ev["entity"] == events[i]["type"].split(".")[0]
        assert ev["payload"] == {"i": i}


def test_batch_of_1000_is_accepted(tenant):
    server, key = tenant
    events = [{"type": "inventory.adjusted", "entity_id": f"SKU-{i % 10}"} for i in range(1000)]
    body = publish(server, key, {"events": events})
    assert body["accepted"] == 1000 and len(body["ids"]) == 1000
    assert len(list_all_events(server, key)) == 1000


def test_charset_in_content_type_is_fine(tenant):
    server, key = tenant
    status, _, body = server.request("POST", "/v1/events",
                                     raw=b'{"type":"order.created","entity_id":"O"}',
                                     headers={"Content-Type": "application/json; charset=utf-8"},
                                     token=key)
    assert status == 202, body


# --------------------------------------------------------------------------- validation

BAD_EVENTS = [
    ({"entity_id": "O"}, "type"),
    ({"type": 12, "entity_id": "O"}, "type"),
    ({"type": "order.exploded", "entity_id": "O"}, "type"),
    ({"type": "order", "entity_id": "O"}, "type"),
    ({"type": "", "entity_id": "O"}, "type"),
    ({"type": "order.import_failed", "entity_id": "O"}, "type"),
    ({"type": "order.created"}, "entity_id"),
    ({"type": "order.created", "entity_id": ""}, "entity_id"),
    ({"type": "order.created", "entity_id": 42}, "entity_id"),
    ({"type": "order.created", "entity_id": None}, "entity_id"),
    ({"type": "order.created", "entity_id": "x" * 257}, "entity_id"),
    ({"type": "order.created", "entity_id": "O", "occurred_at": "yesterday"}, "occurred_at"),
    ({"type": "order.created", "entity_id": "O", "occurred_at": "2026-13-01T00:00:00Z"},
     "occurred_at"),
    ({"type": "order.created", "entity_id": "O", "occurred_at": "2026-01-01"}, "occurred_at"),
    ({"type": "order.created", "entity_id": "O", "occurred_at": 1763800000}, "occurred_at"),
    ({"type": "order.created", "entity_id": "O", "payload": [1, 2]}, "payload"),
    ({"type": "order.created", "entity_id": "O", "payload": "text"}, "payload"),
    ({"type": "order.created", "entity_id": "O", "payload": 5}, "payload"),
    ({"type": "order.created", "entity_id": "O", "id": ""}, "id"),
    ({"type": "order.created", "entity_id": "O", "id": "x" * 129}, "id"),
    ({"type": "order.created", "entity_id": "O", "id": 17}, "id"),
    ({"type": "order.created", "entity_id": "O", "colour": "red"}, "colour"),
]
BAD_IDS = ["no-type", "type-number", "unknown-type", "type-no-action", "type-empty",
           "failure-event-type", "no-entity-id", "entity-id-empty", "entity-id-number",
           "entity-id-null", "entity-id-257", "occurred-at-text", "occurred-at-month-13",
           "occurred-at-date-only", "occurred-at-number", "payload-array", "payload-string",
           "payload-number", "id-empty", "id-129", "id-number", "unknown-field"]


@pytest.mark.parametrize("event,field", BAD_EVENTS, ids=BAD_IDS)
def test_single_event_validation(tenant, event, field):
    server, key = tenant
    assert_problem(server.request("POST", "/v1/events", event, token=key), 422, field)
    assert stored(server, key) == []


@pytest.mark.parametrize("event,field", BAD_EVENTS, ids=BAD_IDS)
def test_batch_validation_names_the_index(tenant, event, field):
    server, key = tenant
    good = {"type": "order.created", "entity_id": "GOOD"}
    batch = {"events": [dict(good, id="g0"), dict(good, id="g1"), event, dict(good, id="g3")]}
    assert_problem(server.request("POST", "/v1/events", batch, token=key), 422,
                   f"events[2].{field}")
    assert stored(server, key) == [], "one bad event stores nothing of the batch"


def test_batch_reports_every_bad_event(tenant):
    server, key = tenant
    batch = {"events": [{"type": "order.created", "entity_id": "A"},
                        {"type": "nope.nope", "entity_id": "B"},
                        {"type": "order.created", "entity_id": "C"},
                        {"type": "order.created"}]}
    body = assert_problem(server.request("POST", "/v1/events", batch, token=key), 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"events[1].type", "events[3].entity_id"} <= fields, body
    assert stored(server, key) == []


def test_entity_id_of_256_chars_is_fine(tenant):
    server, key = tenant
    ids = publish(server, key, {"type": "order.created", "entity_id": "x" * 256,
                                "id": "y" * 128})["ids"]
    ev = server.request("GET", f"/v1/events/{ids[0]}", token=key)[2]
    assert ev["entity_id"] == "x" * 256 and ev["client_id"] == "y" * 128


@pytest.mark.parametrize("body", [
    {"events": []},
    {"events": [{"type": "order.created", "entity_id": str(i)} for i in range(1001)]},
    {"events": "lots"},
    {"events": {"type": "order.created", "entity_id": "O"}},
    {"events": [5]},
], ids=["empty", "1001", "string", "object", "not-objects"])
def test_bad_events_array(tenant, body):
    server, key = tenant
    field = "events[0]" if body["events"] == [5] else "events"
    resp = server.request("POST", "/v1/events", body, token=key)
    problem = assert_problem(resp, 422)
    fields = [e["field"] for e in problem["errors"]]
    assert any(f == field or f.startswith(field) for f in fields), problem
    assert stored(server, key) == []


def test_events_with_other_fields_is_rejected(tenant):
    server, key = tenant
    body = {"events": [{"type": "order.created", "entity_id": "O"}], "extra": 1}
    assert_problem(server.request("POST", "/v1/events", body, token=key), 422, "extra")
    assert stored(server, key) == []


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"event"', b"42", b"null", b"true"],
                         ids=["array", "string", "number", "null", "bool"])
def test_json_that_is_not_an_object_is_422(tenant, raw):
    server, key = tenant
    assert_problem(server.request("POST", "/v1/events", raw=raw, token=key), 422)
    assert stored(server, key) == []


@pytest.mark.parametrize("raw", [b'{"type": "order.created", "entity_id": ', b"{", b"",
                                 b"{'type': 'order.created'}", b'{"a":1} trailing',
                                 b'{"type":"order.created","entity_id":"\xff\xfe"}'],
                         ids=["truncated", "brace", "empty", "single-quotes", "trailing",
                              "bad-utf8"])
def test_malformed_json_is_400(tenant, raw):
    server, key = tenant
    assert_problem(server.request("POST", "/v1/events", raw=raw, token=key), 400)
    assert stored(server, key) == []


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "application/xml"])
def test_non_json_content_type_is_415(tenant, ctype):
    server, key = tenant
    resp = server.request("POST", "/v1/events", raw=b'{"type":"order.created","entity_id":"O"}',
                          headers={"Content-Type": ctype}, token=key)
    assert_problem(resp, 415)
    assert stored(server, key) == []


# --------------------------------------------------------------------------- idempotency


def test_same_client_id_later_is_a_duplicate(tenant):
    server, key = tenant
    first = publish(server, key, {"id": "c-1", "type": "order.created", "entity_id": "O-1",
                                  "payload": {"v": 1}})
    assert first["accepted"] == 1 and first["duplicates"] == 0
    again = publish(server, key, {"id": "c-1", "type": "order.created", "entity_id": "O-1",
                                  "payload": {"v": 2}})
    assert again == {"accepted": 0, "duplicates": 1, "ids": first["ids"]}
    events = stored(server, key)
    assert len(events) == 1
    assert events[0]["client_id"] == "c-1" and events[0]["payload"] == {"v": 1}


def test_duplicate_inside_a_later_batch_keeps_its_slot(tenant):
    server, key = tenant
    first = publish(server, key, {"events": [
        {"id": "c-1", "type": "order.created", "entity_id": "O-1"},
        {"id": "c-2", "type": "order.created", "entity_id": "O-2"}]})
    second = publish(server, key, {"events": [
        {"id": "c-3", "type": "order.created", "entity_id": "O-3"},
        {"id": "c-2", "type": "order.created", "entity_id": "O-2"},
        {"type": "order.updated", "entity_id": "O-1"}]})
    assert second["accepted"] == 2 and second["duplicates"] == 1
    assert second["ids"][1] == first["ids"][1]
    assert len(set(second["ids"])) == 3
    assert len(stored(server, key)) == 4
    # The duplicate did not take a sequence number: O-1's update is its 2nd event.
    ev = server.request("GET", f"/v1/events/{second['ids'][2]}", token=key)[2]
    assert ev["sequence"] == 2


def test_same_client_id_twice_in_one_batch_is_422(tenant):
    server, key = tenant
    batch = {"events": [{"id": "dup", "type": "order.created", "entity_id": "O-1"},
                        {"id": "dup", "type": "order.updated", "entity_id": "O-1"}]}
    assert_problem(server.request("POST", "/v1/events", batch, token=key), 422, "events[1].id")
    assert stored(server, key) == []


def test_events_without_client_id_are_never_duplicates(tenant):
    server, key = tenant
    ev = {"type": "order.created", "entity_id": "O-1"}
    a = publish(server, key, ev)
    b = publish(server, key, ev)
    assert a["accepted"] == b["accepted"] == 1 and a["ids"] != b["ids"]


# --------------------------------------------------------------------------- sequence


def test_sequence_counts_per_entity(tenant):
    server, key = tenant
    r1 = publish(server, key, {"events": [
        {"type": "order.created", "entity_id": "ORD-1"},
        {"type": "order.updated", "entity_id": "ORD-1"},
        {"type": "order.created", "entity_id": "ORD-2"},
        {"type": "return.created", "entity_id": "ORD-1"},  # another entity, same id
    ]})
    r2 = publish(server, key, {"type": "order.completed", "entity_id": "ORD-1"})
    r3 = publish(server, key, {"type": "order.updated", "entity_id": "ORD-2"})

    def seq(eid):
        return server.request("GET", f"/v1/events/{eid}", token=key)[2]["sequence"]

    assert [seq(i) for i in r1["ids"]] == [1, 2, 1, 1]
    assert seq(r2["ids"][0]) == 3
    assert seq(r3["ids"][0]) == 2


def test_sequence_unaffected_by_rejected_requests(tenant):
    server, key = tenant
    publish(server, key, {"type": "order.created", "entity_id": "ORD-9"})
    publish(server, key, {"events": [{"type": "order.updated", "entity_id": "ORD-9"},
                                     {"type": "bad.type", "entity_id": "ORD-9"}]}, expect=422)
    ids = publish(server, key, {"type": "order.updated", "entity_id": "ORD-9"})["ids"]
    assert server.request("GET", f"/v1/events/{ids[0]}", token=key)[2]["sequence"] == 2


# --------------------------------------------------------------------------- reading


def test_get_unknown_event_is_404(tenant):
    server, key = tenant
    assert_problem(server.request("GET", "/v1/events/evt_doesnotexist", token=key), 404)
    assert_problem(server.request("GET", "/v1/events/nonsense", token=key), 404)


def test_pagination_over_250_events(tenant):
    server, key = tenant
    ids = publish(server, key, {"events": [
        {"type": "order.updated", "entity_id": "ORD-P", "payload": {"n": i}}
        for i in range(250)]})["ids"]

    status, _, page = server.request("GET", "/v1/events", token=key)
    assert status == 200
    assert len(page["data"]) == 100, "default limit is 100"
    assert isinstance(page["next_cursor"], str) and page["next_cursor"]

    seen, cursor, sizes = [], None, []
    while True:
        path = "/v1/events?limit=100" + (f"&cursor={cursor}" if cursor else "")
        status, _, page = server.request("GET", path, token=key)
        assert status == 200, page
        sizes.append(len(page["data"]))
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(sizes) < 10
    assert sizes == [100, 100, 50]
    assert [e["id"] for e in seen] == list(reversed(ids)), "newest first, no gaps or repeats"
    assert [e["sequence"] for e in seen] == list(range(250, 0, -1))
    assert [e["payload"]["n"] for e in seen] == list(range(249, -1, -1))


def test_pagination_exact_multiple_and_limit_edges(tenant):
    server, key = tenant
    publish(server, key, {"events": [{"type": "order.created", "entity_id": f"O-{i}"}
                                     for i in range(4)]})
    status, _, page = server.request("GET", "/v1/events?limit=2", token=key)
    assert len(page["data"]) == 2 and page["next_cursor"]
    status, _, page2 = server.request("GET", f"/v1/events?limit=2&cursor={page['next_cursor']}",
                                      token=key)
    assert len(page2["data"]) == 2
    assert page2["next_cursor"] is None or server.request(
        "GET", f"/v1/events?limit=2&cursor={page2['next_cursor']}", token=key)[2]["data"] == []
    for limit in (1, 1000):
        status, _, page = server.request("GET", f"/v1/events?limit={limit}", token=key)
        assert status == 200 and len(page["data"]) == min(limit, 4)


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=abc", "limit=-5",
                                   "cursor=%%%garbage", "cursor=not-a-cursor",
                                   "from=yesterday", "to=2026-99-01T00:00:00Z"])
def test_bad_list_query_is_400(tenant, query):
    server, key = tenant
    publish(server, key, {"type": "order.created", "entity_id": "O"})
    assert_problem(server.request("GET", f"/v1/events?{query}", token=key), 400)


def test_filter_by_type_and_entity_id(tenant):
    server, key = tenant
    publish(server, key, {"events": [
        {"type": "order.created", "entity_id": "O-1"},
        {"type": "order.updated", "entity_id": "O-1"},
        {"type": "order.created", "entity_id": "O-2"},
        {"type": "return.created", "entity_id": "O-1"},
    ]})

    def q(query):
        status, _, body = server.request("GET", f"/v1/events?{query}", token=key)
        assert status == 200, body
        return sorted((e["type"], e["entity_id"]) for e in body["data"])

    assert q("type=order.created") == [("order.created", "O-1"), ("order.created", "O-2")]
    assert q("entity_id=O-1") == [("order.created", "O-1"), ("order.updated", "O-1"),
                                  ("return.created", "O-1")]
    assert q("type=order.created&entity_id=O-1") == [("order.created", "O-1")]
    assert q("type=shipment.created") == []
    assert q("entity_id=O-3") == []


def test_filter_by_time(tenant):
    server, key = tenant
    a = publish(server, key, {"type": "order.created", "entity_id": "T-A"})["ids"][0]
    ta = server.request("GET", f"/v1/events/{a}", token=key)[2]["published_at"]
    # Let the clock move past A's millisecond before publishing B (a deadline, not a sleep).
    deadline = parse_time(ta).timestamp() + 0.02
    while time.time() < deadline:
        time.sleep(0.005)
    b = publish(server, key, {"type": "order.created", "entity_id": "T-B"})["ids"][0]
    tb = server.request("GET", f"/v1/events/{b}", token=key)[2]["published_at"]
    assert tb > ta

    def ids(query):
        status, _, body = server.request("GET", f"/v1/events?{query}", token=key)
        assert status == 200, body
        return [e["id"] for e in body["data"]]

    assert ids(f"from={ta}") == [b, a], "from is inclusive"
    assert ids(f"from={tb}") == [b]
    assert ids(f"to={tb}") == [a], "to is exclusive"
    assert ids(f"from={ta}&to={tb}") == [a]
    assert ids("from=2000-01-01T00:00:00.000Z&to=2000-01-02T00:00:00.000Z") == []
    assert ids(f"from={ta}&type=order.created&entity_id=T-B") == [b]


# --------------------------------------------------------------------------- event types

BUILTIN = {
    "order": ["created", "updated", "completed", "cancelled", "payment_captured", "refunded"],
    "return": ["created", "processed", "refunded", "rejected"],
    "fulfillment_request": ["created", "assigned", "acknowledged", "rejected", "shipped",
                            "cancelled"],
    "shipment": ["created", "shipped", "delivered", "exception"],
    "inventory": ["adjusted", "reserved", "released", "stock_level_changed"],
    "purchase_order": ["created", "approved", "received", "cancelled"],
}


def test_builtin_catalog(tenant):
    server, _ = tenant
    key = make_key(server, "acme", ["events:publish"])
    status, _, body = server.request("GET", "/v1/event-types", token=key)
    assert status == 200, body
    types = {t["name"]: t for t in body["data"]}
    for entity, actions in BUILTIN.items():
        for action in actions:
            name = f"{entity}.{action}"
            assert name in types, name
            assert types[name]["entity"] == entity
            assert types[name]["builtin"] is True
            assert isinstance(types[name]["description"], str)


def test_every_builtin_type_can_be_published(tenant):
    server, key = tenant
    events = [{"type": f"{e}.{a}", "entity_id": "X"} for e, acts in BUILTIN.items()
              for a in acts]
    body = publish(server, key, {"events": events})
    assert body["accepted"] == len(events)


def test_register_event_type(tenant):
    server, key = tenant
    status, _, body = server.request("POST", "/v1/event-types",
                                     {"name": "loyalty.points_added",
                                      "description": "Points were added"}, token=key)
    assert status == 201, body
    assert body["name"] == "loyalty.points_added"
    assert body["entity"] == "loyalty"
    assert body["description"] == "Points were added"
    assert body["builtin"] is False

    types = {t["name"]: t for t in server.request("GET", "/v1/event-types",
                                                  token=key)[2]["data"]}
    assert types["loyalty.points_added"]["builtin"] is False
    assert types["loyalty.points_added"]["entity"] == "loyalty"

    ids = publish(server, key, {"type": "loyalty.points_added", "entity_id": "CUST-7",
                                "payload": {"points": 10}})["ids"]
    ev = server.request("GET", f"/v1/events/{ids[0]}", token=key)[2]
    assert ev["entity"] == "loyalty" and ev["sequence"] == 1


def test_registered_type_belongs_to_its_tenant(tenant):
    server, key = tenant
    make_tenant(server, "globex")
    other = make_key(server, "globex", ALL_PERMS)
    assert server.request("POST", "/v1/event-types", {"name": "loyalty.points_added",
                                                      "description": "d"}, token=key)[0] == 201
    types = [t["name"] for t in server.request("GET", "/v1/event-types",
                                               token=other)[2]["data"]]
    assert "loyalty.points_added" not in types
    assert_problem(server.request("POST", "/v1/events", {"type": "loyalty.points_added",
                                                         "entity_id": "C"}, token=other),
                   422, "type")
    # The other tenant may register the same name for itself.
    status, _, body = server.request("POST", "/v1/event-types",
                                     {"name": "loyalty.points_added", "description": "mine"},
                                     token=other)
    assert status == 201, body


@pytest.mark.parametrize("name", ["loyalty", "Loyalty.points", "a.b.c", ".points", "loyalty.",
                                  "loy-alty.points", "loyalty.po ints", "", "loyalty.p\u00f6"])
def test_register_event_type_bad_name(tenant, name):
    server, key = tenant
    assert_problem(server.request("POST", "/v1/event-types", {"name": name, "description": "d"},
                                  token=key), 422, "name")


def test_register_event_type_missing_or_wrong_fields(tenant):
    server, key = tenant
    assert_problem(server.request("POST", "/v1/event-types", {"description": "d"}, token=key),
                   422, "name")
    assert_problem(server.request("POST", "/v1/event-types", {"name": 5}, token=key), 422,
                   "name")
    assert_problem(server.request("POST", "/v1/event-types",
                                  {"name": "a.b", "description": "d", "color": "red"},
                                  token=key), 422, "color")


def test_register_existing_event_type_conflicts(tenant):
    server, key = tenant
    assert_problem(server.request("POST", "/v1/event-types",
                                  {"name": "order.created", "description": "d"}, token=key), 409)
    assert server.request("POST", "/v1/event-types",
                          {"name": "loyalty.redeemed", "description": "d"}, token=key)[0] == 201
    assert_problem(server.request("POST", "/v1/event-types",
                                  {"name": "loyalty.redeemed", "description": "again"},
                                  token=key), 409)
