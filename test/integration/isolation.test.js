// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// What reaches which upstream, and what a hostile provider or site can do
// (issue 9, review items 4.4, 4.5, 4.7, 4.9, 4.11, 4.13):
// - the bearer token goes to the relayed request only, not to an
//   ErrorDocument (internal redirect) or an SSI include (subrequest) that
//   points at a location proxied without BFFTokenRelay;
// - mod_bff's cookies never reach a proxied location, relay or not, unless
//   it says BFFPassCookie On;
// - /bff/user applies the relay's CSRF check (Origin, Sec-Fetch-Site);
// - a token response whose tokens are outside their character set (a CR/LF
//   header injection) fails the login (502 page) and the refresh (502 JSON),
//   and the upstream never sees an injected header;
// - an ID token with an untrusted extra audience is refused unless
//   BFFTrustedAudience lists it;
// - a back-channel POST with an unknown kid whose JWKS refetch hangs does not
//   hold up logins and API calls of the same child.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateSigningKey, signJwt } from '../provider/provider.js';
import { COOKIE, getUser, setsSession, startEnv, TX_COOKIE, useEnv } from './lib/env.js';
import { freePort } from './lib/httpd.js';
import { bearerOf, cookiesOf, startUpstream } from './lib/upstream.js';

// The upstream answers an HTML page with SSI includes for /ssi/ (a relayed
// location whose output mod_include parses) and JSON otherwise.
const up = await startUpstream({
    respond: (rec) => (rec.path.startsWith('/ssi/') ? {
        type: 'text/html',
        body: '<p>page</p>\n<!--#include virtual="/side/from-ssi" -->\n'
            + '<!--#include virtual="/api/from-ssi" -->\n<p>end</p>\n',
    } : null),
});
after(() => up.close());
const downPort = await freePort(); // nothing listens there: mod_proxy answers 503

// mod_proxy's lines for the backend that is down on purpose.
const PROXY_DOWN = [/AH00957/, /AH01114/, /AH00959/, /AH01144/];

function proxyConf(extra = []) {
    return {
        extraModules: ['proxy', 'proxy_http', 'rewrite'],
        site: {
            'inc.html': '<p>static</p>\n<!--#include virtual="/side/from-static" -->\n'
                + '<p id="state"><!--#if expr="%{HTTP_COOKIE} =~ /__Host-Http-bff=/" -->SIGNED-IN'
                + '<!--#else -->ANON<!--#endif --></p>\n',
        },
        extraServer: [
            'RewriteEngine On',
            `RewriteRule "^/rwside/(.*)$" "http://127.0.0.1:${up.port}/rwside/$1" [P]`,
            '<Location /api/>',
            `    ProxyPass http://127.0.0.1:${up.port}/api/`,
            '    BFFTokenRelay On',
            '</Location>',
            '<Location /down/>',
            `    ProxyPass http://127.0.0.1:${downPort}/down/ retry=0`,
            '    BFFTokenRelay On',
            '    ErrorDocument 503 /errors/503',
            '</Location>',
            '<Location /errors/>',
            `    ProxyPass http://127.0.0.1:${up.port}/errors/`,
            '</Location>',
            '<Location /ssi/>',
            `    ProxyPass http://127.0.0.1:${up.port}/ssi/`,
            '    BFFTokenRelay On',
            '    Options +Includes',
            '    SetOutputFilter INCLUDES',
            '</Location>',
            '<Location /side/>',
            `    ProxyPass http://127.0.0.1:${up.port}/side/`,
            '</Location>',
            '<Location /passed/>',
            `    ProxyPass http://127.0.0.1:${up.port}/passed/`,
            '    BFFPassCookie On',
            '</Location>',
            ...extra,
        ],
    };
}

const env = useEnv({
    httpd: proxyConf(),
    allow: [/BFF00150: BFFPassCookie On at \/passed\//],
});

/** Log in; returns { client, cookie, token: the access token issued for this login }. */
async function loginWithToken(e = env, opts = {}) {
    const before = e.provider.issued.access.length;
    const { client } = await e.login(opts);
    const issued = e.provider.issued.access.slice(before);
    assert.equal(issued.length, 1, 'one access token issued for the login');
    return { client, cookie: client.jar.get(COOKIE, e.url('/')).value, token: issued[0] };
}

/** A request with a fresh x-test id; { resp, id, seen: what the upstream received for it }. */
async function call(client, path, opts = {}, e = env) {
    const id = crypto.randomBytes(6).toString('hex');
    const headers = { 'x-test': id, ...(opts.csrf === false ? {} : { 'X-CSRF': '1' }), ...(opts.headers || {}) };
    const resp = await client.request(e.url(path), { ...opts, headers });
    return { resp, id, seen: up.byTest(id) };
}

function seenAt(seen, path) {
    const r = seen.find((x) => x.path === path);
    assert.ok(r, `the upstream saw ${path}; it saw ${seen.map((x) => x.path).join(', ')}`);
    return r;
}

function assertNoOwnCookies(rec, session) {
    const cookies = cookiesOf(rec.headers);
    assert.ok(!cookies.has(COOKIE) && !cookies.has(TX_COOKIE), `${rec.path}: Cookie ${rec.headers.cookie}`);
    assert.ok(!String(rec.headers.cookie || '').includes(session), `${rec.path}: the session value`);
}

// ---------------------------------------------------------------------------
// 4.4: the token goes to the relayed request only

test('ErrorDocument of a relayed request (backend down) proxied without relay: no bearer, no session cookie there', async () => {
    const { client, cookie, token } = await loginWithToken();
    const { result: { resp, seen } } = await env.httpd.expectLog(PROXY_DOWN,
        () => call(client, '/down/orders'));
    // The error document is the upstream's answer (httpd keeps its status).
    assert.match(resp.body, /"path":"\/errors\/503"/, `${resp.status} ${resp.body}`);
    const err = seenAt(seen, '/errors/503');
    assert.equal(err.headers.authorization, undefined,
        'the ErrorDocument upstream must not receive the user\'s access token');
    assert.ok(!JSON.stringify(err.headers).includes(token));
    assertNoOwnCookies(err, cookie);
});

test('SSI includes (subrequests) in a relayed page: the relay location gets the token, the other does not', async () => {
    const { client, cookie, token } = await loginWithToken();
    const { resp, seen } = await call(client, '/ssi/page');
    assert.equal(resp.status, 200, resp.body);
    assert.match(resp.body, /<p>page<\/p>[\s\S]*"path":"\/side\/from-ssi"[\s\S]*"path":"\/api\/from-ssi"[\s\S]*<p>end<\/p>/);
    assert.equal(bearerOf(seenAt(seen, '/ssi/page').headers), token);
    const side = seenAt(seen, '/side/from-ssi');
    assert.equal(side.headers.authorization, undefined, 'the non-relay include must not receive the token');
    assertNoOwnCookies(side, cookie);
    // An include of a relay location is a relayed request of its own.
    assert.equal(bearerOf(seenAt(seen, '/api/from-ssi').headers), token);
    for (const r of seen) assertNoOwnCookies(r, cookie);
});

test('a client\'s own Authorization to a location without relay passes unchanged', async () => {
    const { client } = await loginWithToken();
    const { resp, seen } = await call(client, '/side/basic', { headers: { Authorization: 'Basic dTpw' } });
    assert.equal(resp.status, 200);
    assert.equal(seenAt(seen, '/side/basic').headers.authorization, 'Basic dTpw');
});

// ---------------------------------------------------------------------------
// 4.11: mod_bff's cookies stay away from every proxied location

test('proxied locations without relay never see the session or tx cookie; others pass; BFFPassCookie On opts out', async () => {
    const { client, cookie } = await loginWithToken();
    const header = `theme=dark; ${COOKIE}=${cookie}; ${TX_COOKIE}=abc; z=1`;
    for (const path of ['/side/x', '/rwside/x']) {
        const { resp, seen } = await call(client, path, { cookie: header });
        assert.equal(resp.status, 200, `${path}: ${resp.body}`);
        const r = seenAt(seen, path);
        assertNoOwnCookies(r, cookie);
        assert.deepEqual([...cookiesOf(r.headers).entries()], [['theme', 'dark'], ['z', '1']], path);
    }
    // Only our cookie: no Cookie header upstream.
    const only = await call(client, '/side/only');
    assert.ok(!seenAt(only.seen, '/side/only').headers.cookie);

    const passed = await call(client, '/passed/x', { cookie: header });
    assert.equal(passed.resp.status, 200);
    assert.equal(cookiesOf(seenAt(passed.seen, '/passed/x').headers).get(COOKIE), cookie,
        'BFFPassCookie On: the upstream gets the cookie');
    assert.ok(env.httpd.errorLines().some((l) => /:warn\].*BFF00150: BFFPassCookie On at \/passed\//.test(l)),
        'the weakened default is logged at start');
});

test('an SSI include from a page httpd serves itself: the page sees the cookie, the proxied include does not', async () => {
    const { client, cookie } = await loginWithToken();
    const { resp, seen } = await call(client, '/inc.html');
    assert.equal(resp.status, 200);
    assert.match(resp.body, /"path":"\/side\/from-static"/);
    assert.match(resp.body, /SIGNED-IN/, 'requests httpd serves itself are unchanged');
    assertNoOwnCookies(seenAt(seen, '/side/from-static'), cookie);
});

// ---------------------------------------------------------------------------
// 4.13: /bff/user has the relay's CSRF check

test('/bff/user with the custom header but a cross-site Origin or Sec-Fetch-Site: 403', async () => {
    const { client } = await loginWithToken();
    const bad = [
        { Origin: 'https://evil.example' },
        { Origin: 'null' },
        { 'Sec-Fetch-Site': 'cross-site' },
        { Origin: env.siteOrigin, 'Sec-Fetch-Site': 'cross-site' },
    ];
    for (const headers of bad) {
        const { result: u } = await env.httpd.expectLog([/BFF00230/],
            () => getUser(client, env, { headers: { 'X-CSRF': '1', ...headers } }));
        assert.equal(u.status, 403, `${JSON.stringify(headers)}: ${u.status}`);
        assert.equal(u.body.error, 'csrf');
        assert.equal(u.body.sub, undefined);
    }
    for (const headers of [{ Origin: env.siteOrigin }, { 'Sec-Fetch-Site': 'same-origin' }, {}]) {
        const u = await getUser(client, env, { headers: { 'X-CSRF': '1', ...headers } });
        assert.equal(u.status, 200, `${JSON.stringify(headers)}: ${u.status}`);
    }
});

// ---------------------------------------------------------------------------
// 4.5: token character set

const INJECT = '\r\nX-Injected: 1';

test('a code exchange answering an access or refresh token with CR/LF: 502 page, no session', async () => {
    for (const field of ['access_token', 'refresh_token']) {
        const client = env.client();
        const l = await client.followLogin(env.url('/bff/login?returnTo=/app.html'), { stopAtCallback: true });
        let r;
        const { lines } = await env.httpd.expectLog([/BFF00219/], async () => {
            env.provider.tamperTokens = (body, grant) => {
                if (grant === 'authorization_code') body[field] = `${body[field] || 'x'}${INJECT}`;
            };
            try {
                r = await client.get(l.callbackUrl, { crossSite: true });
            } finally {
                env.provider.tamperTokens = null;
            }
        });
        assert.equal(r.status, 502, `${field}: ${r.status} ${r.body.slice(0, 200)}`);
        assert.match(r.headers['content-type'] || '', /^text\/html/);
        assert.ok(!setsSession(r), `${field}: no session`);
        assert.ok(lines.some((l2) => /\[bff:error\].*BFF00219.*outside/.test(l2)), lines.join('\n'));
        assert.equal((await getUser(client, env)).status, 401);
    }
    assert.equal(up.find((x) => 'x-injected' in x.headers), null);
});

test('a refresh answering an access token with CR/LF: 502 JSON, the upstream sees no injected header', async () => {
    // 4 s: the first call must still find the login's token under a slow (ASan) build; the
    // relay refreshes at half the lifetime.
    const e = await startEnv({ provider: { accessTokenTTL: 4 }, httpd: proxyConf(), allow: [/BFF00150/] });
    try {
        const { client, token } = await loginWithToken(e);
        const first = await call(client, '/api/before', {}, e);
        assert.equal(bearerOf(first.seen[0]?.headers), token);
        e.provider.tamperTokens = (body, grant) => {
            if (grant === 'refresh_token') body.access_token = `${body.access_token}${INJECT}`;
        };
        await sleep(4500); // the access token has expired: the next call must refresh
        const { result: { resp, seen } } = await e.httpd.expectLog([/BFF01403/],
            () => call(client, '/api/after', {}, e));
        assert.equal(resp.status, 502, resp.body);
        assert.match(resp.headers['content-type'] || '', /^application\/json/);
        assert.equal(JSON.parse(resp.body).error, 'provider_error');
        assert.equal(seen.length, 0, 'nothing reached the API');
        assert.equal(up.find((x) => 'x-injected' in x.headers), null);
        assert.ok(e.provider.tokenCalls.refresh_token >= 1, 'a refresh was tried');
    } finally {
        e.provider.tamperTokens = null;
        await e.stop();
        e.httpd.assertCleanLog({ allow: e.allow });
        e.httpd.cleanup();
    }
});

// ---------------------------------------------------------------------------
// 4.7: extra audiences

const untrustedAud = (c) => ({ claims: { ...c, aud: [c.aud, 'someone-else'], azp: c.aud } });

test('an ID token with an extra audience (azp us): refused by default, accepted once BFFTrustedAudience lists it', async () => {
    const client = env.client();
    const l = await client.followLogin(env.url('/bff/login?returnTo=/app.html'), { stopAtCallback: true });
    let r;
    await env.httpd.expectLog([/\[bff:error\]/], async () => {
        env.provider.tamper = untrustedAud;
        try {
            r = await client.get(l.callbackUrl, { crossSite: true });
        } finally {
            env.provider.tamper = null;
        }
    });
    assert.equal(r.status, 502, r.body.slice(0, 200));
    assert.ok(!setsSession(r));

    const e = await startEnv({ bff: { BFFTrustedAudience: ['api-one', 'someone-else'] } });
    try {
        e.provider.tamper = untrustedAud;
        const { client: c2, login } = await e.login();
        assert.equal(login.callback.status, 200, login.callback.body);
        assert.equal((await getUser(c2, e)).status, 200);
        // A third audience nobody listed still spoils it.
        e.provider.tamper = (c) => ({ claims: { ...c, aud: [c.aud, 'someone-else', 'evil'], azp: c.aud } });
        const c3 = e.client();
        const l3 = await c3.followLogin(e.url('/bff/login?returnTo=/app.html'), { stopAtCallback: true });
        const { result: r3 } = await e.httpd.expectLog([/\[bff:error\]/],
            () => c3.get(l3.callbackUrl, { crossSite: true }));
        assert.equal(r3.status, 502);
    } finally {
        e.provider.tamper = null;
        await e.stop();
        e.httpd.assertCleanLog();
        e.httpd.cleanup();
    }
});

// ---------------------------------------------------------------------------
// 4.9: the JWKS refetch does not hold the provider mutex

test('a back-channel POST with an unknown kid whose JWKS fetch hangs does not hold up logins or the relay', async () => {
    // One child with threads (event MPM, also in the prefork pass), so that
    // the back-channel POST and the other requests share the provider cache
    // and its mutex.
    const e = await startEnv({
        httpd: { ...proxyConf(['StartServers 1', 'ServerLimit 1', 'MaxRequestWorkers 10',
            'MinSpareThreads 1', 'MaxSpareThreads 20']), mpm: 'event' },
        allow: [/BFF00150/, /BFF01510: back-channel logout refused: logout token rejected: JWS kid not in the JWKS/],
    });
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    const safety = setTimeout(() => release(), 8000); // below the module's 10 s HTTP timeout
    try {
        const { client, token } = await loginWithToken(e);
        const k = generateSigningKey('unknown-kid');
        const now = Math.floor(Date.now() / 1000);
        const logoutToken = signJwt({ alg: 'RS256', kid: 'unknown-kid', typ: 'logout+jwt' }, {
            iss: e.provider.issuer, aud: e.clientId, iat: now, exp: now + 120,
            jti: crypto.randomBytes(8).toString('hex'), sub: 'alice',
            events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
        }, k.keyObject);
        const order = [];
        e.provider.holdJwks = held;
        const bc = e.client().request(e.url('/bff/backchannel-logout'), {
            method: 'POST', cookies: false,
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ logout_token: logoutToken }).toString(),
        }).then((r) => { order.push('backchannel'); return r; });
        while (e.provider.jwksHeld === 0) await sleep(20); // the refetch is at the provider now

        const login = e.client().get(e.url('/bff/login?returnTo=/app.html'))
            .then((r) => { order.push('login'); return r; });
        const relay = call(client, '/api/during', {}, e).then((r) => { order.push('relay'); return r; });
        const user = getUser(client, e).then((r) => { order.push('user'); return r; });
        // A second unknown-kid POST meanwhile is refused at once, without a second fetch.
        const jwksCalls = e.provider.jwksCalls;
        const bc2 = e.client().request(e.url('/bff/backchannel-logout'), {
            method: 'POST', cookies: false,
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ logout_token: logoutToken }).toString(),
        }).then((r) => { order.push('backchannel2'); return r; });
        const [l, rl, u, b2] = await Promise.all([login, relay, user, bc2]);
        const stillHeld = e.provider.jwksHeld > 0;
        const answered = [...order];
        release();
        const b = await bc;

        assert.ok(stillHeld && !answered.includes('backchannel'),
            `login, relay and user answered while the JWKS fetch was held; order: ${order.join(', ')}`);
        assert.equal(l.status, 302);
        assert.ok(l.location.startsWith(`${e.provider.issuer}/auth?`), l.location);
        assert.equal(rl.resp.status, 200);
        assert.equal(bearerOf(rl.seen[0].headers), token);
        assert.equal(u.status, 200);
        assert.equal(b.status, 400, 'the unknown kid is still refused');
        assert.equal(b2.status, 400);
        assert.equal(e.provider.jwksCalls, jwksCalls, 'one refetch at a time');
        assert.equal((await getUser(client, e)).status, 200, 'the session lives');
    } finally {
        clearTimeout(safety);
        release();
        e.provider.holdJwks = null;
        await e.stop();
        e.httpd.assertCleanLog({ allow: e.allow });
        e.httpd.cleanup();
    }
});
