"""Fault injection, S3 (issue 17 §3): the verifying front before s3rver (s3front.js) answers
uploads with 500 InternalError, 503 SlowDown with Retry-After, or closes the connection in
the middle of an upload's body, while events keep coming in several batches. Once the fault
clears every acknowledged event is in exactly one object (read back from s3rver with the
AWS SDK), in publish order, and the server never stopped. Both databases."""

import os
import sqlite3
import subprocess

import pytest

from conftest import PG_BIN, publish, wait_for
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


JOIN_FAULT = {
    "sqlite": ["CREATE TRIGGER inject_join_fault BEFORE UPDATE OF batch_id ON deliveries "
               "WHEN new.batch_id IS NOT NULL BEGIN SELECT RAISE(ABORT, 'injected fault'); END"],
    "postgres": ["CREATE FUNCTION inject_join_fault() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
                 "CREATE TRIGGER inject_join_fault BEFORE UPDATE OF batch_id ON deliveries "
                 "FOR EACH ROW WHEN (new.batch_id IS NOT NULL) EXECUTE FUNCTION "
                 "inject_join_fault()"],
}


def sql_exec(srv, statements):
    if srv.db is None:
        con = sqlite3.connect(os.path.join(srv.data_dir, "sluice.db"), timeout=30)
        try:
            for sql in statements:
                con.execute(sql)
            con.commit()
        finally:
            con.close()
        return
    for sql in statements:
        r = subprocess.run([f"{PG_BIN}/psql", srv.db, "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr


def test_s3_append_that_failed_is_tried_again_without_new_events(start_server, db, s3clean):
    """A batch append that fails in the database (here a trigger that refuses every join) is
    tried again on its own once the database takes it: a backlog that gets no new events
    has nothing else to wake its integration."""
    srv = serve(start_server, db, "--s3-batch-max-age", "20s")
    key = setup_tenant(srv)
    prefix = P() + "append/"
    sql_exec(srv, JOIN_FAULT["sqlite" if srv.db is None else "postgres"])
    create(srv, key, "lake", s3_target(s3clean, prefix))
    evs = [{"type": "order.created", "entity_id": f"A-{i}", "payload": {"i": i}}
           for i in range(10)]
    ids = publish(srv, key, {"events": evs})["ids"]
    wait_for(lambda: srv.output().count("cannot append to its batch") >= 2, 30, 0.1,
             what="appends refused (and tried again)")
    assert s3clean.objects(prefix) == []
    sql_exec(srv, ["DROP TRIGGER inject_join_fault" if srv.db is None
                   else "DROP TRIGGER inject_join_fault ON deliveries"])
    wait_for(lambda: all_succeeded(srv, key, "lake", len(ids)), 30, 0.2,
             what="the backlog uploaded once the database took the append")
    check_objects(s3clean.objects(prefix), prefix, "lake", ids)
    assert srv.running()
