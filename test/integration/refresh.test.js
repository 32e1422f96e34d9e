// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Access-token refresh on the relay path against a real provider with short
// access tokens and rotating refresh tokens (a reused refresh token makes the
// provider revoke the whole grant):
//   - 50 parallel requests at expiry: exactly one refresh_token grant, all 200
//     with the same new token, and the rotated refresh token is what the next
//     round uses;
//   - invalid_grant (grant revoked at the provider) ends the session: 401;
//   - provider down: the still-valid token keeps working, an expired one gets
//     502 (refused) / 504 (hanging provider) quickly, and a restarted provider
//     brings the session back.

import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from './lib/client.js';
import { COOKIE, getUser, useEnv } from './lib/env.js';
import { bearerOf, startUpstream } from './lib/upstream.js';

const TTL = 4; // access token lifetime (s)
const WINDOW = 2; // BFFRefreshBeforeExpiry: refresh from TTL - WINDOW s after issue

// Log lines of a provider that is down: failed refresh, failed metadata fetch.
const DOWN = [/BFF01403/, /BFF00306/];

const up = await startUpstream();
after(() => up.close());

const env = useEnv({
    provider: { accessTokenTTL: TTL, rotateRefreshToken: true },
    bff: { BFFRefreshBeforeExpiry: String(WINDOW) },
    httpd: {
        extraModules: ['proxy', 'proxy_http'],
        extraServer: [
            // A keep-alive connection outlives a token's lifetime in one test.
            'KeepAliveTimeout 30',
            '<Location /api/>',
            `    ProxyPass http://127.0.0.1:${up.port}/api/`,
            '    BFFTokenRelay On',
            '</Location>',
        ],
    },
});

let seq = 0;

/** One relayed GET; returns { status, body, token (seen upstream or null), ms }. */
async function relay(client, path = '/api/data') {
    const id = `r${++seq}`;
    const t0 = Date.now();
    const resp = await client.get(env.url(path), { headers: { 'X-CSRF': '1', 'x-test': id } });
    const seen = up.byTest(id);
    return {
        status: resp.status,
        body: resp.body,
        resp,
        token: seen.length ? bearerOf(seen[0].headers) : null,
        ms: Date.now() - t0,
    };
}

/** Log in; returns { client, token, at: ms timestamp of the token response }. */
async function login(opts = {}) {
    const before = env.provider.issued.access.length;
    const { client } = await env.login(opts);
    const issued = env.provider.issued.access.slice(before);
    assert.equal(issued.length, 1);
    return { client, token: issued[0], at: Date.now() };
}

/** Sleep until `ms` after `from` (a Date.now() value). */
async function sleepUntil(from, ms) {
    const left = from + ms - Date.now();
    if (left > 0) await sleep(left);
}

function refreshRequests() {
    return env.provider.tokenRequests.filter((r) => r.grantType === 'refresh_token');
}

test('50 parallel requests at expiry: one refresh, all 200 with the same new token; rotation is kept', async (t) => {
    const { client, token: token0, at } = await login();
    const first = await relay(client);
    assert.equal(first.status, 200, first.body);
    assert.equal(first.token, token0);
    const rtLogin = env.provider.issued.refresh.at(-1);
    assert.ok(rtLogin, 'the provider issued a refresh token at login');

    const rounds = [{ n: 50 }, { n: 20 }];
    let prevToken = token0;
    let prevRt = rtLogin;
    let roundStart = at;
    for (const [i, round] of rounds.entries()) {
        // Past the access token's expiry (whole seconds at both ends).
        await sleepUntil(roundStart, TTL * 1000 + 300);
        const refreshBefore = env.provider.tokenCalls.refresh_token;
        const reqsBefore = refreshRequests().length;
        const issuedBefore = env.provider.issued.access.length;
        const t0 = Date.now();
        const results = await Promise.all(Array.from({ length: round.n }, () => relay(client)));
        const elapsed = Date.now() - t0;
        roundStart = Date.now();
        const refreshCalls = env.provider.tokenCalls.refresh_token - refreshBefore;
        t.diagnostic(`round ${i + 1}: ${round.n} parallel relayed requests after expiry, ` +
            `${refreshCalls} refresh_token grant(s) at the provider, ` +
            `statuses ${JSON.stringify(countBy(results.map((r) => r.status)))}, ${elapsed} ms`);
        console.log(`# refresh round ${i + 1}: requests sent ${round.n}, refresh calls seen ${refreshCalls}`);

        assert.deepEqual(results.map((r) => r.status), results.map(() => 200),
            results.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.body}`).join('\n'));
        assert.equal(refreshCalls, 1, 'exactly one refresh for the whole burst');
        const issued = env.provider.issued.access.slice(issuedBefore);
        assert.equal(issued.length, 1);
        const newToken = issued[0];
        assert.notEqual(newToken, prevToken);
        const tokens = new Set(results.map((r) => r.token));
        assert.deepEqual([...tokens], [newToken], 'every request relayed the one new token');

        // The refresh presented the refresh token of the previous step (rotation stored).
        const reqs = refreshRequests().slice(reqsBefore);
        assert.equal(reqs.length, 1);
        assert.equal(reqs[0].status, 200);
        assert.equal(reqs[0].refreshToken, prevRt);
        const newRt = env.provider.issued.refresh.at(-1);
        assert.notEqual(newRt, prevRt, 'the provider rotated the refresh token');
        prevToken = newToken;
        prevRt = newRt;
    }

    // The provider never saw a refresh token twice (it would revoke the grant).
    const used = refreshRequests().map((r) => r.refreshToken);
    assert.equal(new Set(used).size, used.length, 'a refresh token was reused');
    assert.ok(refreshRequests().every((r) => r.status === 200));

    // Later requests keep working with the current token, and the session is intact.
    const later = await relay(client);
    assert.equal(later.status, 200);
    assert.equal(later.token, prevToken);
    const u = await getUser(client, env);
    assert.equal(u.status, 200);
    assert.equal(u.body.sub, 'alice');
});

test('one keep-alive connection sees every change to its session: a refresh and a logout on other connections', async () => {
    // mod_bff remembers, per connection, the record it last decrypted and
    // reuses it only while the store holds exactly those bytes: the store is
    // still read on every request.
    const { client, token: token0, at } = await login();
    const cookie = `${COOKIE}=${client.jar.get(COOKIE, env.url('/')).value}`;
    const ka = env.keepAliveClient();
    const viaKa = async () => {
        const id = `ka${++seq}`;
        const r = await ka.get(env.url('/api/data'), { headers: { 'X-CSRF': '1', 'x-test': id }, cookie });
        const seen = up.byTest(id);
        return { status: r.status, body: r.body, token: seen.length ? bearerOf(seen[0].headers) : null };
    };
    try {
        for (let i = 0; i < 3; i += 1) {
            const r = await viaKa();
            assert.equal(r.status, 200, r.body);
            assert.equal(r.token, token0);
        }
        await sleepUntil(at, TTL * 1000 + 300);
        const fresh = await relay(client); // another connection refreshes the tokens
        assert.equal(fresh.status, 200, fresh.body);
        assert.notEqual(fresh.token, token0);
        const after = await viaKa();
        assert.equal(after.status, 200, after.body);
        assert.equal(after.token, fresh.token, 'the keep-alive connection relays the refreshed token');

        const u = await getUser(client, env);
        assert.equal(u.status, 200);
        const out = await client.get(env.url(u.body.logoutUrl));
        assert.equal(out.status, 302, out.body);
        const gone = await viaKa();
        assert.equal(gone.status, 401, 'logged out elsewhere: refused at once on this connection');
        assert.equal(gone.token, null);
        assert.equal(ka.connections(), 1, 'all requests of the keep-alive client went over one connection');
    } finally {
        ka.close();
    }
});

function countBy(list) {
    const out = {};
    for (const x of list) out[x] = (out[x] || 0) + 1;
    return out;
}

test('invalid_grant (grant revoked at the provider) ends the session: 401 on relay and user', async () => {
    const { client, token, at } = await login({ username: 'bob', password: 'bob-pass' });
    const ok = await relay(client);
    assert.equal(ok.status, 200);
    assert.equal(ok.token, token);
    const revoked = await env.provider.revokeGrants('bob');
    assert.ok(revoked >= 1, 'a grant of bob was revoked');

    await sleepUntil(at, TTL * 1000 + 300);
    const before = refreshRequests().length;
    const r = await relay(client);
    assert.equal(r.status, 401, r.body);
    assert.equal(JSON.parse(r.body).error, 'unauthenticated');
    assert.match(r.resp.headers['cache-control'] || '', /no-store/);
    assert.equal(r.resp.headers.location, undefined);
    assert.equal(r.token, null, 'nothing reached the API');
    const reqs = refreshRequests().slice(before);
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].status, 400);
    assert.equal(reqs[0].error, 'invalid_grant');

    const u = await getUser(client, env);
    assert.equal(u.status, 401);
    const again = await relay(client);
    assert.equal(again.status, 401);
    assert.equal(refreshRequests().length, before + 1, 'the ended session does not try again');
});

test('provider down: valid token still relayed, expired -> 502/504 quickly, restart recovers', async (t) => {
    const op = env.provider;
    const { client, token: token0, at } = await login();
    assert.equal((await relay(client)).token, token0);

    await op.close();
    let hang = null;
    try {
        // In the refresh window but not expired: the refresh fails, the token is still used.
        await sleepUntil(at, (TTL - WINDOW) * 1000 + 200);
        // (A child that has not fetched the provider's metadata yet logs BFF00306 instead.)
        const { result: inWindow, lines } = await env.httpd.expectLog(DOWN, () => relay(client));
        assert.equal(inWindow.status, 200, inWindow.body);
        assert.equal(inWindow.token, token0);
        assert.ok(lines.some((l) => /:warn\].*BFF01403.*still used/.test(l) || /BFF00306/.test(l)),
            `a log line about the failed refresh: ${lines.join('\n')}`);
        const u = await getUser(client, env);
        assert.equal(u.status, 200, 'user does not need the provider');

        // Expired, provider refuses connections: 502 provider_error, quickly.
        await sleepUntil(at, TTL * 1000 + 300);
        const { result: down } = await env.httpd.expectLog(DOWN, () => relay(client));
        t.diagnostic(`provider refusing connections: ${down.status} in ${down.ms} ms`);
        assert.ok([502, 504].includes(down.status), `${down.status} ${down.body}`);
        assert.equal(down.status, 502);
        assert.equal(JSON.parse(down.body).error, 'provider_error');
        assert.match(down.resp.headers['cache-control'] || '', /no-store/);
        assert.ok(down.ms < 15000, `answered in ${down.ms} ms`);
        assert.equal(down.token, null);

        // A provider that accepts connections but never answers: 504 within the bound.
        hang = net.createServer((s) => s.on('error', () => {}));
        const sockets = new Set();
        hang.on('connection', (s) => sockets.add(s));
        hang.closeAll = () => sockets.forEach((s) => s.destroy());
        await new Promise((resolve, reject) => {
            hang.once('error', reject);
            hang.listen(op.port, op.host, resolve);
        });
        // 504 provider_timeout when this child knew the provider's metadata and
        // timed out on the token endpoint; a child that must fetch the metadata
        // first and failed to moments ago answers 502 at once (rate-limited refetch).
        const { result: hung } = await env.httpd.expectLog(DOWN, () => relay(client));
        t.diagnostic(`provider hanging: ${hung.status} in ${hung.ms} ms`);
        assert.ok([502, 504].includes(hung.status), `${hung.status} ${hung.body}`);
        assert.equal(JSON.parse(hung.body).error, hung.status === 504 ? 'provider_timeout' : 'provider_error');
        assert.ok(hung.ms < 15000, `answered in ${hung.ms} ms`);
        hang.closeAll();
        await new Promise((resolve) => hang.close(resolve));
        hang = null;
    } finally {
        if (hang) {
            hang.closeAll();
            await new Promise((resolve) => hang.close(resolve));
        }
        // Same port, same keys; grants survive (the provider's store is per process).
        await op.restart();
    }
    // The session recovers: the stored refresh token still works. A child whose
    // metadata fetch failed less than 5 s ago still answers 502 for a moment.
    const before = env.provider.tokenCalls.refresh_token;
    const restarted = Date.now();
    const { result: back } = await env.httpd.expectLog(DOWN, async () => {
        for (;;) {
            const r = await relay(client);
            if (r.status === 200 || Date.now() - restarted > 8000) return r;
            assert.ok([502, 504].includes(r.status), `${r.status} ${r.body}`);
            await sleep(300);
        }
    });
    t.diagnostic(`recovered ${Date.now() - restarted} ms after the provider restart`);
    assert.equal(back.status, 200, `${back.body} ${JSON.stringify(refreshRequests().at(-1))}`);
    assert.notEqual(back.token, token0);
    assert.equal(back.token, env.provider.issued.access.at(-1));
    assert.equal(env.provider.tokenCalls.refresh_token, before + 1);
    const u = await getUser(client, env);
    assert.equal(u.status, 200);
});

test('a refreshed ID token that fails validation ends the session (401)', async () => {
    const op = env.provider;
    const s1 = await login();
    const s2 = await login();
    await sleepUntil(s1.at, TTL * 1000 + 300);
    try {
        // Another sub in the refreshed ID token (OIDC Core 12.2: it must not change).
        op.tamper = (claims) => ({ claims: { ...claims, sub: 'mallory' } });
        const { result: r1, lines: l1 } = await env.httpd.expectLog([/BFF01401/], () => relay(s1.client));
        assert.equal(r1.status, 401, r1.body);
        assert.equal(r1.token, null);
        assert.ok(l1.some((l) => /:error\].*BFF01401/.test(l)), l1.join('\n'));
        // A broken signature.
        op.tamper = () => ({ corruptSignature: true });
        const { result: r2 } = await env.httpd.expectLog([/BFF01401/], () => relay(s2.client));
        assert.equal(r2.status, 401, r2.body);
    } finally {
        op.tamper = null;
    }
    assert.equal((await getUser(s1.client, env)).status, 401);
    assert.equal((await getUser(s2.client, env)).status, 401);
});

// With a provider that accepts connections but never answers, the lock holder
// fails after the 10 s HTTP timeout; the waiters take its answer instead of
// calling the provider again (docs/relay.md: "wait ... at most 12 s").
test('a burst against a provider that never answers: waiters bounded by 12 s, one provider call',
    async (t) => {
        const op = env.provider;
        const { client: c0, at } = await login();
        const client = new Client({ ca: env.pki.ca, jar: c0.jar, timeout: 60000 });
        t.after(() => client.close());
        await sleepUntil(at, TTL * 1000 + 300);
        await op.close();
        let hits = 0;
        const hang = https.createServer({ cert: env.pki.cert, key: env.pki.key }, () => { hits += 1; });
        try {
            await new Promise((resolve) => hang.listen(op.port, op.host, resolve));
            const t0 = Date.now();
            const { result } = await env.httpd.expectLog(DOWN, () => Promise.all(Array.from({ length: 5 },
                async () => { const r = await relay(client); return { status: r.status, ms: Date.now() - t0 }; })));
            t.diagnostic(`hanging provider, 5 parallel requests: ${JSON.stringify(result)}; provider calls ${hits}`);
            assert.ok(result.every((r) => r.status === 504), JSON.stringify(result));
            assert.equal(hits, 1, 'one call to the provider for the burst');
            assert.ok(result.every((r) => r.ms < 13000), JSON.stringify(result));
        } finally {
            hang.closeAllConnections();
            await new Promise((resolve) => hang.close(resolve));
            await op.restart();
        }
    });
