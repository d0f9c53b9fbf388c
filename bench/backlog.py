#!/usr/bin/python3
"""Backlog benchmark: 1,000,000 pending deliveries. The backlog is built by a server with
--roles api (no delivery engine, so nothing enters retry backoff) that is then stopped;
a server with every role is started on it with the receiver (nginx, logging each
request's arrival time) already up. Measured: the time from starting that process to the
first request the receiver gets, and the server's RSS (sampled every 0.2 s while it
delivers for --seconds, and its peak, VmHWM) — DESIGN.md: under 256 MB, within 5 s.

Usage: bench/backlog.py [--events N] [--seconds S] [--db postgres]
Prints one JSON object (DESIGN.md's backlog keys).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sluice-bench-backlog-")
    pg = B.Postgres().start() if a.db == "postgres" else None
    nginx = B.Nginx(tmp, log=True)
    srv = None
    try:
        srv = B.Sluice(tmp, db=pg.fresh_db("backlog") if pg else None,
                       args=["--roles", "api"]).start()
        srv.tenant_key()
        srv.api.ok("POST", "/v1/integrations", {
            "id": "erp", "events": ["order"], "ordering": "none", "max_in_flight": 256,
            "target": {"type": "webhook", "url": nginx.url()}})
        build_rate = B.publish_backlog(srv.api, a.events, batch=1000, threads=4)
        build_rss = srv.rss_mb()
        srv.stop()
        if not pg:
            B.sqlite_checkpoint(srv.db_path)
        srv.args = []  # every role
        srv.start(wait=False)
        t0 = srv.started_at
        first = None
        samples = []
        end = time.monotonic() + 60
        while first is None and time.monotonic() < end:
            # Only requests since the start count (nginx logs its own readiness probe too).
            after = [float(t) for t in nginx.lines() if float(t) >= t0]
            if after:
                first = min(after) - t0
            samples.append(srv.rss_mb() or 0)
            time.sleep(0.02)
        if first is None:
            raise RuntimeError("no delivery within 60 s of the start")
        stop = time.monotonic() + a.seconds
        while time.monotonic() < stop:
            samples.append(srv.rss_mb() or 0)
            time.sleep(0.2)
        delivered = nginx.count()
        hwm = B.rss_mb(srv.proc.pid, "VmHWM")
        B.emit({"database": a.db, "pending": a.events,
                "rss_mb": max(max(samples), hwm or 0),
                "restart_to_first_delivery_s": round(first, 3),
                "delivered_in_window": delivered,
                "window_s": a.seconds,
                "build_events_per_s": round(build_rate),
                "build_rss_mb": build_rss})
    finally:
        if srv:
            srv.stop()
        nginx.stop()
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
