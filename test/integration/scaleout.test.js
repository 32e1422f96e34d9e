// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Scale-out of the memcache store (issue 13): real memcached servers
// (lib/memcached.js) and two httpd nodes, A and B, with the same key and
// server list (lib/nodes.js); every login is a distinct user (u000...), so a
// session served as another user's shows as a wrong sub.
//   - placement: every key mod_bff stored sits on the server(s) that
//     consistent hashing as docs/deployment.md describes it names, computed
//     here independently (lib/memcached.js ketamaServers), with replicas on
//     exactly the first `replicas` distinct servers of the ring;
//   - 100 sessions on 2 servers, a third added (graceful restart of both
//     nodes): exactly the sessions whose record stays on its server work,
//     the others are 401, none is another user's; at least 55% of the ring
//     stays in place (the sessions' figure is a diagnostic); the same with
//     100 sessions on 3 servers and one removed;
//   - the same two servers listed in opposite order on A and B: every
//     session works on both nodes;
//   - replicas=2 on 3 servers, each server killed in turn (SIGKILL): every
//     session works on both nodes (read and relayed with its own user's
//     token), a burst of 50 relayed requests at expiry
//     split over both nodes makes one refresh_token grant, a login started
//     before the kill completes once and its replay is refused (also once the
//     server is back empty), a logout before the kill stays a logout;
//   - replicas=2, a server restarted empty: its sessions keep working; a read
//     writes a session back where the restarted server is its first replica,
//     the next write (a refresh) where it is the second; the copies are the
//     same bytes; a refresh race with every server up makes one grant;
//   - replicas=2, a server stopped (SIGSTOP: it keeps its data) while node A
//     logs a session out and refreshes another, A restarted (graceful), the
//     server continued: with no request to either node, A's watchdog deletes
//     the old copies on it (the journal outlived A's children); then the
//     logout and the refresh hold on B, which never saw the server fail, and
//     on A;
//   - replicas=2, two changes in a row (d added to a,b,c; then b replaced by
//     e): the sessions used between the changes all work after the second
//     (their first read under a new list copies them to its replicas);
//   - replicas=2, a server added, and (separately) one replaced, as
//     docs/deployment.md says, one node after the other: every session works
//     on both nodes at each step;
//   - eviction: a 4 MB memcached filled past its size by another tenant: the
//     evicted sessions are 401 (not 5xx) and BFF01604 names the server and its
//     evictions (at most once per child), nothing crashes, sessions made
//     after the fill work.
// A down server's warnings (BFF01601) are the only warnings accepted while a
// server is down: a 503 (BFF01303/BFF00213) fails the log check.
// About 50 s (40-55 s measured while other tests ran); logins are the cost (40-90 ms each, 4 at a time).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ketamaServers, ketamaShares, Memcached, specOf, startMemcacheds } from './lib/memcached.js';
import { startNodes, userNames } from './lib/nodes.js';

const USERS = userNames(500);
let nextUser = 0;
/** n users not logged in before in this file. */
function users(n) {
    assert.ok(nextUser + n <= USERS.length, 'enough test accounts');
    nextUser += n;
    return USERS.slice(nextUser - n, nextUser);
}

const TTL = 4; // access token lifetime (s) of the sessions that refresh
// Down/retry: a child that saw a server fail skips it for 5 s.
const RETRY_MS = 5000;

const M = await startMemcacheds(6);
after(async () => {
    for (const m of M) await m.close();
});

let cl = null;
before(async () => {
    cl = await startNodes({ store: `memcache:${specOf(M.slice(0, 2))}`, users: USERS.length });
});
after(async () => {
    if (cl) await cl.stop();
});

/** BFFSessionStore value: memcache:<servers> [replicas=N]. */
function store(servers, replicas) {
    const spec = `memcache:${specOf(servers)}`;
    return replicas ? [[spec, `replicas=${replicas}`]] : spec;
}

async function sessionKeys(m) {
    return (await m.keys()).filter((k) => k.startsWith('s:'));
}

/** Every key on each of `servers` is on its ketama servers (first `replicas`); returns { key: [specs] }. */
async function assertPlacement(servers, replicas = 1, only = () => true) {
    const where = {};
    for (const m of servers) {
        // "!<md5>": a removed key's tombstone (replicas >= 2), kept on that key's replicas.
        for (const k of (await m.keys()).filter((x) => !x.startsWith('!') && only(x))) (where[k] ||= []).push(m.spec);
    }
    const wrong = [];
    for (const [k, on] of Object.entries(where)) {
        const want = ketamaServers(k, servers, replicas);
        // A replica may lack an entry (a single-use add refused there, or a
        // down server); an entry on a server outside its replicas is wrong.
        if (on.some((s) => !want.includes(s))) wrong.push(`${k} on ${on}, ketama says ${want}`);
    }
    assert.equal(wrong.length, 0, `${wrong.length} of ${Object.keys(where).length} keys not on the servers ` +
        `consistent hashing names, e.g.\n${wrong.slice(0, 5).join('\n')}`);
    return where;
}

/** /bff/user of every session on node: 200 with its own sub, or 401; returns the statuses. */
async function check(node, sessions, { slide = true } = {}) {
    const res = await Promise.all(sessions.map((s) => cl.user(node, s, { slide })));
    res.forEach((r, i) => {
        assert.ok([200, 401].includes(r.status), `${sessions[i].username} on ${node.label}: ${r.status} ${r.resp.body}`);
        if (r.status === 200) {
            assert.equal(r.body.sub, sessions[i].username, `${sessions[i].username}'s cookie on ${node.label} is served as ${r.body.sub}`);
            assert.equal(r.body.claims.name, `User ${sessions[i].username.slice(1)}`);
        }
    });
    return res.map((r) => r.status);
}

/** Every session 200 with its own user on both nodes. */
async function allWork(sessions, what, opts) {
    for (const node of cl.nodes) {
        const st = await check(node, sessions, opts);
        const bad = sessions.filter((_, i) => st[i] !== 200).map((s) => s.username);
        assert.deepEqual(bad, [], `${what}: sessions not working on ${node.label}`);
    }
}

/** Run fn on both nodes' logs accepting lines matching patterns; returns the new lines of A and B. */
async function expectBoth(patterns, fn) {
    let inner;
    const a = await cl.A.expectLog(patterns, async () => {
        inner = await cl.B.expectLog(patterns, fn);
        return inner.result;
    });
    return { result: a.result, A: a.lines, B: inner.lines };
}

/**
 * Servers changed from `from` to `to` with replicas=1: the sessions whose
 * key stays on its server work on both nodes with their own user, the others
 * are 401 on both; exactly as many survive as records consistent hashing
 * keeps in place. At least 55% must: asserted on the share of the ring that
 * stays in place (exact for these servers' names; with random ports it is
 * 58-75%), not on the 100 sessions, whose sample alone would miss 55% in
 * about 1 run of 100 although the ring keeps 2/3; the sessions' figure is a
 * diagnostic. Returns { survivors, lost } (sessions).
 */
async function survival(t, sessions, from, to, what) {
    // The live records: those on their server. (A record of a session that
    // ended at an earlier change is still on its old server, out of reach.)
    const keys = [];
    for (const m of from) keys.push(...(await sessionKeys(m)).filter((k) => ketamaServers(k, from)[0] === m.spec));
    assert.equal(keys.length, sessions.length, 'one session record per session');
    const stay = keys.filter((k) => ketamaServers(k, from)[0] === ketamaServers(k, to)[0]).length;
    // Adding a server moves its share of the new ring; removing one, its share of the old ring.
    const added = to.filter((m) => !from.includes(m));
    const removed = from.filter((m) => !to.includes(m));
    const [newShares, oldShares] = [ketamaShares(to), ketamaShares(from)];
    const kept = 1 - added.reduce((a, m) => a + newShares[m.spec], 0) - removed.reduce((a, m) => a + oldShares[m.spec], 0);
    await cl.reconfigure({ BFFSessionStore: store(to) });
    const stA = await check(cl.A, sessions, { slide: false });
    const stB = await check(cl.B, sessions, { slide: false });
    assert.deepEqual(stB, stA, 'both nodes agree on every session');
    const survivors = sessions.filter((_, i) => stA[i] === 200);
    const pct = (100 * survivors.length) / sessions.length;
    t.diagnostic(`${what}: ${survivors.length} of ${sessions.length} sessions still work (${pct.toFixed(0)}%; ` +
        `consistent hashing keeps ${stay} records and ${(100 * kept).toFixed(1)}% of the ring in place; ` +
        'hash % n would keep about a third)');
    assert.equal(survivors.length, stay, 'exactly the sessions whose key stays on its server survive');
    assert.ok(kept >= 0.55, `at least 55% of the key space stays in place (${(100 * kept).toFixed(1)}%)`);
    return { survivors, lost: sessions.filter((_, i) => stA[i] !== 200) };
}

test('100 sessions: a third server added, then one of three removed: most survive, none is another user\'s', async (t) => {
    const [m0, m1, m2] = M;
    for (const m of [m0, m1, m2]) await m.flushAll();
    await cl.reconfigure({ BFFSessionStore: store([m0, m1]) });
    let t0 = Date.now();
    let sessions = await cl.loginMany(users(100));
    t.diagnostic(`100 logins (4 at a time) in ${Date.now() - t0} ms`);
    await allWork(sessions, 'on 2 servers', { slide: false });
    const where = await assertPlacement([m0, m1]);
    const onEach = [m0, m1].map((m) => Object.values(where).filter((on) => on.includes(m.spec)).length);
    t.diagnostic(`keys per server (2 servers): ${onEach.join(' / ')}`);
    assert.ok(onEach.every((n) => n > 0), 'both servers hold keys');

    // Add m2 (listed between the others: the order does not matter).
    await survival(t, sessions, [m0, m1], [m0, m2, m1], '2 -> 3 servers (one added)');

    // 100 other sessions spread over the 3 servers (the survivors above are
    // all on m0 and m1: removing one of those would end more than its share).
    for (const m of [m0, m1, m2]) await m.flushAll();
    t0 = Date.now();
    sessions = await cl.loginMany(users(100));
    t.diagnostic(`100 logins in ${Date.now() - t0} ms`);
    await allWork(sessions, 'on 3 servers', { slide: false });
    await assertPlacement([m0, m1, m2]);
    // Remove m1: only its sessions end.
    await survival(t, sessions, [m0, m1, m2], [m2, m0], '3 -> 2 servers (one removed)');
});

test('the same two servers listed in opposite order on A and B: every session works on both nodes', async () => {
    const [m0, m1] = [M[0], M[1]];
    for (const m of [m0, m1]) await m.flushAll();
    await cl.reconfigure({ BFFSessionStore: store([m0, m1]) }, [cl.A]);
    await cl.reconfigure({ BFFSessionStore: store([m1, m0]) }, [cl.B]);
    const sessions = await cl.loginMany(users(20));
    await allWork(sessions, 'A lists m0,m1 and B m1,m0', { slide: false });
    // Relayed on the other node than the one whose callback made it.
    const r = await Promise.all(sessions.map((s, i) => cl.relay(i % 2 ? cl.B : cl.A, s)));
    assert.deepEqual(r.map((x) => x.status), r.map(() => 200));
    // The token relayed is one the provider issued to this session's user.
    assert.deepEqual(r.map((x) => cl.provider.owners.get(x.token)), sessions.map((s) => s.username));
    await assertPlacement([m0, m1]);
    const [k0, k1] = [await sessionKeys(m0), await sessionKeys(m1)];
    assert.ok(k0.length && k1.length, 'sessions on both servers');
});

/** Log in one session whose access token expires after TTL s; { ...session, due (ms) }. */
async function shortSession(start, callback) {
    cl.ttl.access = TTL;
    try {
        const at = Date.now();
        const s = await cl.login(start, callback, users(1)[0]);
        return { ...s, expires: at + TTL * 1000 };
    } finally {
        cl.ttl.access = 600;
    }
}

/** 50 relayed requests at once, alternately on A and B: { statuses, grants, tokens }. */
async function burst(s) {
    const before = cl.provider.tokenCalls.refresh_token;
    const issuedBefore = cl.provider.issued.access.length;
    const res = await Promise.all(Array.from({ length: 50 }, (_, i) => cl.relay(i % 2 ? cl.B : cl.A, s)));
    return {
        res,
        grants: cl.provider.tokenCalls.refresh_token - before,
        issued: cl.provider.issued.access.slice(issuedBefore),
        tokens: [...new Set(res.map((x) => x.token))],
    };
}

for (const victim of [0, 1, 2]) {
    test(`replicas=2 on 3 servers, server ${victim + 1} of 3 killed: sessions, a refresh race, a pending login and a logout on both nodes`, async (t) => {
        const servers = M.slice(0, 3);
        const V = servers[victim];
        for (const m of servers) {
            if (!m.running) await m.start(); // an earlier round that failed left it down
            await m.flushAll();
        }
        // A fresh generation of children for each victim: none still skips
        // the server the previous round killed and restarted (it would for 5 s).
        await cl.reconfigure({ BFFSessionStore: store(servers, 2) });
        const race = await shortSession(cl.A, cl.B);
        const sessions = await cl.loginMany(users(12));
        const gone = await cl.login(cl.B, cl.A, users(1)[0]);
        const tx = await cl.startLogin(cl.A, users(1)[0]);
        // Each session record on exactly its two ketama servers.
        const where = await assertPlacement(servers, 2, (k) => k.startsWith('s:'));
        assert.ok(Object.values(where).every((on) => on.length === 2), 'every session record on 2 servers');
        assert.equal(await cl.logout(cl.B, gone), 302);
        for (const node of cl.nodes) assert.equal((await cl.user(node, gone)).status, 401, 'logged out');

        const down = await expectBoth([/BFF01601/, /BFF0021\d/], async () => {
            await V.kill();
            await allWork([...sessions, race], `${V.spec} killed`);
            const rel = await Promise.all(sessions.map((s, i) => cl.relay(i % 2 ? cl.B : cl.A, s)));
            assert.deepEqual(rel.map((x) => x.status), rel.map(() => 200), `relayed with ${V.spec} killed`);
            assert.deepEqual(rel.map((x) => cl.provider.owners.get(x.token)), sessions.map((s) => s.username));

            // The refresh race, after expiry, over both nodes.
            const wait = race.expires + 300 - Date.now();
            if (wait > 0) await sleep(wait);
            const b = await burst(race);
            t.diagnostic(`${V.spec} down: 50 requests at expiry over A and B: ${b.grants} refresh_token grant(s)`);
            assert.deepEqual(b.res.map((x) => x.status), b.res.map(() => 200),
                b.res.filter((x) => x.status !== 200).map((x) => x.body).join('\n'));
            assert.equal(b.grants, 1, 'exactly one refresh across both nodes');
            assert.equal(b.issued.length, 1);
            assert.deepEqual(b.tokens, b.issued, 'every request relayed the new token');

            // The login started before the kill completes once.
            const cb = await cl.callback(tx, cl.B);
            assert.equal(cb.status, 200, cb.body);
            const set = cb.setCookies.map((h) => /^__Host-Http-bff=([^;]+)/.exec(h)).find(Boolean);
            assert.ok(set, 'a session cookie');
            await allWork([{ cookie: set[1], username: tx.username }], 'the login completed while a server is down');
            const replay = await cl.callback(tx, cl.A);
            assert.equal(replay.status, 400, 'the callback replayed is refused');

            for (const node of cl.nodes) assert.equal((await cl.user(node, gone)).status, 401, 'still logged out');

            // Back, empty.
            await V.start();
            await allWork([...sessions, race], `${V.spec} back empty`);
            for (const node of cl.nodes) {
                for (let i = 0; i < 3; i += 1) {
                    assert.equal((await cl.user(node, gone)).status, 401, `the logout stays on ${node.label}`);
                }
                const again = await cl.callback(tx, node);
                assert.equal(again.status, 400, `the callback replayed on ${node.label} with ${V.spec} back empty`);
            }
            const r = await cl.relay(cl.B, race);
            assert.equal(r.status, 200);
            assert.equal(r.token, b.issued[0], 'the refreshed token is kept');
        });
        const warned = [...down.A, ...down.B].filter((l) => /BFF01601/.test(l));
        assert.ok(warned.every((l) => l.includes(V.spec)), warned.join('\n'));
        const refresh = cl.provider.tokenRequests.filter((x) => x.grantType === 'refresh_token').map((x) => x.refreshToken);
        assert.equal(new Set(refresh).size, refresh.length, 'no refresh token presented twice');
    });
}

test('replicas=2: a server restarted empty: its sessions keep working and are written back', async (t) => {
    const servers = M.slice(3, 6);
    const V = servers[0];
    await cl.reconfigure({ BFFSessionStore: store(servers, 2) });
    // Short access tokens: the relays at the end refresh, which rewrites every record.
    cl.ttl.access = TTL;
    let sessions;
    try {
        sessions = await cl.loginMany(users(30));
    } finally {
        cl.ttl.access = 600;
    }
    const expires = Date.now() + TTL * 1000;
    const hot = await shortSession(cl.B, cl.A);
    const where = await assertPlacement(servers, 2, (k) => k.startsWith('s:'));
    const onV = Object.keys(where).filter((k) => where[k].includes(V.spec));
    const first = onV.filter((k) => ketamaServers(k, servers, 2)[0] === V.spec);
    const second = onV.filter((k) => ketamaServers(k, servers, 2)[1] === V.spec);
    t.diagnostic(`${onV.length} of 31 session records on ${V.spec}: ${first.length} as first replica, ${second.length} as second`);
    assert.ok(first.length > 0 && second.length > 0, 'the restarted server is first replica of some sessions, second of others');

    await expectBoth([/BFF01601/], async () => {
        await V.kill();
        await V.start();
        assert.deepEqual(await sessionKeys(V), [], 'restarted empty');
        await allWork([...sessions, hot], `${V.spec} restarted empty`, { slide: false });
        // A child that saw the old connection fail skips the server for a
        // while; after that every read tries it first again.
        await sleep(RETRY_MS + 300);
        await allWork([...sessions, hot], `${V.spec} restarted empty, after the retry interval`, { slide: false });
    });
    // A read writes a record back where the restarted server is the first
    // replica (it missed there, the second replica had it).
    let back = new Set(await sessionKeys(V));
    const firstBack = first.filter((k) => back.has(k));
    t.diagnostic(`after reads: ${firstBack.length} of ${first.length} first-replica records back on ${V.spec}, ` +
        `${second.filter((k) => back.has(k)).length} of ${second.length} second-replica ones`);
    assert.deepEqual(first.filter((k) => !back.has(k)), [], 'every first-replica record written back by a read');
    for (const k of firstBack) {
        const other = M.find((m) => m.spec === ketamaServers(k, servers, 2)[1]);
        assert.deepEqual(await V.get(k), await other.get(k), `${k}: the same record on both replicas`);
    }
    // Where it is the second replica, the read is served by the first one
    // (one round trip): the record comes back with the session's next write.
    const wait = Math.max(expires, hot.expires) + 300 - Date.now();
    if (wait > 0) await sleep(wait);
    // Every server up again: a refresh race over both nodes makes one grant.
    const b = await burst(hot);
    t.diagnostic(`all servers up: 50 requests at expiry over A and B: ${b.grants} refresh_token grant(s)`);
    assert.deepEqual(b.res.map((x) => x.status), b.res.map(() => 200));
    assert.equal(b.grants, 1, 'exactly one refresh across both nodes');
    assert.deepEqual(b.tokens, b.issued, 'every request relayed the new token');
    const grants = cl.provider.tokenCalls.refresh_token;
    const r = await Promise.all(sessions.map((s, i) => cl.relay(i % 2 ? cl.A : cl.B, s)));
    assert.deepEqual(r.map((x) => x.status), r.map(() => 200));
    assert.equal(cl.provider.tokenCalls.refresh_token - grants, sessions.length, 'each session refreshed once');
    back = new Set(await sessionKeys(V));
    assert.deepEqual(onV.filter((k) => !back.has(k)), [], 'every record of the restarted server back after a write');
    const where2 = await assertPlacement(servers, 2, (k) => k.startsWith('s:'));
    assert.ok(Object.values(where2).every((on) => on.length === 2), 'every session record on its 2 servers again');
    await allWork(sessions, 'after the refresh', { slide: false });
});

/** Session keys on any of servers. */
async function allSessionKeys(servers) {
    const all = new Set();
    for (const m of servers) for (const k of await sessionKeys(m)) all.add(k);
    return all;
}

/** Log in with login() until a session whose record's first replica is V: { ...session, key }. */
async function sessionFirstOn(V, servers, login) {
    for (let i = 0; i < 30; i += 1) {
        const before = await allSessionKeys(servers);
        const s = await login();
        const made = [...await allSessionKeys(servers)].filter((k) => !before.has(k));
        assert.equal(made.length, 1, `one session record per login: ${made}`);
        if (ketamaServers(made[0], servers, 2)[0] === V.spec) return { ...s, key: made[0] };
    }
    assert.fail(`no session record with ${V.spec} as first replica in 30 logins`);
}

/** Poll until none of keys is on m (at most ms); returns the keys still there. */
async function goneFrom(m, keys, ms) {
    const until = Date.now() + ms;
    let left = keys;
    for (;;) {
        const there = await Promise.all(left.map((k) => m.get(k)));
        left = left.filter((_, i) => there[i] !== null);
        if (!left.length || Date.now() > until) return left;
        await sleep(200);
    }
}

test('replicas=2: a server that stopped answering comes back with its data: a logout and a refresh made meanwhile hold, across a graceful restart, on both nodes, with no traffic to it', async (t) => {
    const servers = M.slice(3, 6);
    const V = servers[1];
    for (const m of servers) {
        if (m.paused) m.resume();
        if (!m.running) await m.start();
        await m.flushAll();
    }
    await cl.reconfigure({ BFFSessionStore: store(servers, 2) });
    const gone = await sessionFirstOn(V, servers, () => cl.login(cl.A, cl.B, users(1)[0]));
    const hot = await sessionFirstOn(V, servers, () => shortSession(cl.B, cl.A));
    const others = await cl.loginMany(users(6));
    await allWork([gone, hot, ...others], 'before', { slide: false });

    const grants = cl.provider.tokenCalls.refresh_token;
    const seen = await expectBoth([/BFF01601/, /BFF01602/, /BFF01606/], async () => {
        V.pause(); // SIGSTOP: it keeps its data, and its connections stay open
        assert.equal(await cl.logout(cl.A, gone), 302);
        assert.equal((await cl.user(cl.A, gone)).status, 401, 'logged out while the server is stopped');
        const wait = hot.expires + 300 - Date.now();
        if (wait > 0) await sleep(wait);
        const r = await cl.relay(cl.A, hot);
        assert.equal(r.status, 200, r.body);
        assert.equal(cl.provider.tokenCalls.refresh_token - grants, 1, 'refreshed while the server is stopped');
        // New children on A (graceful restart) while it is still stopped:
        // what it missed is known to the node, not to the children that noted it.
        await cl.reconfigure({}, [cl.A]);
        V.resume();
        // No request reaches either node now: A's watchdog cleans the server.
        const left = await goneFrom(V, [gone.key, hot.key], 8000);
        assert.deepEqual(left, [], `the old copies deleted on ${V.spec} without traffic`);
        // B never saw the server fail; it reads it as the first replica.
        for (let i = 0; i < 3; i += 1) {
            assert.equal((await cl.user(cl.B, gone)).status, 401, 'the logout holds on B');
        }
        const onB = await cl.relay(cl.B, hot);
        assert.equal(onB.status, 200, onB.body);
        assert.equal(onB.token, r.token, 'B relays the refreshed token, not the one before');
        for (let i = 0; i < 3; i += 1) {
            assert.equal((await cl.user(cl.A, gone)).status, 401, 'the logout holds on A');
        }
        const onA = await cl.relay(cl.A, hot);
        assert.equal(onA.status, 200);
        assert.equal(onA.token, r.token);
        await allWork(others, 'the others, after the stop', { slide: false });
        return r;
    });
    assert.equal(cl.provider.tokenCalls.refresh_token - grants, 1, 'one refresh in all');
    const refresh = cl.provider.tokenRequests.filter((x) => x.grantType === 'refresh_token').map((x) => x.refreshToken);
    assert.equal(new Set(refresh).size, refresh.length, 'no refresh token presented twice');
    const replayed = seen.A.filter((l) => /BFF01606/.test(l));
    t.diagnostic(replayed.join('\n'));
    assert.ok(replayed.length >= 1 && replayed.every((l) => l.includes(V.spec)), 'A replayed what the server missed');
});

test('replicas=2: a server added, then one replaced, one node after the other: every session keeps working', async (t) => {
    const [a, b, c, d] = [M[3], M[4], M[5], M[0]];
    // docs/deployment.md, "Adding a cache server" and "Replacing a cache
    // server": a key's new replicas always include one of its old ones, so
    // after one such change every session still has a copy where it is read.
    // (Two in a row: the next test. Each step below starts with sessions
    // made on the servers of the step before.)
    const steps = [['c added', [a, b], [a, b, c]], ['b replaced by d', [a, b, c], [a, c, d]]];
    for (const [what, before, servers] of steps) {
        for (const m of [a, b, c, d]) await m.flushAll();
        await cl.reconfigure({ BFFSessionStore: store(before, 2) });
        const sessions = await cl.loginMany(users(30));
        for (const node of [cl.A, cl.B]) {
            await cl.reconfigure({ BFFSessionStore: store(servers, 2) }, [node]);
            await allWork(sessions, `${what}, ${node === cl.A ? 'A has the new list, B the old one' : 'both the new list'}`,
                { slide: false });
        }
        // Every record is on its first replica now: read there, or written
        // back there by the read. (Copies on servers that are no longer its
        // replicas stay until they expire; nothing reads them.)
        const on = new Map();
        for (const m of [a, b, c, d]) for (const k of await sessionKeys(m)) on.set(k, [...(on.get(k) || []), m.spec]);
        assert.equal(on.size, sessions.length);
        const missing = [...on].filter(([k, where]) => !where.includes(ketamaServers(k, servers, 2)[0]));
        assert.deepEqual(missing, [], 'every session record on its first replica');
        const n = (await sessionKeys(servers.at(-1))).length;
        t.diagnostic(`${what}: every session works on both nodes; ${n} session records written back to ${servers.at(-1).spec}`);
    }
});

test('replicas=2: two changes in a row (a server added, then another replaced at once): every session used in between keeps working', async (t) => {
    const [a, b, c, d, e] = [M[3], M[4], M[5], M[0], M[1]];
    for (const m of [a, b, c, d, e]) {
        if (m.paused) m.resume();
        if (!m.running) await m.start();
        await m.flushAll();
    }
    const rings = [[a, b, c], [a, b, c, d], [a, c, d, e]];
    await cl.reconfigure({ BFFSessionStore: store(rings[0], 2) });
    const sessions = await cl.loginMany(users(60));
    await cl.reconfigure({ BFFSessionStore: store(rings[1], 2) });
    // Used on both nodes under the new list: each record read once per child.
    await allWork(sessions, 'd added', { slide: false });
    // Without the copies made by those reads, these would have no copy on
    // their replicas after the next change.
    const keys = [...await allSessionKeys(rings[0])];
    const atRisk = keys.filter((k) => {
        const had = ketamaServers(k, rings[0], 2);
        return !ketamaServers(k, rings[2], 2).some((s) => had.includes(s));
    });
    await cl.reconfigure({ BFFSessionStore: store(rings[2], 2) });
    t.diagnostic(`${atRisk.length} of ${keys.length} session records kept only by the copies made after the first change`);
    await allWork(sessions, 'b replaced by e right after', { slide: false });
    for (const k of atRisk) {
        assert.ok(await d.get(k) !== null || await e.get(k) !== null, `${k} copied to its new replicas`);
    }
});

test('eviction: a full memcached evicts sessions: 401 and BFF01604, no crash, later sessions work', async (t) => {
    const E = new Memcached({ memoryMb: 4 });
    await E.start();
    try {
        await cl.reconfigure({ BFFSessionStore: store([E]) });
        // Not read after the login: memcached keeps items that were read
        // again out of reach of a one-time writer's items (segmented LRU).
        const victims = await cl.loginMany(users(10));
        const keys = await sessionKeys(E);
        assert.equal(keys.length, 10);
        const size = (await E.get(keys[0])).length;
        // Another tenant fills the cache with items of a session's size:
        // three times what 4 MB holds.
        const n = Math.ceil((3 * 4 * 2 ** 20) / size);
        await E.fill(n, size);
        const ev = await E.evictions();
        const left = (await sessionKeys(E)).length;
        t.diagnostic(`record ${size} bytes; ${n} filler items: ${ev} evictions, ${left} of 10 sessions left`);
        assert.ok(ev > 0, 'memcached evicted');
        assert.ok(left < 10, 'some session was evicted');

        // New children: the first stats look of each is after the evictions
        // (a child reads stats at most once a minute, on a miss).
        await cl.reconfigure({});
        const logged = await expectBoth([/BFF01604/], async () => {
            for (const node of cl.nodes) {
                const st = await check(node, victims, { slide: false });
                assert.equal(st.filter((s) => s === 401).length, 10 - left, `the evicted sessions are 401 on ${node.label}`);
                // More evictions, more misses: each child still warns once a minute at most.
                await E.fill(Math.ceil(n / 4), size, { prefix: `more-${node.label}:` });
                await check(node, victims, { slide: false });
                await check(node, victims, { slide: false });
            }
        });
        for (const [label, lines] of [['A', logged.A], ['B', logged.B]]) {
            const w = lines.filter((l) => /BFF01604/.test(l));
            t.diagnostic(`${label}: ${w[0] || 'no BFF01604'}`);
            assert.ok(w.length >= 1, `BFF01604 on ${label}:\n${lines.join('\n')}`);
            assert.ok(w.every((l) => /:warn\]/.test(l) && l.includes(E.spec) && /evictions/.test(l)), w.join('\n'));
            const pids = w.map((l) => /\[pid (\d+)/.exec(l)?.[1]);
            assert.equal(new Set(pids).size, pids.length, `at most one BFF01604 per child on ${label}`);
        }
        // Sessions made after the fill work (they evict the tenant's items).
        const later = await cl.loginMany(users(6));
        await allWork(later, 'logged in after the fill');
        for (const node of cl.nodes) {
            const crashed = node.errorLines().filter((l) => /exit signal|AH00060|seg(mentation)? ?fault/i.test(l));
            assert.deepEqual(crashed, [], `no crashed child on ${node.label}`);
            assert.equal(node.exitInfo, undefined, `httpd ${node.label} running`);
        }
    } finally {
        await E.close();
    }
});
