#!/usr/bin/env bash
# Installs what Sluice needs to build and test, and only what is missing.
# Idempotent and fast (< 2 s) when everything is already there.
# Usage: scripts/deps.sh [--bench]   (--bench adds what `make bench` needs: nginx, the
# webhook receiver, and Prometheus Alertmanager, the alerting comparison; linux-perf and
# valgrind, with which docs/performance.md's profiles are taken)
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential pkg-config libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev
      libsqlite3-dev libpq-dev libssl-dev zlib1g-dev postgresql-15 python3-pytest
      python3-aiosmtpd python3-yaml wrk clang-format cppcheck clang-tidy sqlite3 curl chromium
      clang libclang-rt-14-dev valgrind)
# clang + libclang-rt-14-dev: libFuzzer and the sanitizer runtimes (make fuzz, make tsan);
# valgrind: make valgrind.
# chromium: Debian's browser for the console's browser tests (playwright-core drives it; the
# tests never download a browser of their own).
[ "${1:-}" = "--bench" ] && PKGS+=(nginx-light prometheus-alertmanager linux-perf valgrind)
# Node may come from outside apt (e.g. a NodeSource build that bundles npm).
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    SUDO=()
    [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    # The postgresql package would start the system cluster; the tests run their own
    # via pg_ctl, so forbid service starts during the install (policy-rc.d exit 101).
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        trap '"${SUDO[@]}" rm -f "$policy"' EXIT
    fi
    "${SUDO[@]}" apt-get install -y -qq "${missing[@]}"
fi

if [ -f package.json ]; then
    if [ ! -d node_modules ] ||
       { [ -f package-lock.json ] && [ package-lock.json -nt node_modules ]; }; then
        echo "deps: npm ci"
        npm ci --no-audit --no-fund --loglevel=error
        touch node_modules
    fi
fi
