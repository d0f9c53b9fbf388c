"""The benchmark report's merge (bench/report.py merge_base, used by BENCH_MERGE and
`report.py merge`): a pass that re-measures some scenarios keeps every figure it did not
measure from the earlier results, and records which pass each figure came from.

No server: the harness's own bookkeeping, which decides what the results file of record
says."""

import copy
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import report  # noqa: E402

BASE = {"machine": {"sections": {"webhook": "OLD", "webhook.postgres": "OLDPG",
                                 "ingest.postgres": "OLD", "s3": "OLDS3"},
                    "load_average": {"s3": [1, 1, 1]}},
        "ingest": {"postgres": {"batch_events_per_s": 1, "single_events_per_s": 2,
                                "grown": {"batch_events_per_s": 3}}},
        "webhook": {"events_per_s": 10, "p99_ms": 5,
                    "postgres": {"events_per_s": 7, "p99_ms": 9}},
        "s3": {"mb_per_s": 6}}


def merged(rep, sections):
    rep.setdefault("machine", {}).setdefault("load_average", {})
    report.merge_base(rep, sections, copy.deepcopy(BASE), "OLD")
    return rep, sections


def test_a_grown_only_pass_keeps_the_fresh_figures_and_its_own_label():
    rep, sec = merged({"ingest": {"postgres": {
        "batch_events_per_s": None, "single_events_per_s": None,
        "grown": {"batch_events_per_s": 4}}}}, {"ingest.postgres": "NEW"})
    assert rep["ingest"]["postgres"]["batch_events_per_s"] == 1
    assert rep["ingest"]["postgres"]["grown"] == {"batch_events_per_s": 4}
    assert sec["ingest.postgres"] == "OLD" and sec["ingest.postgres.grown"] == "NEW"


def test_a_pass_of_one_database_keeps_the_other_databases_webhook_figures():
    rep, sec = merged({"webhook": {"events_per_s": 11, "p99_ms": 4, "postgres": None}},
                      {"webhook": "NEW"})
    assert rep["webhook"]["events_per_s"] == 11
    assert rep["webhook"]["postgres"] == {"events_per_s": 7, "p99_ms": 9}
    assert sec["webhook"] == "NEW" and sec["webhook.postgres"] == "OLDPG"


def test_a_latency_only_pass_keeps_the_throughput_figures():
    rep, _ = merged({"webhook": {"events_per_s": None, "p99_ms": 3,
                                 "postgres": {"events_per_s": None, "p99_ms": 4}}},
                    {"webhook": "NEW"})
    assert rep["webhook"]["events_per_s"] == 10 and rep["webhook"]["p99_ms"] == 3
    assert rep["webhook"]["postgres"] == {"events_per_s": 7, "p99_ms": 4}


def test_sections_not_measured_come_whole_with_their_labels():
    rep, sec = merged({}, {})
    assert rep["s3"] == {"mb_per_s": 6} and sec["s3"] == "OLDS3"
    assert sec["webhook.postgres"] == "OLDPG"
    assert rep["machine"]["load_average"]["s3"] == [1, 1, 1]
