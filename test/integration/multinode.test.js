// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Two httpd nodes, A and B, sharing one memcached session store
// (BFFSessionStore memcache:..., the same BFFCryptoKey, the same client and
// the same BFFRedirectURI, as behind a load balancer; the redirect URI names
// B's port and the tests deliver the provider's redirect to either node).
// Cookies do not separate by port, so one cookie jar reaches both nodes:
//   - a session made on one node is read and relayed on the other;
//   - logout on B: A refuses the old cookie; a back-channel logout POSTed
//     to A ends the session for B, and its replay on B is refused;
//   - a login started on A completes on B; its state is single-use across
//     nodes (replay on A: 400; concurrent delivery to both: one wins);
//   - a burst at token expiry, half on A and half on B: one refresh_token
//     grant at the provider (rotating refresh tokens), every request 200;
//   - BFFTokenRelay client: 20 requests without a session, half on A and
//     half on B: one client_credentials request, one token on both nodes;
//   - a rolling key rotation: logins that start on one node and end on the
//     other keep working while the nodes hold different key rings;
//   - key rotation on both nodes: [old] -> [new, old] -> [new];
//   - a rolling rotation (A has [K1], B [K2, K1], then both): back-channel
//     logouts by sid and by sub end the sessions made before it, also one
//     that moved to K2's store key; a logout token's jti seen before or
//     during the rotation stays refused on both nodes.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt, signJwt, startProvider } from '../provider/provider.js';
import { Client } from './lib/client.js';
import { COOKIE } from './lib/env.js';
import { freePort, Httpd } from './lib/httpd.js';
import { startMemcached } from './lib/memcached.js';
import { createPki } from './lib/pki.js';
import { bearerOf, startUpstream } from './lib/upstream.js';

const TTL = 4; // access token lifetime (s)
const WINDOW = 2; // BFFRefreshBeforeExpiry
const EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const KEY_OLD = crypto.randomBytes(32).toString('base64url');
const KEY_NEW = crypto.randomBytes(32).toString('base64url');

const pki = createPki();
const mc = await startMemcached();
after(() => mc.close());
const up = await startUpstream();
after(() => up.close());

const ports = new Set();
while (ports.size < 3) ports.add(await freePort());
const [portA, portB, portP] = [...ports];
const originA = `https://localhost:${portA}`;
const originB = `https://localhost:${portB}`;
const redirectUri = `${originB}/bff/callback`;
const clientId = 'bff-test';
const clientSecret = crypto.randomBytes(24).toString('base64url');

let provider = null;
const clients = [];
const bff = {
    BFFProviderCAFile: pki.caFile,
    BFFClientID: clientId,
    BFFClientSecret: clientSecret,
    BFFRedirectURI: redirectUri,
    BFFPostLogoutRedirectURI: `${originB}/`,
    BFFCryptoKey: KEY_OLD,
    BFFSessionStore: `memcache:${mc.spec}`,
    BFFRefreshBeforeExpiry: String(WINDOW),
};
const httpdOpts = {
    pki,
    extraModules: ['proxy', 'proxy_http'],
    extraServer: [
        '<Location /api/>',
        `    ProxyPass http://127.0.0.1:${up.port}/api/`,
        '    BFFTokenRelay On',
        '</Location>',
        '<Location /svc/>',
        `    ProxyPass http://127.0.0.1:${up.port}/svc/`,
        '    BFFTokenRelay client',
        '</Location>',
    ],
};
const A = new Httpd({ ...httpdOpts, port: portA, bff: { ...bff } });
const B = new Httpd({ ...httpdOpts, port: portB, bff: { ...bff } });
const NODES = { A, B };

before(async () => {
    provider = await startProvider({
        port: portP,
        cert: pki.cert,
        key: pki.key,
        ca: pki.ca,
        clientId,
        clientSecret,
        redirectUri,
        postLogoutRedirectUri: `${originB}/`,
        // Makes the provider put sid into ID tokens.
        backchannelLogoutUri: `${originA}/bff/backchannel-logout`,
        rotateRefreshToken: true,
        accessTokenTTL: TTL,
        clientCredentials: true,
        quiet: true,
    });
    A.opts.bff.BFFProvider = provider.issuer;
    B.opts.bff.BFFProvider = provider.issuer;
    await A.start();
    await B.start();
});

after(async () => {
    for (const c of clients) c.close();
    await A.stop();
    await B.stop();
    if (provider) await provider.close();
    A.assertCleanLog();
    B.assertCleanLog();
    A.cleanup();
    B.cleanup();
});

function newClient() {
    const c = new Client({ ca: pki.ca });
    clients.push(c);
    return c;
}

/** The same URL on another node (port). */
function onNode(url, node) {
    const u = new URL(url);
    u.port = String(node.port);
    return u.href;
}

/**
 * Log in: /bff/login on `start`, the provider's redirect (which names B)
 * delivered to `callback`. Returns { client, cookie, sid, sub, callbackUrl }.
 */
async function login(start, callback, { username = 'alice', client = newClient() } = {}) {
    const idBefore = provider.issued.id.length;
    const first = await client.get(start.url('/bff/login?returnTo=%2Fapp.html'));
    assert.equal(first.status, 302, first.body);
    const r = await client.followLogin(`${originB}/bff/login`, {
        start: first, stopAtCallback: true, username, password: `${username}-pass`,
    });
    assert.equal(new URL(r.callbackUrl).origin, originB, 'the provider redirects to the registered URI');
    const cb = await client.get(onNode(r.callbackUrl, callback), { crossSite: r.callbackCrossSite });
    assert.equal(cb.status, 200, cb.body);
    const cookie = client.jar.get(COOKIE, originA)?.value;
    assert.ok(cookie, 'session cookie set');
    assert.equal(client.jar.get(COOKIE, originB)?.value, cookie, 'the same cookie goes to both ports');
    const { claims } = decodeJwt(provider.issued.id.slice(idBefore)[0]);
    return { client, cookie, sid: claims.sid, sub: claims.sub, callbackUrl: r.callbackUrl };
}

/** GET /bff/user on node with the session's cookie (explicit, so logout cannot drop it). */
async function user(node, s) {
    const r = await newClientOnce().get(node.url('/bff/user'), {
        headers: { 'X-CSRF': '1' }, cookie: `${COOKIE}=${s.cookie}`,
    });
    let body = null;
    try { body = JSON.parse(r.body); } catch { /* not JSON */ }
    return { status: r.status, body, resp: r };
}

let shared = null;
function newClientOnce() {
    if (!shared) shared = newClient();
    return shared;
}

let seq = 0;
/** One relayed GET through node; { status, body, token (seen upstream) }. */
async function relay(node, s) {
    const id = `m${++seq}`;
    const r = await newClientOnce().get(node.url('/api/data'), {
        headers: { 'X-CSRF': '1', 'x-test': id }, cookie: `${COOKIE}=${s.cookie}`,
    });
    const seen = up.byTest(id);
    return { status: r.status, body: r.body, token: seen.length ? bearerOf(seen[0].headers) : null };
}

function logoutToken(claims) {
    const k = provider.keys[0];
    const now = Math.floor(Date.now() / 1000);
    return signJwt({ alg: 'RS256', kid: k.kid, typ: 'logout+jwt' }, {
        iss: provider.issuer,
        aud: clientId,
        iat: now,
        exp: now + 120,
        jti: crypto.randomBytes(16).toString('base64url'),
        events: { [EVENT]: {} },
        ...claims,
    }, k.keyObject);
}

function postLogout(node, token) {
    return newClient().request(node.url('/bff/backchannel-logout'), {
        method: 'POST',
        body: new URLSearchParams({ logout_token: token }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        cookies: false,
    });
}

async function restartNode(node, keys) {
    await node.stop();
    node.opts.bff.BFFCryptoKey = keys;
    node.proc = null;
    node.exitInfo = undefined;
    await node.start();
}

async function restartBoth(keys) {
    for (const node of [A, B]) await restartNode(node, keys);
}

test('a session made on one node is read and relayed on the other', async () => {
    const s = await login(A, A);
    for (const node of [A, B]) {
        const u = await user(node, s);
        assert.equal(u.status, 200, u.resp.body);
        assert.equal(u.body.sub, 'alice');
    }
    for (const node of [B, A]) {
        const r = await relay(node, s);
        assert.equal(r.status, 200, r.body);
        assert.ok(provider.issued.access.includes(r.token), 'a token the provider issued');
    }
    const s2 = await login(B, B, { username: 'bob' });
    const u = await user(A, s2);
    assert.equal(u.status, 200);
    assert.equal(u.body.sub, 'bob');
    assert.equal((await relay(A, s2)).status, 200);
});

test('logout on B: A refuses the old cookie', async () => {
    const s = await login(A, A);
    const u = await user(A, s);
    assert.equal(u.status, 200);
    const revBefore = provider.revocationCalls;
    const out = await s.client.get(B.url(u.body.logoutUrl));
    assert.equal(out.status, 302, out.body);
    assert.equal(provider.revocationCalls, revBefore + 1, 'the refresh token was revoked');
    for (const node of [A, B]) {
        assert.equal((await user(node, s)).status, 401, `user on ${node === A ? 'A' : 'B'}`);
        const r = await relay(node, s);
        assert.equal(r.status, 401);
        assert.equal(r.token, null, 'nothing reached the API');
    }
});

test('back-channel logout POSTed to A ends the session for B; its replay on B is refused', async () => {
    const s = await login(A, B);
    const other = await login(B, A, { username: 'bob' });
    assert.ok(s.sid, 'the ID token has sid');
    assert.equal((await user(B, s)).status, 200);
    const token = logoutToken({ sid: s.sid, sub: s.sub });
    const r = await postLogout(A, token);
    assert.equal(r.status, 200, r.body);
    assert.equal((await user(B, s)).status, 401);
    assert.equal((await relay(B, s)).status, 401);
    assert.equal((await user(A, s)).status, 401);
    await B.expectLog([/BFF01510/], async () => {
        const again = await postLogout(B, token);
        assert.equal(again.status, 400, 'jti already seen on the other node');
        assert.match(again.body, /replay/);
    });
    assert.equal((await user(A, other)).status, 200, 'another session lives');
    assert.equal((await user(B, other)).status, 200);
});

test('login started on A completes on B; the state is single-use across nodes', async () => {
    // Natural delivery: the redirect URI names B.
    const s = await login(A, B);
    assert.equal((await user(A, s)).status, 200);
    await A.expectLog([/BFF0021\d/], async () => {
        const replay = await s.client.get(onNode(s.callbackUrl, A), { crossSite: true });
        assert.equal(replay.status, 400, 'replay on A');
        assert.ok(!replay.setCookies.some((h) => h.startsWith(`${COOKIE}=`)), 'no session cookie');
    });
    assert.equal((await user(A, s)).status, 200, 'the replay did not touch the session');

    // The same callback delivered to A and B at once: one wins.
    const c = newClient();
    const first = await c.get(A.url('/bff/login?returnTo=%2Fapp.html'));
    const r = await c.followLogin(`${originB}/bff/login`, { start: first, stopAtCallback: true });
    const both = await A.expectLog([/BFF0021\d/], () => B.expectLog([/BFF0021\d/], () => Promise.all(
        [A, B].map((node) => c.get(onNode(r.callbackUrl, node), { crossSite: true, store: false })))));
    const statuses = both.result.result.map((x) => x.status).sort();
    assert.deepEqual(statuses, [200, 400], `one of two concurrent deliveries wins: ${statuses}`);
});

test('BFFTokenRelay client: 10 requests on A and 10 on B, no session: one token request for both nodes', async (t) => {
    const before = provider.tokenCalls.client_credentials || 0;
    // The provider holds its answer a moment: the other requests, on both
    // nodes, arrive while the first one's token request is in flight.
    provider.tokenDelay = { client_credentials: 1000 };
    let res;
    try {
        res = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
            const id = `svc${++seq}`;
            const r = await newClientOnce().get((i % 2 ? B : A).url('/svc/x'), { headers: { 'x-test': id } });
            const seen = up.byTest(id);
            return { status: r.status, body: r.body, token: seen.length ? bearerOf(seen[0].headers) : null };
        }));
    } finally {
        provider.tokenDelay = null;
    }
    const calls = (provider.tokenCalls.client_credentials || 0) - before;
    t.diagnostic(`20 requests over A and B: ${calls} client_credentials request(s)`);
    assert.deepEqual(res.map((x) => x.status), res.map(() => 200), res.map((x) => x.body).join('\n'));
    assert.equal(calls, 1, 'one token request across both nodes');
    const tokens = [...new Set(res.map((x) => x.token))];
    assert.equal(tokens.length, 1);
    assert.equal(provider.grantOf.get(tokens[0]).grantType, 'client_credentials');
});

test('a burst at token expiry, 25 requests on A and 25 on B: one refresh, all 200', async (t) => {
    const s = await login(A, A);
    const at = Date.now();
    const firstA = await relay(A, s);
    assert.equal(firstA.status, 200);
    for (let round = 1; round <= 2; round += 1) {
        const wait = at + round * (TTL * 1000) + 300 - Date.now();
        if (wait > 0) await sleep(wait);
        const refreshBefore = provider.tokenCalls.refresh_token;
        const issuedBefore = provider.issued.access.length;
        const t0 = Date.now();
        const res = await Promise.all(Array.from({ length: 50 }, (_, i) => relay(i % 2 ? B : A, s)));
        const refreshes = provider.tokenCalls.refresh_token - refreshBefore;
        t.diagnostic(`round ${round}: 25 on A + 25 on B after expiry: ${refreshes} refresh_token grant(s), ` +
            `statuses ${[...new Set(res.map((x) => x.status))]}, ${Date.now() - t0} ms`);
        assert.deepEqual(res.map((x) => x.status), res.map(() => 200),
            res.filter((x) => x.status !== 200).map((x) => x.body).join('\n'));
        assert.equal(refreshes, 1, 'exactly one refresh across both nodes');
        const issued = provider.issued.access.slice(issuedBefore);
        assert.equal(issued.length, 1);
        assert.deepEqual([...new Set(res.map((x) => x.token))], issued, 'every request relayed the new token');
        const req = provider.tokenRequests.filter((x) => x.grantType === 'refresh_token').at(-1);
        assert.equal(req.status, 200);
    }
    // Rotation kept: the provider never saw a refresh token twice.
    const presented = provider.tokenRequests.filter((x) => x.grantType === 'refresh_token').map((x) => x.refreshToken);
    assert.equal(new Set(presented).size, presented.length, 'no refresh token used twice');
});

test('rolling key rotation: logins started on one node complete on the other', async () => {
    // The pending login is sealed with the first key of the starting node's
    // ring; the single-use marker's key holds no key of the ring.
    await restartNode(B, [KEY_NEW, KEY_OLD]);
    const ab = await login(A, B); // A [old] -> B [new, old]
    assert.equal((await user(B, ab)).status, 200);

    // The safe roll-out (docs/deployment.md): the new key second everywhere
    // first, then first. Mid-swap, both directions work.
    await restartNode(A, [KEY_OLD, KEY_NEW]);
    const ab2 = await login(A, B); // A [old, new] -> B [new, old]
    const ba = await login(B, A, { username: 'bob' }); // B [new, old] -> A [old, new]
    for (const s of [ab2, ba]) for (const node of [A, B]) assert.equal((await user(node, s)).status, 200);

    // Still single use across nodes with different rings.
    const c = newClient();
    const first = await c.get(B.url('/bff/login?returnTo=%2Fapp.html'));
    const r = await c.followLogin(`${originB}/bff/login`, { start: first, stopAtCallback: true });
    const both = await A.expectLog([/BFF0021\d/], () => B.expectLog([/BFF0021\d/], () => Promise.all(
        [A, B].map((node) => c.get(onNode(r.callbackUrl, node), { crossSite: true, store: false })))));
    assert.deepEqual(both.result.result.map((x) => x.status).sort(), [200, 400]);

    await restartBoth(KEY_OLD);
});

test('key rotation on both nodes: [old] -> [new, old] -> [new]', async () => {
    const s1 = await login(A, A);
    const s2 = await login(B, B, { username: 'bob' });
    for (const s of [s1, s2]) for (const node of [A, B]) assert.equal((await user(node, s)).status, 200);

    await restartBoth([KEY_NEW, KEY_OLD]);
    // Read under the old key; this use rewrites s1 under the new one.
    for (const node of [A, B]) {
        const u = await user(node, s1);
        assert.equal(u.status, 200, `s1 with [new, old] on ${node.port}`);
        assert.equal(u.body.sub, 'alice');
    }
    // A relay works as well (and may refresh, writing with the new key).
    assert.equal((await relay(B, s1)).status, 200);

    await restartBoth([KEY_NEW]);
    for (const node of [A, B]) {
        assert.equal((await user(node, s1)).status, 200, 's1 was rewritten with the new key');
        assert.equal((await user(node, s2)).status, 401, 's2 was never written with the new key');
    }
    const s3 = await login(B, A);
    assert.equal((await user(B, s3)).status, 200);
});

/** Change a node's key ring and reload it gracefully (as an operator rolls a rotation). */
async function rekey(node, keys) {
    node.opts.bff.BFFCryptoKey = keys;
    await node.writeConfig();
    await node.graceful();
}

test('rolling rotation, A=[K1] and B=[K2, K1]: back-channel logouts by sid and by sub end the sessions made before it', async () => {
    const K1 = crypto.randomBytes(32).toString('base64url');
    const K2 = crypto.randomBytes(32).toString('base64url');
    await restartBoth([K1]);
    const a1 = await login(A, A);
    const a2 = await login(A, A);
    const b1 = await login(A, A, { username: 'bob' });
    const b2 = await login(A, A, { username: 'bob' });
    assert.notEqual(a1.sid, a2.sid, 'two provider sessions');

    await rekey(B, [K2, K1]);
    // b2 is used on B: rewritten under K2 (it moves to K2's store key).
    assert.equal((await user(B, b2)).status, 200);
    // A session made on B after its rotation: indexed under K2.
    const a3 = await login(B, B);
    for (const s of [a1, a2, b1]) assert.equal((await user(A, s)).status, 200);

    // By sid, delivered to the rotated node: the index written under K1 is read.
    let r = await postLogout(B, logoutToken({ sid: a1.sid, sub: a1.sub }));
    assert.equal(r.status, 200, r.body);
    assert.equal((await user(A, a1)).status, 401, 'a1 ended (seen from A)');
    assert.equal((await user(B, a1)).status, 401, 'a1 ended (seen from B)');
    assert.equal((await user(A, a2)).status, 200, 'only the sid named');

    // By sub only: the sessions indexed under K1 (a2) and under K2 (a3) end.
    r = await postLogout(B, logoutToken({ sub: 'alice' }));
    assert.equal(r.status, 200, r.body);
    assert.equal((await user(A, a2)).status, 401, 'a2, made before the rotation, ended');
    assert.equal((await user(B, a3)).status, 401, 'a3, made after it, ended');

    // A rotates too; bob's sessions: b1 still under K1, b2 moved to K2.
    await rekey(A, [K2, K1]);
    for (const s of [b1, b2]) assert.equal((await user(A, s)).status, 200);
    r = await postLogout(A, logoutToken({ sub: 'bob' }));
    assert.equal(r.status, 200, r.body);
    for (const node of [A, B]) {
        assert.equal((await user(node, b1)).status, 401, 'b1 ended');
        assert.equal((await user(node, b2)).status, 401, 'b2 (moved to the new key) ended');
    }
});

test('rolling rotation: a logout token seen before it stays refused on both nodes (jti)', async () => {
    const K1 = crypto.randomBytes(32).toString('base64url');
    const K2 = crypto.randomBytes(32).toString('base64url');
    await restartBoth([K1]);
    const early = logoutToken({ sid: 'no-such-sid', sub: 'nobody' });
    assert.equal((await postLogout(A, early)).status, 200);
    await rekey(B, [K2, K1]);
    await B.expectLog([/BFF01510/], async () => {
        const again = await postLogout(B, early);
        assert.equal(again.status, 400, `replay on the rotated node: ${again.body}`);
        assert.match(again.body, /replay/);
    });
    // A token first seen on the rotated node is refused on the other.
    const late = logoutToken({ sid: 'no-such-sid', sub: 'nobody' });
    assert.equal((await postLogout(B, late)).status, 200);
    await A.expectLog([/BFF01510/], async () => {
        const again = await postLogout(A, late);
        assert.equal(again.status, 400, `replay on the node not yet rotated: ${again.body}`);
    });
    await rekey(A, [K2, K1]);
    await A.expectLog([/BFF01510/], async () => {
        assert.equal((await postLogout(A, early)).status, 400, 'still refused after A rotated');
    });
});
