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
    assert_problem(server.request("PUT", "/v1/events", {"x": 1}, token=key), 405)
