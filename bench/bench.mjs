// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// The mod_bff benchmark (run it through bench/run.sh; see bench/README.md).
// Everything runs on 127.0.0.1, every server is a child of this process with
// its own directory, and every load is bounded in time and count.

import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProvider } from '../test/provider/provider.js';
import { Client } from '../test/integration/lib/client.js';
import { createPki } from '../test/integration/lib/pki.js';
import { parseCallgrind, top } from './lib/callgrind.mjs';
import { machineInfo, median, percentile, segmentResidency, versions } from './lib/measure.mjs';
import { writeReport } from './lib/report.mjs';
import { APACHE, Httpd, freePort, memcachedStats, run, sleep, startMemcached } from './lib/servers.mjs';
import {
    API_PATH, BFF_COOKIE, MEMCACHE_SETS, freshLogin, loginBff, redirectUriFor, upstreamAccesses, upstreamHttpd,
    variantDefs,
} from './lib/variants.mjs';
import { ROTATE_LUA, wrk } from './lib/wrk.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const QUICK = env.BENCH_QUICK === '1';
const num = (name, dflt) => (env[name] !== undefined && env[name] !== '' ? Number(env[name]) : dflt);

const CFG = {
    quick: QUICK,
    repeats: num('BENCH_REPEATS', QUICK ? 1 : 5),
    seconds: num('BENCH_SECONDS', QUICK ? 3 : 10),
    warmupSeconds: QUICK ? 1 : 2,
    connections: (env.BENCH_CONNECTIONS || '4,64').split(',').map(Number),
    threads: 2,
    logins: num('BENCH_LOGINS', QUICK ? 10 : 50),
    loginRounds: num('BENCH_LOGIN_ROUNDS', QUICK ? 1 : 3),
    loginParallel: 4,
    refreshSessions: num('BENCH_REFRESH_SESSIONS', QUICK ? 10 : 50),
    refreshRounds: num('BENCH_REFRESH_ROUNDS', QUICK ? 1 : 3),
    refreshTTL: 10,
    burst: num('BENCH_BURST', 20),
    scaleSteps: (env.BENCH_SCALE_STEPS || (QUICK ? '1,100,2000' : '1,1000,100000')).split(',').map(Number),
    fillSeconds: num('BENCH_FILL_SECONDS', QUICK ? 20 : 480),
    fillWorkers: num('BENCH_FILL_WORKERS', 8),
    scaleStore: env.BENCH_SCALE_STORE || 'shm:1536M',
    scaleSeconds: num('BENCH_SCALE_SECONDS', QUICK ? 3 : 10),
    scaleConnections: 64,
    callgrindRequests: num('BENCH_CALLGRIND_REQUESTS', QUICK ? 200 : 2000),
    phases: new Set((env.BENCH_PHASES || 'micro,throughput,logins,refresh,scale,callgrind').split(',')),
    // Only these front-end variants (plain, the ratios' reference, always runs).
    variants: env.BENCH_VARIANTS ? new Set(['plain', ...env.BENCH_VARIANTS.split(',').map((x) => x.trim())]) : null,
    bffModule: env.BFF_MODULE,
    baselineModule: env.BENCH_BASELINE_MODULE,
    resultsDir: env.BENCH_RESULTS_DIR || path.join(HERE, 'results'),
};

const HEADERS = { 'X-CSRF': '1', Accept: 'application/json' };

/** What wrk sends to a variant: its session cookie, and plain's bearer token. */
function wrkHeaders(v) {
    return { ...HEADERS, ...v.extraHeaders, Cookie: `${v.cookieName}=${v.cookie}` };
}

function log(...a) {
    console.log(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);
}

function sizeBytes(spec) {
    const m = /^shm:(\d+)([KMG])$/i.exec(spec);
    if (!m) throw new Error(`BENCH_SCALE_STORE must be shm:<n>K|M|G, not ${spec}`);
    return Number(m[1]) * { K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2].toUpperCase()];
}

/** Run fn(i) for i in [0, n) with at most `parallel` in flight; returns results in order. */
async function pool(n, parallel, fn) {
    const out = new Array(n);
    let next = 0;
    const worker = async () => {
        while (next < n) {
            const i = next++;
            out[i] = await fn(i);
        }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
    return out;
}

/** One relayed GET through a variant with an explicit cookie; { status, ms, body }. */
async function relayedGet(ca, v, cookie, agent) {
    const c = new Client({ ca });
    if (agent) {
        c.agent.destroy();
        c.agent = agent;
    }
    const t0 = performance.now();
    try {
        const r = await c.get(v.httpd.url(API_PATH), {
            cookie: `${v.cookieName}=${cookie}`, headers: { ...HEADERS, ...v.extraHeaders }, store: false,
        });
        return { status: r.status, ms: performance.now() - t0, body: r.body };
    } finally {
        if (!agent) c.close();
    }
}

/** Which mod_bff was measured: the module path and the checkout's commit and local changes. */
function moduleSource() {
    const root = path.join(HERE, '..');
    const git = (args) => {
        const r = spawnSync('git', ['-C', root, ...args], { encoding: 'utf8', timeout: 10000 });
        return r.status === 0 ? r.stdout : null;
    };
    const head = (git(['rev-parse', '--short', 'HEAD']) || 'unknown commit').trim();
    const changed = (git(['status', '--porcelain', '--untracked-files=no']) || '')
        .split('\n').filter(Boolean).map((l) => l.slice(3));
    return `${CFG.bffModule} (checkout ${head}${changed.length ? `, uncommitted changes in ${changed.join(' ')}` : ''})`;
}

async function main() {
    const started = new Date();
    const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bff-bench-'));
    fs.chmodSync(baseDir, 0o755);
    log(`config: ${JSON.stringify({ ...CFG, phases: [...CFG.phases], variants: CFG.variants && [...CFG.variants] })}`);
    log(`work directory: ${baseDir}`);
    const results = {
        started: started.toISOString(),
        cfg: { ...CFG, phases: [...CFG.phases], variants: CFG.variants && [...CFG.variants] },
        machine: machineInfo(), versions: { mod_bff: moduleSource(), ...versions(APACHE) },
        notRun: [], failures: [], warnings: [],
        variants: [], runs: [], logins: [], refresh: [], burst: [], scale: null, callgrind: [],
        micro: null,
    };
    const cleanups = [];
    let stopping = false;
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
        process.on(sig, async () => {
            if (stopping) return;
            stopping = true;
            console.error(`\n${sig}: stopping the servers`);
            for (const c of cleanups.reverse()) {
                try { await c(); } catch { /* best effort */ }
            }
            process.exit(130);
        });
    }
    const fail = (msg) => {
        results.failures.push(msg);
        console.error(`FAIL: ${msg}`);
    };
    try {
        if (CFG.phases.has('micro')) micro(results, fail);
        await benchmark(baseDir, results, cleanups, fail);
    } catch (e) {
        fail(`benchmark aborted: ${e.stack || e}`);
    } finally {
        for (const c of cleanups.reverse()) {
            try { await c(); } catch (e) { console.error(`cleanup: ${e.message}`); }
        }
    }
    results.finished = new Date().toISOString();
    const files = writeReport(results, CFG.resultsDir);
    log(`results: ${files.join(', ')}`);
    if (!env.BENCH_KEEP_TMP && !results.failures.length) fs.rmSync(baseDir, { recursive: true, force: true });
    else log(`kept ${baseDir} (configs and error logs)`);
    for (const n of results.notRun) console.log(`NOT RUN: ${n}`);
    for (const w of results.warnings) console.log(`WARNING: ${w}`);
    if (results.failures.length) {
        console.error(`\nBENCHMARK FAILED (${results.failures.length}):`);
        for (const f of results.failures) console.error(`  - ${f.split('\n')[0]}`);
        process.exit(1);
    }
    process.exit(0);
}

async function benchmark(baseDir, results, cleanups, fail) {
    const pki = createPki();
    const clientId = 'bench-client';
    const clientSecret = crypto.randomBytes(24).toString('base64url');
    const ttl = { access: 3600 };

    // Ports first: the provider must know every redirect URI.
    const upstreamPort = await freePort();
    const providerPort = await freePort();
    const memcachePorts = {};
    for (const [name, n] of Object.entries(MEMCACHE_SETS)) {
        const ports = [];
        for (let i = 0; i < n; i += 1) ports.push(await freePort());
        memcachePorts[name] = n === 1 ? ports[0] : ports;
    }
    const scalePort = await freePort();
    const cgPort = await freePort();
    const ctx = {
        baseDir, pki, clientId, clientSecret, upstreamPort, memcachePorts, bffModule: CFG.bffModule,
        baselineModule: CFG.baselineModule,
        provider: { issuer: `https://127.0.0.1:${providerPort}` },
    };
    const allDefs = variantDefs(ctx);
    const unknown = [...(CFG.variants || [])].filter((k) => !allDefs.some((d) => d.key === k));
    if (unknown.length) throw new Error(`BENCH_VARIANTS: no variant ${unknown.join(', ')}`);
    const defs = allDefs.filter((d) => !CFG.variants || CFG.variants.has(d.key));
    for (const d of defs) d.port = await freePort();
    const redirectUris = [
        ...defs.map((d) => redirectUriFor(d.kind, d.port)).filter(Boolean),
        redirectUriFor('bff', scalePort), redirectUriFor('bff', cgPort),
    ];

    const provider = await startProvider({
        port: providerPort, cert: pki.cert, key: pki.key, ca: pki.ca, clientId, clientSecret,
        redirectUri: redirectUris,
        // oidc-provider takes a function for a TTL: the refresh phase shortens it.
        accessTokenTTL: () => ttl.access,
        idTokenTTL: 3600,
        quiet: true,
    });
    cleanups.push(() => provider.close());
    log(`provider ${provider.issuer}`);

    const upstream = upstreamHttpd(path.join(baseDir, 'upstream'), upstreamPort);
    await upstream.start();
    cleanups.push(() => upstream.stop());
    log(`upstream http://127.0.0.1:${upstreamPort}`);

    // The memcached servers of the variants that run, each set its own.
    const memcached = {};
    for (const k of new Set(defs.map((d) => d.memcache).filter(Boolean))) {
        memcached[k] = [];
        for (const port of [].concat(memcachePorts[k])) {
            const m = await startMemcached(port);
            memcached[k].push(m);
            cleanups.push(() => m.stop());
        }
    }

    // Variants: a config test first; the memcache store of mod_bff may not exist yet.
    const variants = [];
    for (const d of defs) {
        const httpd = d.make(d.port);
        const t = httpd.configTest();
        if (!t.ok) {
            const why = t.output.split('\n').filter((l) => l.trim() && !/Syntax error on line/.test(l)).join(' ')
                || t.output;
            // mod_bff's memcache variants wait for the store's features (issue 13: replicas).
            const storeMissing = d.kind === 'bff' && Boolean(d.memcache);
            const msg = storeMissing
                ? `${d.key}: memcache store not available (apache2 -t: ${why.trim()})`
                : `${d.key}: apache2 -t failed: ${t.output}`;
            if (storeMissing) {
                results.notRun.push(msg);
                console.log(`\n*** NOT RUN: ${msg} ***\n`);
            } else {
                fail(msg);
            }
            results.variants.push({ key: d.key, label: d.label, status: 'not run', note: msg });
            continue;
        }
        await httpd.start();
        cleanups.push(() => httpd.stop());
        variants.push({ ...d, httpd });
        results.variants.push({ key: d.key, label: d.label, status: 'run', port: d.port, dir: httpd.dir });
        log(`${d.key} on ${httpd.origin}`);
    }
    const modVariants = variants.filter((v) => v.kind !== 'plain');

    // One session per module variant for the throughput runs; check the relay once.
    for (const v of variants) {
        v.cookie = v.kind === 'plain' ? crypto.randomBytes(32).toString('base64url')
            : await freshLogin(v.kind, pki.ca, v.httpd.origin);
        const r = await relayedGet(pki.ca, v, v.cookie);
        if (r.status !== 200 || !/"ok":true/.test(r.body)) {
            throw new Error(`${v.key}: relayed request gave ${r.status}: ${r.body.slice(0, 200)}`);
        }
    }
    log('one login per variant done, relay checked');

    if (CFG.phases.has('throughput')) await throughput(variants, results, fail, upstreamPort, { upstream, memcached });
    if (CFG.phases.has('logins')) await loginRates(modVariants, results, pki);
    if (CFG.phases.has('refresh')) await refreshPath(modVariants, results, pki, provider, ttl, fail);
    for (const v of variants) {
        const bad = v.httpd.badLines();
        if (bad.length) results.warnings.push(`${v.key} error log: ${bad.slice(0, 3).join(' | ')}`);
    }
    if (CFG.phases.has('scale')) {
        await scale(ctx, results, pki, scalePort, cleanups, fail, upstreamPort);
    }
    if (CFG.phases.has('callgrind')) {
        await callgrind(ctx, results, pki, cgPort, allDefs, fail);
    }
}

// ---------------------------------------------------------------------------
// Native timings of the relay's steps (bench/micro.c, built by run.sh), before
// any server runs so nothing else competes for the CPU.

function micro(results, fail) {
    if (!env.BENCH_MICRO) {
        results.warnings.push('micro: not built (run through bench/run.sh with the module\'s build directory)');
        return;
    }
    const r = spawnSync(env.BENCH_MICRO, [], { encoding: 'utf8', timeout: 120000 });
    if (r.status !== 0) {
        fail(`micro: exit ${r.status}: ${(r.stderr || '').slice(0, 500)}`);
        return;
    }
    const steps = [];
    let record = null;
    for (const line of r.stdout.split('\n')) {
        const m = /^(.+)\t(\d+)$/.exec(line);
        if (m) steps.push({ step: m[1], ns: Number(m[2]) });
        const rec = /^record (\d+) bytes$/.exec(line);
        if (rec) record = Number(rec[1]);
    }
    results.micro = { record, steps };
    log(`micro: ${steps.map((x) => `${x.step.split(' ')[0]} ${x.ns} ns`).join(', ')}`);
}

// ---------------------------------------------------------------------------
// Relayed requests/s: wrk, interleaved round robin across variants.

async function measuredRun(v, conns, seconds, upstreamPort, { script, env: scriptEnv, parts } = {}) {
    // Requests of an earlier wrk that were in flight when it stopped land now.
    await sleep(300);
    const before = await upstreamAccesses(upstreamPort);
    const cpu0 = parts ? cpuSample(parts) : null;
    const r = await wrk(v.httpd.url(API_PATH), {
        connections: conns, threads: Math.min(CFG.threads, conns), seconds,
        headers: script ? HEADERS : wrkHeaders(v),
        script, env: scriptEnv,
    });
    if (cpu0) r.cpu = cpuPerRequest(cpu0, cpuSample(parts), r.requests);
    // The scoreboard counts a request after its response went out: let the last ones land.
    await sleep(300);
    const after = await upstreamAccesses(upstreamPort);
    // Every response wrk counted went through the upstream (which refuses a
    // request without a bearer token or with a session cookie). Requests in
    // flight when wrk stops reach the upstream but are not counted by wrk.
    r.upstream = after - before - 1;
    r.upstreamOk = r.upstream >= r.requests && r.upstream <= r.requests + conns + 2;
    return r;
}

// CPU time per relayed request, by part: where a variant's overhead goes.
// Read from /proc (utime + stime of each process; the machine's busy time
// from /proc/stat, which also counts wrk and the kernel's network work).
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function procTicks(pid) {
    try {
        const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        return Number(f[11]) + Number(f[12]);
    } catch { return 0; }
}

function machineBusyTicks() {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    return f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] || 0);
}

/** parts: { name: () => [pids] }. */
function cpuSample(parts) {
    const out = { machine: machineBusyTicks() };
    for (const [name, pidsOf] of Object.entries(parts)) {
        out[name] = pidsOf().reduce((a, pid) => a + procTicks(pid), 0);
    }
    return out;
}

function cpuPerRequest(a, b, requests) {
    const out = {};
    for (const k of Object.keys(a)) out[k] = requests ? ((b[k] - a[k]) / CLK_TCK) * 1e6 / requests : null;
    return out;
}

function cpuParts(v, ctx) {
    const parts = { front: () => v.httpd.pids(), upstream: () => ctx.upstream.pids() };
    const mcs = v.memcache ? ctx.memcached[v.memcache] : null;
    if (mcs) parts.memcached = () => mcs.map((m) => m.pid);
    return parts;
}

/** Operation counters summed over a variant's memcached servers ({ get, set, ... } from stats). */
async function memcacheOps(mcs) {
    // cmd_set counts set, add, replace and cas.
    const sum = { get: 0, set: 0, delete: 0, touch: 0 };
    for (const m of mcs) {
        const st = await memcachedStats(m.port);
        sum.get += Number(st.cmd_get || 0);
        sum.set += Number(st.cmd_set || 0);
        sum.touch += Number(st.cmd_touch || 0);
        sum.delete += Number(st.delete_hits || 0) + Number(st.delete_misses || 0);
    }
    return sum;
}

async function throughput(variants, results, fail, upstreamPort, ctxParts) {
    log(`throughput: warm-up ${CFG.warmupSeconds}s per variant`);
    for (const v of variants) {
        await wrk(v.httpd.url(API_PATH), {
            connections: 64, threads: CFG.threads, seconds: CFG.warmupSeconds,
            headers: wrkHeaders(v),
        });
    }
    for (let rep = 0; rep < CFG.repeats; rep += 1) {
        for (const conns of CFG.connections) {
            // Round robin, a different first variant each repeat.
            const order = variants.map((_, i) => variants[(i + rep) % variants.length]);
            for (const v of order) {
                const mcs = v.memcache ? ctxParts.memcached[v.memcache] : null;
                const ops0 = mcs ? await memcacheOps(mcs) : null;
                const r = await measuredRun(v, conns, CFG.seconds, upstreamPort, { parts: cpuParts(v, ctxParts) });
                // memcached commands per relayed request (all of the variant's
                // servers): replicas=2 must not read more than replicas=1.
                if (mcs) {
                    const ops1 = await memcacheOps(mcs);
                    r.mcOps = Object.fromEntries(Object.keys(ops1).map((k) => [k,
                        r.requests ? (ops1[k] - ops0[k]) / r.requests : null]));
                }
                const run = {
                    variant: v.key, conns, rep, rps: r.rps, requests: r.requests, p50: r.p50, p99: r.p99, cpu: r.cpu,
                    non2xx: r.non2xx, socketErrors: r.socketErrors, upstream: r.upstream, upstreamOk: r.upstreamOk,
                    mcOps: r.mcOps || null,
                };
                results.runs.push(run);
                log(`rep ${rep + 1}/${CFG.repeats} c=${conns} ${v.key.padEnd(16)} ${r.rps.toFixed(0).padStart(7)} req/s ` +
                    `p50 ${r.p50?.toFixed(2)}ms p99 ${r.p99?.toFixed(2)}ms non2xx ${r.non2xx} upstream ${r.upstream}`);
                if (r.non2xx > 0) fail(`${v.key} c=${conns} rep ${rep + 1}: ${r.non2xx} non-2xx responses`);
                if (!r.upstreamOk) {
                    fail(`${v.key} c=${conns} rep ${rep + 1}: wrk counted ${r.requests} responses but the upstream ` +
                        `served ${r.upstream} (${r.upstream < r.requests ? 'responses that were not relayed, e.g. redirects'
                            : 'more requests reached the upstream than wrk sent'})`);
                }
                const se = r.socketErrors;
                if (se.connect + se.read + se.write + se.timeout > 0) {
                    results.warnings.push(`${v.key} c=${conns} rep ${rep + 1}: socket errors ${JSON.stringify(se)}`);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Logins per second through the full code flow (fresh browser each).

// Logins and refreshes go through the provider, which runs in this Node
// process and sets most of their pace: each variant is measured in several
// rounds, in a different order each round (the first variant after a pause
// would otherwise meet a cold provider), and the median is reported.

function rotated(list, k) {
    return list.map((_, i) => list[(i + k) % list.length]);
}

async function loginRates(modVariants, results, pki) {
    const n = CFG.logins;
    for (const v of modVariants) {
        await pool(5, 1, () => freshLogin(v.kind, pki.ca, v.httpd.origin)); // warm-up
    }
    const runs = [];
    for (let round = 0; round < CFG.loginRounds; round += 1) {
        for (const v of rotated(modVariants, round)) {
            let t0 = performance.now();
            await pool(n, 1, () => freshLogin(v.kind, pki.ca, v.httpd.origin));
            const seqMs = performance.now() - t0;
            t0 = performance.now();
            await pool(n, CFG.loginParallel, () => freshLogin(v.kind, pki.ca, v.httpd.origin));
            const parMs = performance.now() - t0;
            runs.push({ variant: v.key, round, seq: n / (seqMs / 1000), par: n / (parMs / 1000) });
        }
    }
    results.loginRuns = runs;
    for (const v of modVariants) {
        const mine = runs.filter((r) => r.variant === v.key);
        const row = {
            variant: v.key, n, rounds: mine.length, sequentialPerSec: median(mine.map((r) => r.seq)),
            parallel: CFG.loginParallel, parallelPerSec: median(mine.map((r) => r.par)),
        };
        results.logins.push(row);
        log(`logins ${v.key}: ${row.sequentialPerSec.toFixed(1)}/s sequential, ` +
            `${row.parallelPerSec.toFixed(1)}/s with ${CFG.loginParallel} in parallel ` +
            `(median of ${mine.length} rounds: ${mine.map((r) => r.par.toFixed(1)).join(', ')})`);
    }
}

async function refreshPath(modVariants, results, pki, provider, ttl, fail) {
    const n = CFG.refreshSessions;
    const runs = [];
    const bursts = [];
    for (let round = 0; round < CFG.refreshRounds; round += 1) {
        // One variant at a time (log in, wait for expiry, fire): the test
        // provider's in-memory store is an LRU of bounded size, and sessions
        // of all variants at once would push the first ones out of it (their
        // refresh then fails with invalid_grant).
        for (const v of rotated(modVariants, round)) {
            let cookies;
            let burstCookie;
            // Sessions whose access tokens live refreshTTL seconds.
            ttl.access = CFG.refreshTTL;
            try {
                cookies = await pool(n, CFG.loginParallel, () => freshLogin(v.kind, pki.ca, v.httpd.origin));
                burstCookie = await freshLogin(v.kind, pki.ca, v.httpd.origin);
            } finally {
                ttl.access = 3600;
            }
            // mod_auth_openidc may already have refreshed at its first request
            // after the login (the token is inside its 60 s window): wait out
            // the lifetime of whatever it holds now.
            await sleep(CFG.refreshTTL * 1000 + 1500);

            let before = provider.tokenCalls.refresh_token || 0;
            const t0 = performance.now();
            const rs = await Promise.all(cookies.map((c) => relayedGet(pki.ca, v, c)));
            const totalMs = performance.now() - t0;
            const calls = (provider.tokenCalls.refresh_token || 0) - before;
            const statuses = {};
            for (const r of rs) statuses[r.status] = (statuses[r.status] || 0) + 1;
            runs.push({
                variant: v.key, round, totalMs, p50: percentile(rs.map((r) => r.ms), 50),
                max: Math.max(...rs.map((r) => r.ms)), refreshCalls: calls, statuses,
            });
            log(`refresh ${v.key} round ${round + 1}: ${n} sessions in ${totalMs.toFixed(0)} ms, ${calls} token calls, ` +
                `${JSON.stringify(statuses)}`);
            if ((statuses[200] || 0) !== n) fail(`refresh ${v.key}: not all ${n} requests answered 200: ${JSON.stringify(statuses)}`);

            // One session, `burst` parallel requests after expiry (keep-alive off, as a browser's new connections).
            before = provider.tokenCalls.refresh_token || 0;
            const t1 = performance.now();
            const bs = await Promise.all(Array.from({ length: CFG.burst }, () => relayedGet(pki.ca, v, burstCookie)));
            const burstMs = performance.now() - t1;
            const bcalls = (provider.tokenCalls.refresh_token || 0) - before;
            const bst = {};
            for (const r of bs) bst[r.status] = (bst[r.status] || 0) + 1;
            bursts.push({ variant: v.key, round, requests: CFG.burst, totalMs: burstMs, refreshCalls: bcalls, statuses: bst });
            log(`burst ${v.key} round ${round + 1}: ${CFG.burst} parallel requests of one session: ${bcalls} token calls, ` +
                `${JSON.stringify(bst)}`);
            if ((bst[200] || 0) !== CFG.burst) fail(`burst ${v.key}: not all ${CFG.burst} requests answered 200: ${JSON.stringify(bst)}`);
        }
    }
    results.refreshRuns = runs;
    results.burstRuns = bursts;
    const merge = (list) => {
        const out = {};
        for (const st of list) for (const [k, c] of Object.entries(st)) out[k] = (out[k] || 0) + c;
        return out;
    };
    for (const v of modVariants) {
        const mine = runs.filter((r) => r.variant === v.key);
        results.refresh.push({
            variant: v.key, sessions: n, rounds: mine.length, totalMs: median(mine.map((r) => r.totalMs)),
            p50: median(mine.map((r) => r.p50)), max: median(mine.map((r) => r.max)),
            refreshCalls: mine.map((r) => r.refreshCalls).join('/'), statuses: merge(mine.map((r) => r.statuses)),
        });
        const mb = bursts.filter((r) => r.variant === v.key);
        results.burst.push({
            variant: v.key, requests: CFG.burst, rounds: mb.length, totalMs: median(mb.map((r) => r.totalMs)),
            refreshCalls: mb.map((r) => r.refreshCalls).join('/'), statuses: merge(mb.map((r) => r.statuses)),
        });
    }
}

// ---------------------------------------------------------------------------
// mod_bff with 1, 1,000 and (up to) 100,000 live sessions: requests/s and
// store memory per session.

/** A login worker that keeps its provider session and keep-alive connections. */
function fastLoginClient(ca) {
    const c = new Client({ ca });
    c.agent.destroy();
    c.agent = new https.Agent({ ca, keepAlive: true, maxSockets: 2 });
    return {
        async login(origin) {
            const cookie = await loginBff(c, origin);
            c.jar.delete(BFF_COOKIE);
            return cookie;
        },
        close: () => c.close(),
    };
}

async function scale(ctx, results, pki, port, cleanups, fail, upstreamPort) {
    const defs = variantDefs(ctx);
    const def = defs.find((d) => d.key === 'bff-shm');
    const storeSpec = CFG.scaleStore;
    const size = sizeBytes(storeSpec);
    const httpd = variantDefs({ ...ctx, baseDir: path.join(ctx.baseDir, 'scale') })
        .find((d) => d.key === 'bff-shm').make(port);
    httpd.opts.body = httpd.opts.body.map((l) => (l.startsWith('BFFSessionStore') ? `BFFSessionStore ${storeSpec}` : l));
    await httpd.start();
    cleanups.push(() => httpd.stop());
    const v = { ...def, key: 'bff-scale', httpd };
    const seg = () => segmentResidency(httpd.pids(), size);
    const empty = seg();
    if (!empty.mappings) results.warnings.push(`scale: no shared segment of ~${storeSpec} found in /proc/*/smaps`);
    const out = { store: storeSpec, emptyPss: empty.pss, steps: [] };
    results.scale = out;
    log(`scale: ${storeSpec}, resident when empty ${(empty.pss / 1024).toFixed(0)} KiB`);

    const cookies = [];
    const cookieFile = path.join(ctx.baseDir, 'scale-cookies.txt');
    const workers = Array.from({ length: CFG.fillWorkers }, () => fastLoginClient(pki.ca));
    try {
        for (const target of CFG.scaleSteps) {
            const fillStart = performance.now();
            const startCount = cookies.length;
            const deadline = Date.now() + CFG.fillSeconds * 1000;
            let errors = 0;
            let claimed = cookies.length;
            await Promise.all(workers.map(async (w) => {
                while (claimed < target && Date.now() < deadline) {
                    claimed += 1;
                    try {
                        cookies.push(await w.login(httpd.origin));
                    } catch (e) {
                        claimed -= 1;
                        errors += 1;
                        if (errors > 20) throw e;
                    }
                }
            }));
            const fillSecs = (performance.now() - fillStart) / 1000;
            fs.writeFileSync(cookieFile, `${cookies.join('\n')}\n`);
            const mem = seg();
            const reached = cookies.length;
            const r = await measuredRun(v, CFG.scaleConnections, CFG.scaleSeconds, upstreamPort, {
                script: ROTATE_LUA, env: { BENCH_COOKIE_FILE: cookieFile, BENCH_COOKIE_NAME: BFF_COOKIE },
            });
            const step = {
                target, sessions: reached, fillSeconds: fillSecs, loginsPerSec: fillSecs > 0.5 ? (reached - startCount) / fillSecs : null,
                pss: mem.pss, bytesPerSession: reached ? (mem.pss - empty.pss) / reached : null,
                rps: r.rps, p50: r.p50, p99: r.p99, non2xx: r.non2xx, upstreamOk: r.upstreamOk, loginErrors: errors,
            };
            out.steps.push(step);
            log(`scale: ${reached} sessions (target ${target}, filled in ${fillSecs.toFixed(0)} s): ` +
                `${r.rps.toFixed(0)} req/s, p99 ${r.p99?.toFixed(2)} ms, store resident ${(mem.pss / 2 ** 20).toFixed(1)} MiB ` +
                `(${step.bytesPerSession?.toFixed(0)} B/session), non2xx ${r.non2xx}`);
            if (r.non2xx > 0) fail(`scale ${reached} sessions: ${r.non2xx} non-2xx responses`);
            if (!r.upstreamOk) fail(`scale ${reached} sessions: upstream served ${r.upstream}, wrk counted ${r.requests}`);
            if (reached < target) {
                results.warnings.push(`scale: reached ${reached} of ${target} sessions within ${CFG.fillSeconds} s`);
                break;
            }
        }
    } finally {
        for (const w of workers) w.close();
    }
    const bad = httpd.badLines();
    if (bad.length) results.warnings.push(`bff-scale error log: ${bad.slice(0, 3).join(' | ')}`);
}

// ---------------------------------------------------------------------------
// Instructions per relayed request: callgrind on a single-process httpd.

async function callgrindOne(ctx, results, pki, port, def, fail) {
    const httpd = variantDefs({ ...ctx, baseDir: path.join(ctx.baseDir, 'callgrind') })
        .find((d) => d.key === def.key).make(port);
    // mod_status marks the measured interval: callgrind dumps (and zeroes its
    // counters) each time ap_get_server_built() is entered, which only the
    // status page calls. (callgrind_control needs vgdb, which hangs on a
    // process whose threads all sleep in system calls on this machine.)
    httpd.opts.modules = [...httpd.opts.modules, 'status', 'authz_host'];
    httpd.opts.body = [...httpd.opts.body, 'ExtendedStatus Off', '<Location /server-status>',
        '    SetHandler server-status', '    Require ip 127.0.0.1', '</Location>'];
    const outDir = path.join(httpd.dir, 'cg');
    fs.mkdirSync(outDir, { recursive: true });
    fs.chmodSync(outDir, 0o777);
    await httpd.start({
        args: ['-X'],
        wrap: ['valgrind', '--tool=callgrind', '--dump-before=ap_get_server_built',
            `--callgrind-out-file=${outDir}/callgrind.out`],
        timeoutMs: 180000,
    });
    const v = { ...def, httpd };
    const alive = (what) => {
        if (httpd.h.exitInfo) {
            throw new Error(`httpd under valgrind exited ${what} (${JSON.stringify(httpd.h.exitInfo)}):\n` +
                `${httpd.h.out.slice(-3000)}\n${httpd.errorLog().slice(-3000)}`);
        }
    };
    const dumps = () => fs.readdirSync(outDir).filter((f) => /^callgrind\.out\.\d+$/.test(f))
        .sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()));
    const mark = async () => {
        const before = dumps().length;
        const r = await run('curl', ['-s', '--cacert', pki.caFile, '-o', '/dev/null', '-w', '%{http_code}',
            httpd.url('/server-status?auto')], { timeoutMs: 120000 });
        if (r.stdout !== '200') throw new Error(`server-status gave ${r.stdout}`);
        const deadline = Date.now() + 60000;
        while (dumps().length <= before) {
            if (Date.now() > deadline) throw new Error('callgrind wrote no dump at the status request');
            await sleep(200);
        }
        await sleep(500);
        return dumps();
    };
    try {
        v.cookie = def.kind === 'plain' ? crypto.randomBytes(32).toString('base64url')
            : await freshLogin(def.kind, pki.ca, httpd.origin);
        alive('after the login');
        const curlBase = ['-s', '--cacert', pki.caFile, '-H', 'X-CSRF: 1', '-H', 'Accept: application/json',
            '-H', `Cookie: ${def.cookieName}=${v.cookie}`,
            ...Object.entries(def.extraHeaders || {}).flatMap(([k, val]) => ['-H', `${k}: ${val}`]),
            '-o', '/dev/null', '-w', '%{http_code}\\n'];
        const n = CFG.callgrindRequests;
        const urlCfg = (k) => Array.from({ length: k }, () => `url = "${httpd.url(API_PATH)}"`).join('\n');
        const codesOf = (r) => {
            const codes = r.stdout.trim().split('\n');
            const hist = {};
            for (const c of codes) hist[c] = (hist[c] || 0) + 1;
            return { ok: codes.filter((c) => c === '200').length, hist };
        };
        // Warm-up: every lazy initialisation (connection pools, metadata) behind us.
        let r = await run('curl', [...curlBase, '-K', '-'], { input: urlCfg(20), timeoutMs: 300000 });
        alive('after the warm-up');
        const w = codesOf(r);
        if (w.ok !== 20) throw new Error(`warm-up requests: ${JSON.stringify(w.hist)}`);
        await mark();
        r = await run('curl', [...curlBase, '-K', '-'], { input: urlCfg(n), timeoutMs: 1800000 });
        const { ok, hist } = codesOf(r);
        alive('during the measured requests');
        const list = await mark();
        if (ok !== n) fail(`callgrind ${def.key}: ${n - ok} of ${n} requests not 200: ${JSON.stringify(hist)}`);
        const file = path.join(outDir, list[list.length - 1]);
        const p = parseCallgrind(file, 'mod_bff.so');
        const ann = await run('callgrind_annotate', ['--inclusive=yes', '--threshold=99.9', file], { timeoutMs: 120000 });
        const bffOb = [...p.selfByObject.keys()].find((o) => o.includes('mod_bff.so')) || '\0';
        const row = {
            variant: def.key, requests: n, ok, file,
            totalPerReq: p.total / n,
            bffSelfPerReq: (p.selfByObject.get(bffOb) || 0) / n,
            bffInclusivePerReq: p.intoTarget / n,
            byObject: top(p.selfByObject, 12).map(([o, x]) => [path.basename(o), x / n]),
            topSelf: top(p.selfByFn, 25).map(([k, x]) => [k.split('|')[1], path.basename(k.split('|')[0]), x / n]),
            topBffSelf: top(new Map([...p.selfByFn].filter(([k]) => k.startsWith(`${bffOb}|`))), 20)
                .map(([k, x]) => [k.split('|')[1], x / n]),
            bffEntries: top(p.intoTargetByFn, 10).map(([f, x]) => [f, x / n]),
            annotateInclusive: bffLines(ann.stdout, n),
        };
        results.callgrind.push(row);
        log(`callgrind ${def.key}: ${(row.totalPerReq / 1000).toFixed(0)}k Ir/request total, ` +
            `mod_bff self ${(row.bffSelfPerReq / 1000).toFixed(1)}k, inclusive ${(row.bffInclusivePerReq / 1000).toFixed(1)}k`);
        if (def.kind === 'bff') {
            // Where a login's work goes on the httpd side (the provider is not in this process).
            const nl = 3;
            for (let i = 0; i < nl; i += 1) await freshLogin(def.kind, pki.ca, httpd.origin);
            const ll = await mark();
            const lf = path.join(outDir, ll[ll.length - 1]);
            const lp = parseCallgrind(lf, 'mod_bff.so');
            const lann = await run('callgrind_annotate', ['--inclusive=yes', '--threshold=99.9', lf], { timeoutMs: 120000 });
            row.login = {
                logins: nl, file: lf, totalPerLogin: lp.total / nl, bffInclusivePerLogin: lp.intoTarget / nl,
                byObject: top(lp.selfByObject, 8).map(([o, x]) => [path.basename(o), x / nl]),
                annotateInclusive: bffLines(lann.stdout, nl),
            };
            log(`callgrind ${def.key}: ${(row.login.totalPerLogin / 1e6).toFixed(1)}M Ir per login (httpd side)`);
        }
    } finally {
        await httpd.stop();
    }
}

/** Inclusive lines of callgrind_annotate for mod_bff's own source files, per request. */
function bffLines(text, n) {
    const out = [];
    const seen = new Set();
    for (const l of text.split('\n')) {
        const m = /^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S+):(\S+)/.exec(l);
        if (!m) continue;
        const file = m[2];
        if (!/(^|\/)(src\/)?(mod_)?bff[_\w]*\.c$/.test(file) && !/mod_bff\.c$/.test(file)) continue;
        if (seen.has(m[3])) continue;
        seen.add(m[3]);
        out.push([m[3], path.basename(file), Number(m[1].replace(/,/g, '')) / n]);
        if (out.length >= 20) break;
    }
    return out;
}

async function callgrind(ctx, results, pki, port, defs, fail) {
    for (const key of ['bff-shm', 'plain']) {
        const def = defs.find((d) => d.key === key);
        log(`callgrind: ${key}, ${CFG.callgrindRequests} requests on one connection (single process, -X)`);
        try {
            await callgrindOne(ctx, results, pki, port, def, fail);
        } catch (e) {
            fail(`callgrind ${key}: ${e.stack || e}`);
        }
    }
}

main();
