// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// GET/POST /bff/logout?sid=...: the sid guard, refresh-token revocation at
// the provider, the redirect to its end_session_endpoint (which the provider
// accepts), the expired cookie, the session gone server-side (user and relay
// 401 with the old cookie), logout without a session, BFFPostLogoutRedirectURI,
// and a provider that is down at logout time.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { COOKIE, getUser, setCookieOf, startEnv, useEnv } from './lib/env.js';
import { confirmProviderLogout } from './lib/logout.js';
import { startUpstream } from './lib/upstream.js';

const up = await startUpstream();
after(() => up.close());

const relayConf = {
    extraModules: ['proxy', 'proxy_http'],
    extraServer: [
        '<Location /api/>',
        `    ProxyPass http://127.0.0.1:${up.port}/api/`,
        '    BFFTokenRelay On',
        '</Location>',
    ],
};

const env = useEnv({ httpd: relayConf });

/** Log in; returns { client, cookie, logoutUrl, idToken, refreshToken }. */
async function loginFull(e = env, opts = {}) {
    const before = { id: e.provider.issued.id.length, rt: e.provider.issued.refresh.length };
    const { client } = await e.login(opts);
    const u = await getUser(client, e);
    assert.equal(u.status, 200);
    const ids = e.provider.issued.id.slice(before.id);
    const rts = e.provider.issued.refresh.slice(before.rt);
    assert.equal(ids.length, 1);
    assert.equal(rts.length, 1);
    return {
        client,
        cookie: client.jar.get(COOKIE, e.url('/')).value,
        logoutUrl: u.body.logoutUrl,
        idToken: ids[0],
        refreshToken: rts[0],
    };
}

/** user and relay with an explicit session cookie value (as an attacker who kept it). */
async function probe(e, cookieValue) {
    const c = e.client();
    const u = await c.get(e.url('/bff/user'), { headers: { 'X-CSRF': '1' }, cookie: `${COOKIE}=${cookieValue}` });
    const r = await c.get(e.url('/api/x'), { headers: { 'X-CSRF': '1' }, cookie: `${COOKIE}=${cookieValue}` });
    return { user: u.status, relay: r.status };
}

function assertExpiresCookie(resp) {
    const sc = setCookieOf(resp, COOKIE);
    assert.ok(sc, `the session cookie is cleared: ${resp.setCookies}`);
    assert.ok(sc.value === '' || sc.attrs.get('max-age') === '0'
        || Date.parse(sc.attrs.get('expires')) < Date.now(), `expired: ${resp.setCookies}`);
    assert.equal(sc.attrs.get('path'), '/');
    assert.ok(sc.attrs.has('secure'), 'Secure, or a browser ignores a __Host- cookie');
}

test('logout without sid, with a wrong sid or another session\'s sid: 400, the session lives on', async () => {
    const a = await loginFull();
    const b = await loginFull(env, { username: 'bob', password: 'bob-pass' });
    const revBefore = env.provider.revocationCalls;
    const sid = new URL(a.logoutUrl, env.siteOrigin).searchParams.get('sid');
    const bobSid = new URL(b.logoutUrl, env.siteOrigin).searchParams.get('sid');
    const bad = [
        '/bff/logout',
        '/bff/logout?sid=',
        `/bff/logout?sid=${sid.slice(0, -1)}`,
        `/bff/logout?sid=${sid}x`,
        `/bff/logout?sid=${sid.slice(0, -1)}${sid.at(-1) === 'A' ? 'B' : 'A'}`,
        `/bff/logout?sid=${bobSid}`,
        `/bff/logout?other=${sid}`,
    ];
    for (const p of bad) {
        for (const method of ['GET', 'POST']) {
            const r = await a.client.request(env.url(p), { method, ...(method === 'POST' ? { form: {} } : {}) });
            assert.equal(r.status, 400, `${method} ${p}: ${r.status}`);
            assert.match(r.headers['content-type'] || '', /^text\/html/);
            assert.equal(setCookieOf(r, COOKIE), null, `${method} ${p} touched the cookie`);
            assert.equal(r.headers.location, undefined);
        }
    }
    assert.equal(env.provider.revocationCalls, revBefore, 'nothing was revoked');
    assert.deepEqual(await probe(env, a.cookie), { user: 200, relay: 200 });
    assert.deepEqual(await probe(env, b.cookie), { user: 200, relay: 200 });
});

test('logout with the right sid: revocation, 302 to end_session with the hint, cookie expired, session gone', async () => {
    const a = await loginFull();
    const other = await loginFull(env, { username: 'bob', password: 'bob-pass' });
    const revBefore = env.provider.revocations.length;
    const r = await a.client.get(env.url(a.logoutUrl));
    assert.equal(r.status, 302, r.body);
    assert.match(r.headers['cache-control'] || '', /no-store/);
    const loc = new URL(r.location);
    assert.equal(`${loc.origin}${loc.pathname}`, `${env.provider.issuer}/session/end`);
    const q = loc.searchParams;
    assert.equal(q.get('id_token_hint'), a.idToken, 'the ID token the provider issued for this login');
    assert.equal(q.get('client_id'), env.clientId);
    assert.equal(q.get('post_logout_redirect_uri'), `${env.siteOrigin}/`);
    assertExpiresCookie(r);
    assert.equal(a.client.jar.get(COOKIE, env.url('/')), null, 'the browser dropped the cookie');

    // The refresh token was revoked at the provider (RFC 7009) and is dead there.
    const revs = env.provider.revocations.slice(revBefore);
    assert.equal(revs.length, 1);
    assert.equal(revs[0].token, a.refreshToken);
    assert.equal(revs[0].status, 200);
    if (revs[0].tokenTypeHint !== undefined) assert.equal(revs[0].tokenTypeHint, 'refresh_token');
    assert.equal(await env.provider.provider.RefreshToken.find(a.refreshToken), undefined);

    // The old cookie value names no session any more; other sessions live.
    assert.deepEqual(await probe(env, a.cookie), { user: 401, relay: 401 });
    assert.deepEqual(await probe(env, other.cookie), { user: 200, relay: 200 });

    // The provider accepts the request (registered post-logout URI, valid hint)
    // and sends the browser back to the site.
    const done = await confirmProviderLogout(a.client, r.location);
    assert.equal(done.redirect, `${env.siteOrigin}/`);

    // Logging out again with the same link: no session any more, straight to the site.
    const again = await a.client.get(env.url(a.logoutUrl));
    assert.equal(again.status, 302);
    assert.equal(again.location, `${env.siteOrigin}/`);
});

test('POST logout (a form) works the same', async () => {
    const a = await loginFull();
    const r = await a.client.post(env.url(a.logoutUrl), {});
    assert.equal(r.status, 302, r.body);
    const loc = new URL(r.location);
    assert.equal(`${loc.origin}${loc.pathname}`, `${env.provider.issuer}/session/end`);
    assert.equal(loc.searchParams.get('id_token_hint'), a.idToken);
    assertExpiresCookie(r);
    assert.deepEqual(await probe(env, a.cookie), { user: 401, relay: 401 });
});

test('logout without a session: 302 to the post-logout URI, a stale cookie is expired, none is set when none was sent', async () => {
    const anon = env.client();
    const r1 = await anon.get(env.url('/bff/logout'));
    assert.equal(r1.status, 302);
    assert.equal(r1.location, `${env.siteOrigin}/`);
    // No cookie sent, none deleted (issue 9, 4.6: this used to send a deleting Set-Cookie).
    assert.equal(setCookieOf(r1, COOKIE), null, `${r1.setCookies}`);
    const r2 = await anon.get(env.url('/bff/logout?sid=whatever'), { cookie: `${COOKIE}=${'s'.repeat(43)}` });
    assert.equal(r2.status, 302);
    assert.equal(r2.location, `${env.siteOrigin}/`);
    assertExpiresCookie(r2);
    const r3 = await anon.post(env.url('/bff/logout'), {});
    assert.equal(r3.status, 302);
    assert.equal(r3.location, `${env.siteOrigin}/`);
    assert.equal(setCookieOf(r3, COOKIE), null, `${r3.setCookies}`);
    // Other methods are refused.
    const r4 = await anon.request(env.url('/bff/logout'), { method: 'DELETE' });
    assert.equal(r4.status, 405);
});

test('a cross-site navigation to /bff/logout (no Strict cookie) does not delete the browser\'s cookie', async () => {
    const a = await loginFull();
    for (const method of ['GET', 'POST']) {
        assert.ok(!a.client.jar.header(env.url('/bff/logout'), { crossSite: true, method })
            .includes(`${COOKIE}=`), 'a Strict cookie stays home on a cross-site navigation');
        // What a browser sends for a link or form on another site: no Strict cookie.
        const r = await a.client.request(env.url('/bff/logout'), {
            method,
            crossSite: true,
            topLevel: true,
            headers: { 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'navigate' },
            ...(method === 'POST' ? { form: {} } : {}),
        });
        assert.equal(r.status, 302, `${method}: ${r.status}`);
        assert.equal(setCookieOf(r, COOKIE), null, `${method} deleted the cookie: ${r.setCookies}`);
    }
    assert.equal(a.client.jar.get(COOKIE, env.url('/')).value, a.cookie, 'the browser keeps its cookie');
    assert.deepEqual(await probe(env, a.cookie), { user: 200, relay: 200 });
    assert.equal((await getUser(a.client, env)).status, 200);
});

test('logout while the provider is down still ends the session', async () => {
    const a = await loginFull();
    await env.provider.close();
    try {
        const { result: r } = await env.httpd.expectLog([/BFF01501/, /BFF00306/],
            () => a.client.get(env.url(a.logoutUrl)));
        assert.equal(r.status, 302, r.body);
        // With the metadata cached the redirect still names the end-session endpoint.
        const loc = new URL(r.location);
        assert.ok(r.location === `${env.siteOrigin}/`
            || `${loc.origin}${loc.pathname}` === `${env.provider.issuer}/session/end`, r.location);
        assertExpiresCookie(r);
        assert.deepEqual(await probe(env, a.cookie), { user: 401, relay: 401 });
    } finally {
        await env.provider.restart();
    }
});

test('BFFPostLogoutRedirectURI is sent to the provider and used without a session', async () => {
    const e = await startEnv({
        bff: ({ siteOrigin }) => ({ BFFPostLogoutRedirectURI: `${siteOrigin}/signed-out.html` }),
        provider: ({ siteOrigin }) => ({ postLogoutRedirectUri: [`${siteOrigin}/signed-out.html`] }),
        httpd: { ...relayConf, site: { 'signed-out.html': '<!DOCTYPE html><title>bye</title><p>bye</p>' } },
    });
    try {
        const target = `${e.siteOrigin}/signed-out.html`;
        const a = await loginFull(e);
        const r = await a.client.get(e.url(a.logoutUrl));
        assert.equal(r.status, 302);
        const q = new URL(r.location).searchParams;
        assert.equal(q.get('post_logout_redirect_uri'), target);
        assert.equal(q.get('id_token_hint'), a.idToken);
        const done = await confirmProviderLogout(a.client, r.location);
        assert.equal(done.redirect, target);
        const page = await a.client.get(done.redirect, { crossSite: true });
        assert.equal(page.status, 200);

        const anon = await e.client().get(e.url('/bff/logout'));
        assert.equal(anon.status, 302);
        assert.equal(anon.location, target);
    } finally {
        await e.stop();
        e.httpd.assertCleanLog();
        e.httpd.cleanup();
    }
});
