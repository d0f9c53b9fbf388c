"""S3 targets (issue 4): batches, object keys and content, SigV4 uploads, outcomes, crashes.

The S3 server is s3rver (npm) behind tests/integration/s3front.js, which checks every
request's SigV4 signature with npm's aws4 (and its x-amz-content-sha256 against the body)
from the test's own secret. Objects are read back with @aws-sdk/client-s3 (s3read.js)
straight from s3rver: nothing of the project's own code verifies what it uploaded.
"""

import base64
import concurrent.futures
import datetime
import gzip
import hashlib
import json
import os
import re
import secrets
import sqlite3
import subprocess
import tempfile
import time
import urllib.request

import pytest
from test_read_counters import check_counters

from conftest import (ALL_PERMS, REPO, SLOW, list_all_events, make_key, make_tenant, publish,
                      wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
AKID = "AKIASLUICETEST0001"
SECRET = "s3cr3t/Key+ForTheFront0123456789abcdef"
REGION = "us-east-1"
BUCKET = "sluice-test"
SCALE = 100  # --time-scale: retry delays 5 s → 50 ms; the S3 batch age is scaled too


class S3:
    """s3rver behind the verifying front, one node process for the whole session."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-s3-")
        self.proc = subprocess.Popen(
            ["node", os.path.join(HERE, "s3front.js"), "0", os.path.join(self.dir, "data"), AKID,
             SECRET, REGION, BUCKET], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.dir, "front.log"), "wb"), cwd=REPO)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("READY"), f"s3front did not start: {line!r}"
        _, front, upstream = line.split()
        self.port, self.upstream = int(front), int(upstream)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def _call(self, path, body=None):
        req = urllib.request.Request(self.endpoint + path, method="POST" if body is not None
                                     or path != "/__log" else "GET",
                                     data=json.dumps(body or {}).encode())
        if path == "/__log":
            req = urllib.request.Request(self.endpoint + path)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def control(self, **kw):
        return self._call("/__control", kw)

    def reset(self):
        return self._call("/__reset", {})

    def log(self):
        return self._call("/__log")

    def objects(self, prefix, probes=False):
        r = subprocess.run(["node", os.path.join(HERE, "s3read.js"), str(self.upstream), BUCKET,
                            prefix], capture_output=True, timeout=120, cwd=REPO)
        assert r.returncode == 0, r.stderr.decode()
        out = [o for o in json.loads(r.stdout)
               if probes or not o["key"].endswith("_sluice_probe")]
        for o in out:
            o["body"] = base64.b64decode(o.pop("body_b64"))
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def s3():
    s = S3()
    try:
        yield s
    finally:
        s.stop()


RUN = {"prefix": ""}


def P():
    """The test's own key prefix root: tests share one bucket."""
    return RUN["prefix"]


@pytest.fixture
def s3clean(s3):
    s3.reset()
    RUN["prefix"] = "r" + secrets.token_hex(4) + "/"
    yield s3
    s3.reset()


def parse_time(s):
    """An API timestamp (RFC 3339, ms, Z) as seconds since the epoch."""
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def serve(start_server, db, *extra):
    return start_server(db=db, args=["--allow-private-targets", "--time-scale", str(SCALE),
                                     *extra])


def setup_tenant(srv):
    make_tenant(srv, "acme", "Acme Retail")
    return make_key(srv, "acme", ALL_PERMS, name="all")


def s3_target(s3, prefix, **kw):
    t = {"type": "s3", "bucket": BUCKET, "region": REGION, "key_prefix": prefix,
         "access_key_id": AKID, "secret_access_key": SECRET, "endpoint": s3.endpoint}
    t.update(kw)
    return t


def create(srv, key, iid, target, verify=None, events=("order",), expect=201):
    body = {"id": iid, "events": list(events), "ordering": "none", "target": target}
    if verify is not None:
        body["verify"] = verify
    status, _, resp = srv.request("POST", "/v1/integrations", body, token=key)
    assert status == expect, (status, resp)
    return resp


def events_view(srv, key, iid):
    out, cursor = [], None
    while True:
        path = f"/v1/integrations/{iid}/events?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        status, _, body = srv.request("GET", path, token=key)
        assert status == 200, body
        out += body["data"]
        cursor = body["next_cursor"]
        if not cursor:
            return out


def all_succeeded(srv, key, iid, n):
    rows = events_view(srv, key, iid)
    return len(rows) == n and all(r["status"] == "success" for r in rows) and rows


def lines_of(obj):
    raw = obj["body"]
    data = gzip.decompress(raw) if obj["key"].endswith(".gz") else raw
    assert data.endswith(b"\n")
    return [json.loads(x) for x in data.decode().split("\n")[:-1]], data


def db_rows(srv, pg, sql):
    """Reads the server's own database (tests may look; the server is what writes)."""
    if srv.db is None:
        con = sqlite3.connect(os.path.join(srv.data_dir, "sluice.db"))
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    name = srv.db.rsplit("/", 1)[1]
    out = pg.psql(sql, db=name)
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def key_pattern(prefix, iid, gz=True):
    return re.compile(re.escape(prefix) + r"(\d{4})/(\d\d)/(\d\d)/(\d\d)/" + re.escape(iid) +
                      r"-(\d{8}T\d{9}Z)-(\d{10})\.jsonl" + (r"\.gz" if gz else "") + "$")


def check_objects(objs, prefix, iid, ids_in_order, max_bytes=None, gz=True):
    """Every object's key and content is as specified; every event exactly once, in publish
    order within each object. Returns {event id: key}."""
    pat = key_pattern(prefix, iid, gz)
    where = {}
    seqs = []
    for o in objs:
        m = pat.match(o["key"])
        assert m, o["key"]
        lines, data = lines_of(o)
        assert lines, o["key"]
        if max_bytes:
            assert len(data) <= max_bytes or len(lines) == 1, (o["key"], len(data))
        first = lines[0]["published_at"]
        dt = datetime.datetime.strptime(first, "%Y-%m-%dT%H:%M:%S.%fZ")
        assert m.group(1, 2, 3, 4) == (f"{dt.year:04d}", f"{dt.month:02d}", f"{dt.day:02d}",
                                       f"{dt.hour:02d}"), (o["key"], first)
        compact = first.replace("-", "").replace(":", "").replace(".", "")
        assert m.group(5) == compact, (o["key"], first)
        seqs.append(int(m.group(6)))
        pos = [ids_in_order.index(line["id"]) for line in lines]
        assert pos == sorted(pos), f"not in publish order in {o['key']}"
        for line in lines:
            assert "attempt" not in line
            assert line["integration_id"] == iid and line["tenant"] == "acme"
            assert line["name"] == line["type"]
            assert line["id"] not in where, f"{line['id']} in {where.get(line['id'])} and {o['key']}"
            where[line["id"]] = o["key"]
        if gz:
            assert o["content_encoding"] == "gzip"
            assert o["body"][:2] == b"\x1f\x8b" and o["body"][4:8] == b"\0\0\0\0", "gzip mtime 0"
    assert sorted(where) == sorted(ids_in_order), "every event exactly once"
    assert len(set(seqs)) == len(seqs)
    return where


def payload(i, size=300):
    return {"order_id": f"ORD-{i}", "note": "x" * size}


# ----------------------------------------------------------------------------- validation


def test_s3_target_validation_and_masking(start_server, db, s3clean):
    srv = serve(start_server, db)
    key = setup_tenant(srv)
    bad = [({"bucket": "Bad_Bucket"}, "target.bucket"), ({"bucket": "ab"}, "target.bucket"),
           ({"bucket": "192.168.1.10"}, "target.bucket"), ({"region": "europe"}, "target.region"),
           ({"key_prefix": "x" * 600}, "target.key_prefix"),
           ({"compression": "zstd"}, "target.compression"),
           ({"access_key_id": ""}, "target.access_key_id"),
           ({"endpoint": "ftp://x"}, "target.endpoint"), ({"nope": 1}, "target.nope")]
    for change, field in bad:
        status, _, body = srv.request("POST", "/v1/integrations",
                                      {"id": "v", "events": ["order"],
                                       "target": s3_target(s3clean, "v/", **change)}, token=key)
        assert status == 422, (change, body)
        assert field in [e["field"] for e in body["errors"]], (change, body)
    resp = create(srv, key, "ok1", s3_target(s3clean, "val/"))
    t = resp["target"]
    assert t["secret_access_key"] == "****" + SECRET[-4:]
    assert t["compression"] == "gzip" and t["bucket"] == BUCKET and t["key_prefix"] == "val/"
    assert resp["open_batch"]["events"] == 0 and resp["last_object"] is None
    assert "signing_secret" not in resp
    # the probe object went up, signed (the front verified it), and was removed again
    log = [e for e in s3clean.log() if "_sluice_probe" in e["url"]]
    assert [e["method"] for e in log] == ["PUT", "DELETE"], log
    assert all(e["url"].endswith("/val/_sluice_probe") for e in log), log
    assert log[0]["status"] == 200 and log[1]["status"] == 204, log
    assert log[0]["headers"]["user-agent"].startswith("sluice/")
    assert not [o for o in s3clean.objects("val/", probes=True)
                if o["key"].endswith("_sluice_probe")], "the probe leaves no object behind"
    # PATCH keeps the secret when masked or left out
    status, _, body = srv.request("PATCH", "/v1/integrations/ok1",
                                  {"target": {"key_prefix": "val2/", "secret_access_key": "****"}},
                                  token=key)
    assert status == 200, body
    assert body["target"]["key_prefix"] == "val2/"
    assert body["target"]["secret_access_key"] == "****" + SECRET[-4:]
    status, _, body = srv.request("PATCH", "/v1/integrations/ok1", {"target": {"type": "webhook"}},
                                  token=key)
    assert status == 422
    status, _, body = srv.request("POST", "/v1/integrations/ok1/test", token=key)
    assert status == 200 and body["ok"] is True and body["status"] == 200, body


# ----------------------------------------------------------------------------- batches


def test_s3_create_probe_does_not_hold_http_threads(start_server, db, s3clean):
    """Four creates whose probe S3 never answers, more than the two HTTP threads: each
    probe runs off the HTTP threads, the API answers at once meanwhile, and each create is
    refused with the probe's timeout."""
    srv = serve(start_server, db, "--webhook-timeout", "3s", "--http-threads", "2")
    key = setup_tenant(srv)
    s3clean.control(hold=True)

    def attempt(i):
        return srv.request("POST", "/v1/integrations",
                           {"id": f"h{i}", "events": ["order"],
                            "target": s3_target(s3clean, P() + f"th{i}/")}, token=key)
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        futs = [ex.submit(attempt, i) for i in range(4)]
        wait_for(lambda: len([e for e in s3clean.log() if e.get("held")]) == 4, 10, 0.05,
                 "four probes in progress")
        t0 = time.monotonic()
        status, _, body = srv.request("GET", "/v1/integrations", token=key)
        took = time.monotonic() - t0
        pending = sum(not f.done() for f in futs)
        assert status == 200 and body["data"] == [], body
        assert pending == 4 and took < 1.5, (pending, took)
        for f in futs:
            status, _, body = f.result()
            assert status == 422 and body["errors"][0]["field"] == "target", body


def test_s3_size_and_age_closes_keys_and_content(start_server, db, s3clean):
    max_bytes = 4000
    # max age 300 s / time scale 100 = 3 s
    srv = serve(start_server, db, "--s3-batch-max-bytes", str(max_bytes), "--s3-batch-max-age",
                "300s")
    key = setup_tenant(srv)
    create(srv, key, "gz", s3_target(s3clean, P() + "t1/gz/"))
    create(srv, key, "plain", s3_target(s3clean, P() + "t1/plain/", compression="none"))
    evs = [{"type": "order.created", "entity_id": f"ORD-{i % 5}", "payload": payload(i)}
           for i in range(40)]
    ids = publish(srv, key, {"events": evs})["ids"]
    for iid in ("gz", "plain"):
        wait_for(lambda: all_succeeded(srv, key, iid, 40), 30, 0.1, f"{iid} uploaded")
    for iid, gz in (("gz", True), ("plain", False)):
        objs = s3clean.objects(P() + f"t1/{iid}/")
        assert len(objs) >= 40 * 400 // max_bytes, [o["key"] for o in objs]
        where = check_objects(objs, P() + f"t1/{iid}/", iid, ids, max_bytes, gz)
        # the events view shows each event's object key
        for row in events_view(srv, key, iid):
            assert row["batch_key"] == where[row["event_id"]], row
        # size closes filled their objects: all but the last are near the limit
        sizes = sorted(len(lines_of(o)[1]) for o in objs)
        assert sizes[-2] > max_bytes - 500, sizes
        src = {e["id"]: e for e in list_all_events(srv, key)}
        for o in objs:
            lines, _ = lines_of(o)
            for line in lines:
                assert set(line) == {"id", "type", "name", "entity", "entity_id", "sequence",
                                     "occurred_at", "published_at", "tenant", "integration_id",
                                     "payload"}, line
                e = src[line["id"]]
                for f in ("type", "entity_id", "sequence", "occurred_at", "published_at",
                          "payload"):
                    assert line[f] == e[f], (f, line, e)
    # request headers: content type, encoding, checksums, user agent
    puts = [e for e in s3clean.log() if e["method"] == "PUT" and "/t1/" in e["url"]
            and "_sluice_probe" not in e["url"]]
    assert puts
    for e in puts:
        h = e["headers"]
        assert e["status"] == 200, e
        assert h["content-type"] == "application/x-ndjson"
        assert h["user-agent"].startswith("sluice/")
        assert h["x-amz-content-sha256"] == e["sha256"]
        md5 = base64.b64encode(hashlib.md5(b"").digest()).decode()
        assert h.get("content-md5") and h["content-md5"] != md5
        assert ("/t1/gz/" in e["url"]) == (h.get("content-encoding") == "gzip")
    # age: one more event closes alone after the batch age, with the next seq
    one = publish(srv, key, {"type": "order.updated", "entity_id": "ORD-1", "payload": {}})["ids"]
    wait_for(lambda: all_succeeded(srv, key, "gz", 41), 30, 0.1, "age close")
    objs = s3clean.objects(P() + "t1/gz/")
    last = [o for o in objs if lines_of(o)[0][0]["id"] == one[0]]
    assert len(last) == 1 and len(lines_of(last[0])[0]) == 1
    status, _, integ = srv.request("GET", "/v1/integrations/gz", token=key)
    assert integ["last_object"]["key"] == last[0]["key"], integ
    assert integ["last_object"]["events"] == 1
    assert integ["last_object"]["bytes"] == len(last[0]["body"])
    assert integ["open_batch"]["events"] == 0
    # a batch's outcome counts its members itself, once per batch (migration 011)
    check_counters(srv)


def test_s3_same_batch_reupload_is_byte_identical(start_server, db, s3clean):
    srv = serve(start_server, db, "--s3-batch-max-age", "100s")
    key = setup_tenant(srv)
    create(srv, key, "rep", s3_target(s3clean, P() + "t2/"))
    # the first PUT of the batch fails with a 500 after the front saw its bytes; the retry
    # must send exactly the same bytes to the same key
    s3clean.control(fail=[{"status": 500, "code": "InternalError", "count": 1, "method": "PUT"}])
    ids = publish(srv, key, {"events": [{"type": "order.created", "entity_id": f"O{i}",
                                         "payload": payload(i)} for i in range(5)]})["ids"]
    wait_for(lambda: all_succeeded(srv, key, "rep", 5), 30, 0.1, "uploaded")
    puts = [e for e in s3clean.log() if e["method"] == "PUT" and "/t2/" in e["url"]
            and "_sluice_probe" not in e["url"]]
    assert len(puts) == 2 and puts[0]["status"] == 500 and puts[1]["status"] == 200
    assert puts[0]["url"] == puts[1]["url"] and puts[0]["sha256"] == puts[1]["sha256"]
    check_objects(s3clean.objects(P() + "t2/"), P() + "t2/", "rep", ids)


# ----------------------------------------------------------------------------- failures


def test_s3_wrong_secret_alerts_retries_and_recovers_after_patch(start_server, db, s3clean,
                                                                 request):
    pg = request.getfixturevalue("pg") if db else None
    srv = serve(start_server, db, "--s3-batch-max-age", "100s")
    key = setup_tenant(srv)
    # the probe finds a wrong secret before any event waits on it
    status, _, body = srv.request("POST", "/v1/integrations",
                                  {"id": "bad", "events": ["order"],
                                   "target": s3_target(s3clean, P() + "t3/", secret_access_key="wrong")},
                                  token=key)
    assert status == 422, body
    assert "SignatureDoesNotMatch" in body["detail"], body
    assert body["errors"][0]["code"] == "SignatureDoesNotMatch"
    assert body["errors"][0]["field"] == "target.secret_access_key"  # a form shows it there
    create(srv, key, "bad", s3_target(s3clean, P() + "t3/", secret_access_key="wrong"), verify=False)
    ids = publish(srv, key, {"events": [{"type": "order.created", "entity_id": "O1",
                                         "payload": payload(1)}]})["ids"]

    def alerted():
        return db_rows(srv, pg, "SELECT event, message, task_id FROM alerts WHERE connection = "
                                "'bad'")
    rows = wait_for(alerted, 30, 0.1, "alert for the 403")
    assert rows[0][0] == "event_stream.delivery_failed"
    assert "403" in rows[0][1] and "SignatureDoesNotMatch" in rows[0][1], rows
    task = db_rows(srv, pg, f"SELECT kind, status FROM tasks WHERE id = '{rows[0][2]}'")
    assert task == [("s3_upload", "failed")]
    # it keeps retrying (the front sees several rejected attempts) and alerts only once
    wait_for(lambda: len([e for e in s3clean.log() if e["method"] == "PUT" and "/t3/" in e["url"]
                          and e.get("error") == "SignatureDoesNotMatch"]) >= 3, 30, 0.1,
             "retries")
    assert len(alerted()) == 1
    row = events_view(srv, key, "bad")[0]
    assert row["status"] == "pending" and row["response_status"] == 403
    assert "SignatureDoesNotMatch" in row["error"]
    # a PATCH with a wrong key is refused by the probe; with the right one it is accepted
    status, _, body = srv.request("PATCH", "/v1/integrations/bad",
                                  {"target": {"secret_access_key": "still-wrong"}}, token=key)
    assert status == 422, body
    status, _, body = srv.request("PATCH", "/v1/integrations/bad",
                                  {"target": {"secret_access_key": SECRET}}, token=key)
    assert status == 200, body
    wait_for(lambda: all_succeeded(srv, key, "bad", 1), 60, 0.1, "recovery")
    check_objects(s3clean.objects(P() + "t3/"), P() + "t3/", "bad", ids)
    resolved = db_rows(srv, pg, "SELECT resolved_at FROM alerts WHERE connection = 'bad'")
    assert resolved[0][0] not in (None, ""), "the later success resolves the alert"


def test_s3_missing_bucket_is_404_and_alerted(start_server, db, s3clean, request):
    pg = request.getfixturevalue("pg") if db else None
    srv = serve(start_server, db, "--s3-batch-max-age", "100s")
    key = setup_tenant(srv)
    status, _, body = srv.request("POST", "/v1/integrations",
                                  {"id": "nb", "events": ["order"],
                                   "target": s3_target(s3clean, P() + "t4/", bucket="no-such-bucket")},
                                  token=key)
    assert status == 422 and "NoSuchBucket" in body["detail"], body
    assert body["errors"][0]["field"] == "target.bucket"
    create(srv, key, "nb", s3_target(s3clean, P() + "t4/", bucket="no-such-bucket"), verify=False)
    publish(srv, key, {"type": "order.created", "entity_id": "O1", "payload": {}})
    rows = wait_for(lambda: db_rows(srv, pg, "SELECT event, message FROM alerts WHERE "
                                             "connection = 'nb'"), 30, 0.1, "404 alert")
    assert rows[0][0] == "event_stream.delivery_failed" and "NoSuchBucket" in rows[0][1], rows
    status, _, body = srv.request("POST", "/v1/integrations/nb/test", token=key)
    assert body["ok"] is False and body["status"] == 404 and body["code"] == "NoSuchBucket"


def test_s3_slowdown_is_retried(start_server, db, s3clean):
    srv = serve(start_server, db, "--s3-batch-max-age", "100s")
    key = setup_tenant(srv)
    create(srv, key, "slow", s3_target(s3clean, P() + "t5/"))
    s3clean.control(fail=[{"status": 503, "code": "SlowDown", "message": "Please reduce your "
                           "request rate.", "count": 2, "method": "PUT"}])
    ids = publish(srv, key, {"events": [{"type": "order.created", "entity_id": f"O{i}",
                                         "payload": payload(i)} for i in range(3)]})["ids"]
    rows = wait_for(lambda: all_succeeded(srv, key, "slow", 3), 30, 0.1, "uploaded after 503s")
    assert all(r["attempts"] == 3 for r in rows), rows
    check_objects(s3clean.objects(P() + "t5/"), P() + "t5/", "slow", ids)
    # Each event's attempts are its batch's uploads: two SlowDown answers, then success.
    for eid in ids:
        status, _, body = srv.request("GET", f"/v1/integrations/slow/events/{eid}/attempts",
                                      token=key)
        assert status == 200, body
        att = body["data"]
        assert [a["attempt"] for a in att] == [1, 2, 3], att
        assert [a["status"] for a in att] == [503, 503, 200], att
        assert all("SlowDown" in a["error"] for a in att[:2]) and att[2]["error"] is None, att
        assert all(a["node_id"] and a["delivery_id"].startswith("dlv_") for a in att), att
        assert att[0]["at"] <= att[1]["at"] <= att[2]["at"], att


def test_s3_retry_after_is_honoured(start_server, db, s3clean):
    # At --time-scale 100 the scheduled retry is ~50 ms; S3 asks for 2 s and gets them.
    srv = serve(start_server, db, "--s3-batch-max-age", "100s")
    key = setup_tenant(srv)
    create(srv, key, "ra", s3_target(s3clean, P() + "t6/"))
    s3clean.control(fail=[{"status": 503, "code": "SlowDown", "message": "Reduce your rate.",
                           "count": 1, "method": "PUT", "retry_after": 2}])
    ids = publish(srv, key, {"events": [{"type": "order.created", "entity_id": "O1",
                                         "payload": payload(1)}]})["ids"]
    wait_for(lambda: all_succeeded(srv, key, "ra", 1), 30, 0.1, "uploaded after Retry-After")
    status, _, body = srv.request("GET", f"/v1/integrations/ra/events/{ids[0]}/attempts",
                                  token=key)
    att = body["data"]
    assert [a["status"] for a in att] == [503, 200], att
    gap = parse_time(att[1]["at"]) - parse_time(att[0]["at"])
    assert gap >= 1.95, (gap, att)


def test_s3_multipart_above_16_mib(start_server, db, s3clean):
    # The batch stays open 6 s (at --time-scale 100), 30 s under the sanitizers, where
    # publishing 18 MB takes longer than 6 s (make tsan).
    srv = serve(start_server, db, "--s3-batch-max-age", f"{600 * SLOW}s", "--s3-batch-max-bytes",
                "17MiB")
    key = setup_tenant(srv)
    create(srv, key, "big", s3_target(s3clean, P() + "t6/", compression="none"))
    ids = []
    for r in range(3):  # 3 requests x 30 events x ~200 KB = ~18 MB in one batch
        evs = [{"type": "order.created", "entity_id": f"O{r}-{i}",
                "payload": {"blob": os.urandom(100000).hex(), "i": i}} for i in range(30)]
        ids += publish(srv, key, {"events": evs})["ids"]
    wait_for(lambda: all_succeeded(srv, key, "big", 90), 120, 0.2, "multipart upload")
    objs = s3clean.objects(P() + "t6/")
    assert max(o["size"] for o in objs) > 16 * 1024 * 1024, [o["size"] for o in objs]
    check_objects(objs, P() + "t6/", "big", ids, 17 * 1024 * 1024, gz=False)
    log = [e for e in s3clean.log() if "/t6/" in e["url"] and "_sluice_probe" not in e["url"]]
    assert any(e["method"] == "POST" and e["url"].endswith("?uploads=") for e in log), log
    parts = [e for e in log if e["method"] == "PUT" and "partNumber=" in e["url"]]
    assert len(parts) >= 3 and all(e["status"] == 200 for e in parts)
    assert any(e["method"] == "POST" and "uploadId=" in e["url"] for e in log)


# ----------------------------------------------------------------------------- wake-ups


def test_s3_redeliver_and_resume_wake_the_s3_engine(start_server, db, s3clean):
    # Every event closes its own batch (1 byte max), and no batch closes by age for 36 s
    # (3600 s / time scale 100): new deliveries reach S3 in time only when the change that
    # made them due wakes the S3 engine, not only the webhook engine.
    srv = serve(start_server, db, "--s3-batch-max-bytes", "1", "--s3-batch-max-age", "3600s")
    key = setup_tenant(srv)
    create(srv, key, "wk", s3_target(s3clean, P() + "t9/"))
    ids = publish(srv, key, {"type": "order.created", "entity_id": "O1", "payload": {}})["ids"]
    wait_for(lambda: all_succeeded(srv, key, "wk", 1), 10, 0.1, "the first upload")
    status, _, body = srv.request("POST", "/v1/integrations/wk/redeliver",
                                  {"event_ids": ids}, token=key)
    assert status == 202 and body["queued"] == 1, body
    wait_for(lambda: len(s3clean.objects(P() + "t9/")) == 2, 10, 0.1, "the redelivered upload")
    status, _, body = srv.request("POST", "/v1/integrations/wk/pause", {}, token=key)
    assert status == 200, body
    more = publish(srv, key, {"type": "order.created", "entity_id": "O2", "payload": {}})["ids"]
    status, _, body = srv.request("POST", "/v1/integrations/wk/resume", {}, token=key)
    assert status == 200, body
    wait_for(lambda: len(s3clean.objects(P() + "t9/")) == 3, 10, 0.1, "the upload after resume")
    check_objects(s3clean.objects(P() + "t9/")[2:], P() + "t9/", "wk", more)


# ----------------------------------------------------------------------------- crashes


def test_s3_sigkill_with_open_batch_and_upload_in_flight(start_server, db, s3clean):
    # PostgreSQL keeps the dead node's leases until they expire (other nodes may hold leases)
    srv = serve(start_server, db, "--s3-batch-max-bytes", "3000", "--s3-batch-max-age", "100s",
                "--lease", "3s")
    key = setup_tenant(srv)
    create(srv, key, "crash", s3_target(s3clean, P() + "t7/"))
    ids = publish(srv, key, {"events": [{"type": "order.created", "entity_id": f"O{i}",
                                         "payload": payload(i)} for i in range(12)]})["ids"]
    wait_for(lambda: all_succeeded(srv, key, "crash", 12), 30, 0.1, "first objects")
    before = {o["key"]: o["body"] for o in s3clean.objects(P() + "t7/")}
    assert before
    # hold every upload: a batch is in flight when the server dies
    s3clean.control(hold=True)
    ids += publish(srv, key, {"events": [{"type": "order.created", "entity_id": f"P{i}",
                                          "payload": payload(i)} for i in range(12)]})["ids"]
    wait_for(lambda: any(e.get("held") for e in s3clean.log()), 30, 0.1, "an upload in flight")
    # and one more event sits in the open batch
    ids += publish(srv, key, {"type": "order.created", "entity_id": "Q", "payload": {}})["ids"]
    srv.kill()
    s3clean.control(hold=False)
    srv.start()
    wait_for(lambda: all_succeeded(srv, key, "crash", 25), 60, 0.1, "everything after restart")
    objs = s3clean.objects(P() + "t7/")
    check_objects(objs, P() + "t7/", "crash", ids)
    after = {o["key"]: o["body"] for o in objs}
    for k, body in before.items():
        assert after[k] == body, f"{k} changed content"


def test_s3_sigkill_during_multipart_aborts_the_abandoned_upload(start_server, db, s3clean):
    srv = serve(start_server, db, "--s3-batch-max-age", f"{600 * SLOW}s", "--s3-batch-max-bytes",
                "17MiB", "--lease", "3s")  # the batch's age as above
    key = setup_tenant(srv)
    create(srv, key, "mp", s3_target(s3clean, P() + "t8/", compression="none"))
    s3clean.control(hold=True)  # parts are PUTs: the first one hangs
    ids = []
    for r in range(3):
        evs = [{"type": "order.created", "entity_id": f"O{r}-{i}",
                "payload": {"blob": os.urandom(100000).hex(), "i": i}} for i in range(30)]
        ids += publish(srv, key, {"events": evs})["ids"]

    def held_part():
        return [e for e in s3clean.log() if e.get("held") and "partNumber=1&" in e["url"]]
    part = wait_for(held_part, 60, 0.1, "a part upload in flight")[0]
    upload_id = re.search(r"uploadId=([^&]+)", part["url"]).group(1)
    srv.kill()
    s3clean.control(hold=False)
    srv.start()
    wait_for(lambda: all_succeeded(srv, key, "mp", len(ids)), 120, 0.2, "upload after restart")
    log = s3clean.log()
    aborts = [e for e in log if e["method"] == "DELETE" and f"uploadId={upload_id}" in e["url"]]
    # signed and sent (s3rver itself does not implement AbortMultipartUpload: 405)
    assert aborts and aborts[0].get("error") is None, aborts
    objs = s3clean.objects(P() + "t8/")
    assert max(o["size"] for o in objs) > 16 * 1024 * 1024
    check_objects(objs, P() + "t8/", "mp", ids, 17 * 1024 * 1024, gz=False)


# ----------------------------------------------------------------------------- integration health


def lag_alerts(srv, pg, iid):
    return db_rows(srv, pg, "SELECT message FROM alerts WHERE event = "
                            f"'event_stream.delivery_failed' AND connection = '{iid}' AND "
                            "message LIKE 'lagging%'")


def test_s3_lag_episode_ends_when_uploads_catch_up(start_server, db, s3clean, request):
    """S3 integrations have lag episodes like webhooks: one alert while uploads fail for
    longer than the limit, none more while it lasts, and a new one after the uploads caught
    up (a successful upload used to leave the episode open for ever)."""
    pg = request.getfixturevalue("pg") if db else None
    # --time-scale 600: the lag limit is 1.5 s (the check runs every 5 s), retries are fast
    srv = start_server(db=db, args=["--allow-private-targets", "--time-scale", "600",
                                    "--s3-batch-max-bytes", "1", "--s3-batch-max-age", "600s"])
    key = setup_tenant(srv)
    create(srv, key, "lag", s3_target(s3clean, P() + "tl/"))
    s3clean.control(fail=[{"status": 500, "code": "InternalError", "count": 100000,
                           "method": "PUT"}])
    publish(srv, key, {"type": "order.created", "entity_id": "O1", "payload": {}})
    wait_for(lambda: lag_alerts(srv, pg, "lag"), 20, 0.2, "the first lag alert")
    time.sleep(11)  # two more checks while the upload still fails: the same episode
    assert len(lag_alerts(srv, pg, "lag")) == 1
    s3clean.reset()  # S3 answers again: the batch goes up, nothing is old any more
    wait_for(lambda: all_succeeded(srv, key, "lag", 1), 30, 0.1, "the upload")
    time.sleep(6)  # a check runs while nothing lags: the episode ends
    s3clean.control(fail=[{"status": 500, "code": "InternalError", "count": 100000,
                           "method": "PUT"}])
    publish(srv, key, {"type": "order.created", "entity_id": "O2", "payload": {}})
    wait_for(lambda: len(lag_alerts(srv, pg, "lag")) == 2, 20, 0.2, "the second episode's alert")


def test_s3_auto_pause_after_24h_of_failures(start_server, db, s3clean, request):
    """Every upload failed for the (scaled) 24 h with at least 10 attempts: the S3
    integration is paused by Sluice, like a webhook one."""
    pg = request.getfixturevalue("pg") if db else None
    # --time-scale 20000: 24 h is 4.32 s
    srv = start_server(db=db, args=["--allow-private-targets", "--time-scale", "20000",
                                    "--s3-batch-max-age", "600s"])
    key = setup_tenant(srv)
    create(srv, key, "ap", s3_target(s3clean, P() + "ta/"))
    s3clean.control(fail=[{"status": 500, "code": "InternalError", "count": 100000,
                           "method": "PUT"}])
    t0 = time.monotonic()
    publish(srv, key, {"type": "order.created", "entity_id": "O1", "payload": {}})

    def paused():
        status, _, body = srv.request("GET", "/v1/integrations/ap", token=key)
        return body["state"] == "paused" and body
    wait_for(paused, 30, 0.1, "the auto-pause")
    assert time.monotonic() - t0 >= 4.2, "paused before the scaled 24 h"
    status, _, body = srv.request("GET", "/v1/integrations/ap/logs", token=key)
    log = [row for row in body["data"] if row["action"] == "stopped"]
    assert log and log[0]["reason"] == "auto-paused: every delivery failed for 24h", body
    assert log[0]["actor"] == "system"
    attempts = db_rows(srv, pg, "SELECT COUNT(*) FROM s3_batch_attempts WHERE tenant_id = "
                                "'acme'")
    assert int(attempts[0][0]) >= 10, attempts
    wait_for(lambda: db_rows(srv, pg, "SELECT 1 FROM alerts WHERE event = "
                                      "'event_stream.integration_stopped' AND connection = 'ap'"),
             10, 0.1, "the integration_stopped alert")
    # the counters of a batch that failed: kept by its outcome (migration 011)
    check_counters(srv)


def test_s3_lease_outlives_the_upload(start_server, db, s3clean, request):
    """A batch's lease covers its upload: at claim it is the request timeout plus a margin
    (not --lease 1s, which would let another node claim the batch while its upload is still
    on the wire), and it is renewed while the upload goes on."""
    pg = request.getfixturevalue("pg") if db else None
    srv = serve(start_server, db, "--lease", "1s", "--webhook-timeout", "8s",
                "--s3-batch-max-age", "100s")
    key = setup_tenant(srv)
    create(srv, key, "ls", s3_target(s3clean, P() + "tls/"))
    s3clean.control(hold=True)
    publish(srv, key, {"type": "order.created", "entity_id": "O1", "payload": {}})
    wait_for(lambda: [e for e in s3clean.log() if e.get("held") and "/tls/" in e["url"]], 30,
             0.05, "an upload in flight")

    def lease():
        rows = db_rows(srv, pg, "SELECT lease_until, last_attempt_at, attempts FROM s3_batches "
                                "WHERE state = 'closing'")
        assert len(rows) == 1, rows
        return [int(v) for v in rows[0]]
    until, claimed, attempts = lease()
    assert until - claimed >= 8000 + 5000, (until, claimed)
    # renewed a third of a lease (13 s) before it ends, while the same attempt is held
    renewed = wait_for(lambda: lease()[0] > until and lease(), 10, 0.2, "the lease's renewal")
    assert renewed[2] == attempts, "the same upload, not a new attempt"
    s3clean.control(hold=False)
