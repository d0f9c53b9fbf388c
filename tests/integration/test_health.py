"""Health, readiness, and the generic HTTP behaviour (404/405, problem details)."""

from conftest import ALL_PERMS, assert_problem, make_key, make_tenant


def test_healthz(server):
    status, headers, body = server.request("GET", "/healthz")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert body == {"status": "ok"}


def test_readyz_reports_checks(server):
    status, headers, body = server.request("GET", "/readyz")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert body == {"status": "ready", "checks": {"database": "ok", "smtp": "disabled"}}


def test_health_needs_no_auth_even_with_bad_token(server):
    status, _, body = server.request("GET", "/healthz", token="sk_bogus")
    assert status == 200 and body == {"status": "ok"}


def test_unknown_path_is_404_problem(server):
    make_tenant(server, "acme")
    key = make_key(server, "acme", ALL_PERMS)
    assert_problem(server.request("GET", "/v1/no-such-thing", token=key), 404)


def test_wrong_method_is_405_problem(server):
    make_tenant(server, "acme")
    key = make_key(server, "acme", ALL_PERMS)
    resp = server.request("PUT", "/v1/events", {"x": 1}, token=key)
    assert_problem(resp, 405)
    assert resp[1]["allow"] == "POST, GET, HEAD", resp[1]


def test_head_is_answered_like_get_without_a_body(server):
    get = server.request("GET", "/")
    head = server.request("HEAD", "/")
    assert head[0] == get[0] == 200
    assert head[1]["content-type"] == get[1]["content-type"]
    assert head[1]["content-security-policy"] == get[1]["content-security-policy"]
    assert head[2] in ("", None, b""), head[2]
    assert server.request("HEAD", "/healthz")[0] == 200


def test_node_without_api_role_serves_only_operations(start_server, db):
    """--roles without api: health, readiness and metrics answer; the API is a 503 problem
    that says why, whatever the credentials. With api in the list the API answers."""
    srv = start_server(db=db, args=["--roles", "webhook,notify"])
    assert srv.request("GET", "/healthz")[0] == 200
    assert srv.request("GET", "/readyz")[0] == 200
    assert srv.request("GET", "/metrics")[0] == 200
    body = assert_problem(srv.request("GET", "/v1/admin/tenants", token=srv.admin_token), 503)
    assert "api role" in body["detail"], body
    assert_problem(srv.request("GET", "/v1/me"), 503)  # before authentication
    srv.stop()

    both = start_server(db=db, args=["--roles", "api,webhook"], data_dir=srv.data_dir)
    make_tenant(both, "acme")
    assert both.request("GET", "/v1/me", token=make_key(both, "acme", ALL_PERMS))[0] == 200
