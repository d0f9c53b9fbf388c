#!/usr/bin/env bash
# Ingest benchmark (SQLite): wrk against /healthz (the HTTP library's trivial handler,
# the baseline), single-event publishes and 100-event batches, all in one run, 64
# connections. Prints a JSON object with rates and ratios; the caller stores it.
# Usage: bench/ingest.sh [seconds]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SLUICE_BIN:-$here/../build/sluice}
secs=${1:-10}
conns=${CONNS:-64}
dir=$(mktemp -d)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=bench-$RANDOM$RANDOM
"$bin" serve --data-dir "$dir" --listen 127.0.0.1:$port --admin-token "$token" \
    --log-level warn >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
url=http://127.0.0.1:$port
curl -sf -XPOST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "$url/v1/admin/tenants" -d '{"id":"bench","name":"Bench"}' >/dev/null
key=$(curl -sf -XPOST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "$url/v1/admin/tenants/bench/keys" -d '{"name":"bench","permissions":["events:publish"]}' |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

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
stored=$(sqlite3 "$dir/sluice.db" "SELECT COUNT(*) FROM events" 2>/dev/null || echo null)

/usr/bin/python3 - "$trivial" "$single" "$batch_req" "$single_bad" "$batch_bad" "$stored" <<'PY'
import json, sys
trivial, single, batch_req = map(float, sys.argv[1:4])
single_bad, batch_bad = int(sys.argv[4] or 0), int(sys.argv[5] or 0)
batch_events = batch_req * 100
print(json.dumps({
    "trivial_handler_req_per_s": round(trivial),
    "single_events_per_s": round(single),
    "batch_events_per_s": round(batch_events),
    "single_ratio": round(single / trivial, 3),
    "batch_ratio_to_trivial_req": round(batch_req / trivial, 3),
    "non_202": {"single": single_bad, "batch": batch_bad},
    "events_stored": None if sys.argv[6] == "null" else int(sys.argv[6]),
}))
PY
