#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Run mod_bff in front of a sample single-page app and a small API, with a
# local OpenID provider, on this machine:
#   build/demo.sh           build the module, (re)start the demo
#   build/demo.sh stop      stop the demo httpd, API and provider
#   build/demo.sh status    show whether they run
#   build/demo.sh config    only write $BFF_DEMO_DIR/httpd.conf and the site
#                           (the browser test runs the demo's config this way)
# Everything lives in $BFF_DEMO_DIR (default /var/tmp/mod_bff-demo); nothing
# in /etc/apache2 or httpd's module directory is read or changed: httpd loads
# mod_bff.so from the build tree. Root is needed only to install what is
# missing: as root, start runs build/deps.sh; as another user it only checks
# that what it runs is there (BFF_DEMO_SKIP_DEPS=1 skips both).
# Settings: BFF_DEMO_PORT (8443), BFF_DEMO_PROVIDER_PORT (9443),
# BFF_DEMO_API_PORT (9080), BFF_DEMO_TOKEN_TTL (access tokens' lifetime, 60 s),
# BFF_DEMO_PUBLIC_URL (a dev server's origin in front of httpd, docs/spa.md),
# BFF_MODULE (a mod_bff.so to use instead of building one).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DEMO_DIR=${BFF_DEMO_DIR:-/var/tmp/mod_bff-demo}
PORT=${BFF_DEMO_PORT:-8443}
PROVIDER_PORT=${BFF_DEMO_PROVIDER_PORT:-9443}
API_PORT=${BFF_DEMO_API_PORT:-9080}
APACHE2=${APACHE2:-/usr/sbin/apache2}
APXS=${APXS:-apxs}
CLIENT_ID=${BFF_DEMO_CLIENT_ID:-bff-demo}
SITE_URL=https://localhost:$PORT
# The origin the browser uses: httpd itself, or a dev server that proxies
# /bff and /api to it (docs/spa.md: BFF_DEMO_PUBLIC_URL=https://localhost:5173).
PUBLIC_URL=${BFF_DEMO_PUBLIC_URL:-$SITE_URL}
PUBLIC_URL=${PUBLIC_URL%/}
PROVIDER_URL=${BFF_DEMO_PROVIDER_URL:-https://127.0.0.1:$PROVIDER_PORT}
# The API as a resource server (RFC 8707): the audience of its tokens.
API_RESOURCE=$PUBLIC_URL/api/
# Access tokens live this long, so the SPA sees a refresh within a minute.
TOKEN_TTL=${BFF_DEMO_TOKEN_TTL:-60}
MODULE=${BFF_MODULE:-}
CONF=$DEMO_DIR/httpd.conf
PROVIDER_PIDFILE=$DEMO_DIR/provider.pid
API_PIDFILE=$DEMO_DIR/api.pid
HTTPD_PIDFILE=$DEMO_DIR/httpd.pid

say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }

# Run a command quietly; on failure show its output and stop.
quiet() {
    local log rc=0
    log=$(mktemp)
    "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        cat "$log" >&2
        rm -f "$log"
        die "failed: $*"
    fi
    rm -f "$log"
}

# ---- processes ------------------------------------------------------------

# The PID from $1 if that process is alive and its command line contains $2
# (so a recycled PID never gets a signal from us).
live_pid() {
    local pidfile=$1 marker=$2 pid
    [ -f "$pidfile" ] || return 1
    pid=$(tr -cd '0-9' <"$pidfile")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
    echo "$pid"
}

stop_one() {
    local name=$1 pidfile=$2 marker=$3 pid i
    if pid=$(live_pid "$pidfile" "$marker"); then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name (pid $pid) did not stop; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

stop_demo() {
    stop_one httpd "$HTTPD_PIDFILE" "$CONF"
    stop_one api "$API_PIDFILE" api.mjs
    stop_one provider "$PROVIDER_PIDFILE" provider.js
}

status_demo() {
    local pid rc=0
    if pid=$(live_pid "$HTTPD_PIDFILE" "$CONF"); then
        say "httpd runs (pid $pid): $SITE_URL/"
    else
        say "httpd is not running"; rc=1
    fi
    if pid=$(live_pid "$PROVIDER_PIDFILE" provider.js); then
        say "provider runs (pid $pid): $PROVIDER_URL"
    else
        say "provider is not running"; rc=1
    fi
    if pid=$(live_pid "$API_PIDFILE" api.mjs); then
        say "API runs (pid $pid): http://127.0.0.1:$API_PORT/"
    else
        say "API is not running"; rc=1
    fi
    return "$rc"
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Wait until URL $1 answers over TLS with the demo CA (any HTTP status) while
# the process in pidfile $2 lives; $3 names it, $4 is its log.
wait_for() {
    local url=$1 pidfile=$2 marker=$3 name=$4 log=$5 i
    for i in $(seq 1 150); do
        if curl -sS -o /dev/null --max-time 2 --cacert "$DEMO_DIR/tls/ca.pem" "$url" 2>/dev/null; then
            return 0
        fi
        if ! live_pid "$pidfile" "$marker" >/dev/null; then
            # httpd writes its pid file a moment after it forks.
            if [ "$i" -gt 10 ] || [ "$name" = provider ]; then
                tail -n 30 "$log" >&2 || true
                die "$name exited; see $log"
            fi
        fi
        sleep 0.2
    done
    tail -n 30 "$log" >&2 || true
    die "$name did not answer at $url within 30s; see $log"
}

# ---- build ----------------------------------------------------------------

# Without root: only look for what the demo runs; build/deps.sh (as root)
# installs it.
check_tools() {
    local missing=() c
    for c in "$APACHE2" node openssl curl setsid; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    if [ -z "$MODULE" ]; then
        for c in make gcc "$APXS" autoreconf; do
            command -v "$c" >/dev/null 2>&1 || missing+=("$c")
        done
    fi
    [ -d "$ROOT/test/node_modules/oidc-provider" ] || missing+=("test/node_modules (npm ci in test/)")
    if [ "${#missing[@]}" -gt 0 ]; then
        die "missing: ${missing[*]}; run build/deps.sh as root (or build/demo.sh as root once)"
    fi
}

# Build the module out of tree; httpd loads it from there (MODULE).
build_module() {
    local builddir
    if [ -f "$ROOT/config.status" ]; then
        # A developer's in-tree build: use it as it is.
        builddir=$ROOT
    else
        builddir=$ROOT/_build
        if [ ! -x "$ROOT/configure" ]; then
            say "autoreconf"
            quiet autoreconf -fi
        fi
        if [ ! -f "$builddir/config.status" ]; then
            say "configure (${builddir#"$ROOT"/}/)"
            mkdir -p "$builddir"
            (cd "$builddir" && quiet "$ROOT/configure" -q --enable-werror)
        fi
    fi
    say "make (${builddir#"$ROOT"/})"
    make -C "$builddir" -s -j2
    MODULE=$builddir/.libs/mod_bff.so
    [ -f "$MODULE" ] || die "make did not produce $MODULE"
    say "module $MODULE"
}

# ---- files ----------------------------------------------------------------

make_tls() {
    local d=$DEMO_DIR/tls
    mkdir -p "$d"
    # Keep a CA the user may already trust in a browser, as long as the server
    # certificate is still good for a day.
    if [ -f "$d/ca.pem" ] && [ -f "$d/ca.key" ] && [ -f "$d/server.pem" ] && [ -f "$d/server.key" ] &&
        openssl x509 -in "$d/server.pem" -noout -checkend 86400 >/dev/null 2>&1 &&
        openssl verify -CAfile "$d/ca.pem" "$d/server.pem" >/dev/null 2>&1; then
        return 0
    fi
    say "creating a test CA and a certificate for localhost / 127.0.0.1 in $d"
    rm -f "$d"/*
    (
        umask 077
        quiet openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -sha256 -days 825 -subj "/CN=mod_bff demo CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$d/ca.key" -out "$d/ca.pem"
        quiet openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -subj "/CN=localhost" -keyout "$d/server.key" -out "$d/server.csr"
        printf '%s\n' \
            "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=serverAuth" \
            "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$d/server.ext"
        quiet openssl x509 -req -sha256 -days 365 -in "$d/server.csr" \
            -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
            -extfile "$d/server.ext" -out "$d/server.pem"
    )
    chmod 644 "$d/ca.pem" "$d/server.pem"
    rm -f "$d/server.csr" "$d/server.ext"
}

# Fresh secrets on every start: the store is in shared memory, so sessions do
# not survive a restart anyway.
make_secrets() {
    local d=$DEMO_DIR/secrets
    mkdir -p "$d"
    chmod 700 "$d"
    (
        umask 077
        openssl rand -hex 32 | tr -d '\n' >"$d/client-secret"
        openssl rand -base64 48 | tr -d '\n' >"$d/crypto-key"
    )
}

write_conf() {
    local user group site=$DEMO_DIR/site
    # The SPA is copied so that httpd's unprivileged children can read it
    # wherever the repository lives.
    rm -rf "$site"
    cp -R "$ROOT/build/demo/site" "$site"
    chmod -R a+rX "$site"
    if [ "$(id -u)" -eq 0 ]; then
        user=www-data group=www-data
        id www-data >/dev/null 2>&1 || user=nobody group=nogroup
    else
        user=$(id -un) group=$(id -gn)
    fi
    sed -e "s|@DEMO_DIR@|$DEMO_DIR|g" \
        -e "s|@SITE_DIR@|$site|g" \
        -e "s|@PORT@|$PORT|g" \
        -e "s|@PUBLIC_URL@|$PUBLIC_URL|g" \
        -e "s|@PROVIDER@|$PROVIDER_URL|g" \
        -e "s|@CLIENT_ID@|$CLIENT_ID|g" \
        -e "s|@MODULE@|$MODULE|g" \
        -e "s|@API_PORT@|$API_PORT|g" \
        -e "s|@API_RESOURCE@|$API_RESOURCE|g" \
        -e "s|@APACHE_MODDIR@|${APACHE_MODDIR:-$("$APXS" -q LIBEXECDIR)}|g" \
        -e "s|@USER@|$user|g" \
        -e "s|@GROUP@|$group|g" \
        "$ROOT/build/demo/httpd.conf.in" >"$CONF"
    if grep -q '@[A-Z_]*@' "$CONF"; then
        die "unreplaced placeholder in $CONF: $(grep -o '@[A-Z_]*@' "$CONF" | sort -u | tr '\n' ' ')"
    fi
}

# ---- start ----------------------------------------------------------------

start_provider() {
    local secret log=$DEMO_DIR/logs/provider.log
    [ -f "$ROOT/test/provider/provider.js" ] || die "test/provider/provider.js not found"
    secret=$(cat "$DEMO_DIR/secrets/client-secret")
    : >"$log"
    # setsid: the provider outlives this script and the terminal's Ctrl-C.
    setsid node "$ROOT/test/provider/provider.js" \
        --port "$PROVIDER_PORT" --host 127.0.0.1 \
        --cert "$DEMO_DIR/tls/server.pem" --key "$DEMO_DIR/tls/server.key" \
        --client-id "$CLIENT_ID" --client-secret "$secret" \
        --redirect-uri "$PUBLIC_URL/bff/callback" \
        --post-logout-redirect-uri "$PUBLIC_URL/" \
        --access-token-ttl "$TOKEN_TTL" --resource "$API_RESOURCE" \
        </dev/null >>"$log" 2>&1 &
    echo $! >"$PROVIDER_PIDFILE"
    wait_for "$PROVIDER_URL/.well-known/openid-configuration" "$PROVIDER_PIDFILE" provider.js \
        provider "$log"
    say "provider runs (pid $(cat "$PROVIDER_PIDFILE")): $PROVIDER_URL"
}

start_api() {
    local log=$DEMO_DIR/logs/api.log i
    : >"$log"
    setsid node "$ROOT/build/demo/api.mjs" --port "$API_PORT" </dev/null >>"$log" 2>&1 &
    echo $! >"$API_PIDFILE"
    for i in $(seq 1 50); do
        if port_in_use "$API_PORT"; then
            say "API runs (pid $(cat "$API_PIDFILE")): http://127.0.0.1:$API_PORT/"
            return 0
        fi
        live_pid "$API_PIDFILE" api.mjs >/dev/null || break
        sleep 0.2
    done
    tail -n 30 "$log" >&2 || true
    die "the API did not start; see $log"
}

# `config`: the config and site for a demo whose TLS files and secrets are
# already in $DEMO_DIR (the browser test puts its own there).
config_only() {
    if [ -z "$MODULE" ]; then
        MODULE=$ROOT/_build/.libs/mod_bff.so
        [ -f "$ROOT/config.status" ] && MODULE=$ROOT/.libs/mod_bff.so # an in-tree build
    fi
    [ -f "$MODULE" ] || die "module not found: $MODULE (set BFF_MODULE)"
    mkdir -p "$DEMO_DIR/logs" "$DEMO_DIR/run"
    write_conf
    say "wrote $CONF"
}

start_httpd() {
    local log=$DEMO_DIR/logs/error.log
    "$APACHE2" -f "$CONF" -t >/dev/null 2>"$DEMO_DIR/logs/configtest.out" || {
        cat "$DEMO_DIR/logs/configtest.out" >&2
        die "httpd configuration test failed ($CONF)"
    }
    "$APACHE2" -f "$CONF" -k start
    wait_for "$SITE_URL/" "$HTTPD_PIDFILE" "$CONF" httpd "$log"
    say "httpd runs (pid $(cat "$HTTPD_PIDFILE")): $SITE_URL/"
}

start_demo() {
    command -v node >/dev/null 2>&1 || die "node not found (build/deps.sh installs it)"

    stop_demo
    local p
    for p in "$PORT" "$PROVIDER_PORT" "$API_PORT"; do
        if port_in_use "$p"; then
            die "port $p on 127.0.0.1 is in use by another program"
        fi
    done

    if [ "${BFF_DEMO_SKIP_DEPS:-}" = 1 ]; then
        :
    elif [ "$(id -u)" -eq 0 ]; then
        # Installs what is missing (and upgrades stale runtime libraries).
        bash "$ROOT/build/deps.sh"
    else
        check_tools
    fi
    if [ -n "$MODULE" ]; then
        [ -f "$MODULE" ] || die "BFF_MODULE=$MODULE does not exist"
    else
        build_module
    fi

    mkdir -p "$DEMO_DIR/logs" "$DEMO_DIR/run"
    chmod 755 "$DEMO_DIR"
    # Each start gets fresh logs, so what is there belongs to this run.
    : >"$DEMO_DIR/logs/error.log"
    : >"$DEMO_DIR/logs/access.log"
    make_tls
    make_secrets
    write_conf
    start_provider
    start_api
    start_httpd

    local user_status
    user_status=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$DEMO_DIR/tls/ca.pem" \
        -H 'X-CSRF: 1' "$SITE_URL/bff/user" || true)
    if [ "$user_status" != 401 ]; then
        say "warning: $SITE_URL/bff/user answered $user_status without a session (expected 401);" \
            "see $DEMO_DIR/logs/error.log"
    fi

    cat <<EOF

mod_bff demo is running.

  Open      $PUBLIC_URL/$( [ "$PUBLIC_URL" = "$SITE_URL" ] || printf '\n            (your dev server, proxying /bff and /api to %s)' "$SITE_URL")
            Its certificate comes from a test CA: import $DEMO_DIR/tls/ca.pem
            into the browser (or accept the warning, on both $SITE_URL
            and the provider's login page at $PROVIDER_URL);
            curl: --cacert $DEMO_DIR/tls/ca.pem
  Log in    alice / alice-pass
  Try       "Call the API" (the API's view: a Bearer token the browser never
            saw), the call without X-CSRF (403), "Wait for a token refresh"
            (tokens live ${TOKEN_TTL}s), "Log out" (then the API answers 401)
  Module    $MODULE (loaded from the build tree)
  Logs      $DEMO_DIR/logs/error.log (LogLevel info), access.log, provider.log, api.log
  Config    $CONF
  Stop      build/demo.sh stop
EOF
}

case "${1:-start}" in
    start) start_demo ;;
    stop) stop_demo ;;
    status) status_demo ;;
    config) config_only ;;
    -h|--help|help) awk 'NR >= 4 && /^#/ { sub(/^# ?/, ""); print; next } NR >= 4 { exit }' "$0" ;;
    *) die "usage: build/demo.sh [start|stop|status|config]" ;;
esac
