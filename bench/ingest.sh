#!/usr/bin/env bash
# Ingest benchmark (SQLite): wrk against /healthz (the HTTP library's trivial handler,
# the baseline), single-event publishes and 100-event batches, all in one run, 64
# connections; then bench/storage_limit (the database's own rate for the same rows, 1,000
# per transaction) on a fresh file in the same directory. Each event routes to one webhook
# integration, so every publish writes an event row and a delivery row, the rows the
# storage limit writes; the node runs with --roles api, so nothing is delivered meanwhile.
# Prints a JSON object with rates and ratios; the caller stores it.
# On PostgreSQL: DB=postgres://… (an empty database for the server) and LIMIT_DB=postgres://…
# (another empty one for the storage limit); bench/pg_ingest.py sets both up.
# Usage: bench/ingest.sh [seconds]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SLUICE_BIN:-$here/../build/sluice}
limit_bin=${STORAGE_LIMIT_BIN:-$(dirname "$bin")/storage_limit}
secs=${1:-10}
conns=${CONNS:-64}
dir=$(mktemp -d)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=bench-$RANDOM$RANDOM
"$bin" serve --data-dir "$dir" --listen 127.0.0.1:$port --admin-token "$token" \
    --log-level warn --roles api --allow-private-targets ${DB:+--db "$DB"} >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
url=http://127.0.0.1:$port
curl -sf -XPOST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "$url/v1/admin/tenants" -d '{"id":"bench","name":"Bench"}' >/dev/null
key=$(curl -sf -XPOST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "$url/v1/admin/tenants/bench/keys" \
    -d '{"name":"bench","permissions":["events:publish","tools:manage"]}' |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

curl -sf -XPOST -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    "$url/v1/integrations" -d '{"id":"erp","events":["order"],"target":{"type":"webhook",
    "url":"http://127.0.0.1:9/erp","api_key":"bench-0123456789"}}' >/dev/null

rate() { # wrk output -> requests/s
    awk '/^Requests\/sec:/ {print $2}'
}
non202() { awk -F= '/^non202=/ {print $2}'; }

trivial_out=$(wrk -t2 -c$conns -d${secs}s "$url/healthz")
trivial=$(echo "$trivial_out" | rate)
single_out=$(SLUICE_KEY=$key BATCH=1 wrk -t2 -c$conns -d${secs}s -s "$here/publish.lua" "$url/v1/events")
single=$(echo "$single_out" | rate)
single_bad=$(echo "$single_out" | non202)
batch_out=$(SLUICE_KEY=$key BATCH=100 wrk -t2 -c$conns -d${secs}s -s "$here/publish.lua" "$url/v1/events")
batch_req=$(echo "$batch_out" | rate)
batch_bad=$(echo "$batch_out" | non202)
count() { # table -> rows stored by the server
    if [ -n "${DB:-}" ]; then
        /usr/lib/postgresql/15/bin/psql "$DB" -Atc "SELECT COUNT(*) FROM $1" 2>/dev/null || echo null
    else
        sqlite3 "$dir/sluice.db" "SELECT COUNT(*) FROM $1" 2>/dev/null || echo null
    fi
}
stored=$(count events)
routed=$(count deliveries)
kill $pid
wait $pid 2>/dev/null || true
limit=$("$limit_bin" "${LIMIT_DB:-sqlite:$dir/limit.db}" "$secs" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["storage_limit_events_per_s"])')

/usr/bin/python3 - "$trivial" "$single" "$batch_req" "$single_bad" "$batch_bad" "$stored" \
    "$routed" "$limit" <<'PY'
import json, sys
trivial, single, batch_req = map(float, sys.argv[1:4])
single_bad, batch_bad = int(sys.argv[4] or 0), int(sys.argv[5] or 0)
limit = float(sys.argv[8])
batch_events = batch_req * 100
def count(v):
    return None if v == "null" else int(v)
print(json.dumps({
    "trivial_handler_req_per_s": round(trivial),
    "single_events_per_s": round(single),
    "batch_events_per_s": round(batch_events),
    "storage_limit_events_per_s": round(limit),
    "single_ratio": round(single / trivial, 3),
    "batch_ratio": round(batch_events / limit, 3),
    "non_202": {"single": single_bad, "batch": batch_bad},
    "events_stored": count(sys.argv[6]),
    "deliveries_stored": count(sys.argv[7]),
}))
PY
