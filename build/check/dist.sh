#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Check a release tarball's listing (tar tJf): it holds the sources, the
# generated files a user needs to run ./configure (configure, Makefile.in,
# aclocal.m4, build/aux/, build/m4/, build/bff_config.h.in) and debian/, and
# no node_modules, build outputs or generated headers.
#   build/check/dist.sh mod_bff-<version>.tar.xz
# In a git checkout, also every file that git ignores (a build or test output)
# fails unless it is one of those generated files; a file git does not know
# yet is reported, not failed (a release is made from a clean checkout).
set -euo pipefail

tarball=$(realpath "${1:?usage: build/check/dist.sh TARBALL}")
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
version=$(sed -n 's/^AC_INIT(\[mod_bff\], *\[\([^]]*\)\].*/\1/p' configure.ac)
prefix="mod_bff-$version/"
fail=0
bad() { printf 'dist: %s\n' "$*" >&2; fail=1; }

listing=$(tar -tJf "$tarball") || { echo "dist: cannot list $tarball" >&2; exit 1; }
files=$(printf '%s\n' "$listing" | grep -v '/$' | sed "s|^$prefix||")
n=$(printf '%s\n' "$files" | wc -l)
outside=$(printf '%s\n' "$listing" | grep -v "^$prefix" || true)
[ -z "$outside" ] || bad "entries outside $prefix: $(echo "$outside" | head -n 3 | tr '\n' ' ')"

# Build outputs and generated files that must never ship.
forbidden='(^|/)node_modules(/|$)|(^|/)\.libs/|(^|/)\.deps/|\.(o|lo|la|so|a|log|trs)$'
forbidden+='|^build/bff_config\.h$|(^|/)stamp-h[0-9]*$|^config\.(status|log)$|^libtool$|^Makefile$'
forbidden+='|(^|/)autom4te\.cache/|^_build|^\.run/|^bench/work/|^test/unit/test_[a-z_]+$'
hits=$(printf '%s\n' "$files" | grep -E "$forbidden" || true)
[ -z "$hits" ] || bad "build outputs in the tarball:"$'\n'"$(echo "$hits" | head -n 20 | sed 's/^/  /')"

for f in configure configure.ac Makefile.in Makefile.am aclocal.m4 build/bff_config.h.in \
    build/aux/install-sh build/aux/ltmain.sh mod_bff.c src/bff_version.c LICENSE README.md \
    debian/control debian/rules debian/changelog debian/bff.load debian/bff.conf; do
    printf '%s\n' "$files" | grep -qxF "$f" || bad "missing from the tarball: $f"
done

generated='^(configure|Makefile\.in|aclocal\.m4|build/bff_config\.h\.in|build/aux/.*|build/m4/.*)$'
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Those already reported left out (git stops at a path under a symlink).
    files=$(printf '%s\n' "$files" | grep -Ev "$forbidden" || true)
    ignored=$(printf '%s\n' "$files" | grep -Ev "$generated" | git check-ignore --stdin --no-index 2>/dev/null || true)
    [ -z "$ignored" ] || bad "files git ignores (outputs) in the tarball:"$'\n'"$(echo "$ignored" | head -n 20 | sed 's/^/  /')"
    untracked=$(printf '%s\n' "$files" | grep -Ev "$generated" | while read -r f; do
        git ls-files --error-unmatch -- "$f" >/dev/null 2>&1 || echo "$f"; done)
    [ -z "$untracked" ] || printf 'dist: note: not in git yet (shipped): %s\n' "$(echo "$untracked" | tr '\n' ' ')" >&2
fi

if [ "$fail" -ne 0 ]; then
    echo "dist: FAIL ($tarball, $n files)" >&2
    exit 1
fi
echo "dist: $(basename "$tarball"): $n files, no build outputs or generated headers"
