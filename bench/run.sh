#!/usr/bin/env bash
# `make bench`: runs the benchmarks and writes bench/results/<UTC date and time>.json with
# the machine, the commit and every figure next to the baseline measured in the same run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=${BENCH_SECONDS:-10}
out="$here/results/$(date -u +%Y%m%dT%H%M%SZ).json"
mkdir -p "$here/results"
ingest=$(bash "$here/ingest.sh" "$secs")
/usr/bin/python3 - "$ingest" "$out" <<'PY'
import json, os, platform, subprocess, sys
ingest = json.loads(sys.argv[1])
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                        text=True).stdout.strip()
with open("/proc/cpuinfo") as f:
    model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
report = {
    "machine": {"cpus": os.cpu_count(), "cpu": model, "kernel": platform.release()},
    "commit": commit,
    "ingest": {"sqlite": ingest},
}
with open(sys.argv[2], "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps(report, indent=2))
print("written to", sys.argv[2])
PY
