"""The admin API: tenants and API keys (admin token only)."""

import pytest

from conftest import RFC3339_MS, assert_problem, make_key, make_tenant


def test_create_tenant(server):
    status, headers, body = server.admin("POST", "/v1/admin/tenants",
                                         {"id": "acme", "name": "Acme Retail"})
    assert status == 201, body
    assert headers["content-type"].startswith("application/json")
    assert body["id"] == "acme" and body["name"] == "Acme Retail"
    assert RFC3339_MS.match(body["created_at"]), body
    assert set(body) == {"id", "name", "created_at"}, body


@pytest.mark.parametrize("tid", ["a", "A.b_c-9", "x" * 64])
def test_tenant_id_edges_accepted(server, tid):
    status, _, body = server.admin("POST", "/v1/admin/tenants", {"id": tid, "name": "N"})
    assert status == 201, body
    assert body["id"] == tid


@pytest.mark.parametrize("payload,field", [
    ({"id": "", "name": "N"}, "id"),
    ({"id": "x" * 65, "name": "N"}, "id"),
    ({"id": "has space", "name": "N"}, "id"),
    ({"id": "a/b", "name": "N"}, "id"),
    ({"id": "caf\u00e9", "name": "N"}, "id"),
    ({"id": 7, "name": "N"}, "id"),
    ({"name": "N"}, "id"),
    ({"id": "acme", "name": ""}, "name"),
    ({"id": "acme"}, "name"),
    ({"id": "acme", "name": 5}, "name"),
], ids=["empty", "too-long", "space", "slash", "non-ascii", "number", "missing-id",
        "empty-name", "missing-name", "name-number"])
def test_tenant_validation(server, payload, field):
    assert_problem(server.admin("POST", "/v1/admin/tenants", payload), 422, field)
    status, _, body = server.admin("GET", "/v1/admin/tenants")
    assert status == 200 and body["data"] == [], "nothing is stored on a validation error"


def test_duplicate_tenant_conflicts(server):
    make_tenant(server, "acme", "First")
    assert_problem(server.admin("POST", "/v1/admin/tenants", {"id": "acme", "name": "Again"}),
                   409)
    status, _, body = server.admin("GET", "/v1/admin/tenants")
    assert [(t["id"], t["name"]) for t in body["data"]] == [("acme", "First")]


def test_list_tenants(server):
    make_tenant(server, "acme", "Acme")
    make_tenant(server, "globex", "Globex")
    status, _, body = server.admin("GET", "/v1/admin/tenants")
    assert status == 200, body
    assert body["next_cursor"] is None
    got = {t["id"]: t for t in body["data"]}
    assert set(got) == {"acme", "globex"}
    assert got["globex"]["name"] == "Globex"
    assert RFC3339_MS.match(got["acme"]["created_at"])


def test_create_key(server):
    make_tenant(server, "acme")
    status, _, body = server.admin("POST", "/v1/admin/tenants/acme/keys",
                                   {"name": "erp", "permissions": ["events:publish",
                                                                   "tools:view"]})
    assert status == 201, body
    assert body["id"].startswith("key_"), body
    assert body["key"].startswith("sk_") and len(body["key"]) >= 24, body
    assert body["name"] == "erp"
    assert sorted(body["permissions"]) == ["events:publish", "tools:view"]
    assert RFC3339_MS.match(body["created_at"])
    # The key works.
    status, _, me = server.request("GET", "/v1/me", token=body["key"])
    assert status == 200 and me["tenant"] == "acme", me


def test_create_key_unknown_tenant(server):
    assert_problem(server.admin("POST", "/v1/admin/tenants/nope/keys",
                                {"name": "erp", "permissions": ["tools:view"]}), 404)


@pytest.mark.parametrize("payload,field", [
    ({"name": "erp", "permissions": ["tools:view", "tools:destroy"]}, "permissions[1]"),
    ({"name": "erp", "permissions": []}, "permissions"),
    ({"name": "erp"}, "permissions"),
    ({"name": "erp", "permissions": "tools:view"}, "permissions"),
    ({"name": "", "permissions": ["tools:view"]}, "name"),
], ids=["unknown-permission", "empty", "missing", "not-a-list", "empty-name"])
def test_create_key_validation(server, payload, field):
    make_tenant(server, "acme")
    assert_problem(server.admin("POST", "/v1/admin/tenants/acme/keys", payload), 422, field)
    status, _, body = server.admin("GET", "/v1/admin/tenants/acme/keys")
    assert status == 200 and body["data"] == []


def test_list_keys_hides_secret(server):
    make_tenant(server, "acme")
    make_tenant(server, "globex")
    key = make_key(server, "acme", ["tools:view"], name="viewer")
    make_key(server, "globex", ["tools:view"], name="other")
    status, _, body = server.admin("GET", "/v1/admin/tenants/acme/keys")
    assert status == 200, body
    assert body["next_cursor"] is None
    assert len(body["data"]) == 1, "keys of other tenants must not show"
    k = body["data"][0]
    assert "key" not in k, k
    assert k["key_hint"] == "****" + key[-4:], k
    assert k["name"] == "viewer" and k["permissions"] == ["tools:view"]
    assert k["id"].startswith("key_")
    assert key not in str(body)


def test_list_keys_unknown_tenant(server):
    assert_problem(server.admin("GET", "/v1/admin/tenants/nope/keys"), 404)


def test_delete_key_revokes_it(server):
    make_tenant(server, "acme")
    status, _, created = server.admin("POST", "/v1/admin/tenants/acme/keys",
                                      {"name": "tmp", "permissions": ["tools:view"]})
    assert status == 201
    other = make_key(server, "acme", ["tools:view"])
    assert server.request("GET", "/v1/me", token=created["key"])[0] == 200
    status, _, body = server.admin("DELETE", f"/v1/admin/tenants/acme/keys/{created['id']}")
    assert status == 204, body
    assert_problem(server.request("GET", "/v1/me", token=created["key"]), 401)
    assert server.request("GET", "/v1/me", token=other)[0] == 200, "other keys keep working"
    _, _, body = server.admin("GET", "/v1/admin/tenants/acme/keys")
    assert created["id"] not in [k["id"] for k in body["data"]]
    # Deleting again, or an unknown id: 404.
    assert_problem(server.admin("DELETE", f"/v1/admin/tenants/acme/keys/{created['id']}"), 404)
    assert_problem(server.admin("DELETE", "/v1/admin/tenants/acme/keys/key_nope"), 404)


def test_delete_key_of_other_tenant_is_404(server):
    make_tenant(server, "acme")
    make_tenant(server, "globex")
    _, _, created = server.admin("POST", "/v1/admin/tenants/acme/keys",
                                 {"name": "a", "permissions": ["tools:view"]})
    assert_problem(server.admin("DELETE", f"/v1/admin/tenants/globex/keys/{created['id']}"),
                   404)
    assert server.request("GET", "/v1/me", token=created["key"])[0] == 200


def test_admin_needs_admin_token(server):
    make_tenant(server, "acme")
    key = make_key(server, "acme", ["tools:manage", "alerts:manage", "events:publish"])
    assert_problem(server.request("GET", "/v1/admin/tenants"), 401)
    assert_problem(server.request("GET", "/v1/admin/tenants", token="not-the-token"), 401)
    assert_problem(server.request("GET", "/v1/admin/tenants", token=key), 403)
    assert_problem(server.request("POST", "/v1/admin/tenants", {"id": "evil", "name": "E"},
                                  token=key), 403)
    _, _, body = server.admin("GET", "/v1/admin/tenants")
    assert [t["id"] for t in body["data"]] == ["acme"]


def test_admin_bad_json(server):
    assert_problem(server.admin("POST", "/v1/admin/tenants", raw=b'{"id": "a",'), 400)
    assert_problem(server.admin("POST", "/v1/admin/tenants", raw=b'{"id":"a","name":"b"}',
                                headers={"Content-Type": "text/plain"}), 415)
