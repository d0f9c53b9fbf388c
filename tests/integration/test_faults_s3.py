"""Fault injection, S3 (issue 17 §3): the verifying front before s3rver (s3front.js) answers
uploads with 500 InternalError, 503 SlowDown with Retry-After, or closes the connection in
the middle of an upload's body, while events keep coming in several batches. Once the fault
clears every acknowledged event is in exactly one object (read back from s3rver with the
AWS SDK), in publish order, and the server never stopped. Both databases."""

import pytest

from conftest import publish, wait_for
from test_s3 import (P, all_succeeded, check_objects, create, s3, s3_target,  # noqa: F401
                     s3clean, serve, setup_tenant)

FAULTS = {
    "500": {"fail": [{"status": 500, "code": "InternalError", "message": "We encountered an "
                      "internal error. Please try again.", "count": 3, "method": "PUT"}]},
    "slowdown": {"fail": [{"status": 503, "code": "SlowDown", "message": "Please reduce your "
                           "request rate.", "count": 3, "method": "PUT", "retry_after": 1}]},
    "drop": {"drop": 3},
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_s3_fault_then_every_event_uploaded_once(start_server, db, s3clean, fault):
    # Batches close 0.2 s after the previous close (20 s at --time-scale 100).
    srv = serve(start_server, db, "--s3-batch-max-age", "20s")
    key = setup_tenant(srv)
    prefix = P() + "faults/"
    create(srv, key, "lake", s3_target(s3clean, prefix))
    s3clean.control(**FAULTS[fault])
    ids = []
    for r in range(4):
        evs = [{"type": "order.created", "entity_id": f"O{r}-{i}", "payload": {"r": r, "i": i}}
               for i in range(10)]
        ids += publish(srv, key, {"events": evs})["ids"]
        if r == 1:
            wait_for(lambda: any(e.get("status", 0) >= 500 or e.get("dropped")
                                 for e in s3clean.log()), 30, 0.1, what=f"the {fault} fault")
    wait_for(lambda: all_succeeded(srv, key, "lake", len(ids)), 60, 0.2,
             what="every event uploaded")
    log = s3clean.log()
    hit = [e for e in log if e.get("dropped") or e.get("status", 0) >= 500]
    assert len(hit) == 3, hit  # the whole fault was met, and retried past
    check_objects(s3clean.objects(prefix), prefix, "lake", ids)
    assert srv.running()
