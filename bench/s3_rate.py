#!/usr/bin/python3
"""S3 upload rate: Sluice against a plain `curl` PUT of the same bytes, same server, same run.

The S3 server is the test suite's: s3rver (npm) behind tests/integration/s3front.js, which
checks every SigV4 signature and payload hash. Sluice (SQLite, one S3 integration with
compression "none", so the bytes on the wire are the batch's bytes) first takes a backlog of
events with only the API role (--roles api: nothing batches or uploads, the deliveries wait
as pending rows); then it is restarted with every role, and the clock runs from that start
until the last size-closed batch is uploaded. That covers batching (appends and closes in
the database), building each spool file, the uploads and their outcomes, and nothing of
ingest. (Before, the backlog was built with the integration paused and the clock started at
resume: the resume itself, one UPDATE of every held row back to pending, took ~4.5 s of the
~19 s measured for 100,000 events, work a backlog of an S3 integration that is behind does
not do.) Then each uploaded object is fetched and PUT again
with curl --aws-sigv4 (with its x-amz-content-sha256), one after another like Sluice does
for one integration.

Usage: bench/s3_rate.py [--events N] [--payload BYTES] [--batch-bytes SIZE]
Prints one JSON object: {"mb_per_s", "events_per_s", "curl_put_mb_per_s", "ratio", ...}
(MB = 10^6 bytes).
"""

import argparse
import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from conftest import ALL_PERMS, Server, make_key, make_tenant, wait_for  # noqa: E402

AKID, SECRET, REGION, BUCKET = "AKIABENCH0001", "bench/Secret+0123456789", "us-east-1", "bench"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--payload", type=int, default=400)
    ap.add_argument("--batch-bytes", default="25MB")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sluice-s3bench-")
    front = subprocess.Popen(["node", os.path.join(REPO, "tests/integration/s3front.js"), "0",
                              os.path.join(tmp, "s3"), AKID, SECRET, REGION, BUCKET],
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO)
    _, port, upstream = front.stdout.readline().decode().split()
    endpoint = f"http://127.0.0.1:{port}"
    args = ["--allow-private-targets", "--s3-batch-max-bytes", a.batch_bytes,
            "--s3-batch-max-age", "1h"]
    srv = Server(os.path.join(tmp, "data"), args=args + ["--roles", "api"])
    try:
        srv.start()
        make_tenant(srv, "bench")
        key = make_key(srv, "bench", ALL_PERMS)
        target = {"type": "s3", "bucket": BUCKET, "region": REGION, "key_prefix": "b/",
                  "access_key_id": AKID, "secret_access_key": SECRET, "endpoint": endpoint,
                  "compression": "none"}
        st, _, body = srv.request("POST", "/v1/integrations", {"id": "bench", "events": ["order"],
                                                                "ordering": "none",
                                                                "target": target}, token=key)
        assert st == 201, body
        filler = "x" * a.payload
        for start in range(0, a.events, 1000):
            evs = [{"type": "order.created", "entity_id": f"O{i}", "payload": {"n": filler}}
                   for i in range(start, min(start + 1000, a.events))]
            st, _, body = srv.request("POST", "/v1/events", {"events": evs}, token=key)
            assert st == 202, body
        db = os.path.join(srv.data_dir, "sluice.db")
        con = sqlite3.connect(db)
        pending = con.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'pending' AND "
                              "batch_id IS NULL").fetchone()[0]
        con.close()
        assert pending == a.events, pending  # the backlog is built first: nothing batched
        srv.stop()
        srv.args = args  # every role: the S3 engine batches and uploads the backlog
        t0 = time.time()
        srv.start()

        def done():
            con = sqlite3.connect(db)
            try:
                pending = con.execute("SELECT COUNT(*) FROM deliveries WHERE batch_id IS NULL AND "
                                      "state = 'pending'").fetchone()[0]
                closing = con.execute("SELECT COUNT(*) FROM s3_batches WHERE state = "
                                      "'closing'").fetchone()[0]
                return pending == 0 and closing == 0 and con.execute(
                    "SELECT COUNT(*), SUM(count), SUM(object_bytes), MAX(uploaded_at) FROM "
                    "s3_batches WHERE state = 'uploaded'").fetchone()
            finally:
                con.close()
        n_obj, n_ev, n_bytes, last = wait_for(done, 600, 0.05, "uploads")
        elapsed = last / 1000.0 - t0
        con = sqlite3.connect(db)
        keys = [r[0] for r in con.execute("SELECT object_key FROM s3_batches WHERE state = "
                                          "'uploaded' ORDER BY seq")]
        con.close()
        # the same bytes with curl: fetch each object from s3rver, PUT it through the front
        files = []
        for i, k in enumerate(keys):
            path = os.path.join(tmp, f"obj{i}")
            urllib.request.urlretrieve(f"http://127.0.0.1:{upstream}/{BUCKET}/{k}", path)
            files.append(path)
        curl_time, curl_bytes = 0.0, 0
        for i, path in enumerate(files):
            data = open(path, "rb").read()
            sha = hashlib.sha256(data).hexdigest()
            t = time.time()
            r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                                "--aws-sigv4", f"aws:amz:{REGION}:s3", "--user", f"{AKID}:{SECRET}",
                                "-H", f"x-amz-content-sha256: {sha}", "-H",
                                "Content-Type: application/x-ndjson", "--data-binary", f"@{path}",
                                f"{endpoint}/{BUCKET}/curl/{i}.jsonl"], capture_output=True)
            curl_time += time.time() - t
            assert r.stdout == b"200", (r.stdout, r.stderr)
            curl_bytes += len(data)
        out = {"events": n_ev, "objects": n_obj, "bytes": n_bytes,
               "seconds": round(elapsed, 3),
               "mb_per_s": round(n_bytes / 1e6 / elapsed, 2),
               "events_per_s": round(n_ev / elapsed),
               "curl_put_mb_per_s": round(curl_bytes / 1e6 / curl_time, 2)}
        out["ratio"] = round(out["mb_per_s"] / out["curl_put_mb_per_s"], 3)
        print(json.dumps(out))
        if os.environ.get("S3BENCH_LOG"):
            sys.stderr.write("\n".join(x for x in srv.full_log().splitlines() if '"s3"' in x))
    finally:
        if srv.running():
            srv.stop()
        front.terminate()
        front.wait()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
