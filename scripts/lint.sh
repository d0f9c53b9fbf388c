#!/usr/bin/env bash
# Static checks: clang-format (repo .clang-format), banned C functions, cppcheck.
# Each check is one item; prints "lint: N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
result() { # name status
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "lint: $1 ok"
    else
        failed=$((failed + 1))
        echo "lint: $1 FAILED"
    fi
}

mapfile -t files < <(find src tests/unit tests/fuzz -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null | sort)

# 1. Formatting (never rewrites files).
rc=0
if ((${#files[@]})); then
    out=$(clang-format --style=file --dry-run --Werror "${files[@]}" 2>&1) || rc=1
    if [ "$rc" -ne 0 ]; then
        echo "lint: not clang-formatted (fix with: clang-format -i FILE):"
        grep -oE '^[^:]+\.[ch]:' <<<"$out" | sort -u | sed 's/:$//; s/^/  /'
        head -n 20 <<<"$out"
    fi
fi
result clang-format $rc

# 2. Banned functions, as calls. snprintf/vsnprintf/asprintf/fgets must not match.
rc=0
if ((${#files[@]})); then
    if grep -nE '(^|[^A-Za-z0-9_])(strcpy|strcat|sprintf|strtok|atoi|gets)[[:space:]]*\(' \
        "${files[@]}"; then
        echo "lint: banned functions used (strcpy strcat sprintf strtok atoi gets)"
        rc=1
    fi
fi
result banned-functions $rc

# 3. A storage error is never the end of the rows: db_next()'s result is kept (rc = ...) or
#    returned, never compared in place (`while (db_next(st) == ERR_OK)` ends a list early
#    and answers part of it as if it were all). src/deliver is being rebuilt (issue 14 §1)
#    and still has such loops; it joins the check when the new engine lands.
rc=0
mapfile -t dbfiles < <(find src -type f -name '*.c' ! -path 'src/deliver/*' ! -path 'src/store/db*' |
    sort)
if ((${#dbfiles[@]})); then
    if grep -nE 'db_next\(' "${dbfiles[@]}" | grep -vE '(=|return)[[:space:]]*db_next\('; then
        echo "lint: keep db_next()'s result: (rc = db_next(st)) == ERR_OK, then check rc"
        rc=1
    fi
fi
result db-next-result $rc

# 4. cppcheck.
rc=0
if [ -d src ]; then
    cppcheck --error-exitcode=1 --enable=warning,portability --inline-suppr -q \
        -Isrc --suppress=missingIncludeSystem src || rc=1
fi
result cppcheck $rc

echo "lint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
