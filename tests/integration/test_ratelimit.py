"""--rate-limit: per-key token buckets; 429 with Retry-After past the rate (API.md)."""
from conftest import assert_problem, make_key, make_tenant


def test_rate_limit_per_key(start_server):
    srv = start_server(args=["--rate-limit", "5"])
    make_tenant(srv, "acme")
    k1 = make_key(srv, "acme", ["tools:view"])
    k2 = make_key(srv, "acme", ["tools:view"])
    codes = [srv.request("GET", "/v1/event-types", token=k1) for _ in range(30)]
    limited = [r for r in codes if r[0] == 429]
    ok = [r for r in codes if r[0] == 200]
    # A burst of 5 fits the bucket; 30 back-to-back requests cannot all fit.
    assert len(ok) >= 5 and limited, [r[0] for r in codes]
    code, headers, body = limited[0]
    assert_problem(limited[0], 429)
    assert int(headers["retry-after"]) >= 1
    # Another key has its own bucket.
    assert srv.request("GET", "/v1/event-types", token=k2)[0] == 200
    # The admin token is not limited.
    admin = [srv.admin("GET", "/v1/admin/tenants")[0] for _ in range(20)]
    assert admin == [200] * 20


def test_no_rate_limit_by_default(start_server):
    srv = start_server()
    make_tenant(srv, "acme")
    k = make_key(srv, "acme", ["tools:view"])
    codes = [srv.request("GET", "/v1/event-types", token=k)[0] for _ in range(50)]
    assert codes == [200] * 50
