"""What every benchmark in bench/ shares: free ports, a `sluice serve` child with an API
client, a throwaway PostgreSQL cluster, nginx (plain, or slowed down per request), wrk,
the storage_limit tool, RSS and load average readings.

Every peer is started here, from Debian packages that `scripts/deps.sh --bench` installs,
so a benchmark runs on a fresh machine. Nothing here changes Sluice's durability settings:
the server runs with its defaults (SQLite WAL with synchronous=FULL; PostgreSQL with
synchronous_commit=on and fsync on).
"""
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
PG_BIN = "/usr/lib/postgresql/15/bin"


def sluice_bin():
    return os.environ.get("SLUICE_BIN") or os.path.join(REPO, "build", "sluice")


def limit_bin():
    return os.environ.get("STORAGE_LIMIT_BIN") or os.path.join(
        os.path.dirname(sluice_bin()), "storage_limit")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def rss_mb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def wait_http(port, path="/", deadline=60, proc=None):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before port {port} answered")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status < 500:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"port {port} did not answer {path}")


class Api:
    """A keep-alive client of one server; call() returns (status, parsed JSON or None)."""

    def __init__(self, port, token, timeout=120):
        self.port, self.token, self.timeout = port, token, timeout
        self.c = None

    def call(self, method, path, body=None, token=None, raw=None):
        h = {"Authorization": "Bearer " + (token or self.token)}
        data = raw
        if body is not None:
            data = json.dumps(body)
        if data is not None:
            h["Content-Type"] = "application/json"
        for attempt in range(2):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.c.request(method, path, body=data, headers=h)
                r = self.c.getresponse()
                out = r.read()
                break
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = None
                if attempt:
                    raise
        try:
            parsed = json.loads(out) if out else None
        except ValueError:
            parsed = None
        return r.status, parsed

    def ok(self, method, path, body=None, want=(200, 201, 202, 204)):
        st, got = self.call(method, path, body)
        if st not in want:
            raise RuntimeError(f"{method} {path}: HTTP {st}: {got}")
        return got


def master_key_file(tmp):
    """A master key file for nodes that share one database (each node needs the same key to
    open the others' secrets)."""
    key_file = os.path.join(tmp, "master-key")
    if not os.path.exists(key_file):
        with open(key_file, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(key_file, 0o600)
    return key_file


class Sluice:
    """One `sluice serve` child process, restartable on the same data dir and port."""

    def __init__(self, tmp, name="sluice", db=None, args=(), port=None, token="benchtoken",
                 master_key=None, binary=None):
        self.bin = binary or sluice_bin()
        self.data = os.path.join(tmp, name)
        os.makedirs(self.data, exist_ok=True)
        self.db = db
        self.args = list(args)
        self.port = port or free_port()
        self.token = token
        self.master_key = master_key
        self.log = os.path.join(tmp, name + ".log")
        self.proc = None
        self.started_at = None
        self.api = Api(self.port, token)

    @property
    def db_path(self):
        return os.path.join(self.data, "sluice.db")

    @property
    def url(self):
        return self.db or "sqlite:" + self.db_path

    def command(self, extra=()):
        cmd = [self.bin, "serve", "--data-dir", self.data, "--listen",
               f"127.0.0.1:{self.port}", "--admin-token", self.token, "--log-level", "warn",
               "--allow-private-targets"]
        if self.db:
            cmd += ["--db", self.db]
        if self.master_key:
            cmd += ["--master-key-file", self.master_key]
        return cmd + self.args + list(extra)

    def start(self, extra=(), wait=True):
        log = open(self.log, "a")
        self.started_at = time.time()
        self.proc = subprocess.Popen(self.command(extra), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        if wait:
            wait_http(self.port, "/readyz", proc=self.proc)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.api.c:
            self.api.c.close()
            self.api.c = None

    def tenant_key(self, tenant="bench", perms=("events:publish", "tools:manage", "tools:view",
                                                  "alerts:report", "alerts:manage",
                                                  "alerts:view")):
        admin = Api(self.port, self.token)
        admin.ok("POST", "/v1/admin/tenants", {"id": tenant, "name": "Bench"})
        k = admin.ok("POST", f"/v1/admin/tenants/{tenant}/keys",
                     {"name": "bench", "permissions": list(perms)})
        self.api.token = k["key"]
        return k["key"]

    def rss_mb(self):
        return rss_mb(self.proc.pid) if self.proc else None


class Postgres:
    """A throwaway PostgreSQL 15 cluster: fsync on, synchronous_commit on (the defaults);
    shared_buffers and max_wal_size sized for a database of a few million rows (the same
    cluster serves Sluice and the storage limit, so both get them)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-bench-pg-")
        self.port = free_port()
        self.as_postgres = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.data = os.path.join(self.dir, "data")

    def run(self, args):
        r = subprocess.run(self.as_postgres + args, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed:\n{r.stdout}\n{r.stderr}")
        return r

    def start(self):
        self.run([f"{PG_BIN}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E",
                  "UTF8", "--no-sync"])
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on "
                "-c synchronous_commit=on -c max_connections=300 -c shared_buffers=512MB "
                "-c max_wal_size=4GB -c min_wal_size=2GB -c checkpoint_timeout=15min")
        self.run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "pg.log"),
                  "-o", opts, "-w", "-t", "120", "start"])
        self.warm_wal()
        return self

    def warm_wal(self):
        """A server that has been running reuses its old WAL segments; a new cluster creates
        and zero-fills each one (16 MB). Under the benchmarks' ~4 MB of WAL per second that
        stalled every commit of every connection for 35-40 ms every ~4 s, which showed up as
        the tail of the latency runs. ~600 MB of WAL and a checkpoint leave that many
        segments to recycle (min_wal_size keeps them), as on a server in service."""
        self.psql("CREATE TABLE sluice_bench_wal AS SELECT g, repeat('x', 2000) AS pad "
                  "FROM generate_series(1, 300000) g")
        self.psql("DROP TABLE sluice_bench_wal")
        self.psql("CHECKPOINT")

    def stop(self):
        try:
            self.run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"])
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql, db="postgres", timeout=600):
        r = subprocess.run([f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                            "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {r.stderr}")
        return r.stdout.strip()

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def fresh_db(self, name):
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)


class Nginx:
    """nginx answering every request with 200 "ok" (delay_ms > 0: after that many ms, via
    the echo module's echo_sleep, so the receiver is latency-bound like a real ERP). With
    log=True each request is logged with its arrival time ($msec), or with the fields of
    log_format (nginx variables, one line per request)."""

    def __init__(self, tmp, delay_ms=0, log=False, log_format="$msec"):
        self.tmp = os.path.join(tmp, f"nginx-{free_port()}")
        os.makedirs(self.tmp)
        self.port = free_port()
        self.access = os.path.join(self.tmp, "access.log")
        body = (f'echo_sleep {delay_ms / 1000.0:.3f}; echo "ok";' if delay_ms
                else 'return 200 "ok";')
        access = (f"log_format t '{log_format}'; access_log {self.access} t;" if log
                  else "access_log off;")
        modules = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
        with open(os.path.join(self.tmp, "nginx.conf"), "w") as f:
            f.write(f"""
{f"load_module {modules};" if delay_ms else ""}
daemon off; worker_processes 1; pid {self.tmp}/nginx.pid; error_log {self.tmp}/error.log;
events {{ worker_connections 8192; }}
http {{
  {access}
  client_body_temp_path {self.tmp}/body; proxy_temp_path {self.tmp}/proxy;
  fastcgi_temp_path {self.tmp}/fcgi; uwsgi_temp_path {self.tmp}/uwsgi;
  scgi_temp_path {self.tmp}/scgi;
  keepalive_requests 10000000; keepalive_timeout 120s;
  server {{ listen 127.0.0.1:{self.port} backlog=4096;
    location / {{ client_body_buffer_size 64k; {body} }} }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-c", os.path.join(self.tmp, "nginx.conf"), "-p",
                                      self.tmp, "-e", os.path.join(self.tmp, "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.port, proc=self.proc)
        if log:
            open(self.access, "w").close()  # the readiness probe is not a delivery
            os.kill(self.proc.pid, signal.SIGUSR1)  # reopen the log

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def lines(self):
        try:
            with open(self.access) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def count(self):
        try:
            with open(self.access, "rb") as f:
                return f.read().count(b"\n")
        except OSError:
            return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wrk(url, secs, conns=64, script=None, env=None, threads=2):
    """Runs wrk; returns (requests per second, non-2xx count or None, raw output)."""
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--timeout", "60s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True,
                         env=dict(os.environ, **(env or {}))).stdout
    rate, bad = None, None
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rate = float(line.split()[1])
        if line.startswith("non2xx="):
            bad = int(line.split("=")[1])
    if rate is None:
        raise RuntimeError("wrk: " + out)
    return rate, bad, out


def storage_limit(url, secs, *args):
    """Runs bench's storage_limit; returns its JSON object."""
    r = subprocess.run([limit_bin(), url, str(secs), *[str(a) for a in args]],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"storage_limit failed: {r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def sqlite_checkpoint(path):
    """Folds the WAL into the database file (nothing may have it open for writing)."""
    subprocess.run(["sqlite3", path, "PRAGMA wal_checkpoint(TRUNCATE);"], check=True,
                   capture_output=True)


def publish_backlog(api, n, batch=1000, threads=4, entity=lambda i: f"ORD-{i}", payload=420):
    """Publishes n events (batches, several connections); returns events per second."""
    note = "x" * payload

    def body(lo, hi):
        return '{"events":[' + ",".join(
            '{"type":"order.created","entity_id":"%s","payload":{"n":%d,"note":"%s"}}'
            % (entity(i), i, note) for i in range(lo, hi)) + "]}"

    chunks = [(lo, min(lo + batch, n)) for lo in range(0, n, batch)]
    lock = threading.Lock()
    errors = []

    def worker():
        a = Api(api.port, api.token)
        while True:
            with lock:
                if not chunks or errors:
                    return
                lo, hi = chunks.pop()
            st, got = a.call("POST", "/v1/events", raw=body(lo, hi))
            if st != 202:
                errors.append((st, got))
                return

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError(f"publishing failed: {errors[0]}")
    return n / (time.monotonic() - t0)


def emit(obj):
    """The benchmark's result: one JSON object, the last line of stdout."""
    print(json.dumps(obj), flush=True)
