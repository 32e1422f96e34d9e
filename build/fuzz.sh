#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# libFuzzer targets for the parsers of the httpd-free core (test/fuzz/).
#
#   build/fuzz.sh [TARGET|all] [SECONDS]   build, then fuzz TARGET (or each target
#                                          in turn) for SECONDS each (default 60)
#   build/fuzz.sh --replay [TARGET|all]    build, then run every input of the seed
#                                          corpus once (build/test.sh does this)
#   build/fuzz.sh --build                  build only
#   build/fuzz.sh --list                   the target names
#
# Built with clang (-fsanitize=fuzzer,address,undefined, every UBSan report
# fatal) out of tree in _build-fuzz/, not through automake. Fuzzing reads the
# seeds in test/fuzz/corpus/TARGET/ and writes what it finds to
# _build-fuzz/corpus/TARGET/ (never into the repository); crashes land in
# _build-fuzz/artifacts/TARGET/. Fuzzing runs at nice 19, one process per
# target. Environment: CC (default clang), FUZZ_JOBS (parallel compiles, 2).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=$ROOT/_build-fuzz
FUZZ=$ROOT/test/fuzz
CC=${CC:-clang}
[[ $CC == *clang* ]] || CC=clang

# Largest input per target (-max_len): about the largest real input, with room.
declare -A MAX_LEN=(
    [fuzz_cookie]=8192
    [fuzz_url]=4096
    [fuzz_query]=8192
    [fuzz_jws]=16384
    [fuzz_jwks]=16384
    [fuzz_oidc]=16384
    [fuzz_session]=16384
    [fuzz_shm]=16384
    [fuzz_memcache]=4096
    [fuzz_claims]=16384
)

targets() {
    local f
    for f in "$FUZZ"/fuzz_*.c; do
        basename "$f" .c
    done
}

die() { echo "build/fuzz.sh: $*" >&2; exit 2; }

flags() {
    local inc=""
    inc+=" $(apr-1-config --includes) $(apu-1-config --includes 2>/dev/null || true)"
    inc+=" $(pkg-config --cflags openssl libcurl jansson 2>/dev/null || true)"
    if command -v apxs >/dev/null 2>&1; then
        inc+=" -I$(apxs -q INCLUDEDIR)"
    fi
    CFLAGS_COMMON="-std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wno-unused-parameter \
        -fsanitize=address,undefined -fno-sanitize-recover=all \
        -I$ROOT/src -I$FUZZ $(apr-1-config --cppflags) $inc"
    LIBS="$(apu-1-config --link-ld --libs 2>/dev/null || echo -laprutil-1) \
        $(apr-1-config --link-ld --libs) \
        $(pkg-config --libs openssl libcurl jansson 2>/dev/null || echo -lssl -lcrypto -lcurl -ljansson) \
        -lpthread"
}

# Core objects once (instrumented for coverage), then one binary per target.
build() {
    command -v "$CC" >/dev/null || die "clang not found (build/deps.sh installs it)"
    flags
    mkdir -p "$OUT/obj"
    # Two fuzz.sh may run at once (one per core): one builds at a time.
    exec 8>"$OUT/.build.lock"
    flock 8
    local src obj objs=() pids=() t n=0
    for src in "$ROOT"/src/bff_*.c; do
        obj=$OUT/obj/$(basename "$src" .c).o
        objs+=("$obj")
        if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$0" -nt "$obj" ] \
            || [ -n "$(find "$ROOT/src" -name '*.h' -newer "$obj" -print -quit)" ]; then
            # shellcheck disable=SC2086
            $CC $CFLAGS_COMMON -fsanitize=fuzzer-no-link -c "$src" -o "$obj" &
            pids+=($!)
            n=$((n + 1))
            if [ "$n" -ge "${FUZZ_JOBS:-2}" ]; then
                wait "${pids[0]}"; pids=("${pids[@]:1}"); n=$((n - 1))
            fi
        fi
    done
    for t in "${pids[@]}"; do wait "$t"; done
    rm -f "$OUT/libbffcore.a"
    ar rcs "$OUT/libbffcore.a" "${objs[@]}"
    for t in $(targets); do
        # shellcheck disable=SC2086
        $CC $CFLAGS_COMMON -fsanitize=fuzzer "$FUZZ/$t.c" "$OUT/libbffcore.a" $LIBS \
            -o "$OUT/$t.new"
        mv -f "$OUT/$t.new" "$OUT/$t"
    done
    flock -u 8
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

check_target() {
    [ -f "$FUZZ/$1.c" ] || die "no such target: $1 (one of: $(targets | tr '\n' ' '))"
}

# Run every seed once; any crash, leak or sanitizer report fails.
replay() {
    local sel=$1 t files total=0 ntargets=0 failed=()
    for t in $(targets); do
        [ "$sel" = all ] || [ "$sel" = "$t" ] || continue
        mapfile -t files < <(find "$FUZZ/corpus/$t" -type f 2>/dev/null | sort)
        ntargets=$((ntargets + 1))
        [ "${#files[@]}" -gt 0 ] || { echo "$t: no seeds in test/fuzz/corpus/$t" >&2; failed+=("$t"); continue; }
        if ! "$OUT/$t" -runs=1 -timeout=10 -rss_limit_mb=2048 "${files[@]}" >"$OUT/replay-$t.log" 2>&1; then
            failed+=("$t")
            tail -n 60 "$OUT/replay-$t.log" >&2
        fi
        total=$((total + ${#files[@]}))
    done
    if [ "${#failed[@]}" -ne 0 ]; then
        echo "fuzz replay: FAIL in ${failed[*]} ($ntargets targets, $total inputs; logs in _build-fuzz/replay-*.log)"
        return 1
    fi
    echo "fuzz replay: $ntargets targets, $total inputs, no crash or sanitizer report"
}

# Fuzz one target; prints "target: seconds, execs, cov, ft, crashes".
fuzz_one() {
    local t=$1 secs=$2 log=$OUT/fuzz-$t.log rc
    mkdir -p "$OUT/corpus/$t" "$OUT/artifacts/$t"
    echo "== $t: fuzzing ${secs}s (max_len ${MAX_LEN[$t]:-4096}; log ${log#"$ROOT"/})"
    local t0=$SECONDS
    set +e
    nice -n 19 "$OUT/$t" -max_len="${MAX_LEN[$t]:-4096}" -max_total_time="$secs" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$t/" "$OUT/corpus/$t" "$FUZZ/corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    RESULTS+=("$(summarise "$t" "$((SECONDS - t0))" "$log" "$rc")")
    [ "$rc" -eq 0 ] || tail -n 40 "$log" >&2
}

summarise() {
    local t=$1 secs=$2 log=$3 rc=$4 execs last cov ft crashes
    execs=$(awk '/stat::number_of_executed_units/{print $2}' "$log" | tail -n1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n1 || true)
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
    crashes=$(find "$OUT/artifacts/$t" -type f | wc -l)
    printf '%-14s %6ss  execs %-10s cov %-6s ft %-6s artifacts %s%s\n' "$t" "$secs" \
        "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crashes" "$([ "$rc" -eq 0 ] || echo "  (exit $rc)")"
}

case "${1:-all}" in
    --list) targets; exit 0 ;;
    --build) build; echo "built: $(targets | tr '\n' ' ')in _build-fuzz/"; exit 0 ;;
    --replay)
        sel=${2:-all}
        [ "$sel" = all ] || check_target "$sel"
        build
        replay "$sel"
        exit $? ;;
    -*) die "unknown option $1" ;;
esac

sel=${1:-all}
secs=${2:-60}
[[ $secs =~ ^[0-9]+$ ]] || die "SECONDS must be a number"
[ "$sel" = all ] || check_target "$sel"
build
RESULTS=()
for t in $(targets); do
    [ "$sel" = all ] || [ "$sel" = "$t" ] || continue
    fuzz_one "$t" "$secs"
done
echo
echo "== fuzz results (cov = edges covered, ft = features)"
printf '%s\n' "${RESULTS[@]}"
