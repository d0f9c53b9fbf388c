#!/usr/bin/env bash
# `make bench`: runs every benchmark and writes bench/results/<UTC date and time>.json with
# the machine, the commit and every figure next to the baseline measured in the same run
# (DESIGN.md, "Performance targets"): ingest on SQLite and on a throwaway PostgreSQL (each
# with its storage limit), webhook delivery
# (with wrk's raw POST rate to the same nginx), S3 uploads (with curl PUTs of the same
# bytes) and alerting (with the same alerts stored under no policy). A benchmark that fails
# is recorded as {"error": ...} and the others still run; the exit status is then 1.
# Environment: BENCH_SECONDS (default 10), BENCH_ONLY="ingest ingest_pg webhook s3 alerting".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SLUICE_BIN:-$here/../build/sluice}
secs=${BENCH_SECONDS:-10}
only=${BENCH_ONLY:-ingest ingest_pg webhook s3 alerting}
out="$here/results/$(date -u +%Y%m%dT%H%M%SZ).json"
mkdir -p "$here/results"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

# run NAME CMD...: the last line of CMD's stdout (one JSON object) goes to $tmp/NAME.json.
run() {
    local name=$1
    shift
    case " $only " in *" $name "*) ;; *) return 0 ;; esac
    echo "bench: $name" >&2
    if "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" && tail -n 1 "$tmp/$name.out" |
        /usr/bin/python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; then
        tail -n 1 "$tmp/$name.out" >"$tmp/$name.json"
    else
        status=1
        echo "bench: $name failed:" >&2
        tail -n 20 "$tmp/$name.err" >&2
        tail -n 5 "$tmp/$name.err" | /usr/bin/python3 -c \
            'import json,sys; print(json.dumps({"error": sys.stdin.read().strip()}))' \
            >"$tmp/$name.json"
    fi
}

run ingest env SLUICE_BIN="$bin" bash "$here/ingest.sh" "$secs"
run ingest_pg /usr/bin/python3 "$here/pg_ingest.py" "$bin" "$secs"
run webhook /usr/bin/python3 "$here/webhook.py" "$bin"
run s3 env SLUICE_BIN="$bin" /usr/bin/python3 "$here/s3_rate.py"
run alerting /usr/bin/python3 "$here/alerting.py" --bin "$bin" --seconds "$secs"

/usr/bin/python3 - "$tmp" "$out" <<'PY'
import json, os, platform, subprocess, sys
tmp, out = sys.argv[1], sys.argv[2]
def part(name):
    p = os.path.join(tmp, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                        text=True).stdout.strip()
with open("/proc/cpuinfo") as f:
    model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
report = {
    "machine": {"cpus": os.cpu_count(), "cpu": model, "kernel": platform.release()},
    "commit": commit,
}
ingest = {k: v for k, v in (("sqlite", part("ingest")), ("postgres", part("ingest_pg")))
          if v is not None}
if ingest:
    report["ingest"] = ingest
for name in ("webhook", "s3", "alerting"):
    got = part(name)
    if got is not None:
        report[name] = got
with open(out, "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps(report, indent=2))
print("written to", out)
PY
exit $status
