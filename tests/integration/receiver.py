"""A webhook receiver for the Event Stream tests, and helpers around it.

`Receiver` is a real HTTP/1.1 server (keep-alive, like a production consumer) on a free
loopback port, run in a thread of the test process. It records every request (path, headers,
raw body, parsed JSON, arrival time) and answers per path as told:

    rcv.set("/a", 200)                        # always 200 (the default for every path)
    rcv.set("/a", 500, 500, 200)              # a script: 500, 500, then 200 from then on
    rcv.set("/a", (429, {"Retry-After": "1"}))
    rcv.set("/a", "hang")                      # hold the request past the client's timeout
    rcv.set("/a", "close")                     # close the connection without an answer
    rcv.set("/a", lambda req: 500 if req.json["entity_id"] == "A" else 200)
    rcv.set("/a", "trickle")                   # 200 whose body comes one byte per 0.2 s
    rcv.set("/a", ("huge", 500, 50 << 20))     # a 500 with a 50 MiB body

A behaviour is an int status, a (status, headers) or (status, headers, body) tuple, "hang",
"close", "trickle", ("huge", status, nbytes), or a callable taking the Request and
returning one of those. The last entry of a
script repeats. `wait(path, n)` polls until n requests arrived (deadline based).

Signature checks go through npm's `standardwebhooks` package (verify_signature.js), never
through Sluice's own code.
"""

import base64
import http.server
import json
import os
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SANITIZED = os.environ.get("SLUICE_SANITIZED") == "1"
SLOW = 5 if SANITIZED else 1
HANG_MAX = 30  # a hanging request is answered by a close after this long (or at stop)


class Request:
    __slots__ = ("path", "target", "headers", "header_list", "body", "t", "wall", "answer",
                 "seq")

    def __init__(self, path, headers, header_list, body, t, wall, seq, target=None):
        self.path = path
        self.target = target            # the request target as sent, query string included
        self.headers = headers          # lower-case name -> value (last wins)
        self.header_list = header_list  # [(name, value)] as received
        self.body = body                # raw bytes
        self.t = t                      # time.monotonic() at arrival (body read)
        self.wall = wall                # time.time() at arrival
        self.answer = None              # what the receiver answered
        self.seq = seq                  # arrival order across all paths

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Request {self.path} {self.body[:120]!r} answer={self.answer!r}>"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        import sys
        if isinstance(sys.exc_info()[1], (OSError, ValueError)):
            return  # a client that went away (a killed server, a timeout): not news
        super().handle_error(request, client_address)


class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.requests = []
        self.scripts = {}
        self.default = 200
        self.stopping = threading.Event()
        self.connections = 0
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "receiver/1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with rcv.lock:
                    rcv.connections += 1

            def do_POST(self):
                rcv._handle(self)

            do_PUT = do_POST
            do_GET = do_POST

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------ control

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path, *behaviours):
        """Answers requests to path with behaviours in turn; the last one repeats."""
        assert behaviours
        with self.lock:
            self.scripts[path] = list(behaviours)

    def stop(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _next_behaviour(self, path):
        with self.lock:
            script = self.scripts.get(path)
            if not script:
                return self.default
            return script.pop(0) if len(script) > 1 else script[0]

    def _handle(self, h):
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        t, wall = time.monotonic(), time.time()
        hl = list(h.headers.items())
        path = h.path.split("?", 1)[0]
        with self.cond:
            req = Request(path, {k.lower(): v for k, v in hl}, hl, body, t, wall,
                          len(self.requests), target=h.path)
            self.requests.append(req)
        b = self._next_behaviour(path)
        if callable(b):
            b = b(req)
        req.answer = b
        with self.cond:
            self.cond.notify_all()
        if b == "close":
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass
            return
        if b == "hang":
            self.stopping.wait(HANG_MAX)
            h.close_connection = True
            return
        if b == "trickle":  # the answer starts, then crawls (past any client's timeout)
            h.close_connection = True
            try:
                h.send_response(200)
                h.send_header("Content-Length", "1000")
                h.end_headers()
                h.wfile.flush()
                for _ in range(1000):
                    if self.stopping.wait(0.2):
                        break
                    h.wfile.write(b"x")
                    h.wfile.flush()
            except OSError:
                pass
            return
        if isinstance(b, tuple) and b and b[0] == "huge":
            _, status, size = b
            chunk = b"x" * 65536
            try:
                h.send_response(status)
                h.send_header("Content-Length", str(size))
                h.end_headers()
                left = size
                while left > 0 and not self.stopping.is_set():
                    h.wfile.write(chunk[:min(left, len(chunk))])
                    left -= len(chunk)
                h.wfile.flush()
            except OSError:
                h.close_connection = True
            return
        headers, text = {}, None
        if isinstance(b, tuple):
            status = b[0]
            headers = dict(b[1]) if len(b) > 1 and b[1] else {}
            text = b[2] if len(b) > 2 else None
        else:
            status = int(b)
        if text is None:
            text = json.dumps({"received": True, "status": status})
        data = text.encode() if isinstance(text, str) else text
        if status in (204, 304) or status < 200:
            data = b""  # no body allowed (curl would read it as the next response)
        try:
            h.send_response(status)
            for k, v in headers.items():
                h.send_header(k, v)
            if data:
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(data)))
            elif status not in (204, 304) and status >= 200:
                h.send_header("Content-Length", "0")
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            h.close_connection = True

    # ------------------------------------------------------------------ reading

    def got(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def wait(self, path, n, timeout=15, what=None):
        """Waits until at least n requests reached path; returns all requests to path."""
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            while True:
                got = [r for r in self.requests if path is None or r.path == path]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout * SLOW}s waiting for {n} request(s) on "
                        f"{path} ({what or ''}); got {len(got)}: {got[-5:]!r}")
                self.cond.wait(min(left, 0.1))

    def wait_for(self, cond, timeout=15, what="condition"):
        """Waits until cond(requests) is truthy; returns its value."""
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            while True:
                v = cond(list(self.requests))
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout * SLOW}s waiting for {what}"
                                         f"; {len(self.requests)} request(s) so far")
                self.cond.wait(min(left, 0.1))


# --------------------------------------------------------------------------- signatures


def verify_signatures(secret, requests):
    """Verifies each request with npm's standardwebhooks (one node process for all).
    Returns a list of (ok, error or parsed payload)."""
    items = [{"headers": {k: v for k, v in r.headers.items()},
              "body_b64": base64.b64encode(r.body).decode()} for r in requests]
    return verify_raw(secret, items)


def verify_each(pairs):
    """pairs: [(secret, Request)] -> [(ok, detail)], one node process for all."""
    return verify_raw(None, [{"secret": sec, "headers": dict(r.headers),
                              "body_b64": base64.b64encode(r.body).decode()}
                             for sec, r in pairs])


def verify_raw(secret, items):
    """items: [{"headers": {...}, "body": "raw text"}] -> [(ok, detail)]."""
    script = os.path.join(HERE, "verify_signature.js")
    env = dict(os.environ)
    env["NODE_PATH"] = os.path.join(REPO, "node_modules")
    r = subprocess.run(["node", script], input=json.dumps({"secret": secret, "items": items}),
                       capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert r.returncode == 0, f"verify_signature.js failed: {r.stdout}\n{r.stderr}"
    out = json.loads(r.stdout)
    return [(o["ok"], o.get("error") or o.get("payload")) for o in out]


# --------------------------------------------------------------------------- a server + receiver


def parse_time(s):
    from datetime import datetime, timezone
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def fmt_time(ts):
    """Epoch seconds -> RFC 3339 with milliseconds."""
    from datetime import datetime, timezone
    d = datetime.fromtimestamp(ts, timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


class Stream:
    """A running server (conftest.Server), a tenant with an all-permission key, a receiver."""

    def __init__(self, server, receiver, tenant_id="acme"):
        from conftest import ALL_PERMS, make_key, make_tenant
        self.server = server
        self.rcv = receiver
        self.tenant = tenant_id
        make_tenant(server, tenant_id)
        self.key_name = "manager"
        self.key = make_key(server, tenant_id, ALL_PERMS, name=self.key_name)

    # -- requests
    def req(self, method, path, body=None, key=None, **kw):
        return self.server.request(method, path, body=body, token=key or self.key, **kw)

    def ok(self, method, path, body=None, expect=200, key=None):
        status, _, resp = self.req(method, path, body, key=key)
        assert status == expect, (method, path, status, resp)
        return resp

    def create(self, iid, path=None, events=("order",), expect=201, target=None, **fields):
        """Creates a webhook integration to the receiver's `path` (default /<iid>)."""
        body = {"id": iid, "events": list(events)}
        body["target"] = target if target is not None else {
            "type": "webhook", "url": self.rcv.url(path or "/" + iid),
            "api_key": "key-" + iid + "-0123456789"}
        body.update(fields)
        return self.ok("POST", "/v1/integrations", body, expect=expect)

    def publish(self, events, key=None):
        """Publishes a list of events in one request; returns their server ids."""
        if isinstance(events, dict):
            events = [events]
        resp = self.ok("POST", "/v1/events", {"events": list(events)}, expect=202, key=key)
        return resp["ids"]

    def get(self, iid):
        return self.ok("GET", f"/v1/integrations/{iid}")

    def events(self, iid, query=""):
        """Every row of GET /v1/integrations/{iid}/events (all pages), newest first."""
        out, cursor = [], None
        for _ in range(1000):
            path = f"/v1/integrations/{iid}/events?limit=1000" + (f"&{query}" if query else "")
            if cursor:
                path += f"&cursor={cursor}"
            body = self.ok("GET", path)
            out += body["data"]
            cursor = body.get("next_cursor")
            if not cursor:
                return out
        raise AssertionError("pagination does not end")

    def attempts(self, iid, event_id):
        return self.ok("GET", f"/v1/integrations/{iid}/events/{event_id}/attempts")["data"]

    def logs(self, iid):
        return self.ok("GET", f"/v1/integrations/{iid}/logs")["data"]

    def status_of(self, iid, event_id):
        rows = [r for r in self.events(iid) if r["event_id"] == event_id]
        return rows[0]["status"] if rows else None

    def wait_status(self, iid, event_ids, status, timeout=15):
        """Waits until every event in event_ids has `status` in the integration's events view."""
        if isinstance(event_ids, str):
            event_ids = [event_ids]
        deadline = time.monotonic() + timeout * SLOW
        while True:
            rows = {r["event_id"]: r for r in self.events(iid)}
            if all(e in rows and rows[e]["status"] == status for e in event_ids):
                return rows
            if time.monotonic() > deadline:
                bad = {e: rows.get(e) for e in event_ids
                       if e not in rows or rows[e]["status"] != status}
                raise AssertionError(f"timed out waiting for status {status} on {iid}: "
                                     f"{list(bad.items())[:5]}")
            time.sleep(0.05)

    def wait_state(self, iid, state, timeout=15):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            got = self.get(iid)
            if got["state"] == state:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{iid} is {got['state']}, not {state}, after "
                                     f"{timeout * SLOW}s: {got}")
            time.sleep(0.05)

    def wait_log(self, iid, reason_part, timeout=15):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            logs = self.logs(iid)
            hit = [l for l in logs if reason_part in l["reason"]]
            if hit:
                return hit[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no log of {iid} mentions {reason_part!r}: {logs}")
            time.sleep(0.05)

    # -- alerts
    def alerts(self, event=None):
        """The tenant's alerts as dicts (event, connection, entity_id, message, ...): through
        GET /v1/alerts once the alerting API exists, else read from the database directly
        (SQLite file or PostgreSQL via psql)."""
        q = f"?event={event}&limit=1000" if event else "?limit=1000"
        status, _, body = self.req("GET", "/v1/alerts" + q)
        if status == 200 and isinstance(body, dict) and "data" in body:
            rows = body["data"]
            for a in rows:  # the API gives details as an object; the table holds its text
                if a.get("details") is not None and not isinstance(a["details"], str):
                    a["details"] = json.dumps(a["details"])
            return [a for a in rows if event is None or a.get("event") == event]
        return self._alerts_from_db(event)

    def _alerts_from_db(self, event):
        cols = ["event", "connection", "entity_id", "message", "details", "task_id"]
        sql = (f"SELECT {', '.join(cols)} FROM alerts WHERE tenant_id = '{self.tenant}'"
               + (f" AND event = '{event}'" if event else "") + " ORDER BY id")
        if self.server.db is None:
            import sqlite3
            path = os.path.join(self.server.data_dir, "sluice.db")
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                rows = con.execute(sql).fetchall()
            finally:
                con.close()
        else:
            from conftest import PG_BIN
            r = subprocess.run([f"{PG_BIN}/psql", self.server.db, "-v", "ON_ERROR_STOP=1",
                                "-At", "-F", "\x1f", "-R", "\x1e", "-c", sql],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            rows = [line.split("\x1f") for line in r.stdout.strip("\n\x1e").split("\x1e")
                    if line]
        return [dict(zip(cols, row)) for row in rows]

    def wait_alert(self, event, connection, timeout=15):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            hits = [a for a in self.alerts(event) if a["connection"] == connection]
            if hits:
                return hits
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} alert for {connection}: {self.alerts()}")
            time.sleep(0.1)
