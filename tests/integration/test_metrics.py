"""Prometheus exposition at /metrics: format, HTTP counters and histogram, ingested events."""

import re

from conftest import ALL_PERMS, make_key, make_tenant, publish

# name{label="value",...} value [timestamp]; label values may hold any escaped character.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
                    r'(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})?'
                    r'\s+(\S+)(\s+-?\d+)?$')


def scrape(server):
    status, headers, body = server.request("GET", "/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain"), headers
    samples = []
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not Prometheus exposition: {line!r}"
        float(m.group(3))  # the value parses
        samples.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return body, samples


def total(samples, name):
    return sum(v for n, _, v in samples if n == name)


def test_metrics_exposition(server):
    server.request("GET", "/healthz")
    text, samples = scrape(server)
    names = {n for n, _, _ in samples}
    assert "sluice_http_requests_total" in names, text
    assert "sluice_http_request_duration_seconds_bucket" in names, text
    assert re.search(r'^sluice_http_requests_total\{.+\} \S+$', text, re.M), text
    buckets = [lab for n, lab, _ in samples if n == "sluice_http_request_duration_seconds_bucket"]
    assert all('le="' in lab for lab in buckets), buckets
    assert any('le="+Inf"' in lab for lab in buckets), buckets
    assert "# TYPE sluice_http_requests_total counter" in text
    assert "# TYPE sluice_http_request_duration_seconds histogram" in text


def test_histogram_buckets_are_cumulative(server):
    for _ in range(3):
        server.request("GET", "/healthz")
    _, samples = scrape(server)
    series = {}
    for n, lab, v in samples:
        if n == "sluice_http_request_duration_seconds_bucket":
            le = re.search(r'le="([^"]+)"', lab).group(1)
            rest = re.sub(r',?le="[^"]+"', "", lab)
            series.setdefault(rest, []).append((float(le), v))
    assert series
    for rest, pts in series.items():
        pts.sort()
        values = [v for _, v in pts]
        assert values == sorted(values), (rest, pts)


def test_http_request_counter_moves(server):
    _, before = scrape(server)
    for _ in range(5):
        assert server.request("GET", "/healthz")[0] == 200
    _, after = scrape(server)
    assert total(after, "sluice_http_requests_total") >= \
        total(before, "sluice_http_requests_total") + 5


def test_events_ingested_counter(server):
    make_tenant(server, "acme")
    key = make_key(server, "acme", ALL_PERMS)
    _, s0 = scrape(server)
    base = total(s0, "sluice_events_ingested_total")

    publish(server, key, {"events": [
        {"id": f"m-{i}", "type": "order.created", "entity_id": f"O-{i}"} for i in range(3)]})
    _, s1 = scrape(server)
    assert total(s1, "sluice_events_ingested_total") == base + 3

    # Duplicates and rejected requests do not count.
    publish(server, key, {"events": [
        {"id": "m-0", "type": "order.created", "entity_id": "O-0"},
        {"id": "m-new", "type": "order.created", "entity_id": "O-9"}]})
    publish(server, key, {"type": "no.such_type", "entity_id": "x"}, expect=422)
    _, s2 = scrape(server)
    assert total(s2, "sluice_events_ingested_total") == base + 4
