// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Attacks on the login flow and the session cookie, and bad ID tokens from a
// real provider (through its fault injector).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { generateSigningKey } from '../provider/provider.js';
import { COOKIE, getUser, setsSession, useEnv } from './lib/env.js';

const env = useEnv();

// Everything secret the browser or the provider saw, checked against the error log at the end.
const seen = { codes: [], cookies: [] };

function loginUrl(returnTo = '/app.html') {
    return env.url(`/bff/login?returnTo=${encodeURIComponent(returnTo)}`);
}

/** Walk a login up to (not including) the callback; returns { client, callbackUrl }. */
async function toCallback(opts = {}) {
    const client = opts.client || env.client();
    const l = await client.followLogin(loginUrl(), { ...opts, stopAtCallback: true });
    const code = new URL(l.callbackUrl).searchParams.get('code');
    if (code) seen.codes.push(code);
    return { client, callbackUrl: l.callbackUrl };
}

/** The provider's redirect back: a cross-site navigation. */
function callback(client, url) {
    return client.get(url, { crossSite: true });
}

function withParams(url, changes) {
    const u = new URL(url);
    for (const [k, v] of Object.entries(changes)) {
        if (v === null) u.searchParams.delete(k);
        else u.searchParams.set(k, v);
    }
    return u.href;
}

function assertFailurePage(r, status, what) {
    assert.equal(r.status, status, `${what}: expected ${status}, got ${r.status}: ${r.body.slice(0, 200)}`);
    assert.match(r.headers['cache-control'] || '', /no-store/, `${what}: Cache-Control no-store`);
    assert.ok(!setsSession(r), `${what}: no session cookie on a failure`);
}

function randomCookieValue() {
    return crypto.randomBytes(32).toString('base64url');
}

// ---------------------------------------------------------------------------

test('session fixation: a pre-set cookie is ignored and replaced', async () => {
    const planted = randomCookieValue();
    const client = env.client();
    // SameSite=None so the planted value even rides along on the cross-site callback.
    client.jar.set(env.url('/'), COOKIE, planted, '; Path=/; Secure; HttpOnly; SameSite=None');
    const before = await getUser(client, env);
    assert.equal(before.status, 401, 'a value the server never issued is not a session');
    const l = await client.followLogin(loginUrl());
    assert.equal(l.callback.status, 200);
    assert.ok(setsSession(l.callback));
    assert.notEqual(l.sessionCookie, planted, 'a new identifier is issued at login');
    seen.cookies.push(l.sessionCookie);
    const now = await getUser(client, env);
    assert.equal(now.status, 200);
    const old = await getUser(client, env, { cookie: `${COOKIE}=${planted}` });
    assert.equal(old.status, 401, 'the planted value is still not a session');
});

test('state replay: a callback URL works once', async () => {
    const { client, callbackUrl } = await toCallback();
    const first = await callback(client, callbackUrl);
    assert.equal(first.status, 200, first.body);
    assert.ok(setsSession(first));
    const second = await callback(client, callbackUrl);
    assertFailurePage(second, 400, 'replayed callback');
});

test('state replay: two concurrent uses, exactly one succeeds', async () => {
    const { client, callbackUrl } = await toCallback();
    const rs = await Promise.all([callback(client, callbackUrl), callback(client, callbackUrl)]);
    const statuses = rs.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 400], `got ${statuses}`);
    assert.equal(rs.filter((r) => setsSession(r)).length, 1, 'exactly one session cookie');
});

test('callback: unknown state, missing state, missing code', async () => {
    const { client, callbackUrl } = await toCallback();
    assertFailurePage(await callback(client, withParams(callbackUrl, { state: randomCookieValue() })),
        400, 'unknown state');
    assertFailurePage(await callback(client, withParams(callbackUrl, { state: null })), 400, 'missing state');
    assertFailurePage(await callback(client, withParams(callbackUrl, { code: null })), 400, 'missing code');
});

test('callback: iss parameter mismatch or missing (RFC 9207) is refused', async () => {
    let { client, callbackUrl } = await toCallback();
    assertFailurePage(await callback(client, withParams(callbackUrl, { iss: 'https://evil.example' })),
        400, 'iss mismatch');
    ({ client, callbackUrl } = await toCallback());
    assertFailurePage(await callback(client, withParams(callbackUrl, { iss: null })), 400, 'iss missing');
});

test('callback without the tx cookie (another browser) is refused', async () => {
    const { callbackUrl } = await toCallback();
    const attacker = env.client();
    assertFailurePage(await callback(attacker, callbackUrl), 400, 'callback in another browser');
});

test('open redirects in returnTo are refused', async () => {
    const bad = [
        '//evil.example',
        '//evil.example/path',
        '/\\evil.example',
        '\\\\evil.example',
        '/%2F%2Fevil.example',
        '/%2f%2fevil.example',
        '/%5Cevil.example',
        '/%5cevil.example',
        '%2F%2Fevil.example',
        'https://evil.example/',
        'http://evil.example',
        'https:evil.example',
        'javascript:alert(1)',
        'JaVaScRiPt:alert(1)',
        'data:text/html,<script>alert(1)</script>',
        '/%0d%0aSet-Cookie:%20x=y',
        '/\r\nSet-Cookie: x=y',
        '/\nLocation: https://evil.example',
        '/\t/evil.example',
        '@evil.example',
        'evil.example',
        '///evil.example',
        '/\\/evil.example',
        `https://localhost:${new URL(env.siteOrigin || 'https://x:1').port}@evil.example/`,
    ];
    const c = env.client();
    for (const value of bad) {
        const r = await c.get(loginUrl(value));
        assert.equal(r.status, 400, `returnTo=${JSON.stringify(value)}: expected 400, got ${r.status} ` +
            `Location: ${r.rawLocation}`);
        if (r.location) {
            assert.equal(new URL(r.location).origin, env.siteOrigin,
                `returnTo=${JSON.stringify(value)} leads elsewhere: ${r.rawLocation}`);
        }
        assert.ok(!JSON.stringify(r.headers).toLowerCase().includes('evil.example'),
            `returnTo=${JSON.stringify(value)} echoed in headers`);
        assert.ok(!r.setCookies.some((h) => /^x=/i.test(h)), 'no header injection');
    }
    // The ones a site really uses still work.
    for (const ok of ['/', '/app.html', '/a/b?x=1&y=2']) {
        const r = await c.get(loginUrl(ok));
        assert.equal(r.status, 302, `returnTo=${ok}`);
    }
});

test('the return URL after login is the one given, same origin', async () => {
    const { login } = await env.login({ returnTo: '/app.html?x=1&y=2' });
    assert.equal(new URL(login.returnTo, env.siteOrigin).href, env.url('/app.html?x=1&y=2'));
});

test('tampered, foreign, garbage and overlong cookies are 401, never 500', async () => {
    const { client, login } = await env.login();
    const good = login.sessionCookie;
    seen.cookies.push(good);
    assert.equal((await getUser(client, env)).status, 200);
    const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const cases = {
        'flipped middle char': flip(good, 20),
        'flipped first char': flip(good, 0),
        'truncated': good.slice(0, 42),
        'extended': `${good}A`,
        'foreign random': randomCookieValue(),
        'all stars': '*'.repeat(43),
        'garbage': '%00%ff<script>"x"',
        'empty': '',
        'overlong': 'A'.repeat(4000),
    };
    for (const [what, value] of Object.entries(cases)) {
        const u = await getUser(client, env, { cookie: `${COOKIE}=${value}` });
        assert.equal(u.status, 401, `${what}: got ${u.status} ${u.resp.body.slice(0, 200)}`);
        assert.equal(u.body?.error, 'unauthenticated', what);
    }
    // The real session is untouched by all that.
    assert.equal((await getUser(client, env)).status, 200);
});

test('provider error=access_denied shows a 403 page', async () => {
    const { client, callbackUrl } = await toCallback({ cancel: true });
    assert.equal(new URL(callbackUrl).searchParams.get('error'), 'access_denied');
    const r = await callback(client, callbackUrl);
    assertFailurePage(r, 403, 'access_denied');
    assert.match(r.headers['content-type'] || '', /^text\/html/);
    assert.match(r.body, /access_denied/);
});

// ---------------------------------------------------------------------------
// Bad ID tokens from a real provider (fault injector), each must be a 502.

const foreign = generateSigningKey();
const now = () => Math.floor(Date.now() / 1000);

const ID_TOKEN_FAULTS = {
    'bad signature': () => ({ corruptSignature: true }),
    'wrong aud': (c) => ({ claims: { ...c, aud: 'someone-else' } }),
    'aud array without us': (c) => ({ claims: { ...c, aud: ['someone-else', 'another'] } }),
    'untrusted extra aud without azp': (c) => ({ claims: { ...c, aud: [c.aud, 'someone-else'] } }),
    'untrusted extra aud, azp us': (c) => ({ claims: { ...c, aud: [c.aud, 'someone-else'], azp: c.aud } }),
    'wrong iss': (c) => ({ claims: { ...c, iss: 'https://evil.example' } }),
    'wrong nonce': (c) => ({ claims: { ...c, nonce: 'not-the-nonce' } }),
    'no nonce': (c) => {
        const { nonce, ...rest } = c;
        return { claims: rest };
    },
    'expired': (c) => ({ claims: { ...c, iat: now() - 7200, exp: now() - 3600 } }),
    'no sub': (c) => {
        const { sub, ...rest } = c;
        return { claims: rest };
    },
    'alg none': (c, h) => ({ header: { typ: h.typ, alg: 'none' }, key: 'none' }),
    'alg none with kid': (c, h) => ({ header: { ...h, alg: 'none' }, key: 'none' }),
    'HS256 with the public key as secret': (c, h) => ({
        header: { ...h, alg: 'HS256' },
        key: { hmac: JSON.stringify(env.provider.keys[0].publicJwk) },
    }),
    'foreign key, same kid': () => ({ key: foreign.keyObject }),
};

for (const [name, fault] of Object.entries(ID_TOKEN_FAULTS)) {
    test(`ID token fault: ${name} -> 502, no session`, async () => {
        const { client, callbackUrl } = await toCallback();
        let r;
        const { lines } = await env.httpd.expectLog([/\[bff:error\]/], async () => {
            env.provider.tamper = fault;
            try {
                r = await callback(client, callbackUrl);
            } finally {
                env.provider.tamper = null;
            }
        });
        assertFailurePage(r, 502, name);
        assert.ok(lines.some((l) => /\[bff:error\].*BFF\d{5}/.test(l)),
            `an error line with a BFF tag for the admin; got:\n${lines.join('\n')}`);
        assert.equal((await getUser(client, env)).status, 401);
    });
}

test('key rotation at the provider: the module refetches the JWKS', async () => {
    const first = await env.login();
    assert.equal(first.login.callback.status, 200);
    const jwksBefore = env.provider.jwksCalls;
    const newKid = await env.provider.rotateKeys();
    const { client, login } = await env.login();
    assert.equal(login.callback.status, 200, login.callback.body);
    const u = await getUser(client, env);
    assert.equal(u.status, 200);
    assert.equal(env.provider.keys[0].kid, newKid);
    assert.ok(env.provider.jwksCalls > jwksBefore, 'the JWKS was fetched again for the new kid');
    // The session from before the rotation is still fine.
    assert.equal((await getUser(first.client, env)).status, 200);
});

test('the error log holds no token, code, secret or cookie value', () => {
    const log = env.httpd.errorLog();
    const secrets = [...env.provider.allTokens(), ...seen.codes, ...seen.cookies, env.clientSecret,
        env.bff.BFFCryptoKey];
    assert.ok(secrets.length > 10);
    for (const s of secrets) {
        assert.ok(!log.includes(s), `error log contains a secret value (${s.slice(0, 6)}...)`);
    }
});
