"""Fixtures for Sluice's integration tests.

They start the real `sluice` binary ($SLUICE_BIN) on a free port with a temp data dir, and a
real PostgreSQL 15 (initdb/pg_ctl as user postgres) for the `postgres` half of the `db`
parameter. Stdlib only; run with /usr/bin/python3 -m pytest.

Every process started here is a child of pytest and is reaped here: this machine's PID 1 does
not reap orphans. pg_ctl daemonizes the postmaster, so pytest makes itself a child subreaper
and waits for the postmaster's pid after stopping it.
"""

import ctypes
import http.client
import json
import os
import pwd
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

SANITIZED = os.environ.get("SLUICE_SANITIZED") == "1"
SLOW = 5 if SANITIZED else 1  # deadline multiplier for ASan/UBSan builds
READY_DEADLINE = 20 * SLOW
PG_BIN = "/usr/lib/postgresql/15/bin"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ALL_PERMS = ["events:publish", "tools:view", "tools:manage", "alerts:report", "alerts:view",
             "alerts:manage"]


def _become_subreaper():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


_become_subreaper()


def sluice_bin():
    path = os.environ.get("SLUICE_BIN") or os.path.join(REPO, "build", "sluice")
    if not os.access(path, os.X_OK):
        pytest.fail(f"sluice binary not found at {path} (set SLUICE_BIN or `make build/sluice`)")
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def clean_env(extra=None):
    """The environment for a sluice child: ours without SLUICE_* (config would leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    if extra:
        env.update(extra)
    return env


def wait_for(cond, timeout, interval=0.02, what="condition"):
    """Polls cond() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout * SLOW}s waiting for {what}")
        time.sleep(interval)


def parse_body(headers, data):
    ctype = headers.get("content-type", "")
    text = data.decode("utf-8", "replace")
    if "json" in ctype and data:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


# --------------------------------------------------------------------------- PostgreSQL


class Postgres:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-pg-")
        self.port = free_port()
        self.as_postgres = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.pid = None

    def run(self, args, **kw):
        return subprocess.run(self.as_postgres + args, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120, **kw)

    def start(self):
        r = self.run([f"{PG_BIN}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                      "-E", "UTF8", "--no-sync"])
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{r.stdout}\n{r.stderr}")
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on "
                "-c max_connections=200")
        r = self.run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.log, "-o", opts, "-w",
                      "-t", "60", "start"])
        if r.returncode != 0:
            log = open(self.log).read() if os.path.exists(self.log) else ""
            raise RuntimeError(f"pg_ctl start failed:\n{r.stdout}\n{r.stderr}\n{log}")
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())

    def stop(self):
        self.run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
        if self.pid:
            try:  # the postmaster was reparented to us (subreaper): reap it
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql, db="postgres"):
        r = subprocess.run([f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                            "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {r.stderr}")
        return r.stdout

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="session")
def pg():
    p = Postgres()
    try:
        p.start()
        yield p
    finally:
        p.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request):
    """None for SQLite (the server's default sqlite:<data-dir>/sluice.db), or the URL of a
    fresh PostgreSQL database for this test."""
    if request.param == "sqlite":
        yield None
        return
    p = request.getfixturevalue("pg")
    name = "t_" + secrets.token_hex(6)
    p.psql(f"CREATE DATABASE {name}")
    yield p.url(name)
    try:
        p.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except RuntimeError:
        pass


# --------------------------------------------------------------------------- the server


class Server:
    """One `sluice serve` child process. Restartable on the same data dir, db and port."""

    def __init__(self, data_dir, db=None, admin_token=True, args=(), env=None, listen=True,
                 port=None, log_path=None):
        self.bin = sluice_bin()
        self.data_dir = str(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.db = db
        self.given_token = secrets.token_hex(16) if admin_token is True else admin_token
        self.admin_token = self.given_token
        self.args = list(args)
        self.env = dict(env or {})
        self.listen = listen
        self.port = port or free_port()
        self.log_path = log_path or os.path.join(os.path.dirname(self.data_dir),
                                                 os.path.basename(self.data_dir) + ".log")
        self.proc = None
        self.log_offset = 0
        self.exit_codes = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def command(self):
        cmd = [self.bin, "serve", "--data-dir", self.data_dir, "--log-format", "json"]
        if self.listen:
            cmd += ["--listen", f"127.0.0.1:{self.port}"]
        if self.given_token:
            cmd += ["--admin-token", self.given_token]
        if self.db:
            cmd += ["--db", self.db]
        return cmd + self.args

    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            self.log_offset = log.tell()
            log.write(f"=== {' '.join(self.command())}\n".encode())
            log.flush()
            self.log_offset = log.tell()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=clean_env(self.env),
                                         cwd=os.path.dirname(self.data_dir))
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_DEADLINE):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sluice exited with {self.proc.returncode} before ready:"
                                     f"\n{self.output()}")
            try:
                status, _, body = self.request("GET", "/readyz", timeout=2)
                if status == 200:
                    if not self.given_token:
                        self.admin_token = self.read_token_file()
                    return
                last = (status, body)
            except OSError as e:
                last = e
            time.sleep(0.02)
        raise AssertionError(f"sluice not ready within {timeout}s (last: {last!r}):\n"
                             f"{self.output()}")

    def read_token_file(self):
        with open(os.path.join(self.data_dir, "admin-token")) as f:
            return f.read().strip()

    def output(self):
        """What the current (or last) run printed, stdout and stderr together."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def full_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM, wait for exit, return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.exit_codes.append("hung")
                raise AssertionError(f"sluice did not exit within {timeout * SLOW}s of SIGTERM")
        self.exit_codes.append(self.proc.returncode)
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.exit_codes.append("killed")

    def restart(self, wait=True):
        if self.running():
            self.stop()
        if self.listen and not port_is_free(self.port):
            self.port = free_port()
        return self.start(wait=wait)

    # ----------------------------------------------------------------- HTTP

    def request(self, method, path, body=None, token=None, headers=None, raw=None, timeout=30):
        """Returns (status, headers with lower-case names, parsed JSON or text)."""
        hdrs = {}
        data = None
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
            hdrs["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if headers:
            hdrs.update(headers)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            rh = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, rh, parse_body(rh, payload)
        except ConnectionError as e:
            # Say how the server ended when it is gone (a signal is -N), not only "refused".
            # The same exception type is kept: tests that kill the server on purpose catch
            # OSError and retry.
            if self.proc is not None and self.proc.poll() is not None:
                raise type(e)(f"{method} {path}: sluice is not running (it exited with "
                              f"{self.proc.returncode})") from e
            raise
        finally:
            conn.close()

    def admin(self, method, path, body=None, **kw):
        return self.request(method, path, body=body, token=self.admin_token, **kw)

    def send_streaming(self, method, path, body, headers=None, chunked=False, chunk=65536):
        """Sends a large body piece by piece on a raw socket and stops sending as soon as the
        server answers (a server may answer 413 before reading the whole body). Returns
        (status, headers, parsed body)."""
        hdrs = {"Host": f"127.0.0.1:{self.port}", "Content-Type": "application/json",
                "Connection": "close"}
        if chunked:
            hdrs["Transfer-Encoding"] = "chunked"
        else:
            hdrs["Content-Length"] = str(len(body))
        hdrs.update(headers or {})
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in
                                                         hdrs.items()) + "\r\n"
        s = socket.create_connection(("127.0.0.1", self.port), timeout=60 * SLOW)
        try:
            s.sendall(head.encode())
            answered = False
            for i in range(0, len(body), chunk):
                r, _, _ = select.select([s], [], [], 0)
                if r:
                    answered = True
                    break
                piece = body[i:i + chunk]
                if chunked:
                    piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                try:
                    s.sendall(piece)
                except (BrokenPipeError, ConnectionResetError):
                    answered = True
                    break
            if not answered and chunked:
                try:
                    s.sendall(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
            data = b""
            while True:
                try:
                    part = s.recv(65536)
                except ConnectionResetError:
                    break
                if not part:
                    break
                data += part
                if b"\r\n\r\n" in data:
                    hd, _, rest = data.partition(b"\r\n\r\n")
                    m = re.search(rb"(?i)content-length:\s*(\d+)", hd)
                    if m and len(rest) >= int(m.group(1)):
                        break
        finally:
            s.close()
        assert data, "server closed the connection without an answer"
        hd, _, rest = data.partition(b"\r\n\r\n")
        lines = hd.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        rh = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            rh[k.strip().lower()] = v.strip()
        return status, rh, parse_body(rh, rest)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, srv in enumerate(getattr(item, "_sluice_servers", [])):
            rep.sections.append((f"sluice log #{i} ({srv.log_path})", srv.full_log()[-60000:]))


@pytest.fixture
def start_server(request, tmp_path):
    """Factory: start_server(db=None, admin_token=True|False|"tok", args=[], env={},
    listen=True, port=None, wait=True, data_dir=None) -> a running Server. Stopped and reaped after
    the test; its log is attached to the report of a failed test."""
    servers = []
    request.node._sluice_servers = servers

    def start(db=None, admin_token=True, args=(), env=None, listen=True, port=None, wait=True,
              data_dir=None):
        d = data_dir or tmp_path / f"data{len(servers)}"
        srv = Server(d, db=db, admin_token=admin_token, args=args, env=env, listen=listen,
                     port=port)
        servers.append(srv)
        return srv.start(wait=wait)

    yield start
    problems = []
    for srv in servers:
        if srv.running():
            try:
                code = srv.stop()
            except AssertionError as e:
                problems.append(str(e))
                continue
            if SANITIZED and code != 0:
                problems.append(f"sluice exited with {code} at teardown (sanitizer report?)")
        elif srv.proc is not None:
            srv.proc.wait()
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def server(start_server, db):
    """A running server on the test's database (sqlite or postgres)."""
    return start_server(db=db)


# --------------------------------------------------------------------------- helpers


def make_tenant(server, tenant_id, name=None):
    status, _, body = server.admin("POST", "/v1/admin/tenants",
                                   {"id": tenant_id, "name": name or f"Tenant {tenant_id}"})
    assert status == 201, (status, body)
    return body


def make_key(server, tenant, perms, name=None):
    """Creates an API key in tenant with the given permissions; returns the sk_… secret."""
    status, _, body = server.admin("POST", f"/v1/admin/tenants/{tenant}/keys",
                                   {"name": name or "k-" + secrets.token_hex(3),
                                    "permissions": list(perms)})
    assert status == 201, (status, body)
    assert body["key"].startswith("sk_"), body
    return body["key"]


def publish(server, key, body, expect=202):
    status, headers, resp = server.request("POST", "/v1/events", body, token=key)
    if expect is not None:
        assert status == expect, (status, resp)
    return resp


def list_all_events(server, key, query="", limit=1000):
    """Follows next_cursor to the end; returns every event, newest first."""
    out = []
    cursor = None
    sep = "&" if query else ""
    for _ in range(10000):
        path = f"/v1/events?{query}{sep}limit={limit}"
        if cursor:
            path += f"&cursor={cursor}"
        status, _, body = server.request("GET", path, token=key)
        assert status == 200, (status, body)
        out += body["data"]
        cursor = body["next_cursor"]
        if not cursor:
            return out
    raise AssertionError("pagination does not end")


def assert_problem(resp, status, field=None):
    """Checks an RFC 9457 problem response; with field, that errors names it."""
    code, headers, body = resp
    assert code == status, (code, body)
    assert headers.get("content-type", "").startswith("application/problem+json"), headers
    assert isinstance(body, dict), body
    for k in ("type", "title", "status", "detail"):
        assert k in body, (k, body)
    assert body["status"] == status, body
    if status == 503:  # every 503 says when to come back
        assert headers.get("retry-after", "").isdigit(), headers
        assert int(headers["retry-after"]) >= 1, headers
    if field is not None:
        assert isinstance(body.get("errors"), list) and body["errors"], body
        fields = [e.get("field") for e in body["errors"]]
        for e in body["errors"]:
            assert isinstance(e.get("message"), str) and e["message"], body
        assert field in fields, (field, body)
    return body


@pytest.fixture
def receiver():
    """A recording webhook receiver on a free loopback port (receiver.py). Stopped after."""
    from receiver import Receiver
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def stream(start_server, db, receiver):
    """Factory for Event Stream tests: stream(args=[...], private=True) -> receiver.Stream, a
    server on the test's database (--allow-private-targets unless private=False) with tenant
    "acme", a key with every permission, and the receiver."""
    from receiver import Stream

    def make(args=(), private=True, tenant_id="acme"):
        extra = (["--allow-private-targets"] if private else []) + list(args)
        srv = start_server(db=db, args=extra)
        return Stream(srv, receiver, tenant_id)
    return make


@pytest.fixture
def tenant(server):
    """Tenant "acme" with a key holding every permission: (server, key)."""
    make_tenant(server, "acme", "Acme Retail")
    return server, make_key(server, "acme", ALL_PERMS, name="all")
