#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Replays the fresh-machine case of issue 9: libssl3/openssl older than the
# ones apache2 was built against. Downgrades them to the oldest version the
# archive still serves, runs build/deps.sh, and checks that it brought them
# back up and that httpd with mod_ssl starts without AH01882. Changes the
# machine's packages (as deps.sh does); not part of build/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
bash build/deps.sh >/dev/null
oldest=$(apt-cache madison libssl3 | awk '{print $3}' | sort -V | head -n 1)
current=$(dpkg-query -W -f='${Version}' libssl3)
if [ "$oldest" = "$current" ]; then
    echo "the archive serves no libssl3 older than $current: nothing to simulate" >&2
    exit 1
fi
echo "== downgrading libssl3, libssl-dev, openssl: $current -> $oldest"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades \
    "libssl3=$oldest" "libssl-dev=$oldest" "openssl=$oldest" >/dev/null 2>&1
echo "== build/deps.sh"
bash build/deps.sh
after=$(dpkg-query -W -f='${Version}' libssl3)
echo "== libssl3 now $after"
[ "$after" = "$current" ] || { echo "FAIL: deps.sh left libssl3 at $after" >&2; exit 1; }

dir=$(mktemp -d)
trap 'apache2 -f "$dir/httpd.conf" -k stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1
cat >"$dir/httpd.conf" <<CONF
ServerRoot /etc/apache2
ServerName localhost
PidFile $dir/httpd.pid
ErrorLog $dir/error.log
LogLevel info
Mutex file:$dir default
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
Listen 127.0.0.1:$port https
SSLEngine on
SSLCertificateFile $dir/cert.pem
SSLCertificateKeyFile $dir/key.pem
CONF
apache2 -f "$dir/httpd.conf" -k start
for _ in $(seq 50); do grep -q 'resuming normal operations' "$dir/error.log" 2>/dev/null && break; sleep 0.1; done
if grep -q AH01882 "$dir/error.log"; then
    echo "FAIL: mod_ssl still reports a library mismatch:" >&2
    grep AH01882 "$dir/error.log" >&2
    exit 1
fi
grep -q 'resuming normal operations' "$dir/error.log" || { cat "$dir/error.log" >&2; echo "FAIL: httpd did not start" >&2; exit 1; }
echo "PASS: libssl3 brought back to $after; httpd with mod_ssl starts without AH01882"
