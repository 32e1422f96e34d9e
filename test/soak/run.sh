#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# The soak under faults (test/soak/README.md): three httpd nodes with mod_bff
# (two on memcached, one on shm), simulated users, and a memcached restart, a
# 20 s provider outage and a graceful restart during the run. Loopback only.
# Not part of build/test.sh.
#
#   bash test/soak/run.sh [seconds]       default $SOAK_SECONDS or 600
#
# Module: $BFF_MODULE if set, else _build/.libs/mod_bff.so of this checkout,
# built out of tree (as build/test.sh does) when it is missing.
# Runs under nice -n 10. Exit status: 0 pass, 1 an invariant failed, 2 the
# harness could not run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
SECONDS_ARG=${1:-${SOAK_SECONDS:-600}}
case $SECONDS_ARG in
    ''|*[!0-9]*) echo "usage: bash test/soak/run.sh [seconds >= 60]" >&2; exit 2 ;;
esac

for tool in node memcached; do
    command -v "$tool" >/dev/null 2>&1 || { echo "soak: $tool is missing (bash build/deps.sh)" >&2; exit 2; }
done
[ -x /usr/sbin/apache2 ] || { echo "soak: apache2 is missing (bash build/deps.sh)" >&2; exit 2; }
if [ ! -d "$ROOT/test/node_modules/oidc-provider" ]; then
    echo "soak: installing the test provider's packages (npm ci in test/)"
    (cd "$ROOT/test" && npm ci --no-audit --no-fund)
fi

if [ -z "${BFF_MODULE:-}" ]; then
    BFF_MODULE=$ROOT/_build/.libs/mod_bff.so
    if [ ! -f "$BFF_MODULE" ]; then
        echo "soak: building mod_bff in _build/"
        [ -x "$ROOT/configure" ] || (cd "$ROOT" && autoreconf -fi)
        mkdir -p "$ROOT/_build"
        [ -f "$ROOT/_build/Makefile" ] || (cd "$ROOT/_build" && "$ROOT/configure" -q --enable-werror)
        nice -n 10 make -C "$ROOT/_build" -s -j"${JOBS:-2}"
    fi
fi
[ -f "$BFF_MODULE" ] || { echo "soak: no module at $BFF_MODULE" >&2; exit 2; }
export BFF_MODULE

# The run ends by itself; the timeout only bounds a harness that hangs.
exec nice -n 10 timeout --kill-after=15 $((SECONDS_ARG + 300)) \
    node "$ROOT/test/soak/soak.js" "$SECONDS_ARG"
