// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Login parameters from the SPA (BFFLoginParams), silent login (prompt=none
// coming back with bff_error), max_age against the ID token's auth_time, and
// pushed authorization requests (BFFPushedAuthorization, RFC 9126), against
// the real test provider.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { COOKIE, getUser, setsSession, startEnv, useEnv } from './lib/env.js';
import { Httpd } from './lib/httpd.js';
import { createPki } from './lib/pki.js';

// acr_values is left out: a parameter the site does not list.
const env = useEnv({
    bff: { BFFLoginParams: { raw: 'prompt login_hint ui_locales max_age' } },
});

function loginUrl(e, params) {
    const q = new URLSearchParams({ returnTo: '/app.html?tab=2', ...params });
    return e.url(`/bff/login?${q}`);
}

/** The provider's redirect back: a cross-site navigation. */
function callback(client, url) {
    return client.get(url, { crossSite: true });
}

function assertNoSession(r, what) {
    assert.ok(!setsSession(r), `${what}: no session cookie`);
}

test('login_hint and ui_locales reach the provider; a parameter not listed does not', async () => {
    const c = env.client();
    const r = await c.get(loginUrl(env, {
        login_hint: 'alice@example.test', ui_locales: 'de-CH en', acr_values: 'urn:x:gold',
        claims: '{"id_token":{}}', PROMPT: 'none',
    }));
    assert.equal(r.status, 302, r.body);
    const q = new URL(r.location).searchParams;
    assert.equal(q.get('login_hint'), 'alice@example.test');
    assert.equal(q.get('ui_locales'), 'de-CH en');
    assert.equal(q.get('acr_values'), null, 'acr_values is not in BFFLoginParams');
    assert.equal(q.get('claims'), null);
    assert.equal(q.get('prompt'), null, 'names are case-sensitive');
    // What the provider itself received.
    const before = env.provider.authRequests.length;
    const p = await c.get(r.location, { crossSite: true });
    assert.ok([200, 302, 303].includes(p.status), `provider answered ${p.status}`);
    const seen = env.provider.authRequests.slice(before);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].login_hint, 'alice@example.test');
    assert.equal(seen[0].ui_locales, 'de-CH en');
    assert.equal(seen[0].acr_values, undefined);
    // And the login completes with them.
    const { login } = await env.login({ client: env.client(), returnTo: '/x' });
    assert.equal(login.callback.status, 200);
});

test('invalid login parameters are refused with a 400 page and a log line', async () => {
    const bad = [
        { prompt: 'bogus' },
        { prompt: 'none login' },
        { prompt: 'login login' },
        { prompt: 'login  consent' },
        { max_age: '-1' },
        { max_age: '12a' },
        { max_age: '1234567890' },
        { ui_locales: 'de_CH' },
        { login_hint: 'a<script>' },
        { login_hint: 'x'.repeat(257) },
        { login_hint: 'a\r\nb' },
    ];
    for (const params of bad) {
        const name = Object.keys(params)[0];
        const c = env.client();
        const { result: r, lines } = await env.httpd.expectLog([], () => c.get(loginUrl(env, params)));
        assert.equal(r.status, 400, `${JSON.stringify(params)}: ${r.status}`);
        assert.match(r.body, new RegExp(`parameter ${name} is not valid`));
        assert.ok(!r.location);
        assert.ok(!r.setCookies.some((h) => h.includes('-tx.')), 'no pending login');
        assert.ok(lines.some((l) => l.includes(`BFF02001: login refused: parameter ${name} is`)),
            lines.join('\n'));
        // Never the value itself (a login_hint is personal data).
        if (name === 'login_hint') assert.ok(!lines.some((l) => l.includes('script')));
    }
    // The same parameter twice is ambiguous: refused.
    const r = await env.client().get(env.url('/bff/login?prompt=login&prompt=none'));
    assert.equal(r.status, 400);
    // Valid ones pass.
    for (const prompt of ['none', 'login', 'consent', 'select_account', 'login consent']) {
        const ok = await env.client().get(loginUrl(env, { prompt }));
        assert.equal(ok.status, 302, prompt);
        assert.equal(new URL(ok.location).searchParams.get('prompt'), prompt);
    }
    // An empty value counts as not sent.
    const empty = await env.client().get(loginUrl(env, { login_hint: '' }));
    assert.equal(empty.status, 302);
    assert.equal(new URL(empty.location).searchParams.get('login_hint'), null);
});

test('prompt=none without a provider session: back at returnTo with bff_error=login_required', async () => {
    const c = env.client();
    const l = await c.followLogin(loginUrl(env, { prompt: 'none' }), { stopAtCallback: true });
    assert.equal(new URL(l.callbackUrl).searchParams.get('error'), 'login_required');
    const { result: r, lines } = await env.httpd.expectLog([], () => callback(c, l.callbackUrl));
    assert.equal(r.status, 302, r.body);
    assert.equal(r.location, env.url('/app.html?tab=2&bff_error=login_required'));
    assertNoSession(r, 'silent login');
    // The pending-login cookie is cleared all the same.
    assert.ok(r.setCookies.some((h) => /-tx\.\d=;/.test(h) && /Max-Age=0/i.test(h)), r.setCookies.join('\n'));
    assert.ok(lines.some((l) => l.includes('BFF02007')), lines.join('\n'));
    assert.equal((await getUser(c, env)).status, 401);
    // The callback cannot be used twice, nor steered elsewhere by its query.
    const again = await callback(c, l.callbackUrl);
    assert.equal(again.status, 400);
});

test('the silent answer goes only to the sealed returnTo, and only for the browser that started it', async () => {
    const c = env.client();
    const l = await c.followLogin(loginUrl(env, { prompt: 'none' }), { stopAtCallback: true });
    // A callback URL with a returnTo of the attacker's choosing: ignored.
    const u = new URL(l.callbackUrl);
    u.searchParams.set('returnTo', 'https://evil.example/');
    u.searchParams.set('return_to', '//evil.example/');
    const r = await callback(c, u.href);
    assert.equal(r.status, 302);
    assert.equal(r.location, env.url('/app.html?tab=2&bff_error=login_required'));
    // Another browser (no pending login for this state): a 400 page, no redirect.
    const l2 = await c.followLogin(loginUrl(env, { prompt: 'none' }), { stopAtCallback: true });
    const other = await callback(env.client(), l2.callbackUrl);
    assert.equal(other.status, 400);
    assert.ok(!other.location);
    // A forged error answer with an unknown state: 400, no redirect.
    const forged = await callback(c, env.url('/bff/callback?error=login_required&state=nope'));
    assert.equal(forged.status, 400);
    assert.ok(!forged.location);
});

test('login_required without prompt=none keeps the error page', async () => {
    const c = env.client();
    const l = await c.followLogin(loginUrl(env, {}), { stopAtCallback: true, cancel: true });
    // A cancelled login: access_denied; swap in login_required as the provider's answer.
    const u = new URL(l.callbackUrl);
    assert.equal(u.searchParams.get('error'), 'access_denied');
    u.searchParams.set('error', 'login_required');
    const { result: r } = await env.httpd.expectLog([/BFF00217/], () => callback(c, u.href));
    assert.equal(r.status, 403);
    assert.ok(!r.location);
    assertNoSession(r, 'error page');
});

test('prompt=none with a provider session signs in without a form', async () => {
    const c = env.client();
    await env.login({ client: c });
    // A new BFF session for the same browser: the provider still knows it.
    const l = await c.followLogin(loginUrl(env, { prompt: 'none' }));
    assert.ok(!l.steps.some((s) => /id="login"/.test(s.body || '')), 'no login form shown');
    assert.equal(l.callback.status, 200);
    assert.ok(setsSession(l.callback, COOKIE));
    assert.equal(l.returnTo, '/app.html?tab=2');
    const u = await getUser(c, env);
    assert.equal(u.status, 200);
    assert.equal(u.body.claims.sub, 'alice');
});

test('max_age: the ID token must carry a recent enough auth_time', async () => {
    // Fresh authentication: the real provider's auth_time passes.
    const c = env.client();
    const ok = await c.followLogin(loginUrl(env, { max_age: '300' }));
    assert.equal(ok.callback.status, 200);
    assert.equal(env.provider.authRequests.at(-1).max_age, '300');
    // The real provider honours max_age itself (it asks for a new sign-in),
    // so an old auth_time needs its fault injector: a provider that ignored
    // max_age, or left auth_time out.
    const faults = {
        old: (claims) => ({ claims: { ...claims, auth_time: Math.floor(Date.now() / 1000) - 3600 } }),
        absent: (claims) => {
            const { auth_time: _, ...rest } = claims;
            return { claims: rest };
        },
    };
    for (const [what, fault] of Object.entries(faults)) {
        const b = env.client();
        const l = await b.followLogin(loginUrl(env, { max_age: '300' }), { stopAtCallback: true });
        let r;
        const { lines } = await env.httpd.expectLog([/BFF00222/], async () => {
            env.provider.tamper = fault;
            try {
                r = await callback(b, l.callbackUrl);
            } finally {
                env.provider.tamper = null;
            }
        });
        assert.equal(r.status, 502, `${what}: ${r.status}`);
        assertNoSession(r, what);
        assert.ok(lines.some((x) => /BFF00222: ID token rejected: auth_time/.test(x)), lines.join('\n'));
        assert.equal((await getUser(b, env)).status, 401);
    }
    // Without max_age an old auth_time does not matter.
    const d = env.client();
    const l = await d.followLogin(loginUrl(env, {}), { stopAtCallback: true });
    env.provider.tamper = faults.old;
    try {
        const r = await callback(d, l.callbackUrl);
        assert.equal(r.status, 200);
    } finally {
        env.provider.tamper = null;
    }
});

// ---------------------------------------------------------------------------
// Pushed authorization requests

test('PAR required by the provider (auto): pushed with client authentication, the browser carries only client_id and request_uri', async () => {
    const e = await startEnv({
        provider: { requirePushedAuthorizationRequests: true },
        bff: { BFFLoginParams: { raw: 'prompt login_hint ui_locales max_age' } },
    });
    try {
        const c = e.client();
        const l = await c.followLogin(loginUrl(e, { login_hint: 'alice@example.test', max_age: '600' }));
        const q = new URL(l.authorizeUrl).searchParams;
        assert.deepEqual([...q.keys()].sort(), ['client_id', 'request_uri']);
        assert.equal(q.get('client_id'), e.clientId);
        assert.match(q.get('request_uri'), /^urn:ietf:params:oauth:request_uri:/);
        const par = e.provider.parRequests.at(-1);
        assert.equal(par.status, 201);
        assert.equal(par.clientAuth, 'client_secret_basic');
        assert.equal(par.params.login_hint, 'alice@example.test');
        assert.equal(String(par.params.max_age), '600');
        assert.equal(par.params.code_challenge_method, 'S256');
        assert.ok(par.params.state && par.params.nonce);
        assert.equal(l.callback.status, 200);
        const u = await getUser(c, e);
        assert.equal(u.status, 200);
        assert.equal(u.body.claims.sub, 'alice');
        // Silent login through PAR as well.
        const s = e.client();
        const sl = await s.followLogin(loginUrl(e, { prompt: 'none' }), { stopAtCallback: true });
        const r = await callback(s, sl.callbackUrl);
        assert.equal(r.location, e.url('/app.html?tab=2&bff_error=login_required'));
    } finally {
        await e.stop();
        e.httpd.assertCleanLog();
        e.httpd.cleanup();
    }
});

test('BFFPushedAuthorization Off with a provider that requires PAR: the provider refuses, a warning says why', async () => {
    const e = await startEnv({
        provider: { requirePushedAuthorizationRequests: true },
        bff: { BFFPushedAuthorization: 'Off' },
    });
    try {
        const c = e.client();
        const { result: r, lines } = await e.httpd.expectLog([/BFF02006/],
            () => c.get(loginUrl(e, {})));
        assert.equal(r.status, 302);
        assert.ok(lines.some((l) => /\[bff:warn\].*BFF02006/.test(l)), lines.join('\n'));
        assert.ok(new URL(r.location).searchParams.get('state'), 'a plain authorization request');
        // The provider sends the browser back with its error: the login
        // fails with the error page that names it.
        const p = await c.get(r.location, { crossSite: true });
        assert.equal(p.status, 303);
        const back = new URL(p.location);
        assert.equal(back.origin + back.pathname, e.redirectUri);
        assert.equal(back.searchParams.get('error'), 'invalid_request');
        assert.match(back.searchParams.get('error_description'), /[Pp]ushed [Aa]uthorization/);
        const { result: cb } = await e.httpd.expectLog([/BFF00217/], () => callback(c, p.location));
        assert.equal(cb.status, 403);
        assert.match(cb.body, /invalid_request/);
        assert.ok(!setsSession(cb));
        assert.equal(e.provider.parRequests.length, 0);
    } finally {
        await e.stop();
        e.httpd.assertCleanLog();
        e.httpd.cleanup();
    }
});

test('BFFPushedAuthorization On with a provider without a PAR endpoint: the login fails clearly', async () => {
    const e = await startEnv({
        provider: { pushedAuthorizationRequests: false },
        bff: { BFFPushedAuthorization: 'On' },
    });
    try {
        const c = e.client();
        const { result: r, lines } = await e.httpd.expectLog([/BFF02003/],
            () => c.get(loginUrl(e, {})));
        assert.equal(r.status, 500);
        assert.ok(!r.location);
        assert.ok(lines.some((l) => /BFF02003: .*pushed_authorization_request_endpoint/.test(l)),
            lines.join('\n'));
    } finally {
        await e.stop();
        e.httpd.assertCleanLog();
        e.httpd.cleanup();
    }
});

// ---------------------------------------------------------------------------
// Configuration

const pki = createPki();
const created = [];
after(() => created.forEach((h) => h.cleanup()));

async function configTest(bff) {
    const h = new Httpd({
        pki,
        bff: {
            BFFProvider: 'https://127.0.0.1:9443',
            BFFProviderCAFile: pki.caFile,
            BFFClientID: 'bff-test',
            BFFClientSecret: 'a-client-secret-for-config-tests',
            BFFRedirectURI: 'https://localhost:8443/bff/callback',
            BFFCryptoKey: 'an-example-crypto-key-of-32-bytes!!',
            ...bff,
        },
    });
    created.push(h);
    const r = await h.configTest();
    return { status: r.status, out: `${r.stderr}${r.stdout}` };
}

test('BFFLoginParams and BFFPushedAuthorization: valid spellings pass apache2 -t', async () => {
    for (const bff of [
        { BFFLoginParams: 'none' },
        { BFFLoginParams: { raw: 'prompt login_hint acr_values ui_locales max_age' } },
        // The default list gives way to BFFAuthParams' prompt.
        { BFFAuthParams: { raw: 'prompt=login' } },
        { BFFLoginParams: 'max_age', BFFAuthParams: { raw: 'prompt=login' } },
        { BFFPushedAuthorization: 'On' },
        { BFFPushedAuthorization: 'off' },
        { BFFPushedAuthorization: 'auto' },
    ]) {
        const r = await configTest(bff);
        assert.equal(r.status, 0, `${JSON.stringify(bff)}: ${r.out}`);
    }
});

test('apache2 -t refuses bad BFFLoginParams and BFFPushedAuthorization values, naming the directive', async () => {
    for (const [bff, re] of [
        [{ BFFLoginParams: 'claims' }, /BFFLoginParams.*'claims' is not one of/],
        [{ BFFLoginParams: 'state' }, /BFFLoginParams/],
        [{ BFFLoginParams: { raw: 'none prompt' } }, /BFFLoginParams.*none alone/],
        [{ BFFLoginParams: 'prompt', BFFAuthParams: { raw: 'prompt=login' } },
            /BFFLoginParams names prompt, which BFFAuthParams sets/],
        [{ BFFPushedAuthorization: 'maybe' }, /BFFPushedAuthorization/],
    ]) {
        const r = await configTest(bff);
        assert.notEqual(r.status, 0, `${JSON.stringify(bff)} accepted`);
        assert.match(r.out, re);
    }
});

test('BFFAuthParams max_age: auth_time is checked as for the SPA\'s', async () => {
    const e = await startEnv({ bff: { BFFAuthParams: { raw: 'max_age=120' } } });
    try {
        const c = e.client();
        const l = await c.followLogin(loginUrl(e, {}));
        assert.equal(l.callback.status, 200);
        assert.equal(new URL(l.authorizeUrl).searchParams.get('max_age'), '120');
        // The SPA's max_age is not let through: the configured one stands.
        const r = await e.client().get(loginUrl(e, { max_age: '5' }));
        assert.deepEqual(new URL(r.location).searchParams.getAll('max_age'), ['120']);
        // A provider that ignored max_age (fault injector): refused.
        // (a login link without any query)
        const b = e.client();
        const bl = await b.followLogin(e.url('/bff/login'), { stopAtCallback: true });
        let cb;
        await e.httpd.expectLog([/BFF00222/], async () => {
            e.provider.tamper = (claims) => ({
                claims: { ...claims, auth_time: Math.floor(Date.now() / 1000) - 3600 },
            });
            try {
                cb = await callback(b, bl.callbackUrl);
            } finally {
                e.provider.tamper = null;
            }
        });
        assert.equal(cb.status, 502);
        assert.ok(!setsSession(cb));
    } finally {
        await e.stop();
        e.httpd.assertCleanLog();
        e.httpd.cleanup();
    }
});
