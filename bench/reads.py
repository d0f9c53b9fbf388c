"""Console reads at scale: every read the console's pages make (web/pages/*.js), timed on a
server whose database holds ~1,000,000 events (bench/ingest.py --grown N --reads builds
it). Each path is read 5 times over one keep-alive connection; its time is the median;
the slowest path is the figure (DESIGN.md: every one within 50 ms).

Used as a module by bench/ingest.py: measure(srv, pg) -> {"events_before", "slowest_ms",
"slowest_path", "paths": {path: ms}}.
"""
import http.client
import statistics
import subprocess
import time
import urllib.parse


def _iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def paths(event_id):
    now = int(time.time() * 1000)
    minute, hour, day = 60000, 3600000, 86400000
    to_m = (now // minute + 1) * minute
    to_h = (now // hour + 1) * hour
    q = urllib.parse.urlencode
    return [
        # Overview
        "/v1/stats?" + q({"bucket": "1m", "from": _iso(to_m - day), "to": _iso(to_m)}),
        "/v1/stats?" + q({"bucket": "1h", "from": _iso(to_h - day), "to": _iso(to_h)}),
        "/v1/issues?status=open&limit=6",
        "/v1/alerts?" + q({"category": "event_stream", "from": _iso(now - day), "limit": 500}),
        "/v1/integrations?limit=1000",
        "/v1/integrations/erp-held/logs?limit=1",
        # Event Stream: the list, one integration with its stats, its tabs and filters
        "/v1/integrations?state=paused",
        "/v1/integrations/erp",
        "/v1/integrations/erp-held",
        "/v1/integrations/erp/events",
        "/v1/integrations/erp/events?entity_id=ORD-7",
        "/v1/integrations/erp/events?entity_id=ORD-no-such-entity",
        "/v1/integrations/erp/events?status=failure",
        "/v1/integrations/erp/events?status=rejected",
        "/v1/integrations/erp/events?status=pending",
        "/v1/integrations/erp/events?status=success",
        "/v1/integrations/erp/events?status=skipped",
        "/v1/integrations/erp-held/events?status=pending",
        "/v1/integrations/erp-held/events?entity_id=ORD-7",
        "/v1/integrations/erp/events?" + q({"from": _iso(now - 13 * hour),
                                            "to": _iso(now - 12 * hour)}),
        "/v1/integrations/erp/events?" + q({"entity_id": "ORD-7", "status": "success"}),
        "/v1/integrations/erp/rejected-events",
        "/v1/integrations/erp/logs",
        f"/v1/integrations/erp/events/{event_id}/attempts",
        f"/v1/events/{event_id}",
        # the event log's own filters
        "/v1/events",
        "/v1/events?entity_id=ORD-7",
        "/v1/events?type=order.created",
        "/v1/event-types",
    ]


def measure(srv, pg=None, reps=5):
    if pg:
        events = int(pg.psql("SELECT COUNT(*) FROM events", db="bench_server"))
        event_id = pg.psql("SELECT event_id FROM deliveries WHERE integration_id = 'erp' "
                           "AND state = 'succeeded' ORDER BY id LIMIT 1", db="bench_server")
    else:
        def q(sql):
            return subprocess.run(["sqlite3", srv.db_path, sql], capture_output=True,
                                  text=True).stdout.strip()
        events = int(q("SELECT COUNT(*) FROM events"))
        event_id = q("SELECT event_id FROM deliveries WHERE integration_id = 'erp' AND state = "
                     "'succeeded' ORDER BY id LIMIT 1")
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
    h = {"Authorization": "Bearer " + srv.api.token}
    result = {}
    for p in paths(event_id):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            c.request("GET", p, headers=h)
            r = c.getresponse()
            r.read()
            times.append((time.perf_counter() - t) * 1000)
            if r.status != 200:
                raise RuntimeError(f"GET {p}: HTTP {r.status}")
        result[p] = round(statistics.median(times), 1)
    c.close()
    slowest = max(result, key=result.get)
    return {"events_before": events, "slowest_ms": result[slowest], "slowest_path": slowest,
            "paths": result}
