// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Where a session is valid, and how many a back-channel logout reaches:
//   - two virtual hosts of one httpd (ports A and B), the same provider,
//     different BFFClientID, the same (inherited) BFFCryptoKey and the same
//     shm store: a cookie of A sent to B (browsers send cookies to every
//     port of a host name) is no session there, and B's API gets no token;
//   - more than 32 logins of one user: a logout token with only sub ends
//     every one of them (the per-sub index is pruned by expiry, not count);
//   - a session made under one BFFProvider, presented after BFFProvider
//     changed (graceful restart, same key and store): refused (BFF01306).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, test } from 'node:test';
import { signJwt, startProvider } from '../provider/provider.js';
import { COOKIE, useEnv } from './lib/env.js';
import { freePort } from './lib/httpd.js';
import { bearerOf, relayLocation, startUpstream } from './lib/upstream.js';

const EVENT = 'http://schemas.openid.net/event/backchannel-logout';

const up = await startUpstream();
after(() => up.close());
const portB = await freePort();
const originB = `https://localhost:${portB}`;

const env = useEnv({
    httpd: {
        extraModules: ['proxy', 'proxy_http'],
        extraServer: [
            ...relayLocation(up),
            // Site B: another client of the same provider; BFFCryptoKey,
            // BFFProvider, the secret and the shm store are inherited.
            `Listen 127.0.0.1:${portB}`,
            `<VirtualHost 127.0.0.1:${portB}>`,
            '    BFFClientID bff-other',
            `    BFFRedirectURI ${originB}/bff/callback`,
            '    <Location /bff>',
            '        SetHandler bff',
            '    </Location>',
            '    <Location /api/>',
            `        ProxyPass http://127.0.0.1:${up.port}/api/`,
            '        BFFTokenRelay On',
            '    </Location>',
            '</VirtualHost>',
        ],
    },
});

function cookieOf(client) {
    return client.jar.get(COOKIE, env.url('/')).value;
}

/** GET with an explicit session cookie; { status, body }. */
async function withCookie(url, cookie, headers = {}) {
    const r = await env.client().get(url, { headers: { 'X-CSRF': '1', ...headers }, cookie: `${COOKIE}=${cookie}` });
    return r;
}

let seq = 0;

test('virtual hosts sharing a key and a store: a cookie of site A is no session on site B', async () => {
    const { client } = await env.login();
    const cookie = cookieOf(client);
    const a = await withCookie(env.url('/bff/user'), cookie);
    assert.equal(a.status, 200, a.body);
    assert.equal(JSON.parse(a.body).sub, 'alice');

    const u = await withCookie(`${originB}/bff/user`, cookie);
    assert.equal(u.status, 401, `site B answered ${u.status}: ${u.body}`);
    assert.doesNotMatch(u.body, /alice/);

    const id = `vh${++seq}`;
    const r = await withCookie(`${originB}/api/data`, cookie, { 'x-test': id });
    assert.equal(r.status, 401, r.body);
    const seen = up.byTest(id);
    assert.ok(seen.every((x) => !bearerOf(x.headers)), "no token reached site B's API");

    // Site A is untouched.
    const id2 = `vh${++seq}`;
    const ok = await withCookie(env.url('/api/data'), cookie, { 'x-test': id2 });
    assert.equal(ok.status, 200, ok.body);
    assert.ok(env.provider.issued.access.includes(bearerOf(up.byTest(id2)[0].headers)));
});

function logoutToken(claims) {
    const k = env.provider.keys[0];
    const now = Math.floor(Date.now() / 1000);
    return signJwt({ alg: 'RS256', kid: k.kid, typ: 'logout+jwt' }, {
        iss: env.provider.issuer,
        aud: env.clientId,
        iat: now,
        exp: now + 120,
        jti: crypto.randomBytes(16).toString('base64url'),
        events: { [EVENT]: {} },
        ...claims,
    }, k.keyObject);
}

test('34 logins of one user: a logout token with only sub ends all of them', async () => {
    const cookies = [];
    for (let i = 0; i < 34; i += 1) {
        const { client } = await env.login({ username: 'bob', password: 'bob-pass' });
        cookies.push(cookieOf(client));
    }
    assert.equal(new Set(cookies).size, 34);
    const r = await env.client().request(env.url('/bff/backchannel-logout'), {
        method: 'POST',
        body: new URLSearchParams({ logout_token: logoutToken({ sub: 'bob' }) }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        cookies: false,
    });
    assert.equal(r.status, 200, r.body);
    const alive = [];
    for (const [i, c] of cookies.entries()) {
        const u = await withCookie(env.url('/bff/user'), c);
        assert.ok([200, 401].includes(u.status), u.body);
        if (u.status === 200) alive.push(i + 1);
    }
    assert.deepEqual(alive, [], `logins still alive after the sub logout: ${alive}`);
});

test('a session made under another BFFProvider is refused (BFF01306)', async () => {
    const { client } = await env.login();
    const cookie = cookieOf(client);
    assert.equal((await withCookie(env.url('/bff/user'), cookie)).status, 200);
    const other = await startProvider({
        port: await freePort(),
        cert: env.pki.cert,
        key: env.pki.key,
        ca: env.pki.ca,
        clientId: env.clientId,
        clientSecret: env.clientSecret,
        redirectUri: env.redirectUri,
        quiet: true,
    });
    try {
        env.httpd.opts.bff.BFFProvider = other.issuer;
        await env.httpd.writeConfig();
        await env.httpd.graceful();
        const { lines } = await env.httpd.expectLog([/BFF01306/], async () => {
            const u = await withCookie(env.url('/bff/user'), cookie);
            assert.equal(u.status, 401, `user: ${u.status} ${u.body}`);
            const id = `op${++seq}`;
            const r = await withCookie(env.url('/api/data'), cookie, { 'x-test': id });
            assert.equal(r.status, 401, r.body);
            assert.ok(up.byTest(id).every((x) => !bearerOf(x.headers)), 'no token reached the API');
        });
        assert.ok(lines.some((l) => /BFF01306/.test(l)), 'the other-provider check said why');
    } finally {
        await other.close();
    }
});
