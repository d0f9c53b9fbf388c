#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz (built by `make fuzz-build` under build/fuzz).
#
#   scripts/fuzz.sh smoke [TARGET...]   each target FUZZ_SMOKE_SECONDS (default 4) from a fresh
#                                       work dir: first every input of tests/fuzz/corpus/TARGET
#                                       (seeds and kept crashers: the regression run), then new
#                                       inputs. Prints "fuzz: N passed, N failed" last.
#   scripts/fuzz.sh long [TARGET...]    each target FUZZ_SECONDS (default 600) at nice 19, FUZZ_JOBS
#                                       (default 1) at a time, growing build/fuzz/corpus/TARGET
#                                       across runs; appends one line per run to
#                                       build/fuzz/stats.tsv (UTC time, target, seconds, execs,
#                                       cov, ft, corpus, result).
#   scripts/fuzz.sh report              totals per target from build/fuzz/stats.tsv.
#   scripts/fuzz.sh merge TARGET...     minimizes build/fuzz/corpus/TARGET into
#                                       tests/fuzz/corpus/TARGET (to commit what it found).
#
# A crash, a sanitizer report or a failed answer check leaves its input in
# build/fuzz/artifacts/TARGET-crash-*; keep it as tests/fuzz/corpus/TARGET/regress-<what> with
# the fix.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=${1:-smoke}
shift || true
all=()
for f in tests/fuzz/fuzz_*.c; do
    t=${f#tests/fuzz/fuzz_}
    all+=("${t%.c}")
done
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

mkdir -p build/fuzz/artifacts
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# run TARGET SECONDS WORKDIR LOG [nice]: one libFuzzer run; its exit status.
run() {
    local t=$1 secs=$2 work=$3 log=$4 prio=${5:-0}
    local bin=build/fuzz/fuzz_$t dict=tests/fuzz/dict/$t.dict
    local args=(-max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1
        -artifact_prefix="build/fuzz/artifacts/$t-" "$work")
    [ -f "$dict" ] && args=(-dict="$dict" "${args[@]}")
    [ -d "tests/fuzz/corpus/$t" ] && args+=("tests/fuzz/corpus/$t")
    mkdir -p "$work"
    nice -n "$prio" "$bin" "${args[@]}" >"$log" 2>&1
}

# stat NAME LOG: a final statistic of a run ("" when absent).
stat() {
    grep -oE "^stat::$1: *[0-9]+" "$2" | grep -oE '[0-9]+$' | tail -n 1
}
cov() { # cov LOG: "cov ft corpus" of the last status line
    grep -E '^#[0-9]+' "$1" 2>/dev/null | tail -n 1 |
        sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 \2 \3/p'
}

case "$mode" in
smoke)
    secs=${FUZZ_SMOKE_SECONDS:-4}
    passed=0
    failed=0
    for t in "${targets[@]}"; do
        if [ ! -x "build/fuzz/fuzz_$t" ]; then
            echo "fuzz: $t FAILED (build/fuzz/fuzz_$t not built)"
            failed=$((failed + 1))
            continue
        fi
        work=build/fuzz/smoke/$t
        rm -rf "$work"
        log=build/fuzz/smoke-$t.log
        if run "$t" "$secs" "$work" "$log"; then
            read -r c f n <<<"$(cov "$log")"
            echo "fuzz: $t ok ($(stat number_of_executed_units "$log") execs, cov ${c:-?}," \
                "corpus ${n:-?})"
            passed=$((passed + 1))
        else
            echo "fuzz: $t FAILED (log: $log)"
            grep -E 'ERROR|SUMMARY|fuzz: |runtime error|Test unit written' "$log" | head -n 12 |
                sed 's/^/    /'
            failed=$((failed + 1))
        fi
    done
    echo "fuzz: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    ;;
long)
    secs=${FUZZ_SECONDS:-600}
    jobs=${FUZZ_JOBS:-1}
    one() {
        local t=$1 log
        log=build/fuzz/long-$t-$(date -u +%Y%m%dT%H%M%S).log
        local start=$SECONDS
        run "$t" "$secs" "build/fuzz/corpus/$t" "$log" 19
        local rc=$?
        local took=$((SECONDS - start)) res=ok
        [ "$rc" -eq 0 ] || res=FAILED
        read -r c f n <<<"$(cov "$log")"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$took" \
            "$(stat number_of_executed_units "$log")" "${c:-}" "${f:-}" "${n:-}" "$res" \
            >>build/fuzz/stats.tsv
        echo "fuzz: $t $res after ${took}s (log: $log)"
    }
    before=$(cat build/fuzz/stats.tsv 2>/dev/null | wc -l)
    running=0
    for t in "${targets[@]}"; do
        one "$t" &
        running=$((running + 1))
        if [ "$running" -ge "$jobs" ]; then
            wait -n
            running=$((running - 1))
        fi
    done
    wait
    # Non-zero when a run of this invocation found something.
    ! tail -n +"$((before + 1))" build/fuzz/stats.tsv | awk -F'\t' '$8 != "ok"' | grep -q .
    ;;
report)
    [ -f build/fuzz/stats.tsv ] || {
        echo "no build/fuzz/stats.tsv yet"
        exit 1
    }
    awk -F'\t' '{s[$2]+=$3; e[$2]+=$4; c[$2]=$5; f[$2]=$6; n[$2]=$7; r[$2]+=($8!="ok")}
        END {printf "%-16s %8s %12s %6s %7s %7s %s\n", "target", "seconds", "execs", "cov",
             "ft", "corpus", "failed runs";
             for (t in s) printf "%-16s %8d %12d %6s %7s %7s %d\n", t, s[t], e[t], c[t], f[t],
             n[t], r[t]}' build/fuzz/stats.tsv | sort
    ;;
merge)
    for t in "${targets[@]}"; do
        mkdir -p "tests/fuzz/corpus/$t"
        build/fuzz/fuzz_"$t" -merge=1 "tests/fuzz/corpus/$t" "build/fuzz/corpus/$t" \
            >"build/fuzz/merge-$t.log" 2>&1 || echo "fuzz: merge of $t failed"
    done
    ;;
*)
    echo "usage: scripts/fuzz.sh smoke|long|report|merge [TARGET...]" >&2
    exit 2
    ;;
esac
