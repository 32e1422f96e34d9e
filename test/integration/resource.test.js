// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// BFFTokenResource and BFFTokenScope for the user's token against the real
// provider with resource indicators (RFC 8707) on; the login asks for both
// resources (BFFAuthParams), as such a provider binds refresh tokens to them:
//   - two resources in one session, 50 requests at once (25 each): one
//     refresh per resource, each token's audience its resource, the refresh
//     token rotated and kept (the next refresh presents the newest one);
//   - the default location still relays the login's token;
//   - a resource the provider refuses: 502 JSON, the session lives on;
//   - BFFTokenScope narrows the user's token: the narrower scope is sent;
//   - no token ever reaches the browser.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, test } from 'node:test';
import { decodeJwt } from '../provider/provider.js';
import { useEnv } from './lib/env.js';
import { bearerOf, startUpstream } from './lib/upstream.js';

const RES_A = 'https://a.api.example/';
const RES_B = 'https://b.api.example/';
const RES_UNKNOWN = 'https://unknown.api.example/';

const up = await startUpstream();
after(() => up.close());

/** A proxied location with the given BFF directives. */
function location(p, ...lines) {
    return [`<Location /${p}/>`, `    ProxyPass http://127.0.0.1:${up.port}/${p}/`, ...lines.map((l) => `    ${l}`),
        '</Location>'];
}

const env = useEnv({
    provider: {
        rotateRefreshToken: true,
        resourceServers: { [RES_A]: { scope: 'api' }, [RES_B]: { scope: 'api' } },
        scopes: ['api'],
    },
    httpd: {
        extraModules: ['proxy', 'proxy_http'],
        extraServer: [
            'BFFScope "openid profile email api"',
            `BFFAuthParams resource=${RES_A} resource=${RES_B}`,
            ...location('default', 'BFFTokenRelay On'),
            ...location('a', 'BFFTokenRelay On', `BFFTokenResource ${RES_A}`),
            ...location('b', 'BFFTokenRelay On', `BFFTokenResource ${RES_B}`),
            ...location('unknown', 'BFFTokenRelay On', `BFFTokenResource ${RES_UNKNOWN}`),
            ...location('narrow', 'BFFTokenRelay On', 'BFFTokenScope openid'),
        ],
    },
    // The refused resource's refresh (BFF01405) and its 502.
    allow: [/BFF01405/],
});

let seq = 0;
const received = [];

/** One request; returns { resp, token (the relayed bearer or null) }. */
async function call(client, p) {
    const id = `r${++seq}-${crypto.randomBytes(3).toString('hex')}`;
    const resp = await client.request(env.url(p), { headers: { 'x-test': id, 'X-CSRF': '1' } });
    received.push(resp);
    const seen = up.byTest(id);
    return { resp, token: seen.length ? bearerOf(seen[0].headers) : null };
}

function resourceCalls(resource) {
    return env.provider.resourceRequests.filter((r) => r.resource === resource);
}

/** Log in as alice; returns { client, token: the access token of the login }. */
async function login() {
    const before = env.provider.issued.access.length;
    const { client } = await env.login();
    const issued = env.provider.issued.access.slice(before);
    assert.equal(issued.length, 1);
    return { client, token: issued[0] };
}

test('two resources in one session: 50 requests at once, one refresh per resource, rotation kept', async () => {
    const { client, token: loginToken } = await login();
    const refreshBefore = env.provider.tokenRequests.filter((r) => r.grantType === 'refresh_token');
    // Hold the provider's answers, so that every request arrives while the
    // refreshes are in flight.
    env.provider.tokenDelay = { refresh_token: 800 };
    let results;
    try {
        results = await Promise.all(Array.from({ length: 50 }, (_, i) => call(client, i % 2 ? '/b/x' : '/a/x')));
    } finally {
        env.provider.tokenDelay = null;
    }
    assert.equal(resourceCalls(RES_A).length, 1, 'one refresh for resource A');
    assert.equal(resourceCalls(RES_B).length, 1, 'one refresh for resource B');
    const tokens = { '/a/': new Set(), '/b/': new Set() };
    results.forEach((r, i) => {
        assert.equal(r.resp.status, 200, r.resp.body);
        tokens[i % 2 ? '/b/' : '/a/'].add(r.token);
    });
    assert.equal(tokens['/a/'].size, 1);
    assert.equal(tokens['/b/'].size, 1);
    const [a] = tokens['/a/'];
    const [b] = tokens['/b/'];
    assert.equal(decodeJwt(a).claims.aud, RES_A);
    assert.equal(decodeJwt(b).claims.aud, RES_B);
    assert.notEqual(a, loginToken);

    // Both refreshes succeeded with rotation on: the second presented the
    // refresh token the first one's rotation issued (never a spent one).
    const refreshes = env.provider.tokenRequests.filter((r) => r.grantType === 'refresh_token')
        .slice(refreshBefore.length);
    assert.equal(refreshes.length, 2);
    assert.ok(refreshes.every((r) => r.status === 200), JSON.stringify(refreshes));
    assert.notEqual(refreshes[0].refreshToken, refreshes[1].refreshToken);
    for (const [rt, uses] of env.provider.refreshUses) {
        assert.ok(uses.length === 1, `refresh token presented ${uses.length} times: ${rt.slice(0, 6)}...`);
    }

    // Cached: no more calls; the default location keeps the login's token.
    const again = await call(client, '/a/y');
    assert.equal(again.token, a);
    const dflt = await call(client, '/default/x');
    assert.equal(dflt.resp.status, 200, dflt.resp.body);
    assert.equal(dflt.token, loginToken);
    assert.equal(resourceCalls(RES_A).length, 1);
});

test('a resource the provider refuses: 502 JSON, the session lives on', async () => {
    const { client, token } = await login();
    const r = await call(client, '/unknown/x');
    assert.equal(r.resp.status, 502, r.resp.body);
    assert.match(r.resp.headers['content-type'] || '', /^application\/json/);
    assert.equal(r.resp.headers.location, undefined, 'never a redirect');
    assert.equal(r.token, null, 'nothing relayed');
    const refused = resourceCalls(RES_UNKNOWN);
    assert.equal(refused.length, 1);
    assert.equal(refused[0].error, 'invalid_target');
    const d = await call(client, '/default/x');
    assert.equal(d.resp.status, 200);
    assert.equal(d.token, token);
});

test('BFFTokenScope narrows the user\'s token: the narrower scope is sent', async () => {
    const { client, token } = await login();
    const userBefore = await client.request(env.url('/bff/user'), { headers: { 'X-CSRF': '1' } });
    assert.equal(userBefore.status, 200);
    const r = await call(client, '/narrow/x');
    assert.equal(r.resp.status, 200, r.resp.body);
    assert.ok(r.token && r.token !== token);
    const asked = env.provider.resourceRequests.filter((x) => x.scope === 'openid' && !x.resource);
    assert.equal(asked.length, 1);
    assert.equal(asked[0].accessToken, r.token);
    assert.equal(env.provider.grantOf.get(r.token).scope, 'openid');
    // /bff/user keeps the login's claims (the narrower refresh's ID token
    // does not replace them).
    const u = await client.request(env.url('/bff/user'), { headers: { 'X-CSRF': '1' } });
    assert.equal(u.status, 200);
    assert.deepEqual(JSON.parse(u.body), JSON.parse(userBefore.body));
    assert.equal(JSON.parse(u.body).sub, 'alice');
});

test('no token reaches the browser', () => {
    const all = env.provider.allTokens();
    for (const resp of received) {
        const text = JSON.stringify(resp.headers) + (resp.body || '');
        for (const t of all) {
            assert.ok(!text.includes(t), 'a token in a response to the browser');
        }
    }
});
