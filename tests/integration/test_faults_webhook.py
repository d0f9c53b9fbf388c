"""Fault injection, webhook receivers (issue 17 §3): receivers that trickle their answer, send
a huge body, redirect, never answer, close without answering, or fail, while events keep
coming. Each fault lasts until at least three attempts hit it, then the receiver answers
200: every acknowledged event must then be delivered, the server must still answer the API
while the fault lasts, keep its memory (a 50 MiB answer is read, not kept), follow no
redirect, and hold no more connections afterwards than its connection pool allows. Both
databases."""

import time

import pytest

from conftest import SANITIZED, wait_for
from fault_helpers import fds, rss_mb

FAULTS = {
    "trickle": "trickle",                        # 200 whose body crawls past the timeout
    "huge": ("huge", 500, 50 << 20),             # a 500 with a 50 MiB body
    "redirect": None,                            # 307 to another path (set in the test)
    "hang": "hang",                              # no answer at all
    "close": "close",                            # the connection closed, no answer
    "500": (500, {}, "upstream exploded"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_webhook_receiver_fault_then_recovery(stream, fault):
    s = stream(args=["--time-scale", "1000", "--webhook-timeout", "1s"])
    srv, rcv = s.server, s.rcv
    s.create("erp", ordering="none", max_in_flight=8)
    behaviour = FAULTS[fault] or (307, {"Location": rcv.url("/elsewhere")})
    # Warm up first: every thread has opened its database connection, the engine its pool.
    warm = s.publish([{"type": "order.created", "entity_id": f"W{i}"} for i in range(8)])
    s.wait_status("erp", warm, "success")
    for _ in range(20):
        srv.request("GET", "/v1/integrations/erp/events?limit=1", token=s.key)
    base_fds, base_rss = fds(srv), rss_mb(srv)
    rcv.set("/erp", behaviour)
    seen = len(rcv.got("/erp"))
    ids = s.publish([{"type": "order.created", "entity_id": f"O{i}"} for i in range(20)])
    rcv.wait("/erp", seen + 3, timeout=30, what=f"attempts meeting the {fault} fault")
    # The API answers while deliveries struggle.
    t0 = time.monotonic()
    assert srv.request("GET", "/v1/integrations/erp", token=s.key)[0] == 200
    assert time.monotonic() - t0 < 2, "the API waits on the failing receiver"
    more = s.publish([{"type": "order.created", "entity_id": f"P{i}"} for i in range(10)])
    rcv.set("/erp", 200)
    s.wait_status("erp", ids + more, "success", timeout=60)
    delivered = {r.headers.get("webhook-id") for r in rcv.got("/erp") if r.answer == 200}
    assert set(ids + more) <= delivered
    assert srv.running()
    faulty = [r for r in rcv.got("/erp") if r.answer != 200]
    assert len(faulty) >= 3, faulty
    if fault == "redirect":
        assert rcv.got("/elsewhere") == [], "a redirect was followed"
    if fault in ("huge", "500"):
        # Each faulty attempt failed: a 500 (its body cut to an excerpt), or, when 50 MiB take
        # longer than --webhook-timeout to arrive, a timeout.
        att = s.attempts("erp", faulty[0].headers["webhook-id"])
        failed = [a for a in att if a["status"] != 200]
        assert failed and all(a["status"] == 500 or (a["status"] is None and a["error"])
                              for a in failed), att
        for a in failed:
            assert len(a.get("response_body") or "") <= 1024, a  # an excerpt (BODY_KEEP)
    if fault == "huge" and not SANITIZED:
        assert rss_mb(srv) < base_rss + 40, (base_rss, rss_mb(srv))
    # Connections of the failed attempts are gone: what may stay open besides the warm state
    # is the rest of the keep-alive pool (at most max_in_flight to this receiver).
    wait_for(lambda: fds(srv) <= base_fds + 8, 15, what=f"fds back near {base_fds}")
