// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// BFFSessionStore memcache:... against real memcached processes (children of
// this test, lib/memcached.js) on loopback:
//   - memcache without BFFCryptoKey: apache2 -t refuses, naming BFFCryptoKey;
//   - tampered records (random bytes, truncated, empty, another session's
//     record, garbage in every other key): 401, never 500, others unaffected;
//   - memcached killed: bounded 503s, no worker pile-up, BFF01601 names the
//     server; a login starts (its pending state is in the browser) but its
//     callback is 503; restarted: 401 (data lost), new logins work, httpd
//     untouched;
//   - memcached hung (SIGSTOP): 503 within the bound; SIGCONT: the same
//     sessions work again with the right users;
//   - two servers: entries on both; one down fails only its own sessions
//     (503), the others stay 200; back: those are 401, new logins work;
//   - memcached down when httpd starts: httpd starts, a login's callback is
//     503; memcached starts: logins work.
// Latencies and recovery times are printed as test diagnostics.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { COOKIE, getUser, setsSession, startEnv, useEnv } from './lib/env.js';
import { freePort, Httpd } from './lib/httpd.js';
import { Memcached, startMemcached } from './lib/memcached.js';

// Bounds: op timeout 500 ms and 1 s TCP connect in the backend; 2 s is the
// promise to the SPA.
const BOUND_MS = 2000;
// A child that saw a server fail skips it (503 at once) for retry_after,
// 5 s from its last try; its next request after that tries again.
const RETRY_MS = 5000;

// Error-log lines a store outage produces: the backend's warning, the
// request-level "store unavailable" errors of user/relay and callback.
const STORE_DOWN = [/BFF01601/, /BFF01303/, /BFF00203/, /BFF00213/];

const mc = await startMemcached();

after(() => mc.close());
const env = useEnv({ bff: { BFFSessionStore: `memcache:${mc.spec}` } });

async function timedUser(client, e = env) {
    const t0 = Date.now();
    const r = await getUser(client, e);
    return { ...r, ms: Date.now() - t0 };
}

function assertStoreDown(r) {
    assert.equal(r.status, 503, r.resp.body);
    assert.equal(r.body?.error, 'store_unavailable');
    assert.equal(r.resp.headers['cache-control'], 'no-store');
}

function stats(list) {
    const s = [...list].sort((a, b) => a - b);
    return `min ${s[0]} / median ${s[Math.floor(s.length / 2)]} / max ${s[s.length - 1]} ms`;
}

function pidsOf(lines, re) {
    return new Set(lines.filter((l) => re.test(l)).map((l) => Number((/\[pid (\d+)/.exec(l) || [])[1])));
}

function alive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

/**
 * After an outage of `server` (log lines since `mark`): every child that
 * logged BFF01601 for it skips it for retry_after (5 s from its last try;
 * meanwhile concurrent requests fail fast while one probes). Wait that out,
 * then send sequential requests (each alone, so each may be the probe) until
 * every such child still alive has logged BFF01602; every one of them must
 * get a real answer (check(r) true). Returns { ms: time from lastTry until
 * all children were back, requests }.
 */
async function childrenBack(httpd, mark, server, lastTry, send, check) {
    const left = lastTry + RETRY_MS + 300 - Date.now();
    if (left > 0) await sleep(left);
    const esc = server.replace(/[.]/g, '\\.');
    const downRe = new RegExp(`BFF01601: memcached server ${esc} `);
    const backRe = new RegExp(`BFF01602: memcached server ${esc} `);
    const down = pidsOf(httpd.logSince(mark), downRe);
    assert.ok(down.size >= 1, 'some child logged BFF01601');
    let requests = 0;
    const deadline = Date.now() + 15000;
    for (;;) {
        const back = pidsOf(httpd.logSince(mark), backRe);
        const missing = [...down].filter((pid) => !back.has(pid) && alive(pid));
        if (!missing.length) return { ms: Date.now() - lastTry, requests, children: down.size };
        assert.ok(Date.now() < deadline, `children ${missing} never logged BFF01602 for ${server}`);
        const r = await send();
        requests += 1;
        assert.ok(check(r), `a lone request after retry_after gets a real answer: ${r.status}`);
    }
}

function countBy(list) {
    return list.reduce((m, x) => ({ ...m, [x]: (m[x] || 0) + 1 }), {});
}

test('memcache without BFFCryptoKey: httpd refuses to start, naming BFFCryptoKey', async () => {
    const h = new Httpd({ pki: env.pki, bff: { ...env.bff, BFFCryptoKey: null } });
    try {
        await assert.rejects(h.start(), (e) => {
            assert.match(e.message, /BFFCryptoKey/);
            assert.match(e.message, /BFFSessionStore/);
            return true;
        });
    } finally {
        await h.stop();
        h.cleanup();
    }
});

// apache2 -t runs httpd's check_config hook (not post_config): mod_bff checks
// the directives that depend on each other there.
test('memcache without BFFCryptoKey: apache2 -t refuses and names BFFCryptoKey', async () => {
    const h = new Httpd({ pki: env.pki, bff: { ...env.bff, BFFCryptoKey: null } });
    try {
        const r = await h.configTest();
        assert.notEqual(r.status, 0, `configtest must fail: ${r.stderr}${r.stdout}`);
        assert.match(r.stderr + r.stdout, /BFFCryptoKey/);
    } finally {
        h.cleanup();
    }
    // Same config with the key: accepted.
    const ok = new Httpd({ pki: env.pki, bff: env.bff });
    try {
        const r = await ok.configTest();
        assert.equal(r.status, 0, r.stderr);
    } finally {
        ok.cleanup();
    }
});

test('sessions live in memcached; tampered records are no session (401), others unaffected', async (t) => {
    await mc.flushAll();
    const clients = [];
    for (let i = 0; i < 5; i += 1) {
        const { client } = await env.login({ username: i % 2 ? 'bob' : 'alice', password: i % 2 ? 'bob-pass' : 'alice-pass' });
        assert.equal((await getUser(client, env)).status, 200);
        clients.push(client);
    }
    const keys = await mc.keys();
    const sessionKeys = keys.filter((k) => k.startsWith('s:'));
    t.diagnostic(`keys in memcached after 5 logins: ${JSON.stringify(countBy(keys.map((k) => k.split(':')[0])))}`);
    assert.equal(sessionKeys.length, 5, `one s: entry per session: ${keys.join(' ')}`);
    for (const k of keys) assert.match(k, /^[a-z]:[0-9a-z:]*[0-9a-f]{64}$/, `key format ${k}`);

    // Which key is whose: break one key at a time and see who gets 401.
    const owner = new Map();
    const statuses = async () => Promise.all(clients.map(async (c) => (await getUser(c, env)).status));
    const original = new Map();
    for (const k of sessionKeys) original.set(k, await mc.get(k));
    const tamperings = [
        ['random bytes', () => crypto.randomBytes(original.get(sessionKeys[0]).length)],
        ['truncated copy', () => original.get(sessionKeys[1]).subarray(0, original.get(sessionKeys[1]).length - 7)],
        ['empty value', () => Buffer.alloc(0)],
        ['another session\'s record', () => original.get(sessionKeys[4])],
    ];
    const { lines } = await env.httpd.expectLog([/BFF01304/], async () => {
        for (const [i, [what, value]] of tamperings.entries()) {
            assert.ok(await mc.set(sessionKeys[i], value(), 600));
            const st = await statuses();
            const broken = st.map((s, j) => (s === 401 ? j : -1)).filter((j) => j >= 0);
            t.diagnostic(`after ${what} under ${sessionKeys[i].slice(0, 10)}...: statuses ${st.join(',')}`);
            assert.ok(st.every((s) => s === 200 || s === 401), `only 200/401: ${st}`);
            assert.equal(broken.length, i + 1, `${what}: exactly one more session ends (${st})`);
            const newly = broken.filter((j) => ![...owner.values()].includes(j));
            assert.equal(newly.length, 1);
            owner.set(sessionKeys[i], newly[0]);
        }
    });
    const warn = lines.filter((l) => /BFF01304/.test(l));
    assert.ok(warn.length >= 4, `BFF01304 warnings for the tampered records:\n${lines.join('\n')}`);
    assert.ok(warn.every((l) => /:warn\]/.test(l)));
    // The session whose record was copied elsewhere is untouched and works.
    const last = clients.findIndex((_, j) => ![...owner.values()].includes(j));
    assert.equal((await getUser(clients[last], env)).status, 200);

    // Garbage under every other key (indexes, pending-login, locks, ...).
    const others = (await mc.keys()).filter((k) => k !== sessionKeys[4]);
    await env.httpd.expectLog([/BFF01304/], async () => {
        for (const k of others) assert.ok(await mc.set(k, crypto.randomBytes(50), 600));
        const st = await statuses();
        assert.deepEqual(st.filter((s) => s === 200).length, 1, `only the untouched session lives: ${st}`);
    });
    // A new login (writes the damaged index) and a back-channel-free logout still work.
    const { client: fresh } = await env.login();
    const u = await getUser(fresh, env);
    assert.equal(u.status, 200);
    assert.equal(u.body.sub, 'alice');
    assert.equal((await getUser(clients[last], env)).status, 200);
    assert.equal(env.httpd.exitInfo, undefined, 'httpd still running');
});

test('a record changed in memcached is authenticated again, also on a keep-alive connection', async () => {
    // mod_bff skips decrypting a record that is byte for byte the one it
    // decrypted last on the same connection; one flipped bit must not pass.
    await mc.flushAll();
    const { client } = await env.login();
    const [key] = (await mc.keys()).filter((k) => k.startsWith('s:'));
    assert.ok(key);
    const cookie = client.jar.get(COOKIE, env.url('/')).value;
    const ka = env.keepAliveClient();
    const user = () => getUser(ka, env, { cookie: `${COOKIE}=${cookie}` });
    try {
        for (let i = 0; i < 3; i += 1) assert.equal((await user()).status, 200);
        const good = await mc.get(key);
        const bad = Buffer.from(good);
        bad[bad.length - 20] ^= 0x01; // inside the ciphertext, same length
        await env.httpd.expectLog([/BFF01304/], async () => {
            assert.ok(await mc.set(key, bad, 600));
            assert.equal((await user()).status, 401, 'a flipped bit is no session');
        });
        assert.ok(await mc.set(key, good, 600));
        const back = await user();
        assert.equal(back.status, 200, 'the original record is accepted again');
        assert.equal(back.body.sub, 'alice');
        assert.equal(ka.connections(), 1, 'every request on one connection');
    } finally {
        ka.close();
    }
});

test('memcached killed: bounded 503s, no pile-up; restarted: 401, new logins work without restarting httpd', async (t) => {
    const { client } = await env.login();
    assert.equal((await getUser(client, env)).status, 200);
    const starts = env.httpd.startedCount();
    const mark0 = env.httpd.logMark();
    let lastTry = 0;
    const { lines } = await env.httpd.expectLog(STORE_DOWN, async () => {
        await mc.kill();
        // At once, before any child knows: no request may wait for another.
        const t0 = Date.now();
        const par = await Promise.all(Array.from({ length: 20 }, () => timedUser(client)));
        const wall = Date.now() - t0;
        par.forEach(assertStoreDown);
        t.diagnostic(`killed: 20 concurrent /bff/user 503 in ${stats(par.map((r) => r.ms))}, all done in ${wall} ms`);
        const seq = [];
        for (let i = 0; i < 5; i += 1) {
            const r = await timedUser(client);
            assertStoreDown(r);
            seq.push(r.ms);
        }
        t.diagnostic(`killed: 5 sequential /bff/user 503 in ${stats(seq)}`);
        for (const ms of [...seq, ...par.map((r) => r.ms)]) assert.ok(ms < BOUND_MS, `answer in ${ms} ms`);
        assert.ok(wall < BOUND_MS + 500, `20 concurrent done in ${wall} ms`);
        // A login starts without the store (its pending state is sealed in the
        // browser); its callback needs the store for the single-use marker:
        // a 503 page, no session.
        const c2 = env.client();
        const l2 = await c2.followLogin(env.url('/bff/login?returnTo=/app.html'), { stopAtCallback: true });
        const lt0 = Date.now();
        const cr = await c2.get(l2.callbackUrl, { crossSite: l2.callbackCrossSite });
        t.diagnostic(`killed: /bff/callback ${cr.status} in ${Date.now() - lt0} ms`);
        assert.equal(cr.status, 503);
        assert.match(cr.headers['content-type'], /text\/html/);
        assert.ok(!setsSession(cr), 'no session cookie');
        lastTry = Date.now();
    });
    const down = lines.filter((l) => /BFF01601/.test(l));
    assert.ok(down.length >= 1, `BFF01601 logged:\n${lines.join('\n')}`);
    assert.ok(down.every((l) => l.includes(mc.spec) && /:warn\]/.test(l)), down.join('\n'));
    // The requests' own line: at error once per 10 s per process, debug
    // otherwise (a rate-limited level must be computed once: BFF_RLOG_AT).
    assert.ok(lines.some((l) => /:error\].*BFF01303/.test(l)), `BFF01303 at error:\n${lines.join('\n')}`);

    // Same port again: the data is gone, so the session ends (401, not 503).
    const mark = env.httpd.logMark();
    await env.httpd.expectLog(STORE_DOWN, async () => {
        await mc.start();
        const b = await childrenBack(env.httpd, mark0, mc.spec, lastTry, () => getUser(client, env),
            (r) => r.status === 401);
        t.diagnostic(`restarted: ${b.children} children back (BFF01602) ${b.ms} ms after the last failed request; ` +
            `${b.requests} lone requests, all 401`);
        // Now concurrent ones too: 401 (the data is gone), not 503.
        const res = await Promise.all(Array.from({ length: 10 }, () => getUser(client, env)));
        assert.deepEqual(res.map((r) => r.status), res.map(() => 401));
    });
    const { client: again } = await env.login();
    assert.equal((await getUser(again, env)).status, 200);
    const back = env.httpd.logSince(mark).filter((l) => /BFF01602/.test(l));
    assert.ok(back.length >= 1 && back.every((l) => l.includes(mc.spec) && /:notice\]/.test(l)),
        `BFF01602 notice: ${back.join('\n')}`);
    assert.equal(env.httpd.exitInfo, undefined, 'httpd kept running');
    assert.equal(env.httpd.startedCount(), starts, 'httpd was not restarted');
});

test('memcached hung (SIGSTOP): 503 within the bound; SIGCONT: the same sessions work again', async (t) => {
    const { client: ca } = await env.login();
    const { client: cb } = await env.login({ username: 'bob', password: 'bob-pass' });
    assert.equal((await getUser(ca, env)).body.sub, 'alice');
    assert.equal((await getUser(cb, env)).body.sub, 'bob');
    const mark0 = env.httpd.logMark();
    await env.httpd.expectLog(STORE_DOWN, async () => {
        mc.pause();
        try {
            // At once: every request waits for its own read timeout, in parallel.
            const t0 = Date.now();
            const par = await Promise.all(Array.from({ length: 20 }, (_, i) => timedUser(i % 2 ? cb : ca)));
            const wall = Date.now() - t0;
            par.forEach(assertStoreDown);
            t.diagnostic(`SIGSTOP: 20 concurrent /bff/user 503 in ${stats(par.map((r) => r.ms))}, all done in ${wall} ms`);
            const seq = [];
            for (let i = 0; i < 4; i += 1) {
                const r = await timedUser(i % 2 ? cb : ca);
                assertStoreDown(r);
                seq.push(r.ms);
            }
            t.diagnostic(`SIGSTOP: 4 sequential /bff/user 503 in ${stats(seq)}`);
            for (const ms of [...seq, ...par.map((r) => r.ms)]) assert.ok(ms < BOUND_MS, `answer in ${ms} ms`);
            assert.ok(wall < BOUND_MS + 500, `20 concurrent done in ${wall} ms`);
            const c3 = env.client();
            const l3 = await c3.followLogin(env.url('/bff/login'), { stopAtCallback: true });
            const lt0 = Date.now();
            const cr = await c3.get(l3.callbackUrl, { crossSite: l3.callbackCrossSite });
            t.diagnostic(`SIGSTOP: /bff/callback ${cr.status} in ${Date.now() - lt0} ms`);
            assert.equal(cr.status, 503);
            assert.ok(!setsSession(cr), 'no session cookie');
            assert.ok(Date.now() - lt0 < BOUND_MS);
        } finally {
            mc.resume();
        }
        const lastTry = Date.now();
        let i = 0;
        const b = await childrenBack(env.httpd, mark0, mc.spec, lastTry, () => getUser((i++) % 2 ? cb : ca, env),
            (r) => r.status === 200);
        t.diagnostic(`SIGCONT: ${b.children} children back ${b.ms} ms after the last failed request (${b.requests} lone requests, all 200)`);
    });
    // Every child is back, and no answer of the hung period is read as the
    // answer to a later request (each one's own user).
    const mixed = await Promise.all(Array.from({ length: 20 }, (_, i) => getUser(i % 2 ? cb : ca, env)));
    mixed.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.equal(r.body.sub, i % 2 ? 'bob' : 'alice');
    });
});

test('two servers: both hold entries; one down fails only its own sessions; back: those are 401', async (t) => {
    const m1 = await startMemcached();
    const m2 = await startMemcached();
    let e2 = null;
    try {
        e2 = await startEnv({ bff: { BFFSessionStore: `memcache:${m1.spec},${m2.spec}` } });
        const clients = [];
        for (let i = 0; i < 20; i += 1) {
            const { client } = await e2.login();
            clients.push(client);
        }
        const [s1, s2] = [await m1.stats(), await m2.stats()];
        const [k1, k2] = [(await m1.keys()).filter((k) => k.startsWith('s:')),
            (await m2.keys()).filter((k) => k.startsWith('s:'))];
        t.diagnostic(`curr_items: ${m1.spec} ${s1.curr_items}, ${m2.spec} ${s2.curr_items}; ` +
            `sessions ${k1.length} + ${k2.length}`);
        assert.ok(Number(s1.curr_items) > 0 && Number(s2.curr_items) > 0, 'both servers hold entries');
        assert.equal(k1.length + k2.length, 20);
        assert.ok(k1.length > 0 && k2.length > 0, 'sessions on both servers');

        const mark0 = e2.httpd.logMark();
        const { lines } = await e2.httpd.expectLog(STORE_DOWN, async () => {
            await m2.stop();
            const res = [];
            for (const c of clients) res.push(await timedUser(c, e2));
            const st = res.map((r) => r.status);
            t.diagnostic(`${m2.spec} stopped: ${JSON.stringify(countBy(st))}; latencies ${stats(res.map((r) => r.ms))}`);
            assert.ok(res.every((r) => r.ms < BOUND_MS));
            assert.equal(st.filter((s) => s === 503).length, k2.length, `503 = the sessions on ${m2.spec}: ${st}`);
            assert.equal(st.filter((s) => s === 200).length, k1.length, `200 = the sessions on ${m1.spec}: ${st}`);
            res.filter((r) => r.status === 503).forEach(assertStoreDown);
            // Again: the same split (no fail-over moved anything).
            const st2 = [];
            for (const c of clients) st2.push((await getUser(c, e2)).status);
            assert.deepEqual(st2, st);
            clients.onM2 = st.map((s) => s === 503);
            const lastTry = Date.now();
            await m2.start();
            const onM2 = clients.filter((_, i) => clients.onM2[i]);
            let i = 0;
            const b = await childrenBack(e2.httpd, mark0, m2.spec, lastTry, () => getUser(onM2[(i++) % onM2.length], e2),
                (r) => r.status === 401);
            t.diagnostic(`${m2.spec} restarted: ${b.children} children back ${b.ms} ms after the last failure; its sessions 401`);
        });
        const down = lines.filter((l) => /BFF01601/.test(l));
        assert.ok(down.length >= 1, lines.join('\n'));
        assert.ok(down.every((l) => l.includes(m2.spec) && !l.includes(m1.spec)), down.join('\n'));
        // Restarted (data lost): its sessions are 401 now, in every child; the others 200.
        const after2 = await Promise.all([...clients, ...clients].map((c) => getUser(c, e2)));
        assert.deepEqual(after2.map((r) => r.status), [...clients, ...clients].map((_, i) =>
            (clients.onM2[i % clients.length] ? 401 : 200)));
        for (let i = 0; i < 4; i += 1) {
            const { client } = await e2.login();
            assert.equal((await getUser(client, e2)).status, 200);
        }
    } finally {
        await m1.close();
        await m2.close();
        if (e2) {
            await e2.stop();
            e2.httpd.assertCleanLog();
            e2.httpd.cleanup();
        }
    }
});

test('memcached down when httpd starts: httpd starts, a login\'s callback 503; memcached starts: logins work', async (t) => {
    const m = new Memcached({ port: await freePort() });
    let e3 = null;
    try {
        e3 = await startEnv({ bff: { BFFSessionStore: `memcache:${m.spec}` } });
        const startup = e3.httpd.errorLines().filter((l) => /:(warn|error|crit|alert|emerg)\]/.test(l));
        t.diagnostic(`start-up lines at warn or worse: ${startup.length ? startup.join(' | ') : 'none'}`);
        const mark0 = e3.httpd.logMark();
        await e3.httpd.expectLog(STORE_DOWN, async () => {
            const c = e3.client();
            // The login starts (nothing to store); its callback needs the store.
            const l = await c.followLogin(e3.url('/bff/login'), { stopAtCallback: true });
            const r = await c.get(l.callbackUrl, { crossSite: l.callbackCrossSite });
            assert.equal(r.status, 503);
            assert.ok(!setsSession(r));
            const lastTry = Date.now();
            assert.equal((await getUser(c, e3)).status, 401, 'no cookie: 401 without asking the store');
            await m.start();
            // A store probe: an unknown session cookie is looked up (503 down, 401 back).
            const probe = () => getUser(e3.client(), e3,
                { cookie: `${COOKIE}=${crypto.randomBytes(32).toString('base64url')}` });
            const b = await childrenBack(e3.httpd, mark0, m.spec, lastTry, probe, (x) => x.status === 401);
            t.diagnostic(`memcached started after httpd: ${b.children} children back ${b.ms} ms after the failed callback`);
        });
        const logins = await Promise.all(Array.from({ length: 10 }, () => e3.client().get(e3.url('/bff/login'))));
        assert.deepEqual(logins.map((r) => r.status), logins.map(() => 302));
        const { client } = await e3.login();
        assert.equal((await getUser(client, e3)).status, 200);
    } finally {
        await m.close();
        if (e3) {
            await e3.stop();
            e3.httpd.assertCleanLog();
            e3.httpd.cleanup();
        }
    }
});

test('error log after all the faults: no crit/alert/emerg, no crashed child', () => {
    const bad = env.httpd.errorLines().filter((l) => /:(crit|alert|emerg)\]|exit signal|AH00060|segfault/i.test(l));
    assert.deepEqual(bad, []);
    const levels = countBy(env.httpd.errorLines().map((l) => (/\[bff:(\w+)\]/.exec(l) || [])[1]).filter(Boolean));
    console.log(`# mod_bff log lines by level: ${JSON.stringify(levels)}`);
});
