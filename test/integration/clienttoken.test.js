// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// BFFTokenRelay client and user-or-client against the real provider, which
// allows the test client the client_credentials grant:
//   - a client location relays a token the provider issued by client
//     credentials (with BFFTokenScope's scopes), without any session, and
//     reuses it;
//   - 20 requests at once, spread over the two children, make one token
//     request;
//   - a short-lived client token is fetched again once it expired;
//   - provider down: 502 JSON (a cached token keeps working);
//   - user-or-client: the user's token with a session, the client's without;
//   - a request carrying the session cookie passes the CSRF check (403);
//   - the token goes to the relayed request only (not to an ErrorDocument's
//     location) and never into what the browser receives.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { COOKIE, useEnv } from './lib/env.js';
import { freePort } from './lib/httpd.js';
import { bearerOf, startUpstream } from './lib/upstream.js';

const SHORT_TTL = 3; // seconds: the lifetime of tokens with the scope api:short

const up = await startUpstream();
after(() => up.close());
const downPort = await freePort(); // nothing listens there: mod_proxy answers 503

// Lines of a provider that is down (the failed token request, a failed
// metadata fetch) and of mod_proxy for the backend that is down on purpose.
const PROVIDER_DOWN = [/BFF02201/, /BFF00306/];
const PROXY_DOWN = [/AH00957/, /AH01114/, /AH00959/, /AH01144/];

/** A proxied location with the given BFF directives. */
function location(p, ...lines) {
    return [`<Location /${p}/>`, `    ProxyPass http://127.0.0.1:${up.port}/${p}/`, ...lines.map((l) => `    ${l}`),
        '</Location>'];
}

const env = useEnv({
    provider: {
        clientCredentials: true,
        // Each scope names what a test needs; api:short tokens live SHORT_TTL s.
        clientCredentialsTTL: (scope) => (String(scope || '').split(' ').includes('api:short') ? SHORT_TTL : 600),
        scopes: ['api:read', 'api:burst', 'api:short', 'api:down', 'api:err'],
    },
    allow: PROXY_DOWN,
    httpd: {
        extraModules: ['proxy', 'proxy_http'],
        extraServer: [
            // Which child served which request (x-test), for the burst.
            'LogFormat "%P %{x-test}i" pids',
            'CustomLog pids.log pids',
            ...location('svc', 'BFFTokenRelay client', 'BFFTokenScope api:read'),
            ...location('burst', 'BFFTokenRelay client', 'BFFTokenScope api:burst'),
            ...location('short', 'BFFTokenRelay client', 'BFFTokenScope api:short'),
            ...location('down', 'BFFTokenRelay client', 'BFFTokenScope api:down'),
            ...location('mixed', 'BFFTokenRelay user-or-client'),
            ...location('errors'),
            '<Location /broken/>',
            `    ProxyPass http://127.0.0.1:${downPort}/broken/ retry=0`,
            '    BFFTokenRelay client',
            '    BFFTokenScope api:err',
            '    ErrorDocument 503 /errors/503',
            '</Location>',
        ],
    },
});

let seq = 0;
/** Every response the browser side received, for the "no token" check. */
const received = [];

/** One request; returns { resp, id, seen (upstream records), token (relayed bearer or null) }. */
async function call(client, p, opts = {}) {
    const id = `c${++seq}-${crypto.randomBytes(3).toString('hex')}`;
    const headers = { 'x-test': id, ...(opts.headers || {}) };
    const resp = await client.request(env.url(p), { ...opts, headers });
    received.push(resp);
    const seen = up.byTest(id);
    return { resp, id, seen, token: seen.length ? bearerOf(seen[0].headers) : null };
}

function ccCalls() {
    return env.provider.tokenCalls.client_credentials || 0;
}

function assertJsonError(resp, status, error) {
    assert.equal(resp.status, status, resp.body);
    assert.match(resp.headers['content-type'] || '', /^application\/json/);
    assert.match(resp.headers['cache-control'] || '', /no-store/);
    assert.equal(resp.headers.location, undefined, 'never a redirect');
    assert.equal(JSON.parse(resp.body).error, error);
}

/** Log in as alice; returns { client, token: the access token of the login }. */
async function login() {
    const before = env.provider.issued.access.length;
    const { client } = await env.login();
    const issued = env.provider.issued.access.slice(before);
    assert.equal(issued.length, 1);
    return { client, token: issued[0] };
}

test('client: a client credentials token with BFFTokenScope, no session needed, fetched once', async () => {
    const anon = env.client();
    const before = ccCalls();
    const a = await call(anon, '/svc/orders', { headers: { Authorization: 'Bearer forged-by-the-client' } });
    assert.equal(a.resp.status, 200, a.resp.body);
    assert.equal(a.seen.length, 1);
    assert.ok(a.token && a.token !== 'forged-by-the-client', `relayed: ${a.seen[0].headers.authorization}`);
    assert.deepEqual(env.provider.grantOf.get(a.token), { grantType: 'client_credentials', scope: 'api:read' },
        'the provider issued it by client credentials with the location\'s scope');
    assert.equal(ccCalls(), before + 1);

    // No CSRF header, another client, a cross-site Origin without any cookie:
    // no session is involved, the same cached token.
    const other = env.client();
    const b = await call(other, '/svc/more', { headers: { Origin: 'https://evil.example' } });
    assert.equal(b.resp.status, 200, b.resp.body);
    assert.equal(b.token, a.token);
    assert.equal(ccCalls(), before + 1, 'cached: no second token request');
});

test('20 requests at once across the children: one token request, one token', async (t) => {
    const before = ccCalls();
    // The provider holds its answer a moment, so that every request arrives
    // while the first one's token request is in flight.
    env.provider.tokenDelay = { client_credentials: 1000 };
    let results;
    try {
        results = await Promise.all(Array.from({ length: 20 }, () => call(env.client(), '/burst/x')));
    } finally {
        env.provider.tokenDelay = null;
    }
    const calls = ccCalls() - before;
    const ids = new Set(results.map((r) => r.id));
    const pids = new Set(fs.readFileSync(path.join(env.httpd.dir, 'pids.log'), 'utf8').split('\n')
        .map((l) => l.split(' ')).filter(([, id]) => ids.has(id)).map(([pid]) => pid));
    t.diagnostic(`20 parallel requests: ${calls} client_credentials request(s), served by ${pids.size} child(ren)`);
    console.log(`# client token burst: requests 20, token requests ${calls}, children ${pids.size}`);
    assert.deepEqual(results.map((r) => r.resp.status), results.map(() => 200),
        results.filter((r) => r.resp.status !== 200).map((r) => `${r.resp.status} ${r.resp.body}`).join('\n'));
    // Event MPM: the two children; prefork starts more under the burst.
    assert.ok(pids.size >= 2, `the burst reached more than one child (${pids.size})`);
    assert.equal(calls, 1, 'one token request for the whole burst');
    const tokens = new Set(results.map((r) => r.token));
    assert.equal(tokens.size, 1);
    assert.equal(env.provider.grantOf.get([...tokens][0]).scope, 'api:burst');
});

test('a client token is fetched again once it expired', async () => {
    const before = ccCalls();
    const first = await call(env.client(), '/short/a');
    assert.equal(first.resp.status, 200, first.resp.body);
    assert.equal(ccCalls(), before + 1);
    // Past its expiry (whole seconds at both ends).
    await sleep(SHORT_TTL * 1000 + 1100);
    const second = await call(env.client(), '/short/b');
    assert.equal(second.resp.status, 200, second.resp.body);
    assert.equal(ccCalls(), before + 2, 'one more token request');
    assert.notEqual(second.token, first.token);
    assert.equal(env.provider.grantOf.get(second.token).grantType, 'client_credentials');
});

test('provider down: no client token -> 502 JSON, nothing upstream; a cached one keeps working', async (t) => {
    const op = env.provider;
    // /svc/ has a token cached (first test); /down/ has none yet.
    const warm = await call(env.client(), '/svc/warm');
    assert.equal(warm.resp.status, 200);
    await op.close();
    try {
        const { result: down } = await env.httpd.expectLog(PROVIDER_DOWN, () => call(env.client(), '/down/x'));
        t.diagnostic(`provider refusing connections: ${down.resp.status}`);
        assertJsonError(down.resp, 502, 'provider_error');
        assert.equal(down.seen.length, 0, 'nothing reaches the API');
        const cached = await call(env.client(), '/svc/still');
        assert.equal(cached.resp.status, 200, cached.resp.body);
        assert.equal(cached.token, warm.token);
    } finally {
        await op.restart();
    }
    // Back: within the failure window (5 s) and a child's metadata back-off
    // the answer is still 502; then the token comes.
    const { result: back } = await env.httpd.expectLog(PROVIDER_DOWN, async () => {
        const t0 = Date.now();
        for (;;) {
            const r = await call(env.client(), '/down/y');
            if (r.resp.status === 200 || Date.now() - t0 > 15000) return r;
            assertJsonError(r.resp, 502, 'provider_error');
            await sleep(500);
        }
    });
    assert.equal(back.resp.status, 200, back.resp.body);
    assert.equal(env.provider.grantOf.get(back.token).scope, 'api:down');
});

test('user-or-client: the user\'s token with a session, the client\'s without', async () => {
    const anon = await call(env.client(), '/mixed/a');
    assert.equal(anon.resp.status, 200, anon.resp.body);
    assert.deepEqual(env.provider.grantOf.get(anon.token), { grantType: 'client_credentials', scope: undefined },
        'no BFFTokenScope: no scope requested');

    const { client, token } = await login();
    const user = await call(client, '/mixed/b', { headers: { 'X-CSRF': '1' } });
    assert.equal(user.resp.status, 200, user.resp.body);
    assert.equal(user.token, token, 'the session\'s access token');
    assert.equal(env.provider.grantOf.get(user.token).grantType, 'authorization_code');
    assert.ok(!String(user.seen[0].headers.cookie || '').includes(COOKIE), 'the session cookie is not forwarded');

    // A cookie that names no live session: the client's token (the CSRF rules apply).
    const stale = env.client();
    const s = await call(stale, '/mixed/c', { cookie: `${COOKIE}=${'A'.repeat(43)}`, headers: { 'X-CSRF': '1' } });
    assert.equal(s.resp.status, 200, s.resp.body);
    assert.equal(s.token, anon.token);
    assert.ok(!String(s.seen[0].headers.cookie || '').includes(COOKIE));
});

test('a request with the session cookie must pass the CSRF check (403), in client and user-or-client', async () => {
    const { client } = await login();
    for (const p of ['/svc/x', '/mixed/x']) {
        const cross = await call(client, p, { headers: { 'X-CSRF': '1', Origin: 'https://evil.example' } });
        assertJsonError(cross.resp, 403, 'csrf');
        assert.equal(cross.seen.length, 0, `${p}: nothing reaches the API`);
        const noHeader = await call(client, p);
        assertJsonError(noHeader.resp, 403, 'csrf');
        assert.equal(noHeader.seen.length, 0);
        const sameSite = await call(client, p, { headers: { 'X-CSRF': '1', Origin: env.siteOrigin } });
        assert.equal(sameSite.resp.status, 200, `${p}: ${sameSite.resp.body}`);
    }
    // user-or-client with a cookie that names no session: the client's token, same rules.
    const stale = await call(env.client(), '/mixed/y', {
        cookie: `${COOKIE}=${'B'.repeat(43)}`,
        headers: { 'X-CSRF': '1', 'Sec-Fetch-Site': 'cross-site' },
    });
    assertJsonError(stale.resp, 403, 'csrf');
    assert.equal(stale.seen.length, 0);
});

test('the client token goes to the relayed request only: not to an ErrorDocument, never to the browser', async () => {
    // The API behind /broken/ is down: mod_proxy's 503 goes to ErrorDocument
    // /errors/503, proxied without BFFTokenRelay.
    const r = await env.httpd.expectLog(PROXY_DOWN, () => call(env.client(), '/broken/x'));
    const errs = r.result.seen;
    assert.equal(errs.length, 1, 'the ErrorDocument request reached the errors location');
    assert.equal(errs[0].path, '/errors/503');
    assert.equal(errs[0].headers.authorization, undefined, 'no bearer on the ErrorDocument request');
    assert.ok(env.provider.grantOf.size > 0);
    // Nothing the browser side received holds a token the provider issued.
    const tokens = [...env.provider.grantOf.keys()];
    for (const resp of received) {
        const text = `${JSON.stringify(resp.headers)}\n${resp.body}`;
        for (const tk of tokens) assert.ok(!text.includes(tk), `a token in a response to ${resp.url}`);
    }
});
