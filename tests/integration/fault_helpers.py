"""Helpers of the fault-injection suites (test_faults*.py): what a running server holds (open
files, resident memory, threads) read from /proc, and a publisher that keeps publishing
batches with client ids through a fault and remembers which were acknowledged."""

import http.client
import os
import threading
import time

from receiver import SLOW


def fds(srv):
    """Open file descriptors of the server process."""
    return len(os.listdir(f"/proc/{srv.proc.pid}/fd"))


def fd_targets(srv):
    """What each open descriptor of the server points at (files, socket:[n], pipes...)."""
    out = []
    d = f"/proc/{srv.proc.pid}/fd"
    for f in os.listdir(d):
        try:
            out.append(os.readlink(os.path.join(d, f)))
        except OSError:
            pass
    return sorted(out)


def wait_fds(srv, base, slack, timeout=30):
    """Waits until the server holds at most len(base) + slack descriptors (base: its
    fd_targets() before the fault); fails naming what it holds beyond base."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        now = fd_targets(srv)
        if len(now) <= len(base) + slack:
            return
        if time.monotonic() > deadline:
            extra = list(now)
            for t in base:
                if t in extra:
                    extra.remove(t)
            kinds = {}
            for t in extra:
                k = "socket" if t.startswith("socket:") else t
                kinds[k] = kinds.get(k, 0) + 1
            raise AssertionError(f"{len(now)} descriptors open, {len(base)} before the fault: "
                                 f"more than before: {kinds}")
        time.sleep(0.1)


def rss_mb(srv):
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Publisher:
    """Threads publishing batches of `batch` events (client ids "<tag>-<b>-<k>", entity
    ORD-<b % 50>) until stop(). Records, per batch, the answer it got: the ids of a 202, or
    the status of a refusal (503 must carry Retry-After), or "conn" when the connection
    failed. A refused batch is retried (same client ids) until acknowledged or stop()."""

    def __init__(self, srv, key, tag="p", threads=3, batch=20, pause=0.0):
        self.srv, self.key, self.tag, self.batch, self.pause = srv, key, tag, batch, pause
        self.lock = threading.Lock()
        self.acked = {}      # batch -> server ids
        self.refused = {}    # batch -> [status or "conn", ...]
        self.errors = []
        self.next = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def body(self, b):
        return {"events": [{"id": f"{self.tag}-{b}-{k}", "type": "order.created",
                            "entity_id": f"ORD-{b % 50}", "payload": {"b": b, "k": k}}
                           for k in range(self.batch)]}

    def run(self):
        while not self.stopping.is_set():
            with self.lock:
                b = self.next
                self.next += 1
            while not self.stopping.is_set():
                try:
                    st, h, resp = self.srv.request("POST", "/v1/events", self.body(b),
                                                   token=self.key, timeout=30)
                except (OSError, http.client.HTTPException):
                    st, h = "conn", {}
                if st == 202:
                    with self.lock:
                        self.acked[b] = resp["ids"]
                    break
                with self.lock:
                    self.refused.setdefault(b, []).append(st)
                if st == 503 and not h.get("retry-after", "").isdigit():
                    self.errors.append(f"batch {b}: 503 without Retry-After {h}")
                if st not in (503, "conn"):
                    self.errors.append(f"batch {b}: {st} {resp}")
                    return
                time.sleep(0.05)
            if self.pause:
                time.sleep(self.pause)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(60 * SLOW)

    def wait_acked(self, n, timeout=30, what="acknowledged batches"):
        deadline = time.monotonic() + timeout * SLOW
        while len(self.acked) < n:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"{len(self.acked)}/{n} {what}"
            time.sleep(0.02)

    def ids(self):
        with self.lock:
            return [i for b in sorted(self.acked) for i in self.acked[b]]
