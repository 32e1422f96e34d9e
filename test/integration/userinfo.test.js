// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Discovery from BFFProviderMetadataURL and the userinfo endpoint (issue 12),
// against the real test provider:
//   - discovery served at another path (provider option metadataAliases):
//     logins work and the well-known URL is never fetched; a document there
//     whose issuer is not BFFProvider (Entra's {tenantid} placeholder) is
//     refused: BFF01901 names both values, logins are 502;
//   - userinfo claims the ID token does not carry (conformIdTokenClaims on,
//     a "department" account claim): merged under the ID token's, kept in the
//     session, seen by Require bff-claim and BFFPassClaims, filtered out of
//     /bff/user by BFFUserClaims;
//   - userinfo answering another sub, failing (503) or not answering in time:
//     no session, no cookie, nothing left in the store (memcached keys);
//   - signed userinfo (the client registered with userinfo_signed_response_alg,
//     the provider answers application/jwt): refused, BFF01910;
//   - BFFUserInfo Off: no call, ID token claims only;
//   - /bff/user?slide=false leaves the idle timeout alone.
// The userinfo faults use the provider's fault injector (op.userinfoFault) on
// its real userinfo answer: a real provider does not answer another sub, nor
// fail on demand.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { COOKIE, getUser, setsSession, startEnv, useEnv } from './lib/env.js';
import { freePort, Httpd } from './lib/httpd.js';
import { startMemcached } from './lib/memcached.js';
import { relayLocation, startUpstream } from './lib/upstream.js';

const up = await startUpstream();
const mc = await startMemcached();
const portB = await freePort();
after(async () => {
    await up.close();
    await mc.close();
});

const ACCOUNTS = {
    alice: { password: 'alice-pass', claims: { sub: 'alice', email: 'alice@example.test', name: 'Alice Example', department: 'R&D' } },
    bob: { password: 'bob-pass', claims: { sub: 'bob', email: 'bob@example.test', name: 'Bob Example', department: 'Sales' } },
};
const ALIAS = '/tenant/v2.0/.well-known/openid-configuration';
const PLACEHOLDER = '/common/v2.0/.well-known/openid-configuration';
const IDLE = 20;

/** A proxied <Location> under AuthType bff that shows what httpd passed on. */
function loc(path, lines) {
    return [
        `<Location ${path}>`,
        '    AuthType bff',
        ...lines.map((l) => `    ${l}`),
        `    ProxyPass http://127.0.0.1:${up.port}${path}`,
        '    RequestHeader set X-Seen-Dept "expr=%{env:BFF_CLAIM_DEPARTMENT}"',
        '</Location>',
    ];
}

const env = useEnv({
    provider: ({ providerIssuer, siteOrigin }) => ({
        accounts: ACCOUNTS,
        // Short access tokens: a relayed call refreshes after 4 s.
        accessTokenTTL: 8,
        // Scope claims from the userinfo endpoint only: the ID token has sub.
        conformIdTokenClaims: true,
        claims: { org: ['department'] },
        scopes: ['org'],
        redirectUri: [`${siteOrigin}/bff/callback`, `https://localhost:${portB}/bff/callback`],
        metadataAliases: {
            [ALIAS]: {},
            [PLACEHOLDER]: { issuer: 'https://login.example/{tenantid}/v2.0' },
        },
        providerIssuer,
    }),
    bff: ({ providerIssuer }) => ({
        BFFProviderMetadataURL: `${providerIssuer}${ALIAS}`,
        BFFScope: 'openid profile email org',
        BFFSessionStore: `memcache:${mc.spec}`,
        BFFSessionIdleTimeout: `${IDLE}s`,
        BFFUserClaims: [['sub', 'iss', 'email', 'name']],
    }),
    httpd: {
        extraModules: ['proxy', 'proxy_http', 'authn_core', 'authz_user'],
        extraServer: [
            ...relayLocation(up),
            ...loc('/rnd/', ['Require bff-claim department R&D', 'BFFPassClaims env']),
        ],
    },
    allow: [/AH01631/, /AH01629/],
});

let seq = 0;
async function call(client, path) {
    const id = `ui${++seq}`;
    const r = await client.request(env.url(path), { headers: { 'x-test': id } });
    return { r, seen: up.byTest(id)[0] };
}

/** A login that stops at the callback, then the callback itself: { client, r }. */
async function callbackWith(fault, username = 'alice') {
    const client = env.client();
    const l = await client.followLogin(env.url('/bff/login?returnTo=/'), {
        username, password: `${username}-pass`, stopAtCallback: true,
    });
    env.provider.userinfoFault = fault;
    try {
        const r = await client.get(l.callbackUrl, { crossSite: true });
        return { client, r };
    } finally {
        env.provider.userinfoFault = null;
    }
}

function assertNoSession(r, status, what) {
    assert.equal(r.status, status, `${what}: ${r.body.slice(0, 300)}`);
    assert.match(r.headers['content-type'] || '', /text\/html/, `${what}: a page`);
    assert.ok(!setsSession(r), `${what}: no session cookie`);
}

test('discovery from BFFProviderMetadataURL: logins work, the well-known URL is never fetched', async () => {
    const before = env.provider.discoveryCalls;
    const { client, login } = await env.login();
    assert.equal(login.callback.status, 200);
    assert.equal((await getUser(client, env)).status, 200);
    assert.equal(env.provider.discoveryCalls, before, 'no GET /.well-known/openid-configuration');
});

test('userinfo claims are merged and kept: Require bff-claim and BFFPassClaims see them', async () => {
    const calls = env.provider.userinfoCalls;
    const { client: alice } = await env.login();
    assert.equal(env.provider.userinfoCalls, calls + 1, 'one userinfo call per login');
    const a = await call(alice, '/rnd/x');
    assert.equal(a.r.status, 200, a.r.body);
    assert.equal(a.seen.headers['x-seen-dept'], 'R&D', 'BFF_CLAIM_DEPARTMENT from userinfo');

    const { client: bob } = await env.login({ username: 'bob', password: 'bob-pass' });
    const b = await call(bob, '/rnd/x');
    assert.equal(b.r.status, 403, 'department Sales is not R&D');
    assert.equal(b.seen, undefined, 'never reached the upstream');
});

test('BFFUserClaims: /bff/user returns only the named claims, userinfo ones included', async () => {
    const { client } = await env.login();
    const u = await getUser(client, env);
    assert.equal(u.status, 200);
    // email and name come from userinfo only (conformIdTokenClaims on).
    assert.deepEqual(u.body.claims, {
        sub: 'alice', iss: env.provider.issuer, email: 'alice@example.test', name: 'Alice Example',
    });
    assert.equal(u.body.sub, 'alice');
    // department stays on the server (the /rnd/ test shows it is there).
});

test('userinfo cannot override the ID token: a conflicting claim keeps the ID token value', async () => {
    // The provider's real answer with an iss added (fault injector): the
    // signed ID token's iss wins.
    const { client, r } = await callbackWith({ claims: (c) => ({ ...c, iss: 'https://evil.example' }) });
    assert.equal(r.status, 200, r.body);
    const u = await getUser(client, env);
    assert.equal(u.body.claims.iss, env.provider.issuer);
    assert.equal(u.body.claims.email, 'alice@example.test');
});

test('the userinfo claims outlive a refresh that brings a new ID token', async () => {
    const { client } = await env.login();
    const refreshes = env.provider.tokenCalls.refresh_token;
    await new Promise((resolve) => setTimeout(resolve, 4500));
    const r = await client.get(env.url('/api/x'), { headers: { 'X-CSRF': '1' } });
    assert.equal(r.status, 200, r.body);
    assert.equal(env.provider.tokenCalls.refresh_token, refreshes + 1, 'one refresh');
    const last = env.provider.issued.id.at(-1);
    assert.ok(last, 'the refresh brought an ID token');
    const dept = await call(client, '/rnd/z');
    assert.equal(dept.r.status, 200, 'department R&D still in the session');
    assert.equal(dept.seen.headers['x-seen-dept'], 'R&D');
    assert.equal((await getUser(client, env)).body.claims.email, 'alice@example.test');
});

test('userinfo answering another sub: the login fails, no session, nothing in the store', async () => {
    const keys = (await mc.keys()).sort();
    const { result, lines } = await env.httpd.expectLog([/BFF01911/], () =>
        callbackWith({ claims: (c) => ({ ...c, sub: 'mallory' }) }));
    assertNoSession(result.r, 502, 'sub mismatch');
    assert.ok(lines.some((l) => /:error\].*BFF01911.*sub does not equal/.test(l)), lines.join('\n'));
    assert.equal((await getUser(result.client, env)).status, 401);
    assert.deepEqual((await mc.keys()).sort(), keys, 'no session, no marker left');
});

test('userinfo down (503): 502 page, no session cookie, nothing left in the store', async () => {
    const keys = (await mc.keys()).sort();
    const { result, lines } = await env.httpd.expectLog([/BFF01912/], () => callbackWith({ status: 503 }));
    assertNoSession(result.r, 502, 'userinfo 503');
    assert.ok(lines.some((l) => /:error\].*BFF01912.*HTTP 503/.test(l)), lines.join('\n'));
    assert.ok(!result.client.jar.get(COOKIE, env.url('/')), 'the browser holds no session cookie');
    assert.deepEqual((await mc.keys()).sort(), keys, 'no session, no marker left');
});

test('userinfo not answering in time: 504 page, no session (about 10 s)', async () => {
    const keys = (await mc.keys()).sort();
    const { result, lines } = await env.httpd.expectLog([/BFF01912/], () => callbackWith({ hangMs: 12000 }));
    assertNoSession(result.r, 504, 'userinfo timeout');
    assert.ok(lines.some((l) => /BFF01912.*timed out/.test(l)), lines.join('\n'));
    assert.deepEqual((await mc.keys()).sort(), keys, 'no session, no marker left');
});

test('/bff/user?slide=false answers without extending the idle timeout', async () => {
    const { client } = await env.login();
    const first = await getUser(client, env);
    assert.equal(first.body.idleExpiresIn, IDLE);
    // Past a tenth of the idle timeout, a plain /bff/user would slide it.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const polled = await client.get(env.url('/bff/user?slide=false'), { headers: { 'X-CSRF': '1' } });
    assert.equal(polled.status, 200);
    const idle = JSON.parse(polled.body).idleExpiresIn;
    assert.ok(idle <= IDLE - 2, `not extended: ${idle}`);
    // The same request without it slides (so the check above means something).
    const slid = await getUser(client, env);
    assert.equal(slid.body.idleExpiresIn, IDLE);
});

test('a metadata URL whose issuer is not BFFProvider ({tenantid}): refused, BFF01901 names both', async () => {
    const B = new Httpd({
        pki: env.pki,
        port: portB,
        bff: {
            BFFProvider: env.provider.issuer,
            BFFProviderMetadataURL: `${env.provider.issuer}${PLACEHOLDER}`,
            BFFProviderCAFile: env.pki.caFile,
            BFFClientID: env.clientId,
            BFFClientSecret: env.clientSecret,
            BFFRedirectURI: `https://localhost:${portB}/bff/callback`,
            BFFCryptoKey: env.bff.BFFCryptoKey,
        },
    });
    await B.start();
    try {
        const c = env.client();
        const { result: r, lines } = await B.expectLog([/BFF01901/], () => c.get(B.url('/bff/login')));
        assert.equal(r.status, 502, r.body);
        assert.ok(!r.location, 'no redirect to a provider whose metadata was refused');
        const line = lines.find((l) => /BFF01901/.test(l));
        assert.ok(line && /:error\]/.test(line), lines.join('\n'));
        assert.ok(line.includes('{tenantid}') && line.includes(`'${env.provider.issuer}'`), line);
    } finally {
        await B.stop();
    }
    B.assertCleanLog();
    B.cleanup();
});

test('BFFUserInfo Off: no userinfo call, the session holds the ID token claims only', async () => {
    const B = new Httpd({
        pki: env.pki,
        port: portB,
        bff: {
            BFFProvider: env.provider.issuer,
            BFFProviderCAFile: env.pki.caFile,
            BFFClientID: env.clientId,
            BFFClientSecret: env.clientSecret,
            BFFRedirectURI: `https://localhost:${portB}/bff/callback`,
            BFFCryptoKey: env.bff.BFFCryptoKey,
            BFFScope: 'openid profile email org',
            BFFUserInfo: 'Off',
        },
    });
    await B.start();
    try {
        const calls = env.provider.userinfoCalls;
        const c = env.client();
        const l = await c.followLogin(B.url('/bff/login'));
        assert.equal(l.callback.status, 200);
        assert.equal(env.provider.userinfoCalls, calls, 'no userinfo call');
        const r = await c.get(B.url('/bff/user'), { headers: { 'X-CSRF': '1' } });
        assert.equal(r.status, 200);
        const { claims } = JSON.parse(r.body);
        assert.equal(claims.sub, 'alice');
        // conformIdTokenClaims: email and department are userinfo claims only.
        assert.equal(claims.email, undefined);
        assert.equal(claims.department, undefined);
    } finally {
        await B.stop();
    }
    B.assertCleanLog();
    B.cleanup();
});

test('a signed userinfo answer (application/jwt) is refused: BFF01910, no session', async () => {
    const e = await startEnv({ provider: { userinfoSignedAlg: 'RS256' } });
    try {
        const c = e.client();
        const l = await c.followLogin(e.url('/bff/login'), { stopAtCallback: true });
        const { result: r, lines } = await e.httpd.expectLog([/BFF01910/],
            () => c.get(l.callbackUrl, { crossSite: true }));
        assertNoSession(r, 502, 'signed userinfo');
        assert.ok(lines.some((l2) => /:error\].*BFF01910.*application\/jwt/.test(l2)), lines.join('\n'));
        assert.equal(e.provider.userinfoCalls, 1, 'the provider was asked');
    } finally {
        await e.stop();
    }
    e.httpd.assertCleanLog();
    e.httpd.cleanup();
});
