#!/usr/bin/env bash
# `make bench`: runs every benchmark of DESIGN.md's performance targets and writes
# bench/results/<UTC date and time>.json (every key DESIGN.md lists, each figure next to the
# limit measured in the same run), plus .md (the table) and .svg (charts) next to it.
# Every peer (PostgreSQL, nginx, s3rver, Alertmanager) is started by the benchmarks
# themselves; `make bench` installs them first (scripts/deps.sh --bench).
#
# Scenarios (BENCH_ONLY, space-separated; default all):
#   ingest      SQLite: trivial handler, single and batched publishes, storage limit
#   ingest_pg   the same on PostgreSQL
#   grown       SQLite, on a database grown to BENCH_GROWN_EVENTS events first
#   grown_pg    the same on PostgreSQL
#   reads       the console's reads on the grown SQLite database (with grown: same run)
#   webhook     delivery to nginx (1 and 10 integrations), wrk raw POST, lifecycle limit,
#               latency at 1,000 events/s
#   webhook_pg  delivery and its lifecycle limit on PostgreSQL
#   s3          S3 uploads against curl PUTs of the same objects
#   alerting    alerts with 10 policies, the alert storage limit, Alertmanager
#   backlog     BENCH_BACKLOG_EVENTS pending deliveries: RSS, restart to first delivery
#   scaleout    1, 2, 3 nodes on one PostgreSQL to a 20 ms receiver; fail-over time
# Environment: BENCH_SECONDS (each measurement's duration, default 10), BENCH_GROWN_EVENTS
# (default 1000000), BENCH_BACKLOG_EVENTS (default 1000000), BENCH_WEBHOOK_EVENTS (default
# 100000), BENCH_OUT (results file; default bench/results/<UTC>.json).
# A benchmark that fails is recorded as {"error": ...}; the others still run; the exit
# status is then 1.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export SLUICE_BIN=${SLUICE_BIN:-$here/../build/sluice}
export STORAGE_LIMIT_BIN=${STORAGE_LIMIT_BIN:-$(dirname "$SLUICE_BIN")/storage_limit}
secs=${BENCH_SECONDS:-10}
grown=${BENCH_GROWN_EVENTS:-1000000}
backlog=${BENCH_BACKLOG_EVENTS:-1000000}
wh_events=${BENCH_WEBHOOK_EVENTS:-100000}
only=${BENCH_ONLY:-ingest ingest_pg grown grown_pg reads webhook webhook_pg s3 alerting backlog scaleout}
out=${BENCH_OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ).json}
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
py=/usr/bin/python3
has() { case " $only " in *" $1 "*) return 0 ;; esac; return 1; }

# run NAME CMD...: the last line of CMD's stdout (one JSON object) goes to $tmp/NAME.json,
# the load average before and after to $tmp/NAME.load.
run() {
    local name=$1
    shift
    has "$name" || return 0
    echo "bench: $name ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    cut -d' ' -f1-3 /proc/loadavg >"$tmp/$name.load"
    local t0=$SECONDS
    if "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" && tail -n 1 "$tmp/$name.out" |
        $py -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; then
        tail -n 1 "$tmp/$name.out" >"$tmp/$name.json"
    else
        status=1
        echo "bench: $name failed:" >&2
        tail -n 20 "$tmp/$name.err" >&2
        tail -n 5 "$tmp/$name.err" | $py -c \
            'import json,sys; print(json.dumps({"error": sys.stdin.read().strip()}))' \
            >"$tmp/$name.json"
    fi
    cut -d' ' -f1-3 /proc/loadavg >>"$tmp/$name.load"
    echo "$((SECONDS - t0))" >"$tmp/$name.secs"
}

run ingest $py "$here/ingest.py" --db sqlite --seconds "$secs"
run ingest_pg $py "$here/ingest.py" --db postgres --seconds "$secs"
if has grown; then
    if has reads; then
        run grown $py "$here/ingest.py" --db sqlite --seconds "$secs" --grown "$grown" --reads
    else
        run grown $py "$here/ingest.py" --db sqlite --seconds "$secs" --grown "$grown"
    fi
elif has reads; then
    run reads $py "$here/ingest.py" --db sqlite --grown "$grown" --reads --no-load
fi
run grown_pg $py "$here/ingest.py" --db postgres --seconds "$secs" --grown "$grown"
run webhook $py "$here/webhook.py" --db sqlite --seconds "$secs" --events "$wh_events"
run webhook_pg $py "$here/webhook.py" --db postgres --seconds "$secs" --events "$wh_events"
run s3 $py "$here/s3_rate.py"
run alerting $py "$here/alerting.py" --seconds "$secs"
run backlog $py "$here/backlog.py" --events "$backlog" --seconds "$secs"
run scaleout $py "$here/scaleout.py" --seconds "$secs"

$py "$here/report.py" assemble "$tmp" "$out" "$secs" || status=1
exit $status
