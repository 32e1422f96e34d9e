// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Token relay through mod_proxy to a real API upstream (lib/upstream.js):
// the bearer token the provider issued, cookie stripping, a client-sent
// Authorization never passing, 401/403 answers that never reach the API,
// BFFCSRFHeader/BFFTrustedOrigin, BFFTokenRelay optional, POST bodies,
// RewriteRule [P], WebSocket upgrades and an h2c upstream (mod_proxy_http2).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, test } from 'node:test';
import { COOKIE, TX_COOKIE, TX_PREFIX, useEnv } from './lib/env.js';
import { bearerOf, cookiesOf, startUpstream, wsAccept, wsConnect } from './lib/upstream.js';

const up = await startUpstream({ h2: true });
after(() => up.close());

const TRUSTED = 'https://admin.example.test';

const env = useEnv({
    // mod_http2 (needed by mod_proxy_http2) warns that it cannot serve h2 under prefork.
    allow: [/AH10034: The mpm module \(prefork\.c\) is not supported by mod_http2/],
    httpd: {
        extraModules: ['proxy', 'proxy_http', 'http2', 'proxy_http2', 'rewrite'],
        extraServer: [
            'RewriteEngine On',
            `RewriteRule "^/rw/(.*)$" "http://127.0.0.1:${up.port}/rw/$1" [P]`,
            '<Location /api/>',
            `    ProxyPass http://127.0.0.1:${up.port}/api/`,
            '    BFFTokenRelay On',
            '</Location>',
            '<Location /api2/>',
            `    ProxyPass http://127.0.0.1:${up.port}/api2/`,
            '    BFFTokenRelay On',
            '    BFFCSRFHeader X-Requested-With XMLHttpRequest',
            `    BFFTrustedOrigin ${TRUSTED}`,
            '</Location>',
            '<Location /pub/>',
            `    ProxyPass http://127.0.0.1:${up.port}/pub/`,
            '    BFFTokenRelay optional',
            '</Location>',
            '<Location /ws/>',
            `    ProxyPass http://127.0.0.1:${up.port}/ws/ upgrade=websocket`,
            '    BFFTokenRelay On',
            '</Location>',
            '<Location /h2/>',
            `    ProxyPass h2c://127.0.0.1:${up.h2Port}/h2/`,
            '    BFFTokenRelay On',
            '</Location>',
            '<Location /rw/>',
            '    BFFTokenRelay On',
            '</Location>',
        ],
    },
});

/** Log in; returns { client, token: the access token the provider issued for this login }. */
async function loginWithToken(opts = {}) {
    const before = env.provider.issued.access.length;
    const { client, login } = await env.login(opts);
    const issued = env.provider.issued.access.slice(before);
    assert.equal(issued.length, 1, 'one access token issued for the login');
    return { client, login, token: issued[0] };
}

let n = 0;
function testId() {
    n += 1;
    return `t${n}-${crypto.randomBytes(4).toString('hex')}`;
}

/** GET/POST through httpd with a fresh x-test id; returns { resp, id, seen: upstream records }. */
async function call(client, path, opts = {}) {
    const id = testId();
    const headers = { 'x-test': id, ...(opts.csrf === false ? {} : { 'X-CSRF': '1' }), ...(opts.headers || {}) };
    const resp = await client.request(env.url(path), { ...opts, headers });
    return { resp, id, seen: up.byTest(id) };
}

function assertJsonError(resp, status, error) {
    assert.equal(resp.status, status, resp.body);
    assert.match(resp.headers['content-type'] || '', /^application\/json/);
    assert.match(resp.headers['cache-control'] || '', /no-store/);
    assert.equal(resp.headers.location, undefined, 'never a redirect');
    assert.equal(JSON.parse(resp.body).error, error);
}

test('the upstream gets the bearer token issued for this login; own cookies stripped, others pass', async () => {
    const { client, token } = await loginWithToken();
    const session = client.jar.get(COOKIE, env.url('/')).value;
    const cookie = `theme=dark; ${COOKIE}=${session}; lang=en; ${TX_COOKIE}=abc; ${COOKIE}x=keep; `
        + `${TX_PREFIX}AbCd1234=sealed; x${COOKIE}=keep2; z=1`;
    const { resp, seen } = await call(client, '/api/orders?page=2', {
        cookie,
        headers: { Authorization: 'Bearer forged-by-the-client' },
    });
    assert.equal(resp.status, 200, resp.body);
    assert.equal(resp.json().ok, true);
    assert.equal(seen.length, 1);
    const r = seen[0];
    assert.equal(r.path, '/api/orders?page=2');
    assert.equal(r.headers.authorization, `Bearer ${token}`);
    const cookies = cookiesOf(r.headers);
    assert.deepEqual([...cookies.entries()], [['theme', 'dark'], ['lang', 'en'], [`${COOKIE}x`, 'keep'],
        [`x${COOKIE}`, 'keep2'], ['z', '1']], 'only the exact names (and pending-login cookies) are removed');
    assert.ok(!String(r.headers.cookie).includes(session), 'the session value never reaches the API');
    assert.ok(!cookies.has(COOKIE) && !cookies.has(TX_COOKIE) && !cookies.has(`${TX_PREFIX}AbCd1234`));

    // Only the session cookie: no Cookie header at all (or an empty one) upstream.
    const only = await call(client, '/api/only');
    assert.equal(only.resp.status, 200);
    assert.equal(bearerOf(only.seen[0].headers), token);
    assert.ok(!only.seen[0].headers.cookie, `Cookie upstream: ${only.seen[0].headers.cookie}`);

    // Another user's session relays another token.
    const bob = await loginWithToken({ username: 'bob', password: 'bob-pass' });
    assert.notEqual(bob.token, token);
    const b = await call(bob.client, '/api/me');
    assert.equal(b.resp.status, 200);
    assert.equal(bearerOf(b.seen[0].headers), bob.token);
    // Still alice's for alice.
    const a = await call(client, '/api/me');
    assert.equal(bearerOf(a.seen[0].headers), token);
});

test('no session, a tampered cookie or only a client bearer: 401 JSON, nothing reaches the API', async () => {
    const anon = env.client();
    const r1 = await call(anon, '/api/x');
    assertJsonError(r1.resp, 401, 'unauthenticated');
    assert.equal(r1.seen.length, 0);

    const r2 = await call(anon, '/api/x', { headers: { Authorization: 'Bearer some-token' } });
    assertJsonError(r2.resp, 401, 'unauthenticated');
    assert.equal(r2.seen.length, 0);

    const { client } = await loginWithToken();
    const value = client.jar.get(COOKIE, env.url('/')).value;
    const flipped = value.slice(0, 10) + (value[10] === 'A' ? 'B' : 'A') + value.slice(11);
    for (const v of [flipped, value.slice(0, 42), `${value}A`, 'x'.repeat(43)]) {
        const r = await call(anon, '/api/x', { cookie: `${COOKIE}=${v}` });
        assertJsonError(r.resp, 401, 'unauthenticated');
        assert.equal(r.seen.length, 0);
    }
    // Without the CSRF header and without a session: still 401 (no hint about CSRF needed).
    const r3 = await call(anon, '/api/x', { csrf: false });
    assert.ok([401, 403].includes(r3.resp.status));
    assert.equal(r3.seen.length, 0);
});

test('CSRF: header missing or wrong, foreign Origin, Sec-Fetch-Site cross-site -> 403; same site passes', async () => {
    const { client, token } = await loginWithToken();
    const refused = [
        ['no header', { csrf: false }],
        ['wrong value', { csrf: false, headers: { 'X-CSRF': '2' } }],
        ['empty value', { csrf: false, headers: { 'X-CSRF': '' } }],
        ['foreign Origin', { headers: { Origin: 'https://evil.example' } }],
        ['the provider origin', { headers: { Origin: env.provider.issuer } }],
        ['site origin on another port', { headers: { Origin: 'https://localhost:1' } }],
        ['http scheme', { headers: { Origin: env.siteOrigin.replace('https:', 'http:') } }],
        ['Origin null', { headers: { Origin: 'null' } }],
        ['Sec-Fetch-Site cross-site', { headers: { 'Sec-Fetch-Site': 'cross-site' } }],
        ['trusted origin of another location', { headers: { Origin: TRUSTED } }],
    ];
    for (const [what, opts] of refused) {
        const r = await call(client, '/api/x', opts);
        assert.equal(r.resp.status, 403, `${what}: ${r.resp.status} ${r.resp.body}`);
        assertJsonError(r.resp, 403, 'csrf');
        assert.equal(r.seen.length, 0, `${what}: reached the API`);
    }
    const allowed = [
        ['plain', {}],
        ['header name in lower case', { csrf: false, headers: { 'x-csrf': '1' } }],
        ['own Origin', { headers: { Origin: env.siteOrigin } }],
        ['Sec-Fetch-Site same-origin', { headers: { 'Sec-Fetch-Site': 'same-origin', Origin: env.siteOrigin } }],
    ];
    for (const [what, opts] of allowed) {
        const r = await call(client, '/api/x', opts);
        assert.equal(r.resp.status, 200, `${what}: ${r.resp.body}`);
        assert.equal(bearerOf(r.seen[0].headers), token);
    }
    // The session lives on after refusals.
    const again = await call(client, '/api/x');
    assert.equal(again.resp.status, 200);
});

test('BFFCSRFHeader with a custom name/value and BFFTrustedOrigin per location', async () => {
    const { client, token } = await loginWithToken();
    const xrw = { 'X-Requested-With': 'XMLHttpRequest' };
    const ok = await call(client, '/api2/a', { csrf: false, headers: xrw });
    assert.equal(ok.resp.status, 200, ok.resp.body);
    assert.equal(bearerOf(ok.seen[0].headers), token);

    const def = await call(client, '/api2/a'); // X-CSRF: 1 is not this location's header
    assertJsonError(def.resp, 403, 'csrf');
    assert.equal(def.seen.length, 0);
    assert.match(JSON.parse(def.resp.body).message, /X-Requested-With/);

    const wrong = await call(client, '/api2/a', { csrf: false, headers: { 'X-Requested-With': 'fetch' } });
    assertJsonError(wrong.resp, 403, 'csrf');

    const trusted = await call(client, '/api2/a', { csrf: false, headers: { ...xrw, Origin: TRUSTED } });
    assert.equal(trusted.resp.status, 200, trusted.resp.body);
    const own = await call(client, '/api2/a', { csrf: false, headers: { ...xrw, Origin: env.siteOrigin } });
    assert.equal(own.resp.status, 200, own.resp.body);
    const other = await call(client, '/api2/a', {
        csrf: false, headers: { ...xrw, Origin: 'https://other.example.test' },
    });
    assertJsonError(other.resp, 403, 'csrf');
    assert.equal(other.seen.length, 0);
});

test('BFFTokenRelay optional: no session -> forwarded without Authorization; a session -> its token', async () => {
    const anon = env.client();
    const r1 = await call(anon, '/pub/catalog', { csrf: false, headers: { Authorization: 'Bearer forged' } });
    assert.equal(r1.resp.status, 200, r1.resp.body);
    assert.equal(r1.seen.length, 1);
    assert.equal(r1.seen[0].headers.authorization, undefined, 'the client-sent Authorization is removed');

    // A stale cookie counts as no session, and is not passed on either.
    const r2 = await call(anon, '/pub/catalog', { csrf: false, cookie: `${COOKIE}=${'q'.repeat(43)}; a=b` });
    assert.equal(r2.resp.status, 200);
    assert.equal(r2.seen[0].headers.authorization, undefined);
    assert.deepEqual([...cookiesOf(r2.seen[0].headers).keys()], ['a']);

    const { client, token } = await loginWithToken();
    const r3 = await call(client, '/pub/catalog', { headers: { Authorization: 'Bearer forged' } });
    assert.equal(r3.resp.status, 200);
    assert.equal(r3.seen[0].headers.authorization, `Bearer ${token}`);

    // With a session the CSRF rules apply as with On.
    const r4 = await call(client, '/pub/catalog', { csrf: false });
    assertJsonError(r4.resp, 403, 'csrf');
    assert.equal(r4.seen.length, 0);
});

test('POST and PUT bodies are relayed intact', async () => {
    const { client, token } = await loginWithToken();
    const json = JSON.stringify({ order: 42, items: ['a', 'b'], note: 'ü €' });
    const r1 = await call(client, '/api/orders', {
        method: 'POST', body: json, headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(r1.resp.status, 200, r1.resp.body);
    const s1 = r1.seen[0];
    assert.equal(s1.method, 'POST');
    assert.equal(s1.body.toString('utf8'), json);
    assert.equal(s1.headers['content-type'], 'application/json');
    assert.equal(bearerOf(s1.headers), token);

    const big = crypto.randomBytes(300 * 1024);
    const r2 = await call(client, '/api/upload', {
        method: 'PUT', body: big, headers: { 'Content-Type': 'application/octet-stream' },
    });
    assert.equal(r2.resp.status, 200, r2.resp.body);
    assert.equal(r2.resp.json().bodyLength, big.length);
    assert.equal(r2.resp.json().bodySha256, crypto.createHash('sha256').update(big).digest('hex'));

    // A form body is not mistaken for anything of mod_bff's.
    const r3 = await call(client, '/api/form', { method: 'POST', form: { a: '1', logout_token: 'x' } });
    assert.equal(r3.resp.status, 200);
    assert.equal(r3.seen[0].body.toString(), 'a=1&logout_token=x');

    // Refused POSTs never reach the API.
    const r4 = await call(client, '/api/orders', { method: 'POST', body: json, csrf: false });
    assertJsonError(r4.resp, 403, 'csrf');
    assert.equal(r4.seen.length, 0);
});

test('RewriteRule [P] locations relay too', async () => {
    const { client, token } = await loginWithToken();
    const r = await call(client, '/rw/thing?q=1');
    assert.equal(r.resp.status, 200, r.resp.body);
    assert.equal(r.seen[0].path, '/rw/thing?q=1');
    assert.equal(bearerOf(r.seen[0].headers), token);
    assert.ok(!r.seen[0].headers.cookie);

    const noCsrf = await call(client, '/rw/thing', { csrf: false });
    assertJsonError(noCsrf.resp, 403, 'csrf');
    const anon = await call(env.client(), '/rw/thing');
    assertJsonError(anon.resp, 401, 'unauthenticated');
    assert.equal(noCsrf.seen.length + anon.seen.length, 0);
});

test('WebSocket upgrade: the site Origin upgrades with the token; a foreign or missing Origin is 403', async () => {
    // The helper's handshake math is RFC 6455's (section 1.3 example).
    assert.equal(wsAccept('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    const { client, token } = await loginWithToken();
    const session = client.jar.get(COOKIE, env.url('/')).value;
    const base = { ca: env.pki.ca };
    const cookie = `${COOKIE}=${session}; ws=1`;

    const id = testId();
    const ok = await wsConnect(env.url('/ws/live'), {
        ...base, headers: { cookie, Origin: env.siteOrigin, 'x-test': id },
    });
    assert.equal(ok.status, 101, ok.body);
    assert.ok(ok.acceptOk, 'Sec-WebSocket-Accept matches');
    assert.match(ok.firstMessage || '', /^hello \d+$/);
    const seen = up.byTest(id);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].websocket, true);
    assert.equal(seen[0].headers.authorization, `Bearer ${token}`);
    assert.deepEqual([...cookiesOf(seen[0].headers).keys()], ['ws']);

    const bad = [
        ['foreign Origin', { cookie, Origin: 'https://evil.example' }],
        ['no Origin', { cookie }],
        ['no Origin even with X-CSRF', { cookie, 'X-CSRF': '1' }],
        ['Sec-Fetch-Site cross-site', { cookie, Origin: env.siteOrigin, 'Sec-Fetch-Site': 'cross-site' }],
    ];
    for (const [what, headers] of bad) {
        const bid = testId();
        const r = await wsConnect(env.url('/ws/live'), { ...base, headers: { ...headers, 'x-test': bid } });
        assert.equal(r.status, 403, `${what}: ${r.status}`);
        assert.equal(JSON.parse(r.body).error, 'csrf');
        assert.equal(up.byTest(bid).length, 0, `${what}: reached the upstream`);
    }
    const aid = testId();
    const anon = await wsConnect(env.url('/ws/live'), {
        ...base, headers: { Origin: env.siteOrigin, 'x-test': aid },
    });
    assert.equal(anon.status, 401);
    assert.equal(up.byTest(aid).length, 0);
});

test('an h2c upstream through mod_proxy_http2 gets the token', async () => {
    const { client, token } = await loginWithToken();
    const r = await call(client, '/h2/data', { headers: { Authorization: 'Bearer forged' } });
    assert.equal(r.resp.status, 200, r.resp.body);
    assert.equal(r.seen.length, 1);
    assert.equal(r.seen[0].proto, 'h2c');
    assert.equal(r.seen[0].headers.authorization, `Bearer ${token}`);
    const big = crypto.randomBytes(100 * 1024);
    const p = await call(client, '/h2/upload', { method: 'POST', body: big });
    assert.equal(p.resp.status, 200);
    assert.equal(p.resp.json().bodySha256, crypto.createHash('sha256').update(big).digest('hex'));
    const anon = await call(env.client(), '/h2/data');
    assertJsonError(anon.resp, 401, 'unauthenticated');
});

test('the access token never shows in what the browser receives', async () => {
    const { client } = await loginWithToken();
    const r = await call(client, '/api/echo');
    assert.equal(r.resp.status, 200);
    const seenAll = JSON.stringify(r.resp.headers) + r.resp.body;
    for (const t of env.provider.allTokens()) {
        assert.ok(!seenAll.includes(t), 'a token in the relayed response');
    }
});
