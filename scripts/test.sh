#!/usr/bin/env bash
# What `make test` runs after `make deps`: build, then every suite (unit, the unit suite
# under valgrind, integration on SQLite and PostgreSQL with the fault-injection suites and a
# 10-round crash soak, browser, fuzz smoke, lint). Keeps going when a suite fails, prints one closing line per
# suite at the end, and exits non-zero if any suite failed.
set -uo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
summary=()
status=0

echo "== build"
# One make for both (parallel); if it fails, retry each alone so one broken target does not
# hide the suites of the other.
sluice_ok=1
unit_ok=1
if ! make -j2 build/sluice build/unit; then
    make -j2 build/sluice || sluice_ok=0
    make -j2 build/unit || unit_ok=0
    status=1
    summary+=("build: FAILED")
fi

echo "== unit"
if [ "$unit_ok" -eq 1 ]; then
    ./build/unit 2>&1 | tee "$tmp/unit.out"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$tmp/unit.out" | tail -n 1)
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '^[0-9]+' || echo 0)
    f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '^[0-9]+' || echo 0)
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # crashed or no closing line
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then status=1; fi
    summary+=("unit: $p passed, $f failed")
else
    echo "unit: build/unit did not build"
    summary+=("unit: 0 passed, 1 failed")
fi

echo "== valgrind"
# The unit suite again under valgrind: no invalid access, no leak (definite or indirect).
if [ "$unit_ok" -eq 1 ]; then
    valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
        ./build/unit >"$tmp/valgrind.out" 2>&1
    rc=$?
    tail -n 5 "$tmp/valgrind.out"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$tmp/valgrind.out" | tail -n 1)
    p=$(grep -oE '^[0-9]+' <<<"$line" || echo 0)
    f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '^[0-9]+' || echo 0)
    if [ "$rc" -ne 0 ]; then
        grep -E '^==[0-9]+== ' "$tmp/valgrind.out" | head -n 40
        [ "$f" -eq 0 ] && f=1 # a valgrind error or leak fails the suite
        status=1
    fi
    summary+=("valgrind: $p passed, $f failed")
else
    summary+=("valgrind: 0 passed, 1 failed")
fi

echo "== integration"
if [ "$sluice_ok" -eq 1 ]; then
    SLUICE_BIN=$PWD/build/sluice /usr/bin/python3 -m pytest -q -rfE tests/integration 2>&1 |
        tee "$tmp/integration.out"
    rc=${PIPESTATUS[0]}
    last=$(grep -E '(passed|failed|error|no tests ran)' "$tmp/integration.out" | tail -n 1)
    p=$(grep -oE '[0-9]+ passed' <<<"$last" | grep -oE '^[0-9]+' || echo 0)
    f=$(grep -oE '[0-9]+ failed' <<<"$last" | grep -oE '^[0-9]+' || echo 0)
    e=$(grep -oE '[0-9]+ errors?' <<<"$last" | grep -oE '^[0-9]+' || echo 0)
    s=$(grep -oE '[0-9]+ skipped' <<<"$last" | grep -oE '^[0-9]+' || echo 0)
    f=$((f + e))
    # Exit 5 (no tests collected) and any crash count as a failure.
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    [ "$rc" -eq 0 ] || status=1
    summary+=("integration: $p passed, $f failed, $s skipped")
else
    echo "integration: build/sluice did not build"
    summary+=("integration: 0 passed, 1 failed")
fi

echo "== browser"
if [ "$sluice_ok" -eq 1 ]; then
    SLUICE_BIN=$PWD/build/sluice node --test --test-concurrency=1 tests/browser/ 2>&1 |
        tee "$tmp/browser.out"
    rc=${PIPESTATUS[0]}
    p=$(grep -E '^# pass [0-9]+' "$tmp/browser.out" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
    f=$(grep -E '^# fail [0-9]+' "$tmp/browser.out" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # crashed or no summary
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # no test ran
    [ "$rc" -eq 0 ] || status=1
    summary+=("browser: $p passed, $f failed")
else
    echo "browser: build/sluice did not build"
    summary+=("browser: 0 passed, 1 failed")
fi

echo "== fuzz"
# Every libFuzzer target of tests/fuzz briefly: its kept crashers and seeds first (the
# regression run), then a few seconds of new inputs (scripts/fuzz.sh smoke).
if make -j2 fuzz-build >"$tmp/fuzz-build.out" 2>&1; then
    bash scripts/fuzz.sh smoke 2>&1 | tee "$tmp/fuzz.out"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed' "$tmp/fuzz.out" | tail -n 1)
    [ -n "$line" ] || line="fuzz: 0 passed, 1 failed"
    [ "$rc" -eq 0 ] || status=1
    summary+=("$line")
else
    tail -n 30 "$tmp/fuzz-build.out"
    echo "fuzz: the fuzz targets did not build"
    status=1
    summary+=("fuzz: 0 passed, 1 failed")
fi

echo "== lint"
bash scripts/lint.sh 2>&1 | tee "$tmp/lint.out"
rc=${PIPESTATUS[0]}
line=$(grep -E '^lint: [0-9]+ passed, [0-9]+ failed' "$tmp/lint.out" | tail -n 1)
[ -n "$line" ] || line="lint: 0 passed, 1 failed"
[ "$rc" -eq 0 ] || status=1
summary+=("$line")

echo
echo "== summary"
for l in "${summary[@]}"; do echo "$l"; done
exit "$status"
