// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// The soak under faults (issue 9, section 6); see test/soak/README.md.
//
// Three httpd nodes with mod_bff on loopback: A and B share one memcached
// (BFFSessionStore memcache:, one redirect URI, callbacks delivered to either
// node as behind a load balancer), C uses the shm store. Simulated users
// (scripted browsers with cookie jars, one test account each) log in, call
// the API through the relay at a steady rate (short access tokens, rotating
// refresh tokens: refreshes all the time), look at /bff/user, log out
// (front channel) or are logged out by the provider (back channel). Meanwhile,
// at fixed fractions of the run: memcached is restarted (30 %), the provider
// is stopped for 20 s (50 %) and every httpd is gracefully restarted (75 %).
//
//   node test/soak/soak.js [seconds]     (or SOAK_SECONDS; default 600)
//
// Prints a report (tables) and writes it as JSON and Markdown; exits 1 when
// an invariant fails, 2 when the harness itself could not run.

import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { signJwt, startProvider } from '../provider/provider.js';
import { Client, LoginError } from '../integration/lib/client.js';
import { COOKIE } from '../integration/lib/env.js';
import { BFF_MODULE, freePort, Httpd, REPO } from '../integration/lib/httpd.js';
import { confirmProviderLogout } from '../integration/lib/logout.js';
import { startMemcached } from '../integration/lib/memcached.js';
import { createPki } from '../integration/lib/pki.js';
import { startUpstream } from '../integration/lib/upstream.js';

// ---------------------------------------------------------------------------
// Settings

function num(name, def, { min = 0 } = {}) {
    const v = process.env[name];
    if (v === undefined || v === '') return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`${name}: not a number >= ${min}: ${v}`);
    return n;
}

const argSeconds = process.argv[2] !== undefined ? Number(process.argv[2]) : undefined;
if (argSeconds !== undefined && !(argSeconds >= 60)) {
    console.error('usage: node test/soak/soak.js [seconds >= 60]');
    process.exit(2);
}
const CFG = {
    seconds: argSeconds ?? num('SOAK_SECONDS', 600, { min: 60 }),
    users: num('SOAK_USERS', 30, { min: 3 }),
    rate: num('SOAK_RATE', 2, { min: 0.1 }), // requests per second per signed-in user
    tokenTtl: num('SOAK_TOKEN_TTL', 15, { min: 4 }), // access token lifetime (s)
    refreshWindow: num('SOAK_REFRESH_WINDOW', 5, { min: 1 }), // BFFRefreshBeforeExpiry
    providerDown: num('SOAK_PROVIDER_DOWN', 20, { min: 1 }), // s
    memMarginMb: num('SOAK_MEM_MARGIN_MB', 8),
    memMarginPct: num('SOAK_MEM_MARGIN_PCT', 25),
    outDir: process.env.SOAK_OUT || path.join(REPO, 'test', 'soak', 'results'),
};
CFG.maxRequests = num('SOAK_MAX_REQUESTS', Math.ceil(CFG.users * CFG.rate * CFG.seconds * 1.5) + 20000);
const D = CFG.seconds * 1000;
// Fault times (ms from the start) and the phases they delimit.
const AT = {
    memStart: 0.2 * D, // memory "start" figure: warmed up, before any fault
    memcachedRestart: 0.3 * D,
    providerStop: 0.5 * D,
    providerBack: 0.5 * D + Math.min(CFG.providerDown * 1000, 0.2 * D),
    memBeforeGraceful: 0.74 * D,
    graceful: 0.75 * D,
};
const PHASES = [
    ['1 steady', 0],
    ['2 memcached restarted', AT.memcachedRestart],
    ['3 provider down', AT.providerStop],
    ['4 provider back', AT.providerBack],
    ['5 after graceful', AT.graceful],
];

// ---------------------------------------------------------------------------
// Bookkeeping

let t0 = 0;
let stopping = false;
let finalCheck = false;
let requestCount = 0;
const elapsed = () => Date.now() - t0;

function phaseNow() {
    if (finalCheck) return '6 final check';
    let name = PHASES[0][0];
    for (const [n, at] of PHASES) if (elapsed() >= at) name = n;
    return name;
}

/** stats[phase][kind][status] = count */
const stats = {};
function count(kind, status) {
    const p = phaseNow();
    stats[p] ??= {};
    stats[p][kind] ??= {};
    stats[p][kind][status] = (stats[p][kind][status] || 0) + 1;
}

const events = []; // faults and their durations
const failures = []; // invariant failures: { what, detail }
const losses = []; // sessions that ended without a logout: { user, node, at, phase, expected, why }
const logoutChecks = { front: 0, back: 0, backDeliveryFailed: 0, ineffective: 0, failed: 0 };
const logins = { ok: 0, failed: 0 };
const retries = { count: 0 };
const wrongToken = []; // a relayed bearer that belongs to another user (or no one)
let memcachedRestartAt = Infinity;
let providerStoppedAt = Infinity;

function fail(what, detail) {
    failures.push({ what, detail, at: Math.round(elapsed() / 1000), phase: phaseNow() });
    console.error(`soak: FAIL ${what}: ${detail}`);
}

function log(msg) {
    const s = (t0 ? elapsed() / 1000 : 0).toFixed(1).padStart(6);
    console.log(`[${s}s] ${msg}`);
}

// ---------------------------------------------------------------------------
// Environment

const pki = createPki();
const mc = await startMemcached({ memoryMb: 64 });
const up = await startUpstream();
const ports = new Set();
while (ports.size < 4) ports.add(await freePort());
const [portA, portB, portC, portP] = [...ports];
const origin = (p) => `https://localhost:${p}`;
const clientId = 'bff-soak';
const clientSecret = crypto.randomBytes(24).toString('base64url');
const clusterRedirect = `${origin(portB)}/bff/callback`; // one public callback, either node serves it
const shmRedirect = `${origin(portC)}/bff/callback`;

const accounts = {};
const USERS = [];
for (let i = 0; i < CFG.users; i += 1) {
    const name = `soak${String(i + 1).padStart(3, '0')}`;
    accounts[name] = {
        password: `${name}-pass`,
        claims: { sub: name, email: `${name}@example.test`, email_verified: true, name: `Soak ${i + 1}` },
    };
}

const provider = await startProvider({
    port: portP,
    cert: pki.cert,
    key: pki.key,
    ca: pki.ca,
    clientId,
    clientSecret,
    redirectUri: [clusterRedirect, shmRedirect],
    postLogoutRedirectUri: [`${origin(portB)}/`, `${origin(portC)}/`],
    // The provider's back-channel logouts go to node A (the cluster); the shm
    // node gets logout tokens signed with the provider's key by this script.
    backchannelLogoutUri: `${origin(portA)}/bff/backchannel-logout`,
    rotateRefreshToken: true,
    accessTokenTTL: CFG.tokenTtl,
    accounts,
    quiet: true,
});

const cryptoKey = crypto.randomBytes(32).toString('base64url');
function bffFor(redirect, store) {
    return {
        BFFProvider: provider.issuer,
        BFFProviderCAFile: pki.caFile,
        BFFClientID: clientId,
        BFFClientSecret: clientSecret,
        BFFRedirectURI: redirect,
        BFFPostLogoutRedirectURI: `${new URL(redirect).origin}/`,
        BFFCryptoKey: cryptoKey,
        BFFSessionStore: store,
        BFFRefreshBeforeExpiry: String(CFG.refreshWindow),
    };
}
const httpdOpts = {
    pki,
    extraModules: ['proxy', 'proxy_http'],
    extraServer: [
        '<Location /api/>',
        `    ProxyPass http://127.0.0.1:${up.port}/api/`,
        '    BFFTokenRelay On',
        '</Location>',
    ],
};
const A = new Httpd({ ...httpdOpts, port: portA, bff: bffFor(clusterRedirect, `memcache:${mc.spec}`) });
const B = new Httpd({ ...httpdOpts, port: portB, bff: bffFor(clusterRedirect, `memcache:${mc.spec}`) });
const C = new Httpd({ ...httpdOpts, port: portC, bff: bffFor(shmRedirect, 'shm:64M') });
const NODES = { A, B, C };
const nodeName = (n) => Object.keys(NODES).find((k) => NODES[k] === n);

async function cleanupAndExit(code) {
    for (const n of Object.values(NODES)) await n.stop().catch(() => {});
    await provider.close().catch(() => {});
    await up.close().catch(() => {});
    await mc.close().catch(() => {});
    process.exit(code);
}

try {
    for (const n of [A, B, C]) await n.start();
} catch (e) {
    console.error(`soak: could not start httpd: ${e.message}`);
    await cleanupAndExit(2);
}

// The upstream keeps every request; nothing here needs them.
const trim = setInterval(() => { up.requests.length = 0; }, 2000);

// ---------------------------------------------------------------------------
// Token owners: sha256("Bearer <token>") -> sub (the upstream answers that hash)

const ownerByAuth = new Map();
let ownersSeen = 0;
function ownerOfAuth(hash) {
    if (!ownerByAuth.has(hash) && provider.owners.size > ownersSeen) {
        let i = 0;
        for (const [tok, sub] of provider.owners) {
            if (i++ < ownersSeen) continue;
            ownerByAuth.set(crypto.createHash('sha256').update(`Bearer ${tok}`).digest('hex'), sub);
        }
        ownersSeen = provider.owners.size;
    }
    return ownerByAuth.get(hash);
}

// ---------------------------------------------------------------------------
// Memory of httpd children

function childPids(mainPid) {
    const out = [];
    for (const d of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(d)) continue;
        try {
            const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            if (ppid === mainPid) out.push(Number(d));
        } catch { /* gone */ }
    }
    return out;
}

function statusKb(pid) {
    try {
        const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
        const f = (k) => Number((new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s) || [])[1] || 0);
        return { pid, vmRss: f('VmRSS'), rssAnon: f('RssAnon'), rssShmem: f('RssShmem') };
    } catch {
        return null;
    }
}

const memSamples = []; // { label, at, nodes: { A: [{pid, vmRss, rssAnon, rssShmem}], ... } }
function sampleMemory(label) {
    const nodes = {};
    for (const [k, n] of Object.entries(NODES)) {
        // (A child that is exiting has no VmRSS any more: left out.)
        nodes[k] = n.proc ? childPids(n.proc.pid).map(statusKb).filter((x) => x && x.vmRss > 0) : [];
    }
    memSamples.push({ label, at: Math.round(elapsed() / 1000), nodes });
}

// ---------------------------------------------------------------------------
// HTTP with one retry when a kept-alive connection was closed under us (as
// browsers do: httpd closes idle connections, e.g. at the graceful restart)

const RETRYABLE = /ECONNRESET|socket hang up|EPIPE/;

async function req(u, kind, url, opts = {}) {
    if (++requestCount > CFG.maxRequests) {
        if (!stopping) fail('harness', `the request cap (${CFG.maxRequests}) was reached before the end`);
        stopping = true;
        throw new Error('request cap reached');
    }
    let r;
    try {
        r = await u.client.request(url, opts);
    } catch (e) {
        if (!RETRYABLE.test(e.message)) {
            count(kind, 'ERR');
            throw e;
        }
        retries.count += 1;
        try {
            r = await u.client.request(url, opts);
        } catch (e2) {
            count(kind, 'ERR');
            throw e2;
        }
    }
    count(kind, r.status);
    if (r.status === 500) fail('HTTP 500', `${kind} ${new URL(url).pathname} on ${url.split('/')[2]}: ${r.body.slice(0, 200)}`);
    return r;
}

// ---------------------------------------------------------------------------
// Users

const rand = (a, b) => a + Math.random() * (b - a);
const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];

function onNode(url, node) {
    const x = new URL(url);
    x.port = String(node.port);
    return x.href;
}

function newClient() {
    const c = new Client({ ca: pki.ca, timeout: 20000 });
    c.agent.destroy();
    c.agent = new https.Agent({ ca: pki.ca, keepAlive: true, maxSockets: 2 });
    return c;
}

for (let i = 0; i < CFG.users; i += 1) {
    const name = `soak${String(i + 1).padStart(3, '0')}`;
    const shm = i % 3 === 2; // a third of the users on the shm node
    USERS.push({
        name,
        shm,
        nodes: shm ? [C] : [A, B],
        // Every third user keeps one session for the whole run (unless lost);
        // the others log out after a while and log in again.
        steady: i % 3 === 0,
        client: newClient(),
        session: null, // { cookie, sid, createdAt, endAt, how }
        seq: 0,
        ends: 0,
    });
}

function sessionCookie(u) {
    return u.client.jar.get(COOKIE, u.nodes[0].url('/'))?.value || null;
}

async function login(u) {
    const startNode = pick(u.nodes);
    const start = await req(u, 'login', startNode.url('/bff/login?returnTo=%2Fapp.html'));
    if (start.status !== 302) throw new Error(`login start ${start.status}`);
    const home = u.shm ? origin(portC) : origin(portB);
    let r;
    try {
        r = await u.client.followLogin(`${home}/bff/login`, {
            start, stopAtCallback: true, username: u.name, password: `${u.name}-pass`,
        });
    } catch (e) {
        count('provider (login)', e instanceof LoginError ? e.steps.at(-1)?.status ?? 'ERR' : 'ERR');
        throw e;
    }
    count('provider (login)', 'ok');
    const cbNode = pick(u.nodes);
    const cb = await req(u, 'callback', onNode(r.callbackUrl, cbNode), { crossSite: r.callbackCrossSite });
    if (cb.status !== 200) throw new Error(`callback ${cb.status}`);
    const cookie = sessionCookie(u);
    if (!cookie) throw new Error('no session cookie after the callback');
    const who = await req(u, 'user', pick(u.nodes).url('/bff/user'), { headers: { 'X-CSRF': '1' } });
    if (who.status !== 200) throw new Error(`user after login ${who.status}`);
    const body = JSON.parse(who.body);
    if (body.sub !== u.name) fail('wrong user', `${u.name} logged in and /bff/user says ${body.sub}`);
    const now = elapsed();
    u.session = {
        cookie,
        sid: body.claims?.sid,
        logoutUrl: body.logoutUrl,
        createdAt: now,
        endAt: u.steady ? Infinity : now + rand(0.08, 0.25) * D,
        how: u.ends % 2 === 0 ? 'front' : 'back',
    };
    logins.ok += 1;
}

/** A response said 401 for a session that should live: record and classify it. */
function sessionGone(u, node, kind) {
    const s = u.session;
    u.session = null;
    u.client.jar.delete(COOKIE);
    const onRestarted = !u.shm && s.createdAt < memcachedRestartAt && elapsed() >= memcachedRestartAt;
    losses.push({
        user: u.name,
        node: nodeName(node),
        kind,
        at: Math.round(elapsed() / 1000),
        phase: phaseNow(),
        createdAt: Math.round(s.createdAt / 1000),
        expected: onRestarted,
        why: onRestarted ? 'on the restarted memcached' : null,
    });
}

async function relayOnce(u) {
    const node = pick(u.nodes);
    const id = `${u.name}-${++u.seq}`;
    const post = Math.random() < 0.15;
    const url = node.url(`/api/${u.name}/${id}`);
    const headers = { 'X-CSRF': '1' };
    const r = post
        ? await req(u, 'relay POST', url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' },
            body: JSON.stringify({ id }) })
        : await req(u, 'relay GET', url, { headers });
    if (r.status === 401) {
        sessionGone(u, node, 'relay');
        return;
    }
    if (r.status !== 200) return;
    let body;
    try {
        body = JSON.parse(r.body);
    } catch {
        fail('relay answer', `not the upstream's JSON: ${r.body.slice(0, 200)}`);
        return;
    }
    if (body.path !== `/api/${u.name}/${id}`) fail('relay answer', `${u.name} asked for ${id}, got ${body.path}`);
    const owner = body.auth ? ownerOfAuth(body.auth) : null;
    if (owner !== u.name) {
        wrongToken.push({ user: u.name, owner: owner ?? null, at: Math.round(elapsed() / 1000) });
        fail('token relayed', `${u.name}'s request reached the API with ${owner ? `${owner}'s` : 'an unknown'} token`);
    }
}

async function userInfo(u) {
    const node = pick(u.nodes);
    const r = await req(u, 'user', node.url('/bff/user'), { headers: { 'X-CSRF': '1' } });
    if (r.status === 401) sessionGone(u, node, 'user');
    else if (r.status === 200 && JSON.parse(r.body).sub !== u.name) fail('wrong user', `${u.name} sees ${r.body.slice(0, 100)}`);
}

/** Is the old cookie dead everywhere it could be used? */
async function assertEnded(u, s, how) {
    for (const node of u.nodes) {
        const r = await req(u, 'user (after logout)', node.url('/bff/user'),
            { headers: { 'X-CSRF': '1' }, cookie: `${COOKIE}=${s.cookie}`, store: false });
        if (r.status === 200) {
            logoutChecks.ineffective += 1;
            fail('logout', `${how} logout of ${u.name}: the old cookie still works on ${nodeName(node)}`);
            return;
        }
    }
}

async function frontLogout(u) {
    // The SPA takes the sign-out link from /bff/user, then navigates there.
    const node = pick(u.nodes);
    const who = await req(u, 'user', node.url('/bff/user'), { headers: { 'X-CSRF': '1' } });
    if (who.status === 401) {
        sessionGone(u, node, 'user');
        return;
    }
    const s = u.session;
    if (who.status !== 200) {
        s.endAt = elapsed() + 3000; // store down: later
        return;
    }
    const r = await req(u, 'logout', pick(u.nodes).url(JSON.parse(who.body).logoutUrl));
    if (r.status !== 302) {
        s.endAt = elapsed() + 3000;
        return;
    }
    u.session = null;
    logoutChecks.front += 1;
    await assertEnded(u, s, 'front-channel');
    // The browser follows to the provider's end_session page and confirms.
    if (r.location && r.location.startsWith(provider.issuer)) {
        try {
            await confirmProviderLogout(u.client, r.location);
            count('provider (logout)', 'ok');
        } catch {
            count('provider (logout)', 'ERR');
        }
    }
}

function logoutToken(sid, sub) {
    const k = provider.keys[0];
    const now = Math.floor(Date.now() / 1000);
    return signJwt({ alg: 'RS256', kid: k.kid, typ: 'logout+jwt' }, {
        iss: provider.issuer,
        aud: clientId,
        iat: now,
        exp: now + 120,
        jti: crypto.randomBytes(16).toString('base64url'),
        events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
        sid,
        sub,
    }, k.keyObject);
}

async function backLogout(u) {
    // Still signed in? (A session already gone must count as lost, not as logged out.)
    const node = pick(u.nodes);
    const who = await req(u, 'user', node.url('/bff/user'), { headers: { 'X-CSRF': '1' } });
    if (who.status === 401) {
        sessionGone(u, node, 'user');
        return;
    }
    const s = u.session;
    if (who.status !== 200) {
        s.endAt = elapsed() + 3000;
        return;
    }
    if (!s.sid) {
        fail('back-channel', `${u.name}'s ID token has no sid`);
        s.how = 'front';
        return;
    }
    if (u.shm) {
        // Signed with the provider's key and POSTed as the provider would.
        const r = await req(u, 'backchannel (C)', C.url('/bff/backchannel-logout'), {
            method: 'POST', cookies: false, store: false,
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ logout_token: logoutToken(s.sid, u.name) }).toString(),
        });
        if (r.status !== 200) {
            s.endAt = elapsed() + 3000;
            return;
        }
    } else {
        // The user signs out at the provider; it POSTs the logout token to A.
        const mark = provider.backchannelLogouts.length;
        try {
            await confirmProviderLogout(u.client, `${provider.issuer}/session/end?client_id=${clientId}`,
                { crossSite: false });
            count('provider (logout)', 'ok');
        } catch {
            count('provider (logout)', 'ERR');
            s.endAt = elapsed() + 3000; // provider down: later
            return;
        }
        let d = null;
        const deadline = Date.now() + 10000;
        while (!d && Date.now() < deadline) {
            d = provider.backchannelLogouts.slice(mark).find((x) => x.sid === s.sid) || null;
            if (!d) await sleep(100);
        }
        count('backchannel (provider to A)', d ? (d.ok ? 'delivered' : 'failed') : 'none');
        if (!d || !d.ok) {
            // Not delivered (A's store down): the provider does not retry; the
            // user logs out at the site instead.
            logoutChecks.backDeliveryFailed += 1;
            s.how = 'front';
            s.endAt = elapsed();
            return;
        }
    }
    u.session = null;
    u.client.jar.delete(COOKIE);
    logoutChecks.back += 1;
    await assertEnded(u, s, 'back-channel');
}

async function userLoop(u) {
    await sleep(rand(0, Math.min(10000, D * 0.05))); // users arrive over the first seconds
    const gap = 1000 / CFG.rate;
    while (!stopping) {
        const started = Date.now();
        try {
            if (!u.session) {
                try {
                    await login(u);
                } catch (e) {
                    logins.failed += 1;
                    if (!stopping && !/cap reached/.test(e.message)) await sleep(2000);
                    continue;
                }
            } else if (elapsed() >= u.session.endAt) {
                u.ends += 1;
                if (u.session.how === 'front') await frontLogout(u);
                else await backLogout(u);
            } else if (Math.random() < 0.1) {
                await userInfo(u);
            } else {
                await relayOnce(u);
            }
        } catch (e) {
            if (/cap reached/.test(e.message)) break;
            // Network errors are counted as ERR; go on.
        }
        const wait = gap * rand(0.7, 1.3) - (Date.now() - started);
        if (wait > 0 && !stopping) await sleep(wait);
    }
}

// ---------------------------------------------------------------------------
// Faults

async function faults() {
    const until = async (ms) => {
        const w = ms - elapsed();
        if (w > 0) await sleep(w);
    };
    const timed = async (what, fn) => {
        const s = Date.now();
        log(`fault: ${what}`);
        try {
            await fn();
            events.push({ what, at: Math.round((s - t0) / 1000), ms: Date.now() - s });
        } catch (e) {
            events.push({ what, at: Math.round((s - t0) / 1000), ms: Date.now() - s, error: e.message });
            fail('fault', `${what}: ${e.message}`);
        }
    };
    await until(AT.memStart);
    sampleMemory('start');
    log('memory sample: start');
    await until(AT.memcachedRestart);
    await timed('memcached restart', async () => {
        memcachedRestartAt = elapsed();
        await mc.restart();
    });
    await until(AT.providerStop);
    await timed('provider stopped', async () => {
        providerStoppedAt = elapsed();
        await provider.close();
    });
    await until(AT.providerBack);
    await timed('provider back', () => provider.restart());
    await until(AT.memBeforeGraceful);
    sampleMemory('before graceful');
    await until(AT.graceful);
    await timed('graceful restart of A, B, C', async () => {
        for (const n of [A, B, C]) await n.graceful();
    });
}

// ---------------------------------------------------------------------------
// Run

log(`soak: ${CFG.seconds} s, ${CFG.users} users (${USERS.filter((u) => u.shm).length} on shm node C), `
    + `${CFG.rate} req/s each, access tokens ${CFG.tokenTtl} s (refresh ${CFG.refreshWindow} s before expiry); `
    + `module ${BFF_MODULE}`);
log(`nodes: A ${A.origin}, B ${B.origin} (memcached ${mc.spec}), C ${C.origin} (shm); provider ${provider.issuer}`);
t0 = Date.now();
sampleMemory('idle');
const progress = setInterval(() => {
    const signedIn = USERS.filter((u) => u.session).length;
    log(`${phaseNow()}: ${requestCount} requests, ${signedIn}/${USERS.length} signed in, `
        + `${losses.length} sessions lost, ${failures.length} failures`);
    if (elapsed() > 0.3 * D && !stopping) sampleMemory('periodic');
}, Math.max(10000, D / 20));
const hardStop = setTimeout(() => {
    console.error('soak: the run did not end in time; stopping');
    fail('harness', 'the run did not end within its time bound');
    cleanupAndExit(1);
}, D + 180000);
hardStop.unref();

const faultTask = faults();
const loops = USERS.map((u) => userLoop(u));
await sleep(D);
sampleMemory('end');
stopping = true;
await Promise.all(loops);
await faultTask;
clearInterval(progress);

// Every session that should live must live.
finalCheck = true;
for (const u of USERS) {
    if (!u.session) continue;
    try {
        await userInfo(u);
    } catch { /* counted as ERR */ }
}
if (!memSamples.some((s) => s.label === 'start')) sampleMemory('start');

// ---------------------------------------------------------------------------
// Refresh-token uses at the provider: each rotating refresh token belongs to one
// session and one refresh window; it must be presented once.

const refresh = { tokens: 0, grants: 0, byUses: {}, reused: [], reusedAfterLostAnswer: [] };
for (const [tok, uses] of provider.refreshUses) {
    refresh.tokens += 1;
    refresh.grants += uses.length;
    refresh.byUses[uses.length] = (refresh.byUses[uses.length] || 0) + 1;
    if (uses.length > 1) {
        const entry = {
            user: provider.owners.get(tok) ?? null,
            uses: uses.map((x) => ({ at: Math.round((x.at - t0) / 1000), status: x.status, error: x.error, delivered: x.delivered })),
        };
        // The first answer never reached httpd (the provider stopped mid-request):
        // the provider rotated the token, httpd could not know. Not the BFF's doing.
        if (uses[0].delivered === false) refresh.reusedAfterLostAnswer.push(entry);
        else refresh.reused.push(entry);
    }
}
for (const r of refresh.reused) {
    fail('refresh', `a refresh token of ${r.user} was presented ${r.uses.length} times: ${JSON.stringify(r.uses)}`);
}
// A session lost because its refresh answer was lost in the provider stop is expected too.
for (const l of losses) {
    if (l.expected) continue;
    if (refresh.reusedAfterLostAnswer.some((r) => r.user === l.user
        && r.uses[0].at <= l.at && Math.abs(r.uses[0].at * 1000 - providerStoppedAt) < 3000)) {
        l.expected = true;
        l.why = 'refresh answer lost when the provider stopped';
    }
}
for (const l of losses.filter((x) => !x.expected)) {
    fail('session lost', `${l.user} (node ${l.node}, made at ${l.createdAt} s) got 401 on ${l.kind} at ${l.at} s in "${l.phase}"`);
}

// ---------------------------------------------------------------------------
// Stop the servers, then their logs: crashed children, sanitizer reports.

for (const n of [A, B, C]) await n.stop();
clearInterval(trim);
await provider.close();
await up.close();
await mc.close();

const logs = {};
for (const [k, n] of Object.entries(NODES)) {
    const lines = n.errorLines();
    const crashes = lines.filter((l) => /exit signal|AH00060|seg(mentation)? ?fault/i.test(l));
    const levels = {};
    const tags = {};
    const firstLine = {}; // the first warn+ line of each kind, for a look
    for (const l of lines) {
        const lv = (/\[(?:[a-z_]+):([a-z0-9]+)\]/.exec(l) || [])[1];
        if (!lv) continue;
        levels[lv] = (levels[lv] || 0) + 1;
        if (/^(warn|error|crit|alert|emerg)$/.test(lv)) {
            const tag = (/(BFF\d{5}|AH\d{5})/.exec(l) || [])[1] || 'untagged';
            tags[`${lv} ${tag}`] = (tags[`${lv} ${tag}`] || 0) + 1;
            firstLine[`${lv} ${tag}`] ??= l;
        }
    }
    const sanitizer = n.sanitizerReports();
    logs[k] = { file: n.errorLogFile, lines: lines.length, levels, tags, firstLine, crashes, sanitizer: sanitizer.length };
    for (const c of crashes) fail('crashed child', `node ${k}: ${c}`);
    if (sanitizer.length) fail('sanitizer', `node ${k}: ${sanitizer.length} report(s)`);
}

// ---------------------------------------------------------------------------
// Memory: children's RSS at the start (warmed up) and the end.

const mb = (kb) => Math.round(kb / 102.4) / 10;
const memory = { marginMb: CFG.memMarginMb, marginPct: CFG.memMarginPct, nodes: {} };
const sample = (label) => memSamples.find((s) => s.label === label);
for (const k of Object.keys(NODES)) {
    const s = sample('start').nodes[k];
    const e = sample('end').nodes[k];
    const bg = sample('before graceful')?.nodes[k] || [];
    const max = (xs, f) => Math.max(0, ...xs.map((x) => x[f]));
    const sum = (xs, f) => xs.reduce((a, x) => a + x[f], 0);
    const allowed = (kb) => kb * (1 + CFG.memMarginPct / 100) + CFG.memMarginMb * 1024;
    // The same children before the graceful restart (the longest-lived ones).
    const samePid = bg.map((x) => ({ pid: x.pid, start: s.find((y) => y.pid === x.pid), now: x }))
        .filter((x) => x.start)
        .map((x) => ({ pid: x.pid, startAnon: x.start.rssAnon, beforeGracefulAnon: x.now.rssAnon,
            ok: x.now.rssAnon <= allowed(x.start.rssAnon) }));
    const ok = max(e, 'rssAnon') <= allowed(max(s, 'rssAnon')) && samePid.every((x) => x.ok);
    memory.nodes[k] = {
        start: { children: s.length, maxVmRssMb: mb(max(s, 'vmRss')), sumVmRssMb: mb(sum(s, 'vmRss')), maxRssAnonMb: mb(max(s, 'rssAnon')) },
        end: { children: e.length, maxVmRssMb: mb(max(e, 'vmRss')), sumVmRssMb: mb(sum(e, 'vmRss')), maxRssAnonMb: mb(max(e, 'rssAnon')) },
        samePidBeforeGraceful: samePid.map((x) => ({ pid: x.pid, startAnonMb: mb(x.startAnon), beforeGracefulAnonMb: mb(x.beforeGracefulAnon) })),
        ok,
    };
    if (!ok) fail('memory', `node ${k}: children's anonymous RSS grew beyond ${CFG.memMarginPct} % + ${CFG.memMarginMb} MiB`);
}

// ---------------------------------------------------------------------------
// Report

const expectedLost = losses.filter((l) => l.expected).length;
const report = {
    when: new Date(t0).toISOString(),
    module: BFF_MODULE,
    config: { ...CFG, outDir: undefined },
    faults: events,
    phases: PHASES.map(([name, at]) => ({ name, fromS: Math.round(at / 1000) })),
    requests: { total: requestCount, retriedOnClosedConnection: retries.count, byPhase: stats },
    logins,
    logouts: logoutChecks,
    sessionsLost: { expected: expectedLost, unexpected: losses.length - expectedLost, list: losses },
    refresh,
    wrongToken,
    memory,
    memorySamples: memSamples.map((s) => ({
        label: s.label,
        at: s.at,
        nodes: Object.fromEntries(Object.entries(s.nodes).map(([k, xs]) => [k, xs.map((x) => ({ pid: x.pid, vmRssMb: mb(x.vmRss), rssAnonMb: mb(x.rssAnon), rssShmemMb: mb(x.rssShmem) }))])),
    })),
    errorLogs: logs,
    failures,
    pass: failures.length === 0,
};

function table(head, rows) {
    const w = head.map((h, i) => Math.max(String(h).length, ...rows.map((r) => String(r[i]).length)));
    const line = (r) => `| ${r.map((c, i) => String(c).padEnd(w[i])).join(' | ')} |`;
    return [line(head), `| ${w.map((n) => '-'.repeat(n)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

function markdown() {
    const out = [];
    out.push(`# mod_bff soak: ${report.pass ? 'PASS' : 'FAIL'}`, '');
    out.push(`${report.when}, ${CFG.seconds} s, ${CFG.users} users (${USERS.filter((u) => u.shm).length} on shm), `
        + `${CFG.rate} req/s per signed-in user, access tokens ${CFG.tokenTtl} s, refresh ${CFG.refreshWindow} s before expiry, `
        + `${requestCount} requests (${retries.count} retried on a closed keep-alive connection).`, '');
    out.push('## Faults', '', table(['at (s)', 'fault', 'took (ms)', 'error'],
        events.map((e) => [e.at, e.what, e.ms, e.error || ''])), '');
    const statuses = [...new Set(Object.values(stats).flatMap((k) => Object.values(k).flatMap((s) => Object.keys(s))))]
        .sort();
    const rows = [];
    for (const p of Object.keys(stats).sort()) {
        for (const kind of Object.keys(stats[p]).sort()) {
            rows.push([p, kind, ...statuses.map((s) => stats[p][kind][s] || '')]);
        }
    }
    const totals = Object.keys(stats).sort().map((p) => [p, ...statuses.map((st) =>
        Object.values(stats[p]).reduce((a, k) => a + (k[st] || 0), 0) || '')]);
    out.push('## Requests by status and phase', '', 'All requests (httpd and provider legs):', '',
        table(['phase', ...statuses], totals), '', 'By request:', '',
        table(['phase', 'request', ...statuses], rows), '');
    out.push('## Invariants', '');
    const reusedLost = refresh.reusedAfterLostAnswer.length;
    const memOk = Object.values(memory.nodes).every((n) => n.ok);
    const crashes = Object.values(logs).reduce((a, l) => a + l.crashes.length, 0);
    out.push(table(['check', 'result', 'figures'], [
        ['sessions lost beyond the restarted memcached', report.sessionsLost.unexpected === 0 ? 'pass' : 'FAIL',
            `${report.sessionsLost.unexpected} unexpected, ${expectedLost} expected (${losses.filter((l) => l.expected && l.why === 'on the restarted memcached').length} on the restarted memcached)`],
        ['refresh-token grants per refresh window per session = 1', refresh.reused.length === 0 ? 'pass' : 'FAIL',
            `${refresh.tokens} refresh tokens presented, ${refresh.grants} grants; by uses: ${JSON.stringify(refresh.byUses)}`
            + (reusedLost ? `; ${reusedLost} re-presented after the provider stopped before answering` : '')],
        ['logouts end the session on every node', logoutChecks.ineffective === 0 ? 'pass' : 'FAIL',
            `${logoutChecks.front} front-channel, ${logoutChecks.back} back-channel, ${logoutChecks.backDeliveryFailed} back-channel deliveries failed (fell back to front-channel)`],
        ['relayed token is the user\'s own', wrongToken.length === 0 ? 'pass' : 'FAIL', `${wrongToken.length} wrong`],
        ['httpd children memory (anonymous RSS) within margin', memOk ? 'pass' : 'FAIL',
            `margin ${CFG.memMarginPct} % + ${CFG.memMarginMb} MiB`],
        ['crashed children', crashes === 0 ? 'pass' : 'FAIL', `${crashes}`],
        ['HTTP 500', failures.some((f) => f.what === 'HTTP 500') ? 'FAIL' : 'pass', ''],
    ]), '');
    out.push('## httpd children memory (MiB, from /proc/<pid>/status)', '');
    out.push(table(['node', 'start children', 'start max VmRSS', 'start max RssAnon', 'end children', 'end max VmRSS', 'end max RssAnon', 'same pids before graceful (RssAnon start -> then)', 'ok'],
        Object.entries(memory.nodes).map(([k, n]) => [k, n.start.children, n.start.maxVmRssMb, n.start.maxRssAnonMb,
            n.end.children, n.end.maxVmRssMb, n.end.maxRssAnonMb,
            n.samePidBeforeGraceful.map((x) => `${x.startAnonMb}->${x.beforeGracefulAnonMb}`).join(', '), n.ok ? 'yes' : 'NO'])), '');
    out.push('Children\'s anonymous RSS over the run (MiB, max / sum per node):', '');
    out.push(table(['sample', 'at (s)', ...Object.keys(NODES)], memSamples.map((x) => [x.label, x.at,
        ...Object.keys(NODES).map((k) => {
            const xs = x.nodes[k];
            return `${mb(Math.max(0, ...xs.map((y) => y.rssAnon)))} / ${mb(xs.reduce((a, y) => a + y.rssAnon, 0))} (${xs.length})`;
        })])), '');
    out.push('## Error logs', '');
    out.push(table(['node', 'lines', 'by level', 'warn+ by tag', 'crashes'],
        Object.entries(logs).map(([k, l]) => [k, l.lines, JSON.stringify(l.levels), JSON.stringify(l.tags), l.crashes.length])), '');
    out.push(`Logins: ${logins.ok} ok, ${logins.failed} failed (provider down, memcached down).`, '');
    if (failures.length) {
        out.push('## Failures', '', ...failures.slice(0, 50).map((f) => `- [${f.at} s, ${f.phase}] ${f.what}: ${f.detail}`), '');
    }
    return out.join('\n');
}

fs.mkdirSync(CFG.outDir, { recursive: true });
const stamp = report.when.replace(/[:.]/g, '-');
fs.writeFileSync(path.join(CFG.outDir, `soak-${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
const md = markdown();
console.log(`\n${md}`);
fs.writeFileSync(path.join(CFG.outDir, `soak-${stamp}.md`), `${md}\n`);
fs.writeFileSync(path.join(CFG.outDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
fs.writeFileSync(path.join(CFG.outDir, 'latest.md'), `${md}\n`);
console.log(`soak: report in ${path.relative(process.cwd(), CFG.outDir) || '.'}/latest.{md,json}`);
if (report.pass) {
    for (const n of [A, B, C]) n.cleanup();
} else {
    console.log(`soak: httpd directories kept: ${[A, B, C].map((n) => n.dir).join(' ')}`);
}
process.exit(report.pass ? 0 : 1);
