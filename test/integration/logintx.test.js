// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Pending logins live sealed in the browser (one __Host-Http-bff-tx.<0-3>
// cookie each, at most 4), never in the session store:
//   - store exhaustion: on the smallest shm store, hundreds of anonymous
//     GET /bff/login evict no session;
//   - anonymous logins and junk callbacks leave no key in memcached (a
//     second site on this host, node B, with its own client);
//   - a tx cookie sealed for another site/client of the same host (browsers
//     send cookies to every port) is refused without a code exchange;
//   - single use: a callback replayed with its tx cookie kept is refused;
//   - more tabs than the bound: the oldest pending login is dropped, the
//     others complete; 12 concurrent logins leave at most 4 cookies and a
//     Cookie header httpd still accepts;
//   - HEAD on login/callback is 405 and starts or ends nothing; an overlong
//     returnTo is refused;
//   - the access-log format that docs/security.md advises keeps the code and
//     state out of the log;
//   - on a store full of live sessions, junk callbacks (anonymous, with a
//     made-up code) are refused with 503 and evict no session.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { CookieJar } from './lib/client.js';
import { TX_PREFIX, getUser, setsSession, txCookiesOf, useEnv } from './lib/env.js';
import { freePort, Httpd } from './lib/httpd.js';
import { startMemcached } from './lib/memcached.js';

// The access-log advice of docs/security.md, verbatim but for the file name.
const NOQUERY_LOG = [
    'LogFormat "%h %l %u %t \\"%m %U %H\\" %>s %b" bff_noquery',
    'SetEnvIf Request_URI "^/bff/" bff_path',
    'CustomLog "noquery.log" bff_noquery env=bff_path',
];

const env = useEnv({ bff: { BFFSessionStore: 'shm:1M' }, httpd: { extraServer: NOQUERY_LOG } });

// Node B: another site (port) of the same host, with its own client, the same
// BFFCryptoKey and a memcached store. Started by the first test that needs it
// (root before() hooks may run alongside useEnv's).
let mc = null;
let B = null;
async function nodeB() {
    if (B) return B;
    mc = await startMemcached();
    const port = await freePort();
    B = new Httpd({
        pki: env.pki,
        port,
        bff: {
            BFFProvider: env.provider.issuer,
            BFFProviderCAFile: env.pki.caFile,
            BFFClientID: 'other-client',
            BFFClientSecret: crypto.randomBytes(24).toString('base64url'),
            BFFRedirectURI: `https://localhost:${port}/bff/callback`,
            BFFCryptoKey: env.bff.BFFCryptoKey,
            BFFSessionStore: `memcache:${mc.spec}`,
        },
    });
    await B.start();
    return B;
}

after(async () => {
    if (B) {
        await B.stop();
        B.assertCleanLog();
        B.cleanup();
    }
    if (mc) await mc.close();
});

const LOGIN = '/bff/login?returnTo=%2Fapp.html';

function onPort(url, port) {
    const u = new URL(url);
    u.port = String(port);
    return u.href;
}

/** Run fn(i) for i < n, at most par at once; returns the results in order. */
async function pool(n, par, fn) {
    const out = new Array(n);
    let next = 0;
    await Promise.all(Array.from({ length: par }, async () => {
        while (next < n) {
            const i = next++;
            out[i] = await fn(i);
        }
    }));
    return out;
}

test('store exhaustion: hundreds of anonymous logins evict no session (shm:1M)', async (t) => {
    const users = [];
    for (let i = 0; i < 16; i += 1) {
        users.push(await env.login(i % 2 ? { username: 'bob', password: 'bob-pass' } : {}));
    }
    for (const u of users) assert.equal((await getUser(u.client, env)).status, 200);

    const anon = env.client();
    const N = 600;
    const res = await pool(N, 8, () => anon.get(env.url(LOGIN), { cookies: false, store: false }));
    const statuses = [...new Set(res.map((r) => r.status))];
    t.diagnostic(`${N} anonymous logins: statuses ${statuses}`);
    assert.deepEqual(statuses, [302]);

    const alive = [];
    for (const u of users) alive.push((await getUser(u.client, env)).status);
    assert.deepEqual(alive, users.map(() => 200), 'every session survives');
    assert.ok(res.every((r) => txCookiesOf(r).length === 1), 'each got its sealed cookie');
});

test('anonymous logins and junk callbacks leave nothing in the store (memcached)', async () => {
    await nodeB();
    const keysBefore = (await mc.keys()).sort();
    const anon = env.client();
    const res = await pool(40, 4, () => anon.get(B.url(LOGIN), { cookies: false, store: false }));
    assert.deepEqual([...new Set(res.map((r) => r.status))], [302]);
    // Junk callbacks with a real pending login: the single-use marker is taken
    // for the code exchange and removed when the provider refuses the code.
    const { lines } = await B.expectLog([/BFF002(19|20)/], async () => {
        for (let i = 0; i < 5; i += 1) {
            const c = env.client();
            const start = await c.get(B.url(LOGIN));
            assert.equal(start.status, 302);
            const state = new URL(start.location).searchParams.get('state');
            const cb = B.url(`/bff/callback?state=${state}&code=junk-${i}`
                + `&iss=${encodeURIComponent(env.provider.issuer)}`);
            const r = await c.get(cb, { crossSite: true });
            assert.equal(r.status, 502, r.body);
            assert.ok(!setsSession(r));
        }
    });
    assert.ok(lines.some((l) => /BFF002(19|20)/.test(l)), 'the provider refused the junk codes');
    assert.deepEqual((await mc.keys()).sort(), keysBefore, 'no key was added');
});

test('a tx cookie sealed for another site/client of this host is refused, no code exchange', async () => {
    await nodeB();
    const c = env.client();
    const l = await c.followLogin(env.url(LOGIN), { stopAtCallback: true });
    const [tx] = txCookiesOf(l.start);
    assert.ok(c.jar.get(tx.name, B.url('/')), 'the browser sends the tx cookie to the other port too');
    const calls = env.provider.tokenRequests.length;
    const { result: r, lines } = await B.expectLog([], () => c.get(onPort(l.callbackUrl, B.port),
        { crossSite: true }));
    assert.equal(r.status, 400, r.body);
    assert.ok(!setsSession(r));
    assert.ok(lines.some((x) => /BFF00251/.test(x)), `B says why:\n${lines.join('\n')}`);
    assert.equal(env.provider.tokenRequests.length, calls, 'B never exchanged the code');
    // B left the cookie alone: the login completes at its own site.
    const ok = await c.get(l.callbackUrl, { crossSite: true });
    assert.equal(ok.status, 200, ok.body);
    assert.ok(setsSession(ok));
});

test('single use: a callback replayed with its tx cookie kept is refused', async () => {
    const c = env.client();
    const l = await c.followLogin(env.url(LOGIN), { stopAtCallback: true });
    // A browser that ignored the cookie's deletion (or an attacker who copied it).
    const cookie = c.jar.header(l.callbackUrl, { crossSite: true });
    assert.match(cookie, new RegExp(`${TX_PREFIX.replace('.', '\\.')}`));
    const first = await c.get(l.callbackUrl, { crossSite: true, cookie });
    assert.equal(first.status, 200, first.body);
    const consumed = first.setCookies.find((h) => h.startsWith(TX_PREFIX));
    assert.match(consumed || '', /^__Host-Http-bff-tx\.[0-3]=; .*Max-Age=0/,
        'the callback deletes the cookie it consumed');
    const calls = env.provider.tokenRequests.length;
    const again = await c.get(l.callbackUrl, { crossSite: true, cookie });
    assert.equal(again.status, 400, again.body);
    assert.ok(!setsSession(again));
    assert.equal(env.provider.tokenRequests.length, calls, 'the code was not presented again');
});

test('more tabs than the bound: the oldest pending login is dropped, the others complete', async () => {
    const jar = new CookieJar();
    const tabs = Array.from({ length: 5 }, () => env.client(jar));
    const starts = [];
    for (const tab of tabs) {
        starts.push(await tab.get(env.url(LOGIN)));
        const pending = jar.cookiesFor(env.url('/')).filter((c) => c.name.startsWith(TX_PREFIX));
        assert.ok(pending.length <= 4, `at most 4 pending-login cookies, got ${pending.length}`);
    }
    const [oldest, ...rest] = await Promise.all(tabs.map((tab, i) => tab.followLogin(env.url(LOGIN),
        { start: starts[i], stopAtCallback: true })));
    const done = await Promise.all(rest.map((l, i) => tabs[i + 1].get(l.callbackUrl, { crossSite: true })));
    assert.deepEqual(done.map((r) => r.status), [200, 200, 200, 200], done.map((r) => r.body).join('\n'));
    assert.ok(done.every((r) => setsSession(r)), 'each callback sets a session cookie');
    const dropped = await tabs[0].get(oldest.callbackUrl, { crossSite: true });
    assert.equal(dropped.status, 400, dropped.body);
    assert.equal((await getUser(tabs[0], env)).status, 200, 'the browser is signed in');
    assert.equal(jar.cookiesFor(env.url('/')).filter((c) => c.name.startsWith(TX_PREFIX)).length, 0,
        'no pending-login cookie is left');
});

// Tabs restored at once, or popups a hostile page opens: each login sees only
// the cookies the browser had before any of them answered. With one cookie
// name per login they piled up past httpd's LimitRequestFieldSize (8190), and
// httpd then answered 400 to every request to the host for 10 minutes.
test('12 concurrent logins with the longest returnTo: at most 4 cookies, the browser keeps working', async (t) => {
    const { client: c } = await env.login();
    const rt = `/${'a'.repeat(511)}`;
    const rs = await Promise.all(Array.from({ length: 12 }, () =>
        c.get(env.url(`/bff/login?returnTo=${encodeURIComponent(rt)}`), { crossSite: true, topLevel: true })));
    assert.deepEqual([...new Set(rs.map((r) => r.status))], [302]);
    const pending = c.jar.cookiesFor(env.url('/')).filter((x) => x.name.startsWith(TX_PREFIX));
    const hdr = c.jar.header(env.url('/'), { topLevel: true, method: 'GET' }) || '';
    t.diagnostic(`pending-login cookies: ${pending.map((x) => x.name)}; Cookie header ${hdr.length} bytes`);
    assert.ok(pending.length <= 4, `at most 4 pending-login cookies, got ${pending.length}`);
    for (const x of pending) assert.match(x.name, /^__Host-Http-bff-tx\.[0-3]$/);
    // The budget of docs/sessions.md: 4 full slots + the session cookie.
    assert.ok(`Cookie: ${hdr}`.length <= 4353, `Cookie header of ${hdr.length} bytes`);
    assert.equal((await getUser(c, env)).status, 200, 'the session still works');
    const home = await c.get(env.url('/'));
    assert.equal(home.status, 200, 'and the site');
    const again = await env.login({ client: c });
    assert.equal(again.login.callback.status, 200, again.login.callback.body);
    assert.ok(setsSession(again.login.callback), 'a new login completes');
});

test('HEAD on login and callback is 405 and starts or ends nothing', async () => {
    const c = env.client();
    const head = await c.request(env.url(LOGIN), { method: 'HEAD' });
    assert.equal(head.status, 405);
    assert.equal(head.headers.allow, 'GET');
    assert.deepEqual(head.setCookies, [], 'no cookie');
    assert.match(head.headers['cache-control'] || '', /no-store/);

    const l = await c.followLogin(env.url(LOGIN), { stopAtCallback: true });
    const calls = env.provider.tokenRequests.length;
    const headCb = await c.request(l.callbackUrl, { method: 'HEAD', crossSite: true });
    assert.equal(headCb.status, 405);
    assert.equal(headCb.headers.allow, 'GET');
    assert.deepEqual(headCb.setCookies, []);
    assert.equal(env.provider.tokenRequests.length, calls, 'no code exchange');
    const cb = await c.get(l.callbackUrl, { crossSite: true });
    assert.equal(cb.status, 200, 'the login is still there');
});

test('returnTo is bounded (it travels in the cookie)', async () => {
    const c = env.client();
    const ok = `/${'a'.repeat(511)}`;
    const r = await c.get(env.url(`/bff/login?returnTo=${encodeURIComponent(ok)}`), { store: false });
    assert.equal(r.status, 302);
    const [tx] = txCookiesOf(r);
    assert.ok(tx.value.length < 1100, `cookie value is ${tx.value.length} bytes`);
    const long = await c.get(env.url(`/bff/login?returnTo=${encodeURIComponent(`${ok}a`)}`));
    assert.equal(long.status, 400);
    assert.deepEqual(txCookiesOf(long), []);
});

test('the LogFormat of docs/security.md keeps code and state out of the access log', async () => {
    const { login } = await env.login();
    const q = new URL(login.callbackUrl).searchParams;
    const log = fs.readFileSync(path.join(env.httpd.dir, 'noquery.log'), 'utf8');
    assert.match(log, /"GET \/bff\/callback HTTP\/1\.1" 200 /);
    for (const v of [q.get('code'), q.get('state')]) assert.ok(!log.includes(v), 'no code or state');
    const doc = fs.readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
    assert.ok(doc.includes(NOQUERY_LOG[0]) && doc.includes(NOQUERY_LOG[1]), 'the doc gives this format');
});

// Last in this file: it leaves the shm:1M store full.
// The callback's single-use marker is written for an anonymous request (the
// code is not exchanged yet): on a store full of live entries it must not
// evict a session; the callback answers 503 instead.
test('junk callbacks on a store full of sessions evict none of them (shm:1M)', async (t) => {
    const iss = encodeURIComponent(env.provider.issuer);
    const users = [];
    let full = false;
    // Log in until the store is full: a sign-in refused for room (503), or
    // the store evicting for a session (BFF00501) and 5 more logins.
    const { lines: fillLines } = await env.httpd.expectLog([/BFF00501/, /BFF00253/], async () => {
        let after501 = -1;
        for (let i = 0; i < 300 && !full && after501 < 5; i += 1) {
            const c = env.client();
            const l = await c.followLogin(env.url(LOGIN), { stopAtCallback: true });
            const cb = await c.get(l.callbackUrl, { crossSite: true });
            if (cb.status === 503) full = true;
            else {
                assert.equal(cb.status, 200, cb.body);
                users.push(c);
            }
            if (after501 >= 0) after501 += 1;
            else if (env.httpd.errorLog().includes('BFF00501')) after501 = 0;
        }
    });
    t.diagnostic(`${users.length} logins filled the store (refused one: ${full}); ${fillLines.length} log lines`);
    const alive = [];
    for (const c of users) if ((await getUser(c, env)).status === 200) alive.push(c);
    assert.ok(alive.length >= 20, `${alive.length} live sessions`);

    const calls = env.provider.tokenRequests.length;
    const { result: junk, lines } = await env.httpd.expectLog([/BFF00253/, /BFF002(19|20)/, /BFF00501/],
        () => pool(20, 4, async (i) => {
            const a = env.client();
            const start = await a.get(env.url(LOGIN));
            const state = new URL(start.location).searchParams.get('state');
            return a.get(env.url(`/bff/callback?state=${state}&code=junk-${i}&iss=${iss}`), { crossSite: true });
        }));
    const statuses = junk.map((r) => r.status);
    t.diagnostic(`junk callbacks: ${statuses}; ${env.provider.tokenRequests.length - calls} code exchanges`);
    const still = [];
    for (const c of alive) still.push((await getUser(c, env)).status);
    assert.deepEqual(still, alive.map(() => 200), 'every live session survived the junk callbacks');
    assert.ok(statuses.every((x) => x === 503 || x === 502), `statuses ${statuses}`);
    assert.ok(statuses.includes(503), 'a full store refuses sign-ins rather than evict');
    assert.ok(junk.filter((r) => r.status === 503).every((r) => /try again/i.test(r.body)
        && r.headers['retry-after']), 'the 503 says to try again');
    assert.ok(lines.some((l) => /:warn\].*BFF00253/.test(l)) || fillLines.some((l) => /:warn\].*BFF00253/.test(l)),
        `BFF00253 says why:\n${lines.join('\n')}`);
});
