// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Virtual hosts and mod_bff's sites: servers whose BFF directives are all
// equal (inherited or repeated) run on one site, built once at start-up: one
// key ring, one session store, one provider cache per child. A virtual host
// that sets any BFF directive differently gets its own.
//   - site A: the main server; C: a virtual host that inherits everything;
//     D: one that changes BFFSessionIdleTimeout; E: one with another
//     BFFCryptoKey (same origin and client: only the key tells them apart).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { COOKIE, useEnv } from './lib/env.js';
import { freePort, REPO } from './lib/httpd.js';

const portC = await freePort();
let portD = await freePort();
while (portD === portC) portD = await freePort();
let portE = await freePort();
while (portE === portC || portE === portD) portE = await freePort();
const originE = `https://localhost:${portE}`;
const originC = `https://localhost:${portC}`;
const originD = `https://localhost:${portD}`;

function vhost(port, lines) {
    return [
        `Listen 127.0.0.1:${port}`,
        `<VirtualHost 127.0.0.1:${port}>`,
        ...lines.map((l) => `    ${l}`),
        '    <Location /bff>',
        '        SetHandler bff',
        '    </Location>',
        '</VirtualHost>',
    ];
}

const env = useEnv({
    httpd: {
        extraServer: [...vhost(portC, []), ...vhost(portD, ['BFFSessionIdleTimeout 5m']),
            ...vhost(portE, ['BFFCryptoKey another-key-of-at-least-32-bytes-here'])],
    },
});

test('start-up says which virtual hosts share a site, and only those', () => {
    const log = env.httpd.errorLog();
    assert.match(log, new RegExp(`BFF00160: virtual host 127\\.0\\.0\\.1:${portC} \\(\\S+:\\d+\\) has the same mod_bff settings as the main server`));
    assert.doesNotMatch(log, new RegExp(`BFF00160: virtual host 127\\.0\\.0\\.1:${portD} `), 'D sets a directive of its own');
    assert.doesNotMatch(log, new RegExp(`BFF00160: virtual host 127\\.0\\.0\\.1:${portE} `), 'E has its own key');
});

/** First line of a command's output (the version tools print). */
function out(cmd, ...args) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.split('\n')[0].trim();
}

function escapeRe(s) {
    return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('start-up names the module version (configure.ac) and the library versions, once for all virtual hosts', () => {
    const version = /AC_INIT\(\[mod_bff\],\s*\[([^\]]+)\]/
        .exec(fs.readFileSync(path.join(REPO, 'configure.ac'), 'utf8'))[1];
    const lines = env.httpd.errorLines().filter((l) => l.includes('BFF00170: '));
    assert.equal(lines.length, 1, `one start-up line for four servers:\n${lines.join('\n')}`);
    const [line] = lines;
    assert.match(line, /:notice\]/);
    assert.match(line, new RegExp(`BFF00170: mod_bff/${escapeRe(version)} started \\(`));
    // The versions this machine's tools report for the same libraries.
    const openssl = out('openssl', 'version').split(' ').slice(0, 2).join(' '); // "OpenSSL 3.0.x"
    const curl = /libcurl\/(\S+)/.exec(out('curl', '--version'))[1];
    const expected = [`${openssl} `, `libcurl ${curl},`, `jansson ${out('pkg-config', '--modversion', 'jansson')},`,
        `APR ${out('apr-1-config', '--version')},`, `APR-util ${out('apu-1-config', '--version')})`];
    for (const e of expected) assert.ok(line.includes(e), `${e} in ${line}`);
});

test('one provider cache per child for the servers of one site', async () => {
    const before = env.provider.discoveryCalls;
    for (let i = 0; i < 12; i += 1) {
        for (const origin of [env.siteOrigin, originC]) {
            const r = await env.client().get(`${origin}/bff/login`);
            assert.equal(r.status, 302, r.body);
        }
    }
    // httpd runs 2 children here; each fetches the discovery document once
    // for the site, not once per virtual host.
    assert.ok(env.provider.discoveryCalls - before <= 2,
        `${env.provider.discoveryCalls - before} discovery fetches for 24 logins on 2 virtual hosts of one site`);
});

test('a session of the shared site is one session on both; D keeps its own idle timeout, E its own key', async () => {
    const { client } = await env.login();
    const cookie = client.jar.get(COOKIE, env.url('/')).value;
    const headers = { 'X-CSRF': '1' };
    for (const origin of [env.siteOrigin, originC]) {
        const u = await env.client().get(`${origin}/bff/user`, { headers, cookie: `${COOKIE}=${cookie}` });
        assert.equal(u.status, 200, `${origin}: ${u.body}`);
        assert.ok(JSON.parse(u.body).idleExpiresIn > 300, 'the default idle timeout (30 minutes)');
    }
    const e = await env.client().get(`${originE}/bff/user`, { headers, cookie: `${COOKIE}=${cookie}` });
    assert.equal(e.status, 401, `a session sealed under A's key is none under E's: ${e.body}`);
    const d = await env.client().get(`${originD}/bff/user`, { headers, cookie: `${COOKIE}=${cookie}` });
    assert.equal(d.status, 200, d.body);
    assert.ok(JSON.parse(d.body).idleExpiresIn <= 300, `D's idle timeout is 5 minutes: ${d.body}`);
});
