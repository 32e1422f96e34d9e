#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# The mod_bff benchmark: plain mod_proxy vs mod_bff (shm, memcache) vs
# mod_auth_openidc (shm, memcache) on loopback, plus logins/s, the refresh
# path, store memory and size scaling, and callgrind instruction counts.
# See bench/README.md. Writes bench/results/<date>-<host>.md and latest.md.
#
#   bench/run.sh                  full run (about 15 minutes on 2 cores)
#   BENCH_QUICK=1 bench/run.sh    1 repeat of 3 s, small counts (a few minutes)
#   BENCH_VARIANTS=bff-memcache,bff-memcache-3 bench/run.sh   those variants and plain only
#
# Module: $BFF_MODULE if set, else built out of tree from this checkout into
# $BENCH_BUILD_DIR (default /tmp/mod_bff-bench-build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

need=()
for tool in wrk valgrind callgrind_annotate memcached node curl; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
[ -x /usr/sbin/apache2 ] || need+=(apache2)
[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || need+=(libapache2-mod-auth-openidc)
if [ ${#need[@]} -gt 0 ]; then
    pkgs=()
    for t in "${need[@]}"; do
        case $t in
            callgrind_annotate) pkgs+=(valgrind) ;;
            node) echo "bench: Node.js 20+ is required" >&2; exit 2 ;;
            *) pkgs+=("$t") ;;
        esac
    done
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "bench: installing ${pkgs[*]}"
        apt-get install -y "${pkgs[@]}"
    else
        echo "bench: missing ${pkgs[*]} (apt-get install -y ${pkgs[*]})" >&2
        exit 2
    fi
fi

if [ ! -d "$ROOT/test/node_modules/oidc-provider" ]; then
    echo "bench: installing the test provider's packages (npm ci in test/)"
    (cd "$ROOT/test" && npm ci --no-audit --no-fund)
fi

if [ -z "${BFF_MODULE:-}" ]; then
    BUILD=${BENCH_BUILD_DIR:-/tmp/mod_bff-bench-build}
    echo "bench: building mod_bff out of tree in $BUILD"
    if [ ! -x "$ROOT/configure" ]; then
        (cd "$ROOT" && autoreconf -fi)
    fi
    mkdir -p "$BUILD"
    if [ ! -f "$BUILD/Makefile" ]; then
        (cd "$BUILD" && "$ROOT/configure" -q)
    fi
    make -C "$BUILD" -s -j"$(nproc)" >/dev/null
    BFF_MODULE="$BUILD/.libs/mod_bff.so"
fi
[ -f "$BFF_MODULE" ] || { echo "bench: no module at $BFF_MODULE" >&2; exit 2; }
export BFF_MODULE
echo "bench: module $BFF_MODULE"

# The native per-step timings (bench/micro.c) link the module's core library,
# which libtool leaves next to the module in an out-of-tree build.
CORE="$(dirname "$BFF_MODULE")/libbffcore.a"
if [ -f "$CORE" ]; then
    MICRO="$(mktemp -d)/bench-micro"
    # shellcheck disable=SC2046
    if cc -std=gnu11 -O2 -I"$ROOT/src" $(apr-1-config --includes --cppflags) \
          $(apu-1-config --includes) "$ROOT/bench/micro.c" "$CORE" -o "$MICRO" \
          $(apu-1-config --link-ld --libs) $(apr-1-config --link-ld --libs) \
          -lcrypto -lssl -ljansson -lcurl -lpthread; then
        export BENCH_MICRO="$MICRO"
    else
        echo "bench: bench/micro.c did not build; the micro phase is skipped" >&2
    fi
else
    echo "bench: no $CORE next to the module; the micro phase is skipped" >&2
fi

exec node "$ROOT/bench/bench.mjs"
