#!/usr/bin/python3
"""The ingest benchmark on PostgreSQL: starts a throwaway PostgreSQL 15 cluster (fsync on,
synchronous_commit on: the test suite's own set-up), makes two empty databases, and runs
bench/ingest.sh with the server on one and bench/storage_limit (COPY) on the other.

Usage: bench/pg_ingest.py SLUICE_BIN [SECONDS]
Prints ingest.sh's JSON object with "database": "postgres" added.
"""
import json
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from conftest import Postgres  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: bench/pg_ingest.py SLUICE_BIN [SECONDS]")
    bin_, secs = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "10"
    pg = Postgres()
    try:
        pg.start()
        pg.psql("CREATE DATABASE bench_server")
        pg.psql("CREATE DATABASE bench_limit")
        env = dict(os.environ, SLUICE_BIN=bin_, DB=pg.url("bench_server"),
                   LIMIT_DB=pg.url("bench_limit"))
        r = subprocess.run(["bash", os.path.join(REPO, "bench", "ingest.sh"), secs], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"ingest.sh failed ({r.returncode}):\n{r.stderr[-2000:]}")
        out = json.loads(r.stdout.strip().splitlines()[-1])
        out["database"] = "postgres"
        print(json.dumps(out))
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
