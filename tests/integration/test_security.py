"""Security regressions: who may call what, the SSRF guard, and secrets at rest and in transit.

1. The access table is generated from the route table (src/api/routes.c), read here and
   checked against the routes the running server reports in /metrics, so a new route
   cannot skip it. Every route that needs authentication is called with: no key, a wrong
   key, a malformed token, the admin token, a tenant key where the admin token belongs, a
   key holding each single permission, and another tenant's key on this tenant's ids. The
   expected status follows from the route's auth and permissions (API contract: 401 without
   a valid key, 403 for the admin token outside /v1/admin/* and for a missing permission, a
   foreign id answers exactly as a missing one). Refusals must change nothing: the tenant's
   resources are compared before and after. The table is written to
   build/security/access-table.md.
2. The SSRF guard, on a server started WITHOUT --allow-private-targets: loopback, private,
   link-local, CGNAT and metadata addresses in every spelling curl and glibc accept (hex,
   octal, decimal, short forms, IPv4-mapped and -compatible IPv6, ULA, link-local), for
   webhook URLs and S3 endpoints; and a redirect from an allowed receiver to a private one,
   which must not be followed.
3. Secrets (webhook API key, S3 secret key, signing secret, API keys, admin token, SMTP
   password) never appear in answers after their creation, in the server's log, or in the
   database in plain text (the SQLite file and its WAL, a pg_dump).
"""

import json
import os
import re
import socket
import subprocess

import pytest

from conftest import ALL_PERMS, PG_BIN, REPO, make_key, make_tenant, publish, wait_for

ROUTES_C = os.path.join(REPO, "src", "api", "routes.c")
PERM_NAMES = {"PERM_EVENTS_PUBLISH": "events:publish", "PERM_TOOLS_VIEW": "tools:view",
              "PERM_TOOLS_MANAGE": "tools:manage", "PERM_ALERTS_REPORT": "alerts:report",
              "PERM_ALERTS_VIEW": "alerts:view", "PERM_ALERTS_MANAGE": "alerts:manage"}
IMPLIES = {"tools:manage": {"tools:view"}, "alerts:manage": {"alerts:view"}}


def route_table():
    """[(method, pattern, auth, {permission names})] of src/api/routes.c, in order."""
    text = open(ROUTES_C).read()
    body = text[text.index("api_routes[] = {"):]
    out = []
    for m in re.finditer(r'\{"(\w+)",\s*"([^"]+)",\s*(AUTH_\w+),\s*([^,]+),\s*\w+', body):
        method, pattern, auth, perms = m.groups()
        names = set() if perms.strip() == "0" else {PERM_NAMES[p.strip()]
                                                     for p in perms.split("|")}
        out.append((method, pattern, auth, names))
    assert len(out) > 40, "could not read the route table"
    return out


def expand(perm):
    return {perm} | IMPLIES.get(perm, set())


def served_routes(srv):
    """(method, pattern) of every route the running server counts in /metrics."""
    status, _, text = srv.request("GET", "/metrics")
    assert status == 200
    return set(re.findall(r'sluice_http_requests_total\{method="(\w+)",route="([^"]+)"', text))


class World:
    """Tenant acme with one of everything, tenant globex with an all-permission key, keys with
    each single permission in acme."""

    def __init__(self, srv, receiver):
        self.srv = srv
        make_tenant(srv, "acme")
        make_tenant(srv, "globex")
        self.key = make_key(srv, "acme", ALL_PERMS, name="all")
        self.other = make_key(srv, "globex", ALL_PERMS, name="other-all")
        self.single = {p: make_key(srv, "acme", [p], name="only-" + p.replace(":", "-"))
                       for p in ALL_PERMS}
        st, _, victim = srv.admin("POST", "/v1/admin/tenants/acme/keys",
                                  {"name": "victim", "permissions": ["tools:view"]})
        assert st == 201
        self.ids = {"tenants": "acme", "keys": victim["id"]}
        self.ok("POST", "/v1/integrations",
                {"id": "erp", "events": ["order"],
                 "target": {"type": "webhook", "url": receiver.url("/erp"),
                            "api_key": "acme-erp-key-1234"}}, 201)
        self.ids["integrations"] = "erp"
        self.ids["events"] = publish(srv, self.key, {"type": "order.created",
                                                     "entity_id": "ORD-1"})["ids"][0]
        receiver.wait("/erp", 1)
        self.ids["notification-channels"] = self.ok(
            "POST", "/v1/notification-channels",
            {"name": "Ops", "type": "email", "addresses": ["ops@acme.example"]}, 201)["id"]
        self.ids["alert-policies"] = self.ok(
            "POST", "/v1/alert-policies",
            {"name": "Orders", "monitored_events": [{"event": "order.*"}],
             "channel_ids": [self.ids["notification-channels"]]}, 201)["id"]
        self.ids["tasks"] = self.ok("POST", "/v1/tasks",
                                    {"kind": "order_import", "status": "failed"}, 201)["id"]
        self.ids["alerts"] = self.ok(
            "POST", "/v1/alerts", {"event": "order.import_failed", "message": "SKU missing",
                                   "connection": "shop", "task_id": self.ids["tasks"]},
            202)["ids"][0]
        issues = self.ok("GET", "/v1/issues", None, 200)["data"]
        assert len(issues) == 1
        self.ids["issues"] = issues[0]["id"]
        wait_for(lambda: self.ok("GET", "/v1/integrations/erp", None, 200)["stats"]["succeeded"]
                 == 1, 15, what="the event delivered")

    def ok(self, method, path, body, expect):
        status, _, resp = self.srv.request(method, path, body, token=self.key)
        assert status == expect, (method, path, status, resp)
        return resp

    def path(self, pattern, missing=False):
        """The pattern with acme's ids (or ids that exist nowhere, with missing)."""
        parts = pattern.split("/")
        for i, p in enumerate(parts):
            if p == "{}":
                seg = parts[i - 1]
                real = self.ids.get(seg, "x")
                if missing:
                    real = (real[:4] + "01KZZZZZZZZZZZZZZZZZZZZZZZ") if "_" in real[:5] \
                        else "nosuch-" + seg
                parts[i] = real
        return "/".join(parts)

    def snapshot(self):
        """Everything of acme's that a refused request could have changed."""
        out = {}
        for seg, pattern in [("integrations", "/v1/integrations/{}"),
                             ("events", "/v1/events/{}"), ("alerts", "/v1/alerts/{}"),
                             ("tasks", "/v1/tasks/{}"),
                             ("alert-policies", "/v1/alert-policies/{}"),
                             ("notification-channels", "/v1/notification-channels/{}"),
                             ("issues", "/v1/issues/{}")]:
            out[pattern] = self.ok("GET", pattern.replace("{}", self.ids[seg]), None, 200)
        out["timeline"] = self.ok("GET", f"/v1/issues/{self.ids['issues']}/timeline", None, 200)
        out["logs"] = self.ok("GET", "/v1/integrations/erp/logs", None, 200)
        out["keys"] = self.srv.admin("GET", "/v1/admin/tenants/acme/keys")[2]
        out["events"] = self.ok("GET", "/v1/events", None, 200)
        return out


def body_for(method):
    return {} if method in ("POST", "PATCH", "PUT") else None


def call(srv, method, path, token=None, headers=None):
    st, _, resp = srv.request(method, path, body_for(method), token=token, headers=headers)
    return st, resp


@pytest.fixture
def world(start_server, db, receiver):
    srv = start_server(db=db, args=["--allow-private-targets"])
    return World(srv, receiver)


def test_access_table(world):
    srv, w = world.srv, world
    routes = route_table()
    # The table covers what the server serves, no more and no less.
    assert {(m, p) for m, p, _, _ in routes} == served_routes(srv)

    rows = []  # (method, pattern, principal, expected, got)
    problems = []

    def expect(method, pattern, who, want, got):
        rows.append((method, pattern, who, want, got))
        ok = got in want if isinstance(want, (set, tuple)) else got == want
        if not ok:
            problems.append(f"{method} {pattern} as {who}: {got}, expected {want}")

    before = w.snapshot()
    denied = lambda st: st in (401, 403)
    # 1. Refusals (no handler runs; nothing may change).
    for method, pattern, auth, perms in routes:
        if auth == "AUTH_NONE":
            continue
        path = w.path(pattern)
        expect(method, pattern, "no key", 401, call(srv, method, path)[0])
        expect(method, pattern, "wrong key", 401,
               call(srv, method, path, token="sk_" + "A" * 43)[0])
        expect(method, pattern, "malformed token", 401,
               call(srv, method, path, headers={"Authorization": "Basic " + w.key})[0])
        expect(method, pattern, "wrong admin token", 401,
               call(srv, method, path, token=srv.admin_token + "x")[0])
        if auth == "AUTH_KEY":
            expect(method, pattern, "admin token", 403,
                   call(srv, method, path, token=srv.admin_token)[0])
        if auth == "AUTH_ADMIN":
            expect(method, pattern, "tenant key", 403, call(srv, method, path, token=w.key)[0])
            expect(method, pattern, "other tenant's key", 403,
                   call(srv, method, path, token=w.other)[0])
        for perm, key in w.single.items():
            if auth == "AUTH_ADMIN":
                continue
            allowed = auth == "AUTH_ANY" or not perms or bool(expand(perm) & perms)
            if not allowed:
                expect(method, pattern, f"only {perm}", 403,
                       call(srv, method, path, token=key)[0])
    # 2. Another tenant's key on acme's ids answers as for ids that exist nowhere, never 2xx.
    for method, pattern, auth, perms in routes:
        if auth != "AUTH_KEY" or "{}" not in pattern:
            continue
        foreign = call(srv, method, w.path(pattern), token=w.other)
        missing = call(srv, method, w.path(pattern, missing=True), token=w.other)
        expect(method, pattern, "other tenant's key", missing[0], foreign[0])
        if foreign[0] < 300 or (method in ("GET", "DELETE") and foreign[0] != 404):
            problems.append(f"{method} {pattern} as other tenant: {foreign}")
    # Lists without a parent, read by the other tenant, show nothing of acme's.
    acme_ids = {v for k, v in w.ids.items() if k not in ("tenants",)}
    for method, pattern, auth, perms in routes:
        if method == "GET" and auth == "AUTH_KEY" and "{}" not in pattern:
            st, resp = call(srv, method, pattern, token=w.other)
            text = json.dumps(resp)
            leaked = [i for i in acme_ids if i in text] + (["acme"] if '"acme"' in text else [])
            if st != 200 or leaked:
                problems.append(f"GET {pattern} as globex: {st}, shows acme's {leaked}")
    after = w.snapshot()
    for k in before:
        if before[k] != after[k]:
            problems.append(f"a refused request changed {k}: {before[k]} -> {after[k]}")
    # 3. What is allowed gets past authentication (whatever the handler then answers).
    for method, pattern, auth, perms in routes:
        if auth == "AUTH_NONE":
            continue
        path = w.path(pattern)
        allowed = {"AUTH_ADMIN": ["admin token"], "AUTH_ANY": ["admin token", "tenant key"],
                   "AUTH_KEY": ["tenant key"]}[auth]
        for who in allowed:
            st = call(srv, method, path, token=srv.admin_token if who == "admin token"
                      else w.key)[0]
            expect(method, pattern, who, "not 401/403/5xx",
                   "not 401/403/5xx" if not denied(st) and st < 500 else st)
        for perm, key in w.single.items():
            if auth == "AUTH_KEY" and (not perms or expand(perm) & perms):
                st = call(srv, method, path, token=key)[0]
                expect(method, pattern, f"only {perm}", "not 401/403/5xx",
                       "not 401/403/5xx" if not denied(st) and st < 500 else st)

    os.makedirs(os.path.join(REPO, "build", "security"), exist_ok=True)
    with open(os.path.join(REPO, "build", "security", "access-table.md"), "w") as f:
        f.write("| method | route | caller | expected | got |\n|---|---|---|---|---|\n")
        for r in rows:
            f.write("| " + " | ".join(str(x) for x in r) + " |\n")
    assert len(rows) > 500, len(rows)
    assert not problems, "\n".join(problems[:60])


# --------------------------------------------------------------------------- SSRF


BLOCKED_URLS = [
    "http://127.0.0.1/", "http://127.1/", "http://0x7f.1/", "http://0x7f000001/",
    "http://2130706433/", "http://017700000001/", "http://0177.0.0.1/", "http://127.000.000.1/",
    "http://localhost/", "http://0.0.0.0/", "http://0/", "http://10.0.0.1/", "http://10.1/",
    "http://172.16.0.1/", "http://172.31.255.255/", "http://192.168.0.1/", "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://0xa9fea9fe/", "http://224.0.0.1/",
    "http://[::1]/", "http://[0:0:0:0:0:0:0:1]/", "http://[::]/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/", "http://[0:0:0:0:0:ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/",
    "http://[::127.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://[64:ff9b::a00:1]/",
    "http://[2002:7f00:1::]/", "http://[2002:a9fe:a9fe::1]/", "http://[64:ff9b:1::1]/",
    "http://[fec0::1]/", "http://[fe80::1]/", "http://[fe80::1%25lo]/", "http://[fd00::1]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/", "https://127.0.0.1:443/", "http://user:pw@127.0.0.1/",
]


def local_public_address():
    """An IPv4 address of this machine outside every range the guard blocks (a receiver
    there is allowed without --allow-private-targets), or None."""
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for addr in re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out):
        a = [int(x) for x in addr.split(".")]
        if (a[0] in (0, 10, 127) or a[0] >= 224 or (a[0] == 169 and a[1] == 254) or
                (a[0] == 172 and 16 <= a[1] < 32) or (a[0] == 192 and a[1] == 168) or
                (a[0] == 100 and 64 <= a[1] < 128)):
            continue
        return addr
    return None


@pytest.fixture
def public_address():
    """A local address the guard allows: one the machine has, or 192.0.2.10 added to lo for
    the test (needs CAP_NET_ADMIN); skips when neither is possible."""
    addr = local_public_address()
    added = None
    if addr is None:
        r = subprocess.run(["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"no local address outside the blocked ranges ({r.stderr.strip()})")
        addr = added = "192.0.2.10"
    yield addr
    if added:
        subprocess.run(["ip", "addr", "del", "192.0.2.10/32", "dev", "lo"], capture_output=True)


def test_ssrf_guard_refuses_private_addresses_in_every_spelling(start_server):
    srv = start_server()  # no --allow-private-targets
    make_tenant(srv, "acme")
    key = make_key(srv, "acme", ALL_PERMS)
    accepted = []
    for i, url in enumerate(BLOCKED_URLS):
        st, _, resp = srv.request("POST", "/v1/integrations", {
            "id": f"w{i}", "events": ["order"], "target": {"type": "webhook", "url": url}},
            token=key)
        fields = [e["field"] for e in resp.get("errors", [])] if isinstance(resp, dict) else []
        if st != 422 or "target.url" not in fields:
            accepted.append((url, st, resp))
        st, _, resp = srv.request("POST", "/v1/integrations", {
            "id": f"s{i}", "events": ["order"], "verify": False,
            "target": {"type": "s3", "bucket": "lake-bucket", "region": "us-east-1",
                       "key_prefix": "p/",
                       "access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t",
                       "endpoint": url}}, token=key)
        fields = [e["field"] for e in resp.get("errors", [])] if isinstance(resp, dict) else []
        if st != 422 or "target.endpoint" not in fields:
            accepted.append(("s3 endpoint " + url, st, resp))
    assert not accepted, "\n".join(map(str, accepted))
    # A public address (documentation range) is accepted: the guard is not refusing all.
    st, _, resp = srv.request("POST", "/v1/integrations", {
        "id": "public", "events": ["order"],
        "target": {"type": "webhook", "url": "http://198.51.100.7/hook"}}, token=key)
    assert st == 201, resp


def test_redirect_to_a_private_address_is_not_followed(start_server, public_address):
    from receiver import Receiver
    import http.server
    import threading

    inner = Receiver()  # the private target (loopback)
    hits = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            hits.append(self.path)
            self.send_response(307)
            self.send_header("Location", inner.url("/private"))
            self.send_header("Content-Length", "0")
            self.end_headers()

    outer = http.server.ThreadingHTTPServer((public_address, 0), Redirect)
    t = threading.Thread(target=outer.serve_forever, daemon=True)
    t.start()
    try:
        srv = start_server(args=["--time-scale", "1000"])  # no --allow-private-targets
        make_tenant(srv, "acme")
        key = make_key(srv, "acme", ALL_PERMS)
        url = f"http://{public_address}:{outer.server_address[1]}/hook"
        st, _, resp = srv.request("POST", "/v1/integrations", {
            "id": "r", "events": ["order"], "target": {"type": "webhook", "url": url}},
            token=key)
        assert st == 201, resp
        st, _, test = srv.request("POST", "/v1/integrations/r/test", {}, token=key)
        assert st == 200 and test["ok"] is False and test["status"] == 307, test
        publish(srv, key, {"type": "order.created", "entity_id": "O-1"})
        wait_for(lambda: len(hits) >= 3, 30, what="three delivery attempts (307, retried)")
        assert inner.got() == [], "the redirect to a private address was followed"
    finally:
        outer.shutdown()
        outer.server_close()
        inner.stop()


# --------------------------------------------------------------------------- secrets


SECRET_API_KEY = "whk-SECRET-7c1e0b9d4a"
SECRET_S3 = "s3k-SECRET-93be27f0c5d1"
SECRET_SMTP = "smtp-SECRET-5f28a1"


def test_secrets_never_in_answers_logs_or_database(start_server, db, receiver):
    smtp_url = f"smtp://mailer:{SECRET_SMTP}@127.0.0.1:9/"
    srv = start_server(db=db, args=["--allow-private-targets", "--smtp-url", smtp_url,
                                    "--smtp-from", "sluice@example.com", "--log-level",
                                    "debug"])
    make_tenant(srv, "acme")
    st, _, created_key = srv.admin("POST", "/v1/admin/tenants/acme/keys",
                                   {"name": "all", "permissions": ALL_PERMS})
    assert st == 201
    key = created_key["key"]
    st, _, integ = srv.request("POST", "/v1/integrations", {
        "id": "erp", "events": ["order"],
        "target": {"type": "webhook", "url": receiver.url("/erp"), "api_key": SECRET_API_KEY,
                   "api_key_header": "X-Api-Key"}}, token=key)
    assert st == 201, integ
    signing = integ["signing_secret"]
    assert signing.startswith("whsec_")
    st, _, s3 = srv.request("POST", "/v1/integrations", {
        "id": "lake", "events": ["order"], "verify": False,
        "target": {"type": "s3", "bucket": "lake-bucket", "region": "us-east-1",
                       "key_prefix": "p/",
                   "access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET_S3,
                   "endpoint": "http://127.0.0.1:9"}}, token=key)
    assert st == 201, s3
    assert SECRET_S3 not in json.dumps(s3) and SECRET_API_KEY not in json.dumps(integ)
    publish(srv, key, {"type": "order.created", "entity_id": "O-1"})
    got = receiver.wait("/erp", 1)
    assert got[0].headers.get("x-api-key") == SECRET_API_KEY  # it is used, just never shown
    # Everything a key or the admin can read afterwards.
    reads = []
    for path in ["/v1/integrations", "/v1/integrations/erp", "/v1/integrations/lake",
                 "/v1/integrations/erp/events", "/v1/integrations/erp/logs",
                 "/v1/integrations/lake/logs", "/v1/me", "/v1/events", "/readyz", "/metrics"]:
        reads.append(srv.request("GET", path, token=key))
    for path in ["/v1/admin/tenants", "/v1/admin/tenants/acme/keys", "/v1/me"]:
        reads.append(srv.admin("GET", path))
    secrets_ = {"webhook api_key": SECRET_API_KEY, "S3 secret": SECRET_S3,
                "signing secret": signing, "API key": key, "admin token": srv.admin_token,
                "SMTP password": SECRET_SMTP}
    text = json.dumps([r[2] for r in reads]) + json.dumps([dict(r[1]) for r in reads])
    for name, s in secrets_.items():
        assert s not in text, f"the {name} appears in an answer"
    srv.stop()
    # The test's own "=== sluice serve ..." lines hold the command line (admin token, SMTP
    # URL); what the server wrote is the rest.
    log = "\n".join(l for l in srv.full_log().splitlines() if not l.startswith("=== "))
    assert "listening" in log
    for name, s in secrets_.items():
        assert s not in log, f"the {name} appears in the server's log"
    if db is None:
        blobs = b""
        for f in os.listdir(srv.data_dir):
            if f.startswith("sluice.db"):
                with open(os.path.join(srv.data_dir, f), "rb") as fh:
                    blobs += fh.read()
        where = "the SQLite file"
    else:
        r = subprocess.run([f"{PG_BIN}/pg_dump", db], capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        blobs = r.stdout
        where = "a pg_dump"
    assert b"order.created" in blobs  # the dump is the real data
    for name, s in secrets_.items():
        assert s.encode() not in blobs, f"the {name} is in {where} in plain text"
