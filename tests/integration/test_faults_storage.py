"""Fault injection, storage and the process itself (issue 17 §3), under load: publishers keep
sending batches (client ids, retried when refused) and a webhook receiver takes the
deliveries while

- PostgreSQL is stopped (immediate shutdown) and started again under the running server:
  while it is gone every request that needs it is a 503 with Retry-After, nothing is
  half-written (each batch is stored whole or not at all), and the server recovers on its
  own when it returns;
- SQLite's disk fills up: the data directory on a small tmpfs filled to the last byte
  (needs root for the mount), or, where no tmpfs can be mounted, the server's file-size
  limit (RLIMIT_FSIZE, lowered with prlimit under the running process; writes past it fail
  with EFBIG as they fail with ENOSPC on a full disk). 503 while full, recovery when space
  returns;
- the process reaches its open-file limit (RLIMIT_NOFILE lowered with prlimit) while
  clients hold hundreds of connections: no crash, and once they let go the API answers and
  deliveries go on;
- clients hold every connection --max-connections allows: the next one waits in the backlog
  (the server neither spins nor drops it) and is answered once one lets go.

After each: the server never restarted, every acknowledged event is stored exactly once and
delivered at least once, and it holds no more file descriptors than before."""

import os
import resource
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

from conftest import (ALL_PERMS, PG_BIN, SANITIZED, Postgres, Server, assert_problem,
                      make_key, make_tenant, wait_for)
from fault_helpers import Publisher, fd_targets, fds, wait_fds


MAX_IN_FLIGHT = 8
# Descriptors a server may hold after a fault beyond what it held before: the webhook
# engine's keep-alive connections to the receiver (at most max_in_flight) and a read
# connection (database and WAL) of a thread that had not read before.
SLACK = MAX_IN_FLIGHT + 4


def setup_stream(srv, rcv):
    make_tenant(srv, "acme")
    key = make_key(srv, "acme", ALL_PERMS)
    st, _, body = srv.request("POST", "/v1/integrations", {
        "id": "erp", "events": ["order"], "ordering": "none", "max_in_flight": MAX_IN_FLIGHT,
        "target": {"type": "webhook", "url": rcv.url("/erp")}}, token=key)
    assert st == 201, body
    return key


def stored_client_ids(srv):
    """client_id -> count, read through the database's own client."""
    sql = "SELECT client_id, count(*) FROM events WHERE tenant_id = 'acme' GROUP BY client_id"
    if srv.db is None:
        con = sqlite3.connect(os.path.join(srv.data_dir, "sluice.db"), timeout=30)
        try:
            return dict(con.execute(sql).fetchall())
        finally:
            con.close()
    r = subprocess.run([f"{PG_BIN}/psql", srv.db, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {c: int(n) for c, n in (line.split("|") for line in r.stdout.splitlines() if line)}


def check_after(srv, pub, rcv):
    """Nothing half-written, every acknowledged event stored once and delivered."""
    stored = stored_client_ids(srv)
    assert all(n == 1 for n in stored.values()), "an event stored twice"
    tried = set(pub.acked) | set(pub.refused)
    for b in tried:
        have = [k for k in range(pub.batch) if f"{pub.tag}-{b}-{k}" in stored]
        assert len(have) in (0, pub.batch), f"batch {b} half-written: {len(have)} events"
        if b in pub.acked:
            assert len(have) == pub.batch, f"acknowledged batch {b} not stored"
    ids = pub.ids()
    assert len(ids) == len(set(ids))
    want = set(ids)

    def delivered():
        got = {r.headers.get("webhook-id") for r in rcv.got("/erp") if r.answer == 200}
        return want <= got
    wait_for(delivered, 120, 0.2, what=f"{len(want)} acknowledged events delivered")
    assert srv.running() and srv.exit_codes == [], srv.exit_codes


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_stopped_and_restarted_under_load(tmp_path, receiver):
    pg = Postgres()
    srv = None
    pub = None
    try:
        pg.start()
        pg.psql("CREATE DATABASE faults")
        srv = Server(tmp_path / "data", db=pg.url("faults"),
                     args=["--allow-private-targets", "--time-scale", "100", "--lease", "2s"])
        srv.start()
        key = setup_stream(srv, receiver)
        pub = Publisher(srv, key, threads=3).start()
        pub.wait_acked(15)
        base = fd_targets(srv)
        pg.run([f"{PG_BIN}/pg_ctl", "-D", pg.data, "-m", "immediate", "-w", "stop"])
        try:
            os.waitpid(pg.pid, 0)
        except ChildProcessError:
            pass
        gone = time.monotonic()
        refused = lambda: sum(1 for v in pub.refused.values() for st in v if st == 503)
        wait_for(lambda: refused() >= 5, 30, what="publishes refused with 503")
        # Reads and writes alike: a 503 problem with Retry-After, never a partial answer.
        for method, path, body in [("POST", "/v1/events", {"type": "order.created",
                                                             "entity_id": "X"}),
                                   ("GET", "/v1/events", None),
                                   ("GET", "/v1/integrations/erp", None),
                                   ("POST", "/v1/alerts", {"event": "order.import_failed",
                                                           "message": "m"})]:
            assert_problem(srv.request(method, path, body, token=key), 503)
        assert srv.request("GET", "/readyz")[0] == 503
        assert srv.request("GET", "/healthz")[0] == 200
        time.sleep(max(0, 3 - (time.monotonic() - gone)))  # gone for a while, under load
        opts = (f"-p {pg.port} -k {pg.dir} -c listen_addresses=127.0.0.1 -c fsync=on "
                "-c max_connections=200")
        r = pg.run([f"{PG_BIN}/pg_ctl", "-D", pg.data, "-l", pg.log, "-o", opts, "-w", "start"])
        assert r.returncode == 0, r.stderr
        with open(os.path.join(pg.data, "postmaster.pid")) as f:
            pg.pid = int(f.readline())
        wait_for(lambda: srv.request("GET", "/readyz")[0] == 200, 30, what="readyz again")
        n = len(pub.acked)
        pub.wait_acked(n + 15, 60, "batches acknowledged after PostgreSQL came back")
        pub.stop()
        check_after(srv, pub, receiver)
        wait_fds(srv, base, SLACK)
    finally:
        if pub:
            pub.stop()
        code = srv.stop() if srv and srv.running() else 0
        pg.stop()
    assert not SANITIZED or code == 0, f"sluice exited with {code} (sanitizer report?)"


# --------------------------------------------------------------------------- disk full


class Tmpfs:
    def __init__(self, path, size_mb):
        self.path = str(path)
        os.makedirs(self.path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                            self.path], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the fsize case "
                        "covers a full disk")

    def fill(self):
        """Writes a ballast file until the file system is full (the server's own files may
        have filled it already: then not even the ballast's inode fits)."""
        try:
            with open(os.path.join(self.path, "ballast"), "wb") as f:
                while True:
                    f.write(b"\0" * (1 << 16))
                    f.flush()
        except OSError:
            pass
        # Leave nothing: SQLite's own spare pages could otherwise absorb a few commits.
        try:
            with open(os.path.join(self.path, "ballast2"), "wb") as f:
                while True:
                    f.write(b"\0" * 512)
                    f.flush()
        except OSError:
            pass

    def free(self):
        for f in ("ballast", "ballast2"):
            try:
                os.remove(os.path.join(self.path, f))
            except FileNotFoundError:
                pass

    def unmount(self):
        subprocess.run(["umount", self.path], capture_output=True)


def wal_size(srv):
    total = 0
    for f in os.listdir(srv.data_dir):
        if f.startswith("sluice.db"):
            total = max(total, os.path.getsize(os.path.join(srv.data_dir, f)))
    return total


@pytest.mark.parametrize("mechanism", ["tmpfs", "fsize"])
def test_sqlite_disk_full_then_space_returns(tmp_path, receiver, mechanism):
    fs = Tmpfs(tmp_path / "mnt", 64) if mechanism == "tmpfs" else None
    data = (tmp_path / "mnt" / "data") if fs else (tmp_path / "data")
    srv = Server(data, args=["--allow-private-targets", "--time-scale", "100"])
    pub = None
    try:
        srv.start()
        key = setup_stream(srv, receiver)
        pub = Publisher(srv, key, threads=2, batch=50).start()
        pub.wait_acked(10)
        base = fd_targets(srv)
        if fs:
            fs.fill()
        else:  # files may not grow past their size now (EFBIG, SIGXFSZ ignored by sluice)
            limit = wal_size(srv)
            resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE,
                             (limit, resource.RLIM_INFINITY))  # soft: may be raised again
        # Commits that still find room (the WAL reuses its file) are acknowledged, and they
        # are checked below like every other; then publishing is refused.
        refused = lambda: sum(1 for v in pub.refused.values() for st in v if st == 503)
        wait_for(lambda: refused() >= 5 or not srv.running(), 60,
                 what="publishes refused with 503 on a full disk")
        assert srv.running(), f"the server died on a full disk ({srv.proc.returncode})"
        assert_problem(srv.request("POST", "/v1/events", {"type": "order.created",
                                                          "entity_id": "X"}, token=key), 503)
        assert srv.running()
        time.sleep(1)
        if fs:
            fs.free()
        else:
            resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        n = len(pub.acked)
        pub.wait_acked(n + 10, 60, "batches acknowledged once space returned")
        pub.stop()
        check_after(srv, pub, receiver)
        wait_fds(srv, base, SLACK)
    finally:
        if pub:
            pub.stop()
        if srv.running():
            srv.stop()
        if fs:
            fs.unmount()


# --------------------------------------------------------------------------- open files


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def test_open_file_limit(start_server, db, receiver):
    srv = start_server(db=db, args=["--allow-private-targets", "--time-scale", "100"])
    key = setup_stream(srv, receiver)
    pub = Publisher(srv, key, threads=2, pause=0.05).start()
    try:
        pub.wait_acked(10)
        base = fd_targets(srv)
        limit = len(base) + 24
        hard = resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE)[1]
        resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, (limit, hard))
        # Clients take every descriptor the server has left, and more.
        held = []
        for _ in range(300):
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", srv.port))
            except OSError:
                s.close()
                continue
            held.append(s)
        wait_for(lambda: fds(srv) >= limit - 2, 15, what="the server at its limit")
        t0, c0 = time.monotonic(), cpu_seconds(srv.proc.pid)
        time.sleep(2)
        busy = (cpu_seconds(srv.proc.pid) - c0) / (time.monotonic() - t0)
        assert srv.running(), "the server died at its open-file limit"
        # A new connection is refused or left waiting; either way no answer and no crash.
        try:
            st = srv.request("GET", "/healthz", timeout=2)[0]
        except OSError:
            st = None
        assert st in (None, 200), st
        for s in held:
            s.close()
        wait_for(lambda: srv.request("GET", "/healthz", timeout=2)[0] == 200, 30,
                 what="the API answering again")
        resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, (hard, hard))
        n = len(pub.acked)
        pub.wait_acked(n + 5, 60, "batches acknowledged after the connections closed")
        pub.stop()
        check_after(srv, pub, receiver)
        wait_fds(srv, base, SLACK)
        assert busy < 0.9, f"the server spins at its open-file limit ({busy:.0%} of a core)"
    finally:
        pub.stop()


def test_connection_limit(start_server):
    srv = start_server(args=["--max-connections", "4"])
    held = []
    try:
        for _ in range(4):  # keep-alive connections, each answered once so it is counted
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200"), "a held connection was not served"
            held.append(s)
        waiting = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        waiting.settimeout(1)
        t0, c0 = time.monotonic(), cpu_seconds(srv.proc.pid)
        with pytest.raises(socket.timeout):
            waiting.recv(4096)  # the fifth waits: the server is at its limit
        time.sleep(1)
        busy = (cpu_seconds(srv.proc.pid) - c0) / (time.monotonic() - t0)
        assert busy < 0.2, f"the server spins at its connection limit ({busy:.0%} of a core)"
        held.pop().close()
        waiting.settimeout(10)
        assert waiting.recv(4096).startswith(b"HTTP/1.1 200"), "the waiting client was not served"
        waiting.close()
        assert srv.request("GET", "/healthz")[0] == 200
    finally:
        for s in held:
            s.close()
