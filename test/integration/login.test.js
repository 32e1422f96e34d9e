// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// The login round trip through a real provider, the session cookie, /bff/user.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CookieJar } from './lib/client.js';
import { COOKIE, TX_PREFIX, getUser, setCookieOf, setsSession, txCookiesOf, useEnv } from './lib/env.js';

const env = useEnv();

const B64U43 = /^[A-Za-z0-9_-]{43}$/;

function attrNames(c) {
    return [...c.attrs.keys()].sort();
}

test('login endpoint redirects to the provider with PKCE, state and nonce, and sets a sealed tx cookie', async () => {
    const c = env.client();
    const r = await c.get(env.url('/bff/login?returnTo=%2Fapp.html'));
    assert.equal(r.status, 302);
    const loc = new URL(r.location);
    assert.equal(`${loc.origin}${loc.pathname}`, `${env.provider.issuer}/auth`);
    const q = loc.searchParams;
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('client_id'), env.clientId);
    assert.equal(q.get('redirect_uri'), env.redirectUri);
    assert.deepEqual(q.get('scope').split(' ').sort(), ['email', 'openid', 'profile']);
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.match(q.get('code_challenge'), B64U43);
    assert.ok(q.get('state') && q.get('state').length >= 22, 'state has >= 128 bits');
    assert.ok(q.get('nonce') && q.get('nonce').length >= 22, 'nonce has >= 128 bits');
    assert.notEqual(q.get('state'), q.get('nonce'));

    const txs = txCookiesOf(r);
    assert.equal(txs.length, 1, `one Set-Cookie ${TX_PREFIX}*: ${r.setCookies}`);
    const [tx] = txs;
    assert.match(tx.name, /^__Host-Http-bff-tx\.[0-3]$/, 'one of 4 fixed slots');
    assert.match(tx.value, /^[A-Za-z0-9_-]{100,1000}$/, 'sealed, base64url, small');
    for (const secret of [q.get('nonce'), q.get('state')]) {
        assert.ok(!tx.value.includes(secret), 'nothing readable in the cookie');
    }
    assert.deepEqual(attrNames(tx), ['httponly', 'max-age', 'path', 'samesite', 'secure']);
    assert.equal(tx.attrs.get('path'), '/');
    assert.equal(tx.attrs.get('samesite').toLowerCase(), 'lax');
    assert.equal(tx.attrs.get('max-age'), '600');
    assert.equal(setCookieOf(r, COOKIE), null, 'no session cookie before the callback');

    // A second login in the same browser gets fresh state, nonce and PKCE.
    const r2 = await c.get(env.url('/bff/login?returnTo=%2F'));
    assert.equal(r2.status, 302);
    const q2 = new URL(r2.location).searchParams;
    assert.notEqual(q2.get('state'), q.get('state'));
    assert.notEqual(q2.get('nonce'), q.get('nonce'));
    assert.notEqual(q2.get('code_challenge'), q.get('code_challenge'));
    const [tx2] = txCookiesOf(r2);
    assert.ok(tx2 && tx2.name !== tx.name, 'each pending login has its own cookie (a free slot)');
});

test('full login: callback page, session cookie, /bff/user', async () => {
    const tokenCallsBefore = env.provider.tokenCalls.authorization_code;
    const { client, login } = await env.login({ returnTo: '/app.html' });
    const cb = login.callback;
    assert.equal(cb.status, 200);
    assert.match(cb.headers['content-type'], /^text\/html/);
    assert.match(cb.headers['cache-control'] || '', /no-store/);
    assert.equal(new URL(login.returnTo, env.siteOrigin).href, env.url('/app.html'));

    // Session cookie: exactly __Host-Http-bff=<43>; Path=/; Secure; HttpOnly; SameSite=Strict
    const sc = setCookieOf(cb, COOKIE);
    assert.ok(sc, `session cookie set: ${cb.setCookies}`);
    assert.match(sc.value, B64U43);
    assert.deepEqual(attrNames(sc), ['httponly', 'path', 'samesite', 'secure']);
    assert.equal(sc.attrs.get('path'), '/');
    assert.equal(sc.attrs.get('samesite'), 'Strict');
    assert.equal(sc.attrs.get('domain'), undefined);
    assert.ok(client.jar.get(COOKIE, env.url('/')), 'the jar (browser rules) accepted the cookie');

    // The token request was a confidential-client code exchange with PKCE.
    assert.equal(env.provider.tokenCalls.authorization_code, tokenCallsBefore + 1);
    const tr = env.provider.tokenRequests.at(-1);
    assert.equal(tr.grantType, 'authorization_code');
    assert.equal(tr.clientAuth, 'client_secret_basic');
    assert.equal(tr.hasCodeVerifier, true);
    assert.equal(tr.status, 200);

    // The meta refresh navigation is same-site, so the Strict cookie goes with it.
    assert.equal(login.final.status, 200);
    assert.match(login.final.body, /SIGNED-IN/);

    const u = await getUser(client, env);
    assert.equal(u.status, 200, u.resp.body);
    assert.match(u.resp.headers['content-type'], /^application\/json/);
    assert.match(u.resp.headers['cache-control'] || '', /no-store/);
    assert.equal(u.body.sub, 'alice');
    assert.equal(u.body.claims.sub, 'alice');
    assert.equal(u.body.claims.email, 'alice@example.test');
    assert.equal(u.body.claims.name, 'Alice Example');
    if ('iss' in u.body.claims) assert.equal(u.body.claims.iss, env.provider.issuer);
    assert.ok(Number.isInteger(u.body.sessionExpiresIn) && u.body.sessionExpiresIn > 0);
    assert.ok(Number.isInteger(u.body.idleExpiresIn) && u.body.idleExpiresIn > 0);
    assert.match(u.body.logoutUrl, /^\/bff\/logout\?sid=[A-Za-z0-9_-]{16,}$/);

    // No token of any kind in what the browser sees.
    const tokens = env.provider.allTokens();
    assert.ok(tokens.length >= 3);
    for (const t of tokens) {
        for (const [what, text] of [['user JSON', u.resp.body], ['callback page', cb.body],
            ['callback headers', JSON.stringify(cb.headers)]]) {
            assert.ok(!text.includes(t), `${what} contains an issued token`);
        }
    }
    assert.doesNotMatch(u.resp.body, /eyJ[A-Za-z0-9_-]{10,}/, 'no JWT-shaped string in user JSON');
    assert.doesNotMatch(u.resp.body, /access_token|refresh_token|id_token/);
    assert.ok(!u.resp.body.includes(sc.value), 'the cookie value is not echoed');
});

test('/bff/user without X-CSRF is 403 csrf; without a cookie 401', async () => {
    const { client } = await env.login();
    const noCsrf = await getUser(client, env, { csrf: false });
    assert.equal(noCsrf.status, 403);
    assert.match(noCsrf.resp.headers['content-type'], /^application\/json/);
    assert.equal(noCsrf.body.error, 'csrf');

    const anon = env.client();
    const noCookie = await getUser(anon, env);
    assert.equal(noCookie.status, 401);
    assert.match(noCookie.resp.headers['content-type'], /^application\/json/);
    assert.equal(noCookie.body.error, 'unauthenticated');
    assert.equal(noCookie.resp.headers.location, undefined, 'API paths never redirect');
    const neither = await getUser(anon, env, { csrf: false });
    assert.ok([401, 403].includes(neither.status), `got ${neither.status}`);
});

test('the session store lock is not the server-wide file lock (Mutex file:... default)', () => {
    // The harness, like Debian's apache2.conf, sets "Mutex file:<dir> default";
    // a file lock would cost two system calls on every store operation.
    const m = /BFF00403: shared-memory session store .* \(lock: (\w+)\)/.exec(env.httpd.errorLog());
    assert.ok(m, 'BFF00403 names the lock');
    assert.ok(!['fcntl', 'flock'].includes(m[1]), `store lock is ${m[1]}`);
});

test('unknown endpoint under /bff is a 404 JSON', async () => {
    const r = await env.client().get(env.url('/bff/no-such-endpoint'), { headers: { 'X-CSRF': '1' } });
    assert.equal(r.status, 404);
    assert.match(r.headers['content-type'] || '', /^application\/json/);
});

test('two parallel logins in one browser (two tabs) both complete', async () => {
    const jar = new CookieJar();
    const tab1 = env.client(jar);
    const tab2 = env.client(jar);
    const start = (c) => c.get(env.url('/bff/login?returnTo=%2Fapp.html'));
    // Both tabs start before either finishes; each has its own tx cookie.
    const s1 = await start(tab1);
    const s2 = await start(tab2);
    assert.equal(s1.status, 302);
    assert.equal(s2.status, 302);
    const [l1, l2] = await Promise.all([
        tab1.followLogin(env.url('/bff/login?returnTo=%2Fapp.html'), { start: s1 }),
        tab2.followLogin(env.url('/bff/login?returnTo=%2Fapp.html'), { start: s2 }),
    ]);
    for (const l of [l1, l2]) {
        assert.equal(l.callback.status, 200);
        assert.ok(setsSession(l.callback), 'each callback sets a session cookie');
        assert.match(l.final.body, /SIGNED-IN/);
    }
    const u = await getUser(tab1, env);
    assert.equal(u.status, 200);
    assert.equal(u.body.sub, 'alice');
});

test('a graceful restart keeps the session', async () => {
    const { client } = await env.login({ username: 'bob', password: 'bob-pass' });
    const before = await getUser(client, env);
    assert.equal(before.status, 200);
    assert.equal(before.body.sub, 'bob');
    await env.httpd.graceful();
    const after = await getUser(client, env);
    assert.equal(after.status, 200, after.resp.body);
    assert.equal(after.body.sub, 'bob');
    assert.equal(after.body.claims.email, 'bob@example.test');
});

test('a second login gives a different cookie value', async () => {
    const { client, login } = await env.login();
    const first = login.sessionCookie;
    assert.match(first, B64U43);
    const again = await env.login({ client });
    const second = again.login.sessionCookie;
    assert.match(second, B64U43);
    assert.notEqual(second, first);
    const u = await getUser(client, env);
    assert.equal(u.status, 200);
    // And sessions of different browsers never share a value.
    const other = await env.login();
    assert.notEqual(other.login.sessionCookie, second);
    assert.notEqual(other.login.sessionCookie, first);
});
