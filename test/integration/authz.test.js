// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// AuthType bff and Require bff-claim (issue 11): the session authenticates
// requests inside httpd's own auth phases. Locations proxy to a recording
// upstream, which shows what httpd passed on: REMOTE_USER and BFF_CLAIM_*
// (through mod_headers expressions), X-BFF-Claim-* headers, and the bearer.
// Users: alice (groups admins, staff; realm_access.roles editor), bob
// (groups staff), carol (groups staff, banned), dave (no email).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { COOKIE, useEnv } from './lib/env.js';
import { bearerOf, relayLocation, startUpstream } from './lib/upstream.js';

const up = await startUpstream();
after(() => up.close());

const ACCOUNTS = {
    alice: { password: 'alice-pass', claims: { sub: 'alice', email: 'alice@example.test', email_verified: true, groups: ['admins', 'staff'], realm_access: { roles: ['editor'] } } },
    bob: { password: 'bob-pass', claims: { sub: 'bob', email: 'bob@example.test', email_verified: false, groups: ['staff'], realm_access: { roles: ['viewer'] } } },
    carol: { password: 'carol-pass', claims: { sub: 'carol', email: 'carol@example.test', groups: ['staff', 'banned'] } },
    dave: { password: 'dave-pass', claims: { sub: 'dave', groups: ['staff'] } },
};

/** A proxied <Location> under AuthType bff that echoes what httpd knows. */
function loc(path, lines) {
    return [
        `<Location ${path}>`,
        '    AuthType bff',
        ...lines.map((l) => `    ${l}`),
        `    ProxyPass http://127.0.0.1:${up.port}${path}`,
        '    RequestHeader set X-Seen-User "expr=%{REMOTE_USER}"',
        '    RequestHeader set X-Seen-Email "expr=%{env:BFF_CLAIM_EMAIL}"',
        '    RequestHeader set X-Seen-Groups "expr=%{env:BFF_CLAIM_GROUPS}"',
        '    RequestHeader set X-Seen-Auth-Type "expr=%{AUTH_TYPE}"',
        '</Location>',
    ];
}

const env = useEnv({
    provider: { accounts: ACCOUNTS, claims: { groups: ['groups', 'realm_access'] }, scopes: ['groups'] },
    bff: { BFFScope: 'openid profile email groups' },
    httpd: {
        extraModules: ['proxy', 'proxy_http', 'authn_core', 'authz_host', 'authz_user'],
        extraServer: [
            ...relayLocation(up),
            ...loc('/page/', ['Require valid-user', 'BFFPassClaims both']),
            ...loc('/admin/', ['Require bff-claim groups admins']),
            ...loc('/nested/', ['Require bff-claim realm_access.roles editor']),
            ...loc('/mixed/', ['<RequireAll>', '    Require bff-claim groups staff', '    Require ip 127.0.0.1',
                '    Require not bff-claim groups banned', '</RequireAll>']),
            ...loc('/api2/', ['Require bff-claim groups admins', 'BFFTokenRelay On']),
            ...loc('/open/', ['BFFUnauthAction pass', 'Require valid-user']),
            ...loc('/api401/', ['BFFUnauthAction 401', 'Require valid-user']),
            ...loc('/email/', ['BFFRemoteUserClaim email ^([^@]+)@ $1', 'Require valid-user']),
        ],
    },
    allow: [/AH01631/, /AH01629/],
});

let seq = 0;
/** GET (or opts.method) with an id the upstream records; { r, seen }. */
async function call(client, path, opts = {}) {
    const id = `az${++seq}`;
    const r = await client.request(env.url(path), { ...opts, headers: { 'x-test': id, ...(opts.headers || {}) } });
    return { r, seen: up.byTest(id)[0] };
}

const sessions = {};
async function as(user) {
    if (!sessions[user]) {
        const { client } = await env.login({ username: user, password: `${user}-pass` });
        sessions[user] = client;
    }
    return sessions[user];
}

test('a signed-in user: REMOTE_USER, AUTH_TYPE and the claims reach what httpd runs', async () => {
    const { r, seen } = await call(await as('alice'), '/page/x');
    assert.equal(r.status, 200, r.body);
    assert.equal(seen.headers['x-seen-user'], 'alice');
    assert.equal(seen.headers['x-seen-auth-type'], 'bff');
    assert.equal(seen.headers['x-seen-email'], 'alice@example.test');
    assert.equal(seen.headers['x-seen-groups'], 'admins,staff');
    // BFFPassClaims both: headers for the upstream too.
    assert.equal(seen.headers['x-bff-claim-email'], 'alice@example.test');
    assert.equal(seen.headers['x-bff-claim-groups'], 'admins,staff');
    assert.equal(seen.headers['x-bff-claim-realm-access'], '{"roles":["editor"]}');
    assert.equal(bearerOf(seen.headers), null, 'no token where BFFTokenRelay is off');
    assert.ok(!seen.headers.cookie?.includes(COOKIE), 'the session cookie stays here');
});

test('the access log shows the user for pages and relayed API calls', async () => {
    const alice = await as('alice');
    await call(alice, '/admin/log-check');
    await call(alice, '/api2/log-check', { headers: { 'X-CSRF': '1' } });
    const log = fs.readFileSync(env.httpd.accessLogFile, 'utf8');
    assert.match(log, / alice \[[^\]]+\] "GET \/admin\/log-check /);
    assert.match(log, / alice \[[^\]]+\] "GET \/api2\/log-check /);
});

test('BFFRemoteUserClaim with a rewrite; a session without the claim is 401', async () => {
    const { r, seen } = await call(await as('alice'), '/email/x');
    assert.equal(r.status, 200, r.body);
    assert.equal(seen.headers['x-seen-user'], 'alice');
    const dave = await call(await as('dave'), '/email/x');
    assert.equal(dave.r.status, 401, dave.r.body);
    assert.equal(dave.seen, undefined, 'nothing reached the upstream');
});

test('Require bff-claim: string in an array, nested, containers, negation; refused users get 403', async () => {
    const alice = await as('alice');
    const bob = await as('bob');
    const carol = await as('carol');
    for (const [client, path, want] of [
        [alice, '/admin/a', 200], [bob, '/admin/a', 403],
        [alice, '/nested/a', 200], [bob, '/nested/a', 403],
        [alice, '/mixed/a', 200], [bob, '/mixed/a', 200], [carol, '/mixed/a', 403],
    ]) {
        const { r, seen } = await call(client, path);
        assert.equal(r.status, want, `${path}: ${r.body}`);
        if (want === 403) {
            assert.equal(seen, undefined, 'nothing reached the upstream');
            assert.match(r.headers['content-type'], /text\/html/);
            assert.equal(r.headers['www-authenticate'], undefined);
            assert.equal(r.headers['cache-control'], 'no-store');
        }
    }
});

test('on a token-relaying location the refusal is JSON 403 and no token leaves', async () => {
    const { r, seen } = await call(await as('bob'), '/api2/x', { headers: { 'X-CSRF': '1' } });
    assert.equal(r.status, 403, r.body);
    assert.equal(r.json().error, 'forbidden');
    assert.equal(seen, undefined);
    const ok = await call(await as('alice'), '/api2/x', { headers: { 'X-CSRF': '1' } });
    assert.equal(ok.r.status, 200, ok.r.body);
    assert.ok(env.provider.issued.access.includes(bearerOf(ok.seen.headers)), 'alice\'s token relayed');
    assert.equal(ok.seen.headers['x-seen-user'], 'alice');
});

test('BFFUnauthAction: login redirects GET back to the page, 401 never redirects, pass goes on', async () => {
    const anon = env.client();
    const g = await call(anon, '/page/deep?x=1&y=2');
    assert.equal(g.r.status, 302);
    const loc = new URL(g.r.location);
    assert.equal(loc.pathname, '/bff/login');
    assert.equal(loc.searchParams.get('returnTo'), '/page/deep?x=1&y=2');
    assert.equal(g.r.headers['cache-control'], 'no-store');
    const p = await call(anon, '/page/form', { method: 'POST', body: 'a=1', headers: { origin: env.siteOrigin } });
    assert.equal(p.r.status, 401, 'a POST is not redirected');
    for (const path of ['/api401/x', '/api2/x']) {
        const u = await call(anon, path, { headers: { 'X-CSRF': '1' } });
        assert.equal(u.r.status, 401, `${path}: ${u.r.body}`);
        assert.equal(u.r.json().error, 'unauthenticated');
        assert.equal(u.r.location, null);
        assert.equal(u.r.headers['cache-control'], 'no-store');
    }
    const o = await call(anon, '/open/x');
    assert.equal(o.r.status, 200, o.r.body);
    assert.equal(o.seen.headers['x-seen-user'], '');
    assert.equal(o.seen.headers['x-seen-email'], '');
    const a = await call(await as('alice'), '/open/x');
    assert.equal(a.seen.headers['x-seen-user'], 'alice', 'pass still names a signed-in user');
});

test('after the login redirect, the login returns the browser to the page it asked for', async () => {
    const client = env.client();
    const first = await client.get(env.url('/page/after-login?q=1'));
    assert.equal(first.status, 302);
    const login = await client.followLogin(first.location);
    assert.equal(new URL(login.returnTo, env.siteOrigin).pathname + new URL(login.returnTo, env.siteOrigin).search,
        '/page/after-login?q=1');
    const { r, seen } = await call(client, '/page/after-login?q=1');
    assert.equal(r.status, 200, r.body);
    assert.equal(seen.headers['x-seen-user'], 'alice');
});

test('forged X-BFF-Claim-* headers never reach the upstream nor change a decision', async () => {
    const forged = { 'X-BFF-Claim-Groups': 'admins', 'x-bff-claim-role': 'root', 'X-Bff-Claim-Email': 'mallory@evil.test',
        X_BFF_Claim_Level: 'root', 'x-bff_claim-team': 'red' };
    const bob = await as('bob');
    const denied = await call(bob, '/admin/x', { headers: forged });
    assert.equal(denied.r.status, 403);
    const page = await call(bob, '/page/x', { headers: forged });
    assert.equal(page.seen.headers['x-bff-claim-groups'], 'staff');
    assert.equal(page.seen.headers['x-bff-claim-email'], 'bob@example.test');
    assert.equal(page.seen.headers['x-bff-claim-role'], undefined);
    const api = await call(bob, '/api/x', { headers: { ...forged, 'X-CSRF': '1' } });
    assert.equal(api.r.status, 200, api.r.body);
    for (const h of Object.keys(api.seen.headers)) {
        assert.ok(!/^x[-_]bff[-_]claim[-_]/.test(h), `${h} reached the upstream of a relay location`);
    }
    for (const h of Object.keys(page.seen.headers)) {
        assert.ok(!/^x[-_]bff[-_]claim[-_](level|team|role)$/.test(h), `${h} (forged) reached the upstream`);
    }
});

test('CSRF on AuthType bff pages: unsafe methods need this site\'s Origin', async () => {
    const alice = await as('alice');
    const evil = await call(alice, '/page/form', { method: 'POST', body: 'a=1', headers: { origin: 'https://evil.example' } });
    assert.equal(evil.r.status, 403, evil.r.body);
    assert.equal(evil.seen, undefined);
    const bare = await call(alice, '/page/form', { method: 'DELETE' });
    assert.equal(bare.r.status, 403, 'no Origin, no Sec-Fetch-Site');
    const own = await call(alice, '/page/form', { method: 'POST', body: 'a=1', headers: { origin: env.siteOrigin } });
    assert.equal(own.r.status, 200, own.r.body);
    const sfs = await call(alice, '/page/form', { method: 'PUT', body: 'a=1', headers: { 'sec-fetch-site': 'same-origin' } });
    assert.equal(sfs.r.status, 200, sfs.r.body);
    const get = await call(alice, '/page/x', { headers: { origin: 'https://evil.example' } });
    assert.equal(get.r.status, 200, 'safe methods pass');
});
