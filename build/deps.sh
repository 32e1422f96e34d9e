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
    clang libclang-rt-14-dev clang-format valgrind
    debhelper dpkg-dev  # build/package.sh; dh_apache2 comes with apache2-dev
)

# Libraries the module and the tests load at run time. Debian's packages ask
# only for a minimum version of a shared library, so apt installs an apache2
# built against libssl3 3.0.22 next to a preinstalled 3.0.19 (mod_ssl then
# logs AH01882 at every start). These, and every library the test binaries
# link against, are brought up to the archive's version.
RUNTIME_LIBS=(libssl3 openssl libcurl4 libjansson4 libapr1 libaprutil1 libcmocka0)
LINKED_BINARIES=(
    /usr/sbin/apache2 /usr/lib/apache2/modules/*.so /usr/bin/memcached
    /usr/bin/openssl /usr/bin/curl /usr/lib/chromium/chromium
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

APT_UPDATED=no

# apt-get update once per run, and only when an install or upgrade needs it.
apt_update() {
    [ "$APT_UPDATED" = no ] || return 0
    local log
    log=$(mktemp)
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "apt-get update failed"
    fi
    rm -f "$log"
    APT_UPDATED=yes
}

apt_install() {
    local log
    apt_update
    log=$(mktemp)
    # apt's progress output is noise; show it only when it fails.
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "$@" >"$log" 2>&1; then
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

# The installed package that owns a file (usrmerge: /lib and /usr/lib are one).
owner_of() {
    local f=$1
    { dpkg -S "$f" 2>/dev/null || dpkg -S "/usr$f" 2>/dev/null ||
      dpkg -S "${f#/usr}" 2>/dev/null; } | head -n 1 | cut -d: -f1
}

linked_packages() {
    local f
    for f in $(ldd "${LINKED_BINARIES[@]}" 2>/dev/null | awk '/=> \//{print $3}' | sort -u); do
        owner_of "$f"
    done | sort -u
}

# Upgrade the runtime libraries that are older than the archive's (see
# RUNTIME_LIBS), and say which ones changed. apt's lists are refreshed first
# unless this run already did, so "older" means older than the archive today.
runtime_libraries() {
    local pkgs=() p plan
    for p in "${RUNTIME_LIBS[@]}" $(linked_packages); do
        is_installed "$p" && pkgs+=("$p")
    done
    [ "${#pkgs[@]}" -gt 0 ] || return 0
    # Lists refreshed in the last 6 hours are recent enough to compare with.
    if ! find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -360 2>/dev/null |
            grep -q .; then
        apt_update
    fi
    plan=$(apt-get -s install --only-upgrade --no-install-recommends "${pkgs[@]}" 2>/dev/null |
           awk '/^Inst /{gsub(/[][()]/, "", $3); gsub(/[()]/, "", $4); print $2 " " $3 " -> " $4}')
    [ -n "$plan" ] || return 0
    say "upgrading runtime libraries older than the packages built against them:"
    printf '%s\n' "$plan" | sed 's/^/deps:   /'
    apt_install --only-upgrade "${pkgs[@]}"
}

debian_packages
runtime_libraries
node_and_npm
node_modules
