// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// SetHandler bff-status as an operator reads it: Prometheus text exposition
// 0.0.4 (parsed here by a small strict parser: HELP and TYPE for every
// family) and the same numbers as JSON with ?json; after one login, one
// relayed call, one CSRF refusal and one logout the counters moved by
// exactly those amounts and nothing else did; counters are shared by the
// children (a burst over several connections) and survive a graceful
// restart; GET/HEAD only, no-store, access as the admin's Require says; a
// memcache store's calls and errors; a refresh by its outcome.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { getUser, startEnv, useEnv } from './lib/env.js';
import { startMemcached } from './lib/memcached.js';
import { startUpstream } from './lib/upstream.js';

// A short delay at the upstream keeps the burst's requests in flight
// together, so they need more than one child (prefork) or spread over both.
const up = await startUpstream({ delayMs: 150 });
after(() => up.close());

const env = useEnv({
    // The back-channel refusal below is logged at warn until it becomes info.
    // The closed location's 403 is logged by mod_authz_core.
    allow: [/BFF01510: back-channel logout refused/, /AH01630: client denied by server configuration: .*status-closed/],
    httpd: {
        extraModules: ['proxy', 'proxy_http', 'authz_host'],
        extraServer: [
            'LogFormat "%P %U" pids',
            'CustomLog pids.log pids',
            '<Location /api/>',
            `    ProxyPass http://127.0.0.1:${up.port}/api/`,
            '    BFFTokenRelay On',
            '</Location>',
            '<Location /bff-status>',
            '    SetHandler bff-status',
            '    Require ip 127.0.0.1',
            '</Location>',
            '<Location /status-closed>',
            '    SetHandler bff-status',
            '    Require ip 192.0.2.1',
            '</Location>',
        ],
    },
});

// ---- a small Prometheus text-format (0.0.4) parser ----------------------

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The labels of a sample line from `{` on: [labels, rest of the line]. */
function parseLabels(s, where) {
    const labels = {};
    let i = 1;
    while (s[i] !== '}') {
        const eq = s.indexOf('=', i);
        assert.ok(eq > i, `${where}: label name`);
        const name = s.slice(i, eq);
        assert.match(name, LABEL, `${where}: label name ${name}`);
        assert.equal(s[eq + 1], '"', `${where}: quoted label value`);
        let v = '';
        let j = eq + 2;
        for (; j < s.length && s[j] !== '"'; j++) {
            if (s[j] === '\\') {
                j++;
                v += s[j] === 'n' ? '\n' : s[j];
                assert.ok(['\\', '"', 'n'].includes(s[j]), `${where}: escape \\${s[j]}`);
            } else {
                v += s[j];
            }
        }
        assert.equal(s[j], '"', `${where}: unterminated label value`);
        assert.ok(!(name in labels), `${where}: label ${name} twice`);
        labels[name] = v;
        i = j + 1;
        if (s[i] === ',') i++;
        else assert.equal(s[i], '}', `${where}: , or } after a label`);
    }
    return [labels, s.slice(i + 1)];
}

function key(name, labels) {
    const l = Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`);
    return `${name}{${l.join(',')}}`;
}

/**
 * Parse the exposition text strictly: every family has one HELP and one TYPE
 * before its samples, its samples are together, no sample twice, values are
 * numbers. Returns { families: Map(name -> { help, type }), values: Map(key -> number) }.
 */
function parseProm(text) {
    assert.ok(text.endsWith('\n'), 'the text ends with a newline');
    const families = new Map();
    const values = new Map();
    const done = new Set();
    let current = null;
    for (const [n, line] of text.slice(0, -1).split('\n').entries()) {
        const where = `line ${n + 1} "${line}"`;
        const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
        if (meta) {
            const [, kind, name, rest] = meta;
            assert.match(name, NAME, where);
            if (current !== name) {
                assert.ok(!done.has(name), `${where}: family ${name} split`);
                if (current) done.add(current);
                current = name;
            }
            const f = families.get(name) || {};
            assert.ok(!(kind.toLowerCase() in f), `${where}: second ${kind}`);
            if (kind === 'TYPE') {
                assert.ok(['counter', 'gauge', 'untyped', 'summary', 'histogram'].includes(rest), where);
                assert.ok(!values.size || ![...values.keys()].some((k) => k.startsWith(`${name}{`)),
                    `${where}: TYPE after samples`);
            }
            f[kind.toLowerCase()] = rest;
            families.set(name, f);
            continue;
        }
        assert.ok(!line.startsWith('#') && line.trim() !== '', `${where}: unexpected line`);
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$/.exec(line);
        assert.ok(m, `${where}: metric name`);
        const name = m[1];
        let rest = m[2];
        let labels = {};
        if (rest.startsWith('{')) [labels, rest] = parseLabels(rest, where);
        const v = /^ (\S+)$/.exec(rest);
        assert.ok(v, `${where}: one value after the name and labels`);
        assert.ok(/^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^[-+]?Inf$|^NaN$/.test(v[1]), `${where}: number`);
        assert.equal(name, current, `${where}: sample outside its family (HELP/TYPE first)`);
        const f = families.get(name);
        assert.ok(f.help && f.type, `${where}: ${name} has HELP and TYPE`);
        if (f.type === 'counter') assert.match(name, /_total$/, `${where}: counter names end in _total`);
        const k = key(name, labels);
        assert.ok(!values.has(k), `${where}: sample twice`);
        values.set(k, Number(v[1]));
    }
    for (const [name, f] of families) {
        assert.ok(f.help !== undefined && f.type !== undefined, `${name}: HELP and TYPE`);
    }
    return { families, values };
}

/** The JSON page as the same { families, values }. */
function fromJson(doc) {
    const families = new Map();
    const values = new Map();
    for (const f of doc.metrics) {
        families.set(f.name, { help: f.help, type: f.type });
        for (const s of f.samples) values.set(key(f.name, s.labels), s.value);
    }
    return { families, values };
}

async function status(query = '') {
    const resp = await env.client().get(env.url(`/bff-status${query}`));
    assert.equal(resp.status, 200, resp.body);
    return resp;
}

async function counters() {
    return parseProm((await status()).body).values;
}

/** What changed between two snapshots: { key: difference }. */
function diff(before, afterSnap, ignore = () => false) {
    const out = {};
    for (const [k, v] of afterSnap) {
        if (ignore(k)) continue;
        const d = v - (before.get(k) ?? 0);
        if (d !== 0) out[k] = d;
    }
    for (const k of before.keys()) {
        if (!ignore(k) && !afterSnap.has(k)) out[k] = 'gone';
    }
    return out;
}

// Store traffic and the shm gauges move with every request; checked apart.
const storeSeries = (k) => k.startsWith('bff_store_') || k.startsWith('bff_shm_store_');

test('the page parses as Prometheus text 0.0.4, every family with HELP and TYPE; ?json has the same numbers', async () => {
    const text = await status();
    assert.equal(text.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(text.headers['cache-control'], 'no-store');
    const prom = parseProm(text.body);
    for (const name of ['bff_logins_total', 'bff_callbacks_refused_total', 'bff_refreshes_total',
        'bff_csrf_refusals_total', 'bff_relay_requests_total', 'bff_logouts_total',
        'bff_backchannel_logouts_total', 'bff_store_operations_total', 'bff_shm_store_sessions',
        'bff_shm_store_fill_ratio']) {
        assert.ok(prom.families.has(name), `${name} on the page`);
    }
    for (const k of ['bff_logins_total{outcome="started"}', 'bff_logins_total{outcome="failed",reason="provider_denied"}',
        'bff_refreshes_total{outcome="invalid_grant"}', 'bff_refreshes_total{outcome="waited"}',
        'bff_relay_requests_total{token="user"}', 'bff_relay_requests_total{token="client"}',
        'bff_relay_requests_total{token="none"}',
        'bff_store_operations_total{backend="shm",result="error",server=""}']) {
        assert.ok(prom.values.has(k), `${k} on the page`);
    }

    const json = await status('?json');
    assert.equal(json.headers['content-type'], 'application/json');
    assert.equal(json.headers['cache-control'], 'no-store');
    const fromJ = fromJson(JSON.parse(json.body));
    assert.deepEqual(fromJ.families, prom.families);
    // The store calls and gauges move between the two reads (the status
    // page itself does not use the store, but the logins of other tests may
    // have left expiring entries); the rest must be equal.
    const stable = (m) => new Map([...m].filter(([k]) => !storeSeries(k)));
    assert.deepEqual(stable(fromJ.values), stable(prom.values));
    assert.deepEqual([...fromJ.values.keys()].sort(), [...prom.values.keys()].sort());
});

test('one login, one relayed call, one CSRF refusal, one logout: the counters move by exactly that', async () => {
    const before = await counters();
    const { client } = await env.login();
    const user = JSON.parse((await client.get(env.url('/bff/user'), { headers: { 'X-CSRF': '1' } })).body);
    const relayed = await client.get(env.url('/api/one'), { headers: { 'X-CSRF': '1' } });
    assert.equal(relayed.status, 200, relayed.body);
    const refused = await client.get(env.url('/api/csrf'));
    assert.equal(refused.status, 403, refused.body);
    const out = await client.get(env.url(user.logoutUrl));
    assert.equal(out.status, 302);
    const afterSnap = await counters();

    assert.deepEqual(diff(before, afterSnap, storeSeries), {
        'bff_logins_total{outcome="started"}': 1,
        'bff_logins_total{outcome="completed"}': 1,
        'bff_relay_requests_total{token="user"}': 1,
        'bff_csrf_refusals_total{}': 1,
        'bff_logouts_total{}': 1,
    });
    const ops = diff(before, afterSnap, (k) => !k.startsWith('bff_store_operations_total'));
    assert.ok(ops['bff_store_operations_total{backend="shm",result="ok",server=""}'] >= 4,
        `store calls counted: ${JSON.stringify(ops)}`);
    assert.equal(ops['bff_store_operations_total{backend="shm",result="error",server=""}'], undefined);
});

test('refused callbacks and back-channel logouts are counted by reason', async () => {
    const before = await counters();
    const c = env.client();
    assert.equal((await c.get(env.url('/bff/callback'))).status, 400);
    assert.equal((await c.get(env.url('/bff/callback?code=x'))).status, 400);
    const bc = await c.request(env.url('/bff/backchannel-logout'), {
        method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x',
    });
    assert.equal(bc.status, 400);
    assert.deepEqual(diff(before, await counters(), storeSeries), {
        'bff_callbacks_refused_total{reason="no_query"}': 1,
        'bff_callbacks_refused_total{reason="no_state"}': 1,
        'bff_logins_total{outcome="failed",reason="bad_request"}': 2,
        'bff_backchannel_logouts_total{outcome="refused",reason="bad_request"}': 1,
    });
});

test('counters are shared by all children and survive a graceful restart', async (t) => {
    const { client } = await env.login();
    const before = await counters();
    const jar = client.jar;
    const N = 12;
    const results = await Promise.all(Array.from({ length: N }, (_, i) =>
        env.client(jar).get(env.url(`/api/burst-${i}`), { headers: { 'X-CSRF': '1' } })));
    assert.deepEqual(results.map((r) => r.status), results.map(() => 200));
    const pids = new Set(fs.readFileSync(path.join(env.httpd.dir, 'pids.log'), 'utf8').split('\n')
        .map((l) => l.split(' ')).filter(([, u]) => /^\/api\/burst-/.test(u || '')).map(([pid]) => pid));
    t.diagnostic(`${N} relayed requests served by ${pids.size} children`);
    assert.ok(pids.size >= 2, `the burst reached more than one child (${pids.size})`);
    const mid = await counters();
    const key = 'bff_relay_requests_total{token="user"}';
    assert.equal(mid.get(key) - before.get(key), N, 'every child counted into one block');

    await env.httpd.graceful();
    const afterSnap = await counters();
    assert.deepEqual(diff(mid, afterSnap, storeSeries), {}, 'nothing reset or moved by the restart');
    assert.equal(afterSnap.get('bff_metrics_created_seconds{}'), before.get('bff_metrics_created_seconds{}'));
    // The store's counters go on in the same slot (the store is the same).
    const okKey = 'bff_store_operations_total{backend="shm",result="ok",server=""}';
    assert.ok(afterSnap.get(okKey) >= mid.get(okKey), `${afterSnap.get(okKey)} >= ${mid.get(okKey)}`);
    // Still counting after the restart, in the same block.
    const again = await client.get(env.url('/api/after-restart'), { headers: { 'X-CSRF': '1' } });
    assert.equal(again.status, 200, again.body);
    assert.equal((await counters()).get(key), mid.get(key) + 1);
});

test('GET and HEAD only; access is what Require says', async () => {
    const c = env.client();
    const head = await c.request(env.url('/bff-status'), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    const post = await c.request(env.url('/bff-status'), {
        method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x',
    });
    assert.equal(post.status, 405);
    assert.match(post.headers.allow, /GET/);
    const closed = await c.get(env.url('/status-closed'));
    assert.equal(closed.status, 403);
    assert.doesNotMatch(closed.body, /bff_/);
});

test('a memcache store: its calls under backend="memcache", failures as errors while memcached is down', async () => {
    const mc = await startMemcached();
    const menv = await startEnv({
        bff: { BFFSessionStore: `memcache:${mc.spec}` },
        httpd: {
            extraModules: ['authz_host'],
            extraServer: ['<Location /bff-status>', '    SetHandler bff-status', '    Require ip 127.0.0.1', '</Location>'],
        },
    });
    let ok = false;
    try {
        const read = async () => parseProm((await menv.client().get(menv.url('/bff-status'))).body);
        const { client } = await menv.login();
        assert.equal((await getUser(client, menv)).status, 200);
        const up = await read();
        const okKey = 'bff_store_operations_total{backend="memcache",result="ok",server=""}';
        const errKey = 'bff_store_operations_total{backend="memcache",result="error",server=""}';
        assert.ok(up.values.get(okKey) >= 3, `calls counted: ${up.values.get(okKey)}`);
        assert.equal(up.values.get(errKey), 0);
        // The per-server rows name the servers as BFFSessionStore lists them.
        assert.ok(up.values.has(`bff_memcache_server_operations_total{result="ok",server=${JSON.stringify(mc.spec)}}`),
            [...up.values.keys()].filter((k) => k.includes('memcache')).join('\n'));
        assert.ok(!up.families.has('bff_shm_store_sessions'), 'no shm gauges without an shm store');
        // The backend reports each call per server (its observer), and the server as up.
        const srvOk = `bff_memcache_server_operations_total{result="ok",server=${JSON.stringify(mc.spec)}}`;
        const srvErr = `bff_memcache_server_operations_total{result="error",server=${JSON.stringify(mc.spec)}}`;
        const srvUp = `bff_memcache_server_up{server=${JSON.stringify(mc.spec)}}`;
        assert.ok(up.values.get(srvOk) >= 3, `per-server calls counted: ${up.values.get(srvOk)}`);
        assert.equal(up.values.get(srvUp), 1);

        await mc.stop();
        assert.equal((await getUser(client, menv)).status, 503);
        const down = await read();
        assert.ok(down.values.get(errKey) >= 1, `the failed call counted as an error: ${down.values.get(errKey)}`);
        assert.ok(down.values.get(srvErr) >= 1, `and against its server: ${down.values.get(srvErr)}`);
        assert.equal(down.values.get(srvUp), 0, 'the server shows as down');
        ok = true;
    } finally {
        await menv.stop();
        await mc.close();
        if (ok) {
            // The store-down lines this test provokes (as in memcache.test.js).
            menv.httpd.assertCleanLog({ allow: [/BFF01601/, /BFF01303/] });
            menv.httpd.cleanup();
        }
    }
});

test('a refresh is counted by its outcome, and the waiters of a burst as waited', async () => {
    const renv = await startEnv({
        provider: { accessTokenTTL: 4 },
        bff: { BFFRefreshBeforeExpiry: '2' },
        httpd: {
            extraModules: ['proxy', 'proxy_http', 'authz_host'],
            extraServer: [
                '<Location /api/>', `    ProxyPass http://127.0.0.1:${up.port}/api/`, '    BFFTokenRelay On', '</Location>',
                '<Location /bff-status>', '    SetHandler bff-status', '    Require ip 127.0.0.1', '</Location>',
            ],
        },
    });
    let ok = false;
    try {
        const read = async () => parseProm((await renv.client().get(renv.url('/bff-status'))).body).values;
        const { client } = await renv.login();
        const before = await read();
        // Due two seconds after the login (a 4 s token, refreshed 2 s before).
        await new Promise((r) => { setTimeout(r, 2200); });
        const burst = await Promise.all(Array.from({ length: 4 }, (_, i) =>
            renv.client(client.jar).get(renv.url(`/api/r${i}`), { headers: { 'X-CSRF': '1' } })));
        assert.deepEqual(burst.map((r) => r.status), [200, 200, 200, 200]);
        const d = diff(before, await read(), storeSeries);
        assert.equal(d['bff_refreshes_total{outcome="ok"}'], 1, `one refresh for the burst: ${JSON.stringify(d)}`);
        // The others waited for it, found it done, or came after it.
        const others = Object.keys(d).filter((k) => k.startsWith('bff_refreshes_total') && !k.includes('"ok"'));
        assert.deepEqual(others.filter((k) => !/"(waited|not_needed)"/.test(k)), [], JSON.stringify(d));
        assert.equal(d['bff_relay_requests_total{token="user"}'], 4);
        ok = true;
    } finally {
        await renv.stop();
        if (ok) {
            renv.httpd.assertCleanLog({});
            renv.httpd.cleanup();
        }
    }
});
