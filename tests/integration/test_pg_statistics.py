"""PostgreSQL planner statistics of the tables that grow with the load (store_analyze_grown):
a database that fills from empty gets them once a table has grown past its statistics, well
before autovacuum's minute (its naptime), with two nodes publishing, and a few times (the
table doubled), not on every scheduler tick of every node.

Real peers: the sluice binary (two nodes with --roles api: nothing is delivered), a
PostgreSQL cluster (conftest) and the recording receiver as the target."""

import os
import secrets

import pytest

from conftest import ALL_PERMS, make_key, make_tenant, publish, wait_for


@pytest.fixture
def pgdb(pg):
    name = "st_" + secrets.token_hex(6)
    pg.psql(f"CREATE DATABASE {name}")
    yield pg.url(name), name
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def stats(pg, name):
    out = pg.psql("SELECT s.relname, COALESCE(analyze_count, 0), c.reltuples::bigint FROM "
                  "pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relname IN "
                  "('events', 'deliveries')", db=name)
    return {r.split("|")[0]: (int(r.split("|")[1]), int(r.split("|")[2]))
            for r in out.splitlines() if r}


def test_grown_tables_get_statistics_within_seconds(pg, pgdb, start_server, receiver):
    url, name = pgdb
    a = start_server(db=url, args=["--roles", "api", "--allow-private-targets"])
    b = start_server(db=url, args=["--roles", "api", "--master-key-file",
                                   os.path.join(a.data_dir, "master-key")])
    make_tenant(a, "acme")
    key = make_key(a, "acme", ALL_PERMS)
    status, _, body = a.request("POST", "/v1/integrations", {
        "id": "erp", "events": ["order"], "ordering": "none",
        "target": {"type": "webhook", "url": receiver.url("/erp")}}, token=key)
    assert status == 201, body
    for i in range(5):  # 2,500 events and deliveries: past the 1,000-row minimum
        publish(b if i % 2 else a, key, {"events": [
            {"type": "order.created", "entity_id": f"O-{i}-{j}"} for j in range(500)]})
    got = wait_for(lambda: (lambda s: s if all(s.get(t, (0, 0))[1] >= 1000
                                               for t in ("events", "deliveries")) else None)(
        stats(pg, name)), 15, interval=0.2, what="statistics of the grown tables")
    # Doubling, not every change: a few analyses of each table, not one per tick per node.
    assert all(n <= 4 for n, _ in got.values()), got
