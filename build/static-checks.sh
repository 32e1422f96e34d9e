#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Static checks (seconds; build/test.sh runs them before any build):
#   format      every C file is as clang-format (.clang-format) leaves it
#   banned      no banned C library call in mod_bff.c and src/ (build/check/banned.mjs)
#   log-tags    each BFFnnnnn tag starts one message and is documented in
#               docs/troubleshooting.md (build/check/log-tags.mjs)
#   config-merge  every directive field is merged and initialised
#               (build/check/config-merge.mjs)
# Each problem is printed as file:line: what; the last line is one summary.
# Exits non-zero when any check fails.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
passed=() failed=()

# The C files clang-format owns: everything we write, nothing generated.
c_files() {
    ls mod_bff.c src/*.[ch] test/unit/*.[ch] bench/*.c test/fuzz/*.c 2>/dev/null
}

check_format() {
    if ! command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
        echo "format: $CLANG_FORMAT not found (bash build/deps.sh installs clang-format)" >&2
        return 1
    fi
    local files
    mapfile -t files < <(c_files)
    # --dry-run --Werror prints file:line:col: error: code should be
    # clang-formatted, per difference; show the first of each file.
    local out rc
    out=$("$CLANG_FORMAT" --dry-run --Werror --ferror-limit=1 "${files[@]}" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
        echo "format: ${#files[@]} C files as clang-format leaves them"
        return 0
    fi
    printf '%s\n' "$out" | grep -E '^[^ ]+:[0-9]+:[0-9]+: ' | sed 's/ \[-Wclang-format-violations\]//' |
        sort -t: -k1,1 -u >&2
    echo "format: the files above are not formatted (first difference of each shown);" \
        "run: $CLANG_FORMAT -i \$(bash build/static-checks.sh --files)" >&2
    local version
    version=$("$CLANG_FORMAT" --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1)
    if [ "${version%%.*}" != 14 ]; then
        echo "format: note: this is clang-format $version; the style is checked with 14" \
            "(Debian 12's), and other versions may lay out some lines differently" >&2
    fi
    return 1
}

if [ "${1:-}" = --files ]; then
    c_files
    exit 0
fi

run() {
    local name=$1; shift
    if "$@" 2>&1; then passed+=("$name"); else failed+=("$name"); fi
}

run format check_format
run banned node build/check/banned.mjs
run log-tags node build/check/log-tags.mjs
run config-merge node build/check/config-merge.mjs

if [ "${#failed[@]}" -gt 0 ]; then
    echo "static checks: FAIL (${failed[*]}); passed: ${passed[*]:-none}"
    exit 1
fi
echo "static checks: PASS (${passed[*]})"
