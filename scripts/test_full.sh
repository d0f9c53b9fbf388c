#!/usr/bin/env bash
# What `make test-full` runs: `make test`, then what does not fit CI's time: the unit and
# integration suites under ASan+UBSan (make asan) and under ThreadSanitizer (make tsan), the
# 100-round crash soak (make soak), the 30-minute memory soak (make soak-memory) and every
# fuzz target for FUZZ_FULL_SECONDS each (make fuzz). Keeps going when one fails, prints one
# line per part at the end, exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

summary=()
status=0
part() { # part NAME COMMAND...
    local name=$1
    shift
    echo "== $name"
    if "$@"; then
        summary+=("$name: ok")
    else
        summary+=("$name: FAILED")
        status=1
    fi
}

part test bash scripts/test.sh
part asan make asan
part tsan make tsan
part soak make soak
part soak-memory make soak-memory
part fuzz make fuzz FUZZ_SECONDS="${FUZZ_FULL_SECONDS:-120}"

echo
echo "== summary"
for l in "${summary[@]}"; do echo "$l"; done
exit "$status"
