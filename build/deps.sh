#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Install what mod_bff needs to build and test, on Debian 12. Idempotent: it
# only calls apt-get when a package is missing and npm when test/node_modules
# is missing or older than the lock file. Quiet unless something goes wrong.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(
    build-essential autoconf automake libtool pkg-config
    apache2 apache2-dev libapr1-dev libaprutil1-dev
    libssl-dev libcurl4-openssl-dev libjansson-dev libcmocka-dev
    memcached chromium openssl ca-certificates curl
    clang libclang-rt-14-dev valgrind
)

say() { printf 'deps: %s\n' "$*"; }
warn() { printf 'deps: WARNING: %s\n' "$*" >&2; }
die() { printf 'deps: ERROR: %s\n' "$*" >&2; exit 1; }

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

# Run as root directly, otherwise through sudo when it is there.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

apt_install() {
    local log
    log=$(mktemp)
    # apt's progress output is noise; show it only when it fails.
    if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
               --no-install-recommends "$@"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "apt-get failed"
    fi
    rm -f "$log"
}

debian_packages() {
    local missing=() p
    command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script expects Debian 12"
    for p in "${PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
}

node_major() {
    node -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0
}

node_and_npm() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        warn "node/npm not found; installing Debian's nodejs and npm (Node 18: the tests want Node >= 20)"
        apt_install nodejs npm
    fi
    command -v node >/dev/null 2>&1 || die "node not found"
    command -v npm >/dev/null 2>&1 || die "npm not found"
    local major
    major=$(node_major)
    if [ "$major" -lt 20 ]; then
        warn "node $(node --version) is older than 20; the integration tests may not run"
    fi
}

# npm ci when there is a lock, npm install otherwise; only when node_modules is
# missing or older than package.json / package-lock.json. npm writes
# node_modules/.package-lock.json on every install, so it serves as the stamp.
node_modules() {
    local dir=test stamp=test/node_modules/.package-lock.json
    if [ ! -f "$dir/package.json" ]; then
        warn "$dir/package.json not found; skipping npm"
        return 0
    fi
    local need=no f
    [ -f "$stamp" ] || need=yes
    for f in "$dir/package.json" "$dir/package-lock.json"; do
        if [ -f "$f" ] && [ "$f" -nt "$stamp" ]; then need=yes; fi
    done
    [ "$need" = yes ] || return 0

    local log cmd=install
    [ -f "$dir/package-lock.json" ] && cmd=ci
    say "npm $cmd in $dir/"
    log=$(mktemp)
    if ! (cd "$dir" && npm "$cmd" --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "npm $cmd failed in $dir/"
    fi
    rm -f "$log"
    # npm may leave the stamp older than a lock file it did not need to change.
    if [ -f "$stamp" ]; then touch "$stamp"; fi
}

debian_packages
node_and_npm
node_modules
