#!/usr/bin/python3
"""Ingest benchmark: single-event publishes and 100-event batches (wrk, 64 connections)
next to the storage limit measured in the same run on a database of the same size.

Fresh (default): an empty database; the server (--roles api, so nothing is delivered) has
one entity-ordered webhook integration, so every publish writes an event row and a
delivery row, the rows bench/storage_limit writes. wrk's rate against /healthz (the HTTP
library's trivial handler) is measured too.

Grown (--grown N): before measuring, the server's database is grown to N events
(storage_limit --fill-only, with the server stopped): each with a finished delivery of the
integration, and a `held`/`waiting` delivery of a second, paused entity-ordered integration,
for 2,000 entities. The load then publishes to those same 2,000 entities, so every publish
writes an event and two deliveries (one `waiting` behind the held ones: per-entity
ordering at work). The storage limit runs on a copy of the grown database taken before the
load (so the same size), writing the same three rows per event.

With --reads (grown only) the console's reads are timed afterwards on the grown database
(bench/reads.py's list); --no-load skips the ingest (reads only).

Usage: bench/ingest.py [--db sqlite|postgres] [--seconds S] [--grown N] [--reads] [--no-load]
Prints one JSON object (the DESIGN.md keys of ingest.<db> or ingest.<db>.grown; with
--reads also "reads").
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
import reads as R  # noqa: E402

ENTITIES = 2000


def count(srv, pg, table):
    sql = f"SELECT COUNT(*) FROM {table}"
    try:
        if pg:
            return int(pg.psql(sql, db="bench_server"))
        out = subprocess.run(["sqlite3", srv.db_path, sql], capture_output=True, text=True)
        return int(out.stdout.strip())
    except Exception:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--grown", type=int, default=0)
    ap.add_argument("--reads", action="store_true")
    ap.add_argument("--no-load", action="store_true")
    a = ap.parse_args()
    secs = max(1, int(a.seconds))
    tmp = tempfile.mkdtemp(prefix="sluice-bench-ingest-")
    pg = B.Postgres().start() if a.db == "postgres" else None
    srv = None
    out = {}
    try:
        server_url = pg.fresh_db("bench_server") if pg else None
        srv = B.Sluice(tmp, db=server_url, args=["--roles", "api"]).start()
        key = srv.tenant_key()
        api = srv.api
        target = {"type": "webhook", "url": "http://127.0.0.1:9/erp",
                  "api_key": "bench-0123456789"}
        api.ok("POST", "/v1/integrations", {"id": "erp", "events": ["order"], "target": target})
        if a.grown:
            api.ok("POST", "/v1/integrations", {"id": "erp-held", "events": ["order"],
                                                "target": target})
            api.ok("POST", "/v1/integrations/erp-held/pause", {})
            srv.stop()
            fill = B.storage_limit(srv.url, 1, "--fill-only", a.grown, "--entities", ENTITIES,
                                   "--integration", "erp", "--held", "erp-held")
            out["fill_seconds"] = fill["seconds"]
            # The storage limit's database: a copy of this one, so of the same size.
            if pg:
                pg.psql("CHECKPOINT")
                pg.psql("DROP DATABASE IF EXISTS bench_limit")
                pg.psql("CREATE DATABASE bench_limit TEMPLATE bench_server")
                limit_url = pg.url("bench_limit")
            else:
                B.sqlite_checkpoint(srv.db_path)
                shutil.copyfile(srv.db_path, os.path.join(tmp, "limit.db"))
                limit_url = "sqlite:" + os.path.join(tmp, "limit.db")
            srv.start()
            out["events_before"] = count(srv, pg, "events")
        else:
            limit_url = pg.fresh_db("bench_limit") if pg else "sqlite:" + os.path.join(
                tmp, "limit.db")
        url = f"http://127.0.0.1:{srv.port}"
        script = os.path.join(B.HERE, "publish.lua")
        env = {"SLUICE_KEY": key}
        if a.grown:
            env["ENTITIES"] = str(ENTITIES)
        if not a.no_load:
            if not a.grown:
                out["trivial_handler_req_per_s"] = round(B.wrk(url + "/healthz", secs)[0])
            single, bad1, _ = B.wrk(url + "/v1/events", secs, script=script,
                                    env=dict(env, BATCH="1"))
            batch, bad2, _ = B.wrk(url + "/v1/events", secs, script=script,
                                   env=dict(env, BATCH="100"))
            out["single_events_per_s"] = round(single)
            out["batch_events_per_s"] = round(batch * 100)
            out["non_2xx"] = {"single": bad1, "batch": bad2}
            out["rss_mb"] = srv.rss_mb()
        if a.reads:
            out["reads"] = R.measure(srv, pg)
        srv.stop()
        if not a.no_load:
            out["events_stored"] = count(srv, pg, "events")
            out["deliveries_stored"] = count(srv, pg, "deliveries")
            if pg:  # the server's database is not needed any more; the limit's is
                pg.psql("DROP DATABASE bench_server WITH (FORCE)")
            else:
                os.unlink(srv.db_path)
            args = ["--entities", ENTITIES, "--deliveries", 2, "--held", "erp-held"] \
                if a.grown else []
            lim = B.storage_limit(limit_url, secs, *args)
            out["storage_limit_events_per_s"] = lim["storage_limit_events_per_s"]
            out["storage_limit"] = lim
            out["batch_ratio"] = round(out["batch_events_per_s"] / lim[
                "storage_limit_events_per_s"], 3)
            out["single_ratio"] = round(out["single_events_per_s"] / lim[
                "storage_limit_events_per_s"], 3)
        out["database"] = a.db
        B.emit(out)
    finally:
        if srv:
            srv.stop()
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
