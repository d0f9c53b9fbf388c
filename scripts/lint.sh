#!/usr/bin/env bash
# Static checks: clang-format (repo .clang-format), banned C functions, cppcheck, and the
# direction of includes between the folders of src/ (the layers).
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
#    and answers part of it as if it were all).
rc=0
mapfile -t dbfiles < <(find src -type f -name '*.c' ! -path 'src/store/db*' |
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

# 4. Layers: each folder of src/ includes only itself and the folders below it, lowest
#    first (docs/architecture.md). Folders of one rank (the engines) do not include each other.
rank_of() {
    case "$1" in
    core) echo 0 ;;
    store) echo 1 ;;
    http) echo 2 ;;
    stream) echo 3 ;;
    alert) echo 4 ;;
    deliver | notify) echo 5 ;;
    sched) echo 6 ;;
    api) echo 7 ;;
    *) echo -1 ;;
    esac
}
rc=0
for f in src/*/*.c src/*/*.h; do
    [ -e "$f" ] || continue
    from=$(basename "$(dirname "$f")")
    rf=$(rank_of "$from")
    if [ "$rf" -lt 0 ]; then
        echo "lint: $f: folder src/$from has no place in the layer order (scripts/lint.sh)"
        rc=1
        continue
    fi
    while IFS=: read -r line to; do
        [ "$to" = "$from" ] && continue
        rt=$(rank_of "$to")
        if [ "$rt" -lt 0 ] || [ "$rt" -ge "$rf" ]; then
            echo "lint: $f:$line includes $to/ (layer $rt), not below $from/ (layer $rf)"
            rc=1
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[a-z_]+/' "$f" |
        sed -E 's/^([0-9]+):.*include[[:space:]]+"([a-z_]+)\/.*/\1:\2/')
done
result layers $rc

echo "lint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
