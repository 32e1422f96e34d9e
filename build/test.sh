#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Build and test mod_bff the way CI does (.ci/run execs this):
#   0. static checks (build/static-checks.sh: clang-format, banned calls, log
#      tags, config merge), in seconds, before anything is built
#   1. unit tests (cmocka) built with ASan + UBSan, out of tree in _build-asan/
#      then every fuzz seed corpus (test/fuzz/corpus/) replayed once under
#      ASan + UBSan by the libFuzzer targets, built with clang in _build-fuzz/
#   2. the module built normally with --enable-werror in _build/; the release
#      tarball (make dist, its listing checked) and the Debian package built
#      from it, installed into this machine's httpd, a login through it, purged;
#      then the integration tests (node --test, real httpd + provider + browser).
# Exits non-zero on any failure and ends with one summary line.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
JOBS=${JOBS:-2}
START=$(date +%s)
STAGE=setup
STATIC_SUMMARY="static checks: not run"
UNIT_SUMMARY="unit: not run"
FUZZ_SUMMARY="fuzz replay: not run"
INTEG_SUMMARY="integration: not run"
PKG_SUMMARY="package: not run"

summary() {
    local rc=$? secs=$(( $(date +%s) - START ))
    if [ "$rc" -eq 0 ]; then
        printf '\n== build/test.sh: PASS (%s; %s; %s; %s) in %ss\n' "$STATIC_SUMMARY" \
            "$UNIT_SUMMARY; $FUZZ_SUMMARY" "$PKG_SUMMARY" "$INTEG_SUMMARY" "$secs"
    else
        printf '\n== build/test.sh: FAIL in stage "%s" (%s; %s; %s; %s) after %ss, exit %s\n' \
            "$STAGE" "$STATIC_SUMMARY" "$UNIT_SUMMARY; $FUZZ_SUMMARY" "$PKG_SUMMARY" "$INTEG_SUMMARY" "$secs" "$rc"
    fi
}
trap summary EXIT

step() { STAGE=$1; printf '\n== %s\n' "$1"; }

# An in-tree configure blocks out-of-tree builds ("source directory already
# configured"); its outputs are all generated, so clean them.
clean_in_tree() {
    if [ -f "$ROOT/config.status" ]; then
        echo "note: in-tree build found; running 'make distclean' so the out-of-tree builds can configure"
        if [ -f "$ROOT/Makefile" ]; then
            make -C "$ROOT" -s distclean >/dev/null 2>&1 || true
        fi
        rm -f "$ROOT/config.status"
    fi
}

# configure into $1 with the remaining arguments (always re-run: autoreconf just
# regenerated configure, and a stale cache would hide configure.ac changes).
configure_in() {
    local dir=$1; shift
    mkdir -p "$dir"
    (cd "$dir" && "$ROOT/configure" -q "$@")
}

# automake's test-suite.log holds the log of every test that did not pass.
print_unit_logs() {
    local dir=$1 f
    if [ -f "$dir/test-suite.log" ]; then
        echo "---- ${dir#"$ROOT"/}/test-suite.log ----"
        cat "$dir/test-suite.log"
        return 0
    fi
    for f in "$dir"/test/unit/*.log; do
        [ -f "$f" ] || continue
        echo "---- ${f#"$ROOT"/} ----"
        cat "$f"
    done
}

unit_counts() {
    awk '/^# TOTAL:/{t=$3} /^# PASS:/{p=$3} END{if (t != "") printf "%s/%s passed", p, t; else printf "no result"}' "$1"
}

step "dependencies"
bash build/deps.sh

# ---- 0. static checks (seconds) ---------------------------------------------
step "static checks (build/static-checks.sh)"
static_log=$(mktemp)
set +e
bash build/static-checks.sh 2>&1 | tee "$static_log"
static_rc=${PIPESTATUS[0]}
set -e
STATIC_SUMMARY=$(tail -n 1 "$static_log")
rm -f "$static_log"
if [ "$static_rc" -ne 0 ]; then
    exit 1
fi

step "autoreconf"
clean_in_tree
areconf_log=$(mktemp)
if ! autoreconf -fi >"$areconf_log" 2>&1; then
    cat "$areconf_log" >&2
    rm -f "$areconf_log"
    exit 1
fi
rm -f "$areconf_log"

# ---- 1. unit tests under ASan + UBSan ---------------------------------------
step "unit tests (ASan+UBSan, _build-asan/)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
configure_in _build-asan --enable-werror --enable-sanitizers
if ! make -C _build-asan -s -j"$JOBS" check >_build-asan/check.out 2>&1; then
    cat _build-asan/check.out
    print_unit_logs "$ROOT/_build-asan"
    UNIT_SUMMARY="unit: $(unit_counts _build-asan/check.out), FAILED"
    exit 1
fi
# Per-test PASS lines and automake's result block (# TOTAL/# PASS/...).
cat _build-asan/check.out
UNIT_SUMMARY="unit: $(unit_counts _build-asan/check.out)"

# ---- 1b. fuzz corpora, replayed (no fuzzing) ---------------------------------
# Each libFuzzer target runs every input of its seed corpus once, crashers
# found earlier included; a crash, leak, hang or sanitizer report fails.
step "fuzz corpus replay (ASan+UBSan, _build-fuzz/)"
mkdir -p _build-fuzz
if ! bash build/fuzz.sh --replay >_build-fuzz/replay.out 2>&1; then
    cat _build-fuzz/replay.out
    FUZZ_SUMMARY="$(tail -n1 _build-fuzz/replay.out)"
    exit 1
fi
FUZZ_SUMMARY="$(tail -n1 _build-fuzz/replay.out)"
echo "$FUZZ_SUMMARY"

# ---- 2. module + integration tests ---------------------------------------
step "module build (_build/)"
configure_in _build --enable-werror
make -C _build -s -j"$JOBS"
MODULE=$ROOT/_build/.libs/mod_bff.so
[ -f "$MODULE" ] || { echo "module not built: $MODULE" >&2; exit 1; }
echo "module: ${MODULE#"$ROOT"/}"

# ---- 2a. release tarball and Debian package ----------------------------------
# make dist and the tarball's listing (build/check/dist.sh); BFF_DISTCHECK=1
# runs make distcheck instead (about 75 s more: another build, the unit tests,
# install/uninstall). The .deb is built from that tarball (build/package.sh:
# the module compiled once more, without the unit tests), then
# test/package/ installs it into this machine's httpd (dpkg -i, a2enmod bff),
# runs a login through the installed module and purges it. About 35 s.
step "release tarball and Debian package (_build/, _build-deb/)"
rm -f _build/mod_bff-*.tar.xz
dist_target=dist
if [ "${BFF_DISTCHECK:-0}" = 1 ]; then dist_target=distcheck; fi
if ! make -C _build -s "$dist_target" >_build/dist.out 2>&1; then
    cat _build/dist.out
    PKG_SUMMARY="package: make $dist_target FAILED"
    exit 1
fi
tarball=$(ls _build/mod_bff-*.tar.xz)
bash build/check/dist.sh "$tarball" || { PKG_SUMMARY="package: tarball listing FAILED"; exit 1; }
if ! deb=$(bash build/package.sh "$ROOT/$tarball"); then
    PKG_SUMMARY="package: dpkg-buildpackage FAILED"
    exit 1
fi
echo "package: ${deb#"$ROOT"/}"
pkg_log=_build-deb/package-test.out
set +e
BFF_DEB=$deb timeout --kill-after=15 300 \
    node --test --test-concurrency=1 test/package/ 2>&1 | tee "$pkg_log"
pkg_rc=${PIPESTATUS[0]}
set -e
PKG_SUMMARY="make $dist_target, package: $(awk '/^# tests /{t=$3} /^# pass /{p=$3} END{if (t != "") printf "%s/%s passed", p, t; else printf "no result"}' "$pkg_log")"
if [ "$pkg_rc" -ne 0 ]; then
    PKG_SUMMARY="$PKG_SUMMARY, FAILED (exit $pkg_rc)"
    exit 1
fi

step "integration tests (node --test test/integration/)"
# The node runner's summary (# tests/# pass/# fail ...) stays in the output for CI.
integ_log=_build/integration.out
set +e
BFF_MODULE=$MODULE timeout --kill-after=15 "${INTEG_TIMEOUT:-900}" \
    node --test --test-concurrency=1 test/integration/ 2>&1 | tee "$integ_log"
integ_rc=${PIPESTATUS[0]}
set -e
INTEG_SUMMARY="integration: $(awk '/^# tests /{t=$3} /^# pass /{p=$3} END{if (t != "") printf "%s/%s passed", p, t; else printf "no result"}' "$integ_log")"
if [ "$integ_rc" -eq 124 ]; then
    echo "integration tests timed out after ${INTEG_TIMEOUT:-900}s" >&2
fi
if [ "$integ_rc" -ne 0 ]; then
    INTEG_SUMMARY="$INTEG_SUMMARY, FAILED (exit $integ_rc)"
    exit 1
fi

# ---- 3. the same integration suite with the module under ASan+UBSan ---------
# httpd itself is not instrumented, so the ASan runtime is preloaded; any
# sanitizer report fails the test whose httpd produced it. This pass runs the
# prefork MPM (the first ran event), so both process models are covered.
step "integration tests with the ASan+UBSan module (_build-asan/), prefork MPM"
ASAN_MODULE=$ROOT/_build-asan/.libs/mod_bff.so
make -C _build-asan -s -j"$JOBS"
asan_log=_build-asan/integration.out
set +e
BFF_MPM=prefork BFF_MODULE=$ASAN_MODULE BFF_ASAN_PRELOAD=$(gcc -print-file-name=libasan.so) \
    timeout --kill-after=15 "${INTEG_TIMEOUT:-900}" \
    node --test --test-concurrency=1 test/integration/ 2>&1 | tee "$asan_log"
asan_rc=${PIPESTATUS[0]}
set -e
INTEG_SUMMARY="$INTEG_SUMMARY; ASan+prefork: $(awk '/^# tests /{t=$3} /^# pass /{p=$3} END{if (t != "") printf "%s/%s passed", p, t; else printf "no result"}' "$asan_log")"
if [ "$asan_rc" -ne 0 ]; then
    INTEG_SUMMARY="$INTEG_SUMMARY, FAILED (exit $asan_rc)"
    exit 1
fi
STAGE="done"
