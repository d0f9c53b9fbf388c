"""The one contract of every list, run against every list on both databases.

Every GET list of the API (docs/api.md, "Lists") promises the same things: ?limit= from 1 to
1000 (default 100), an opaque ?cursor= that the server signs, next_cursor set exactly when
more rows exist, 400 naming the parameter for a bad limit, a cursor the server did not give,
an unknown or repeated parameter or a bad filter value, and 503 (never a 200 with part of
the rows) when storage fails under it.

LISTS below is the table of every list with the data it holds after seeding; the first test
reads the route table (src/api/routes.c) and fails when a route served by the list helper
is missing from LISTS (or LISTS names one that is not), and another calls every other GET
route and fails when one answers like a list: a list cannot skip the contract.

Storage faults are real: a table the list reads (in its rows or in an item's expansion) is
renamed away under the running server, through the database's own client, then renamed
back; and a whole PostgreSQL cluster is stopped under a server and started again.
"""

import os
import re
import secrets
import sqlite3
import subprocess
import time

import pytest

from alerting_helpers import alert, channel, policy, report, req
from conftest import (ALL_PERMS, PG_BIN, REPO, SANITIZED, Postgres, Server, assert_problem,
                      make_key, make_tenant, publish, wait_for)
from receiver import Receiver

ROUTES = os.path.join(REPO, "src", "api", "routes.c")

# filter kinds: how to make a good and a bad value
TEXT, ENUM, ID, TIME = "text", "enum", "id", "time"

# Every list: its path (placeholders filled from the seeded world), who reads it, the least
# number of rows seeding leaves in it (exact when known), its filters with a good value
# each, and the table whose loss breaks it: where the list has an expansion (a second read
# per item), the table that read needs, so the fault lands after the rows were read.
LISTS = {
    "/v1/admin/tenants": dict(admin=True, rows=6, filters={}, fault="tenants"),
    "/v1/admin/nodes": dict(admin=True, rows=4, exact=True, filters={}, fault="nodes"),
    "/v1/admin/tenants/{}/keys": dict(admin=True, path="/v1/admin/tenants/acme/keys", rows=5,
                                      filters={}, fault="api_keys"),
    "/v1/event-types": dict(rows=30, filters={}, fault="event_types"),
    "/v1/failure-types": dict(rows=15, filters={}, fault=None),  # built into the binary
    "/v1/events": dict(rows=9, fault="events",
                       filters={"type": (TEXT, "order.created"), "entity_id": (TEXT, "ORD-1"),
                                "from": (TIME, None), "to": (TIME, None)}),
    # Each item's stats come from delivery_counts (the counters migration 008 keeps).
    "/v1/integrations": dict(rows=5, fault="delivery_counts",
                             filters={"state": (ENUM, "paused")}),
    "/v1/integrations/{}/events": dict(path="/v1/integrations/erp/events", rows=12,
                                       fault="deliveries",
                                       filters={"entity_id": (TEXT, "ORD-1"),
                                                "status": (ENUM, "success"),
                                                "from": (TIME, None), "to": (TIME, None)}),
    "/v1/integrations/{}/events/{}/attempts": dict(path="/v1/integrations/erp/events/{evt0}"
                                                        "/attempts", rows=5, exact=True,
                                                   filters={}, fault="delivery_attempts"),
    "/v1/integrations/{}/rejected-events": dict(path="/v1/integrations/rej/rejected-events",
                                                rows=8, exact=True, fault="deliveries",
                                                filters={"from": (TIME, None),
                                                         "to": (TIME, None)}),
    "/v1/integrations/{}/logs": dict(path="/v1/integrations/flip/logs", rows=7, exact=True,
                                     fault="integration_logs",
                                     filters={"from": (TIME, None), "to": (TIME, None)}),
    "/v1/alerts": dict(rows=11, fault="issue_alerts",
                       filters={"event": (TEXT, "order.import_failed"),
                                "category": (TEXT, "order"), "connection": (TEXT, "conn-1"),
                                "entity_id": (TEXT, "E1"), "task_id": (ID, "tsk"),
                                "issue_id": (ID, "iss"), "from": (TIME, None),
                                "to": (TIME, None)}),
    "/v1/tasks": dict(rows=5, fault="alerts",
                      filters={"connection": (TEXT, "conn-1"), "kind": (TEXT, "order_import"),
                               "status": (ENUM, "failed")}),
    "/v1/connections": dict(rows=6, fault="issues", filters={}),
    "/v1/alert-policies": dict(rows=5, fault="policy_channels", filters={}),
    "/v1/notification-channels": dict(rows=5, fault="notification_channels", filters={}),
    "/v1/issues": dict(rows=6, fault="issues",
                       filters={"status": (ENUM, "open"), "policy_id": (ID, "pol"),
                                "connection": (TEXT, "conn-1"), "from": (TIME, None),
                                "to": (TIME, None)}),
    "/v1/issues/{}/alerts": dict(path="/v1/issues/{iss1}/alerts", rows=6, exact=True,
                                 fault="issue_alerts", filters={}),
    "/v1/issues/{}/timeline": dict(path="/v1/issues/{iss1}/timeline", rows=6,
                                   fault="issue_timeline", filters={}),
    "/v1/notifications": dict(rows=6, fault="notification_items",
                              filters={"channel_id": (ID, "chn"), "status": (ENUM, "pending")}),
}

BAD = {TEXT: "x" * 300, ENUM: "bogus", ID: "not-an-id", TIME: "yesterday"}


def route_table():
    """(method, pattern, handler, list spec) of every route in src/api/routes.c."""
    text = open(ROUTES).read()
    body = text[text.index("api_routes[] = {"):]
    out = []
    for m in re.finditer(r'\{"(\w+)",\s*"([^"]+)",\s*AUTH_\w+,\s*[^,]+,\s*(\w+)\s*'
                         r'(?:,\s*&(\w+)\s*)?\}', body):
        out.append(m.groups())
    assert len(out) > 40, "could not read the route table"
    return out


def test_every_list_route_is_in_the_contract_table():
    lists = {pat for method, pat, handler, spec in route_table() if handler == "api_list"}
    assert lists, "no route is served by api_list"
    missing = lists - set(LISTS)
    assert not missing, f"list routes missing from the contract table: {sorted(missing)}"
    extra = set(LISTS) - lists
    assert not extra, f"the contract table names routes that are not lists: {sorted(extra)}"
    for method, pat, handler, spec in route_table():
        assert (handler == "api_list") == (spec is not None), (pat, handler, spec)
        assert handler != "api_list" or method == "GET", pat


def test_openapi_documents_every_route_and_the_list_contract():
    """docs/openapi.yaml stays in step with the route table: every /v1 route is there, and
    every list takes limit and cursor and answers 400 and 503."""
    import yaml
    doc = yaml.safe_load(open(os.path.join(REPO, "docs", "openapi.yaml")))
    paths = {re.sub(r"\{[^}]*\}", "{}", p): ops for p, ops in doc["paths"].items()}
    for method, pat, handler, spec in route_table():
        if not pat.startswith("/v1/") and pat not in ("/healthz", "/readyz", "/metrics"):
            continue
        assert pat in paths and method.lower() in paths[pat], f"{method} {pat} not in openapi"
        if handler != "api_list":
            continue
        op = paths[pat]["get"]
        refs = [p.get("$ref", "") for p in op.get("parameters", [])]
        assert "#/components/parameters/limit" in refs, pat
        assert "#/components/parameters/cursor" in refs, pat
        assert {"200", "400", "503"} <= set(op["responses"]), pat
        for name in LISTS[pat]["filters"]:
            assert name in [p.get("name") for p in op["parameters"]], (pat, name)


# --------------------------------------------------------------------------- the world


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request, tmp_path_factory):
    """One server per database, seeded so that every list holds several pages."""
    tmp = tmp_path_factory.mktemp("lists-" + request.param)
    url = None
    if request.param == "postgres":
        pg = request.getfixturevalue("pg")
        name = "t_" + secrets.token_hex(6)
        pg.psql(f"CREATE DATABASE {name}")
        url = pg.url(name)
    rcv = Receiver()
    srv = Server(tmp / "data", db=url, args=["--allow-private-targets"])
    try:
        srv.start()
        w = seed(srv, rcv)
        w["db"] = request.param
        w["url"] = url
        # three nodes that ran on this database once and stopped, beside the running one
        for i in range(3):
            sql(w, "INSERT INTO nodes (id, incarnation, roles, version, host, pid, timeout_ms, "
                   f"started_at, last_seen, stopped_at) VALUES ('old-{i}', 'nin_x', 'api', "
                   "'v0', 'elsewhere', 1, 10000, 1, 2, 2)")
        yield w
    finally:
        code = srv.stop()
        rcv.stop()
        if SANITIZED and code != 0:
            pytest.fail(f"sluice exited with {code} (sanitizer report?):\n"
                        f"{srv.full_log()[-20000:]}")
        if url:
            try:
                request.getfixturevalue("pg").psql(
                    f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
            except RuntimeError:
                pass


def seed(srv, rcv):
    for i in range(5):
        make_tenant(srv, f"t{i}")
    make_tenant(srv, "acme", "Acme")
    key = make_key(srv, "acme", ALL_PERMS, name="all")
    for i in range(4):
        make_key(srv, "acme", ["tools:view"], name=f"view{i}")
    other = make_key(srv, "t0", ALL_PERMS, name="other")  # another tenant's key

    def ok(method, path, body=None, expect=200):
        return req(srv, key, method, path, body, expect=expect)

    for i in range(3):
        ok("POST", "/v1/event-types", {"name": f"loyalty.thing_{i}"}, expect=201)
    # Event Stream: erp takes everything, rej rejects everything, flip is paused and resumed
    rcv.set("/rej", 400)
    for iid in ("erp", "rej", "flip", "idle1", "idle2"):
        ok("POST", "/v1/integrations",
           {"id": iid, "events": ["order"], "target": {"type": "webhook",
                                                       "url": rcv.url("/" + iid)}},
           expect=201)
    ids = publish(srv, key, {"events": [{"type": "order.created", "entity_id": f"ORD-{i}"}
                                        for i in range(8)]})["ids"]
    publish(srv, key, {"type": "shipment.created", "entity_id": "SHP-1"})

    def statuses(iid):
        return [r["status"] for r in ok("GET", f"/v1/integrations/{iid}/events?limit=1000")
                ["data"]]
    wait_for(lambda: statuses("rej").count("rejected") == 8, 20, what="8 rejections")
    for _ in range(4):  # the first event four more times: five attempts of one event
        ok("POST", "/v1/integrations/erp/redeliver", {"event_ids": [ids[0]]}, expect=202)
    wait_for(lambda: statuses("erp").count("success") == 12, 20, what="12 deliveries")
    for _ in range(3):
        ok("POST", "/v1/integrations/flip/pause", {"reason": "test"})
        ok("POST", "/v1/integrations/flip/resume")
    ok("POST", "/v1/integrations/idle2/pause")
    wait_for(lambda: len(statuses("flip")) == 8 and set(statuses("flip")) == {"success"}, 20,
             what="flip's deliveries")
    # alerting: five channels and policies; the first groups by entity, so six entities
    # open six issues, each notifying the first channel (no SMTP here: they stay pending)
    chans = [channel(srv, key, [f"ops{i}@acme.example"], name=f"c{i}")["id"] for i in range(5)]
    pols = [policy(srv, key, [{"event": "order.import_failed"}], name="by entity",
                   group_by=["entity_id"], channel_ids=[chans[0]])["id"]]
    for i in range(4):
        pols.append(policy(srv, key, [{"event": "shipment.*"}], name=f"p{i}")["id"])
    report(srv, key, [alert(connection=f"conn-{i}", entity_id=f"E{i}") for i in range(1, 7)])
    report(srv, key, [alert(connection="conn-1", entity_id="E1") for _ in range(5)])
    issues = ok("GET", "/v1/issues?limit=1000")["data"]
    iss1 = [i for i in issues if i["group"].get("entity_id") == "E1"][0]["id"]
    for i in range(5):
        ok("POST", f"/v1/issues/{iss1}/comments", {"comment": f"note {i}"}, expect=201)
    for i in range(5):
        ok("POST", "/v1/tasks", {"kind": "order_import", "connection": f"conn-{i}",
                                 "status": "failed"}, expect=201)
    return {"srv": srv, "key": key, "other": other, "evt0": ids[0], "iss1": iss1,
            "chans": chans, "pols": pols}


def path_of(w, pattern):
    return LISTS[pattern].get("path", pattern).format(**w)


def get(w, pattern, query="", token=None):
    spec = LISTS[pattern]
    tok = token or (w["srv"].admin_token if spec.get("admin") else w["key"])
    p = path_of(w, pattern)
    return w["srv"].request("GET", p + ("?" + query if query else ""), token=tok)


def all_rows(w, pattern):
    status, _, body = get(w, pattern, "limit=1000")
    assert status == 200, body
    assert body["next_cursor"] is None, body
    return body["data"]


def walk(w, pattern, limit):
    """Follows next_cursor with pages of `limit`; returns the pages."""
    pages, cursor = [], None
    for _ in range(2000):
        q = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        status, _, body = get(w, pattern, q)
        assert status == 200, (pattern, q, body)
        assert set(body) == {"data", "next_cursor"}, body
        pages.append(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert isinstance(cursor, str) and cursor, body
        assert len(body["data"]) == limit, "a page with a cursor after it is full"
    raise AssertionError("pagination does not end")


def valid_value(w, pattern, name, kind, value):
    if kind == TIME:
        return "2020-01-01T00:00:00Z" if name == "from" else "2100-01-01T00:00:00Z"
    if kind == ID:
        if value == "tsk":
            return all_rows(w, "/v1/tasks")[0]["id"]
        return {"iss": w["iss1"], "pol": w["pols"][0], "chn": w["chans"][0]}[value]
    return value


LIST_IDS = sorted(LISTS)


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("pattern", LIST_IDS)
def test_pages_walk_every_row_exactly_once(world, pattern):
    spec = LISTS[pattern]
    rows = all_rows(world, pattern)
    if spec.get("exact"):
        assert len(rows) == spec["rows"], (pattern, rows)
    else:
        assert len(rows) >= spec["rows"], (pattern, len(rows), rows)
    n = len(rows)
    for limit in sorted({1, 2, 3, n - 1, n, n + 1}):
        pages = walk(world, pattern, limit)
        flat = [r for p in pages for r in p]
        assert flat == rows, f"{pattern} with limit={limit}: pages differ from the whole list"
        # next_cursor is null exactly at the end: no empty last page, no early stop
        assert len(pages) == -(-n // limit), (pattern, limit, [len(p) for p in pages])
    # the default page is 100 rows
    status, _, body = get(world, pattern)
    assert status == 200 and len(body["data"]) == min(n, 100)
    assert (body["next_cursor"] is None) == (n <= 100)


@pytest.mark.parametrize("pattern", LIST_IDS)
@pytest.mark.parametrize("value", ["0", "1001", "abc", "-1", "1.5", "", "%2B5", "%205", "5%00",
                                   "99999", "0x10"])
def test_bad_limit_is_400_naming_it(world, pattern, value):
    assert_problem(get(world, pattern, f"limit={value}"), 400, "limit")


@pytest.mark.parametrize("pattern", LIST_IDS)
def test_cursor_the_server_did_not_give_is_400(world, pattern):
    status, _, body = get(world, pattern, "limit=1")
    assert status == 200 and body["next_cursor"], body
    good = body["next_cursor"]
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    payload, _, mac = good.partition(".")
    forged = payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + mac
    other_list = "/v1/events" if pattern != "/v1/events" else "/v1/alerts"
    foreign = get(world, other_list, "limit=1")[2]["next_cursor"]
    for bad in ["garbage", "evt_01KZZZZZZZZZZZZZZZZZZZZZZZ", tampered, forged, foreign,
                good + "x", "." + mac, "a" * 2000]:
        assert_problem(get(world, pattern, f"limit=1&cursor={bad}"), 400, "cursor")
    # a cursor is the tenant's: another tenant's key cannot use it
    if not LISTS[pattern].get("admin") and "{" not in pattern:
        assert_problem(get(world, pattern, f"limit=1&cursor={good}", token=world["other"]),
                       400, "cursor")


@pytest.mark.parametrize("pattern", LIST_IDS)
def test_unknown_or_repeated_parameter_is_400_naming_it(world, pattern):
    assert_problem(get(world, pattern, "bogus=1"), 400, "bogus")
    assert_problem(get(world, pattern, "limit=5&Limit=5"), 400, "Limit")
    assert_problem(get(world, pattern, "limit=5&limit=6"), 400, "limit")
    assert_problem(get(world, pattern, "cursor"), 400, "cursor")  # a bare, empty value


FILTERS = [(p, name) for p in LIST_IDS for name in LISTS[p]["filters"]]


@pytest.mark.parametrize("pattern,name", FILTERS, ids=[f"{p}?{n}" for p, n in FILTERS])
def test_filters_take_good_values_and_refuse_bad_ones(world, pattern, name):
    kind, value = LISTS[pattern]["filters"][name]
    good = valid_value(world, pattern, name, kind, value)
    status, _, body = get(world, pattern, f"{name}={good}")
    assert status == 200, (name, good, body)
    assert_problem(get(world, pattern, f"{name}={BAD[kind]}"), 400, name)
    assert_problem(get(world, pattern, f"{name}="), 400, name)
    if name == "to":  # a window that ends before it starts
        assert_problem(get(world, pattern, "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
                       400, "to")


@pytest.mark.parametrize("pattern", [p for p in LIST_IDS if "{" in p])
def test_missing_parent_is_404(world, pattern):
    spec = LISTS[pattern]
    path = path_of(world, pattern)
    path = (path.replace("/acme/", "/nope/").replace("/erp/", "/nope/")
            .replace("/rej/", "/nope/").replace("/flip/", "/nope/")
            .replace(world["iss1"], "iss_01KZZZZZZZZZZZZZZZZZZZZZZZ"))
    tok = world["srv"].admin_token if spec.get("admin") else world["key"]
    assert_problem(world["srv"].request("GET", path, token=tok), 404)


def test_non_list_routes_do_not_answer_like_lists(world):
    """Every GET route that is not served by the list helper answers without the shape of
    a list, so no list can be written by hand beside the contract."""
    w = world
    fill = {"/v1/events/{}": [w["evt0"]], "/v1/integrations/{}": ["erp"],
            "/v1/issues/{}": [w["iss1"]], "/v1/alert-policies/{}": [w["pols"][0]],
            "/v1/notification-channels/{}": [w["chans"][0]],
            "/v1/alerts/{}": [all_rows(w, "/v1/alerts")[0]["id"]],
            "/v1/tasks/{}": [all_rows(w, "/v1/tasks")[0]["id"]]}
    checked = 0
    for method, pat, handler, spec in route_table():
        if method != "GET" or handler == "api_list":
            continue
        path = pat
        for v in fill.get(pat, []):
            path = path.replace("{}", v, 1)
        path = path.replace("{}", "x")
        for tok in (w["key"], w["srv"].admin_token):
            status, _, body = w["srv"].request("GET", path, token=tok)
            assert not (isinstance(body, dict) and ("next_cursor" in body or
                                                    isinstance(body.get("data"), list))), \
                f"GET {pat} answers like a list but is not served by the list helper"
        checked += 1
    assert checked >= 10


# --------------------------------------------------------------------------- storage faults


def sql(w, statement):
    """Runs one statement on the server's database through the database's own client."""
    if w["url"] is None:
        con = sqlite3.connect(os.path.join(w["srv"].data_dir, "sluice.db"), timeout=30)
        try:
            con.execute(statement)
            con.commit()
        finally:
            con.close()
    else:
        r = subprocess.run([f"{PG_BIN}/psql", w["url"], "-v", "ON_ERROR_STOP=1", "-Atc",
                            statement], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("pattern", [p for p in LIST_IDS if LISTS[p]["fault"]])
def test_storage_error_under_a_list_is_503_with_nothing_partial(world, pattern):
    table = LISTS[pattern]["fault"]
    before = all_rows(world, pattern)
    sql(world, f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        resp = get(world, pattern, "limit=1000")
    finally:
        sql(world, f"ALTER TABLE {table}_away RENAME TO {table}")
    body = assert_problem(resp, 503)
    assert "data" not in body and "next_cursor" not in body, body
    assert all_rows(world, pattern) == before, "the list answers again once storage is back"


def test_postgres_stopped_under_the_server_is_503_then_recovers(tmp_path):
    pg = Postgres()
    rcv = Receiver()
    srv = None
    try:
        pg.start()
        pg.psql("CREATE DATABASE lists")
        srv = Server(tmp_path / "data", db=pg.url("lists"), args=["--allow-private-targets"])
        srv.start()
        make_tenant(srv, "acme")
        key = make_key(srv, "acme", ALL_PERMS)
        req(srv, key, "POST", "/v1/integrations",
            {"id": "erp", "events": ["order"],
             "target": {"type": "webhook", "url": rcv.url("/erp")}}, expect=201)
        publish(srv, key, {"type": "order.created", "entity_id": "O-1"})
        report(srv, key, alert())

        def answers(expect):
            for pattern, spec in LISTS.items():
                path = (spec.get("path", pattern).replace("{}", "acme")
                        .replace("{evt0}", "evt_01KZZZZZZZZZZZZZZZZZZZZZZZ")
                        .replace("{iss1}", "iss_01KZZZZZZZZZZZZZZZZZZZZZZZ")
                        .replace("/flip/", "/erp/").replace("/rej/", "/erp/"))
                tok = srv.admin_token if spec.get("admin") else key
                resp = srv.request("GET", path, token=tok)
                if expect == 503 and spec["fault"]:
                    body = assert_problem(resp, 503)
                    assert "data" not in body, (pattern, body)
                elif expect == 200:
                    # A read connection that last saw the old server finds out on its next
                    # query (a 503, nothing partial) and reconnects for the one after.
                    wait_for(lambda: srv.request("GET", path, token=tok)[0] in (200, 404), 10,
                             what=f"{pattern} answering again")
        answers(200)
        pg.run([f"{PG_BIN}/pg_ctl", "-D", pg.data, "-m", "immediate", "-w", "stop"])
        try:
            os.waitpid(pg.pid, 0)
        except ChildProcessError:
            pass
        answers(503)
        assert srv.running(), "the server outlives its database"
        opts = (f"-p {pg.port} -k {pg.dir} -c listen_addresses=127.0.0.1 -c fsync=on "
                "-c max_connections=200")
        r = pg.run([f"{PG_BIN}/pg_ctl", "-D", pg.data, "-l", pg.log, "-o", opts, "-w",
                    "start"])
        assert r.returncode == 0, r.stderr
        with open(os.path.join(pg.data, "postmaster.pid")) as f:
            pg.pid = int(f.readline())
        wait_for(lambda: srv.request("GET", "/readyz")[0] == 200, 30, what="readyz again")
        answers(200)
    finally:
        code = srv.stop() if srv else 0
        rcv.stop()
        pg.stop()
    assert not SANITIZED or code == 0, f"sluice exited with {code} (sanitizer report?)"
