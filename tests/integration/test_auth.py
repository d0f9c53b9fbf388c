"""Authentication, permissions and tenant isolation."""

import pytest

from conftest import ALL_PERMS, assert_problem, make_key, make_tenant, publish


@pytest.fixture
def two(server):
    make_tenant(server, "acme")
    make_tenant(server, "globex")
    return server


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer sk_unknown_key_0000000000"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "sk_no_scheme"},
], ids=["missing", "unknown", "empty", "basic", "no-scheme"])
def test_unauthenticated_is_401(two, headers):
    key = make_key(two, "acme", ALL_PERMS)
    for method, path in [("GET", "/v1/me"), ("GET", "/v1/events"),
                         ("GET", "/v1/event-types")]:
        assert_problem(two.request(method, path, headers=headers), 401)
    status, _, body = two.request("POST", "/v1/events",
                                  {"type": "order.created", "entity_id": "O-1"}, headers=headers)
    assert_problem((status, _, body), 401)
    # Nothing was stored by the rejected publish.
    assert two.request("GET", "/v1/events", token=key)[2]["data"] == []


def test_me_for_tenant_key(two):
    status, _, created = two.admin("POST", "/v1/admin/tenants/acme/keys",
                                   {"name": "erp", "permissions": ["events:publish"]})
    assert status == 201
    status, _, me = two.request("GET", "/v1/me", token=created["key"])
    assert status == 200, me
    assert me["tenant"] == "acme"
    assert me["key"]["id"] == created["id"]
    assert me["key"]["name"] == "erp"
    assert me["key"]["permissions"] == ["events:publish"]
    assert "admin" not in me or me["admin"] is False


def test_me_for_admin(two):
    status, _, me = two.admin("GET", "/v1/me")
    assert status == 200 and me == {"admin": True}, me


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/events"), ("GET", "/v1/event-types"), ("POST", "/v1/events"),
    ("GET", "/v1/events/evt_x")])
def test_admin_token_only_on_admin_paths(two, method, path):
    body = {"type": "order.created", "entity_id": "O-1"} if method == "POST" else None
    assert_problem(two.admin(method, path, body), 403)


@pytest.mark.parametrize("perms,method,path,expect", [
    (["tools:view"], "POST", "/v1/events", 403),
    (["tools:manage"], "POST", "/v1/events", 403),
    (["alerts:manage"], "POST", "/v1/events", 403),
    (["events:publish"], "POST", "/v1/events", 202),
    (["events:publish"], "GET", "/v1/events", 403),
    (["alerts:view"], "GET", "/v1/events", 403),
    (["tools:view"], "GET", "/v1/events", 200),
    (["tools:manage"], "GET", "/v1/events", 200),
    (["tools:view"], "POST", "/v1/event-types", 403),
    (["events:publish"], "POST", "/v1/event-types", 403),
    (["tools:manage"], "POST", "/v1/event-types", 201),
    (["events:publish"], "GET", "/v1/event-types", 200),
    (["alerts:view"], "GET", "/v1/me", 200),
])
def test_permissions(two, perms, method, path, expect):
    key = make_key(two, "acme", perms)
    body = None
    if path == "/v1/events" and method == "POST":
        body = {"type": "order.created", "entity_id": "O-1"}
    elif path == "/v1/event-types" and method == "POST":
        body = {"name": "loyalty.points_added", "description": "d"}
    resp = two.request(method, path, body, token=key)
    if expect == 403:
        assert_problem(resp, 403)
    else:
        assert resp[0] == expect, resp
    if path == "/v1/events" and method == "POST":
        viewer = make_key(two, "acme", ["tools:view"])
        stored = two.request("GET", "/v1/events", token=viewer)[2]["data"]
        assert len(stored) == (1 if expect == 202 else 0)


def test_other_tenants_event_is_404(two):
    a = make_key(two, "acme", ALL_PERMS)
    g = make_key(two, "globex", ALL_PERMS)
    ids = publish(two, a, {"type": "order.created", "entity_id": "SECRET-1",
                           "payload": {"x": 1}})["ids"]
    status, _, ev = two.request("GET", f"/v1/events/{ids[0]}", token=a)
    assert status == 200 and ev["entity_id"] == "SECRET-1"
    foreign = assert_problem(two.request("GET", f"/v1/events/{ids[0]}", token=g), 404)
    missing = assert_problem(two.request("GET", "/v1/events/evt_00000000000000000000000000",
                                         token=g), 404)
    assert foreign["title"] == missing["title"], "a foreign id must look like a missing one"
    for q in ("", "?entity_id=SECRET-1", "?type=order.created"):
        status, _, body = two.request("GET", f"/v1/events{q}", token=g)
        assert status == 200 and body["data"] == [], body


def test_client_ids_are_per_tenant(two):
    a = make_key(two, "acme", ALL_PERMS)
    g = make_key(two, "globex", ALL_PERMS)
    ra = publish(two, a, {"id": "shared-1", "type": "order.created", "entity_id": "O-1"})
    rg = publish(two, g, {"id": "shared-1", "type": "order.created", "entity_id": "O-1"})
    assert ra["accepted"] == 1 and rg["accepted"] == 1
    assert rg["duplicates"] == 0
    assert ra["ids"] != rg["ids"]
    # Sequences are per tenant too.
    assert two.request("GET", f"/v1/events/{rg['ids'][0]}", token=g)[2]["sequence"] == 1


def test_revoked_key_is_401_everywhere(two):
    _, _, created = two.admin("POST", "/v1/admin/tenants/acme/keys",
                              {"name": "tmp", "permissions": ["events:publish", "tools:view"]})
    assert two.admin("DELETE", f"/v1/admin/tenants/acme/keys/{created['id']}")[0] == 204
    assert_problem(two.request("POST", "/v1/events", {"type": "order.created",
                                                      "entity_id": "O"},
                               token=created["key"]), 401)
    assert_problem(two.request("GET", "/v1/events", token=created["key"]), 401)
