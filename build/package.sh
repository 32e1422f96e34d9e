#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Build the Debian package libapache2-mod-bff from the release tarball, the
# way a packager would: unpack mod_bff-<version>.tar.xz (debian/ is in it),
# the tarball as libapache2-mod-bff_<version>.orig.tar.xz beside it, and
# dpkg-buildpackage -us -uc there (source and binary packages, in
# _build-deb/src/). Prints the path of the .deb.
#
#   build/package.sh [TARBALL]   (default: `make dist` in a fresh _build-deb/dist)
#
# Output in _build-deb/ (OUT=dir to change). DEB_BUILD_OPTIONS defaults to
# "nocheck noddebs" (build/test.sh has run the unit tests already); set it to
# "" for a release build with the unit tests and the -dbgsym package.
# Build dependencies: debian/control (build/deps.sh installs them).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/_build-deb}
JOBS=${JOBS:-2}
export DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS-nocheck noddebs}

die() { printf 'package: ERROR: %s\n' "$*" >&2; exit 1; }

# Run a command quietly; show its output only when it fails.
quiet() {
    local log
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "failed: $*"
    fi
    rm -f "$log"
}

rm -rf "$OUT"
mkdir -p "$OUT"
tarball=${1:-}
if [ -z "$tarball" ]; then
    [ -x "$ROOT/configure" ] || quiet autoreconf -fi
    mkdir -p "$OUT/dist"
    (cd "$OUT/dist" && quiet "$ROOT/configure" -q && quiet make -s dist)
    tarball=$(ls "$OUT"/dist/mod_bff-*.tar.xz)
fi
[ -f "$tarball" ] || die "no tarball: $tarball"

mkdir -p "$OUT/src"
tar -xJf "$tarball" -C "$OUT/src"
srcdir=$(ls -d "$OUT"/src/mod_bff-*/)
[ -d "$srcdir/debian" ] || die "$tarball holds no debian/"

# Build profile nocheck as well, so cmocka and memcached need not be there.
profiles=""
case " $DEB_BUILD_OPTIONS " in *" nocheck "*) profiles="-Pnocheck" ;; esac
# The tarball is the upstream source of the Debian source package too.
debver=$(cd "$srcdir" && dpkg-parsechangelog -S Version)
ln -s "$(realpath "$tarball")" "$OUT/src/libapache2-mod-bff_${debver%-*}.orig.tar.xz"
(cd "$srcdir" && quiet dpkg-buildpackage -us -uc -j"$JOBS" $profiles)

deb=$(ls "$OUT"/src/libapache2-mod-bff_*.deb)
mv "$deb" "$OUT"/
echo "$OUT/$(basename "$deb")"
