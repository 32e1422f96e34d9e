// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// LogLevel bff:trace8 (debug and every trace level) traces one login and one
// refresh end to end (issue 14): a line per step, each carrying httpd's
// request id (%L in ErrorLogFormat, so every line of one request shares
// one id), and not one secret in the whole error log: no access, refresh or
// ID token, authorization code, PKCE verifier, state, nonce, client secret,
// session or pending-login cookie value, nor the logout link's sid guard.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { txCookiesOf, useEnv } from './lib/env.js';
import { bearerOf, startUpstream } from './lib/upstream.js';

const TTL = 4; // access token lifetime (s)
const WINDOW = 2; // BFFRefreshBeforeExpiry: the token is due 2 s after issue

const up = await startUpstream();
after(() => up.close());

const env = useEnv({
    provider: { accessTokenTTL: TTL, rotateRefreshToken: true },
    bff: { BFFRefreshBeforeExpiry: String(WINDOW) },
    httpd: {
        logLevel: 'info ssl:warn bff:trace8',
        extraModules: ['proxy', 'proxy_http'],
        extraServer: [
            'ErrorLogFormat "[%{u}t] [%-m:%l] [pid %P:tid %T] [id %-L] %M"',
            '<Location /api/>',
            `    ProxyPass http://127.0.0.1:${up.port}/api/`,
            '    BFFTokenRelay On',
            '</Location>',
        ],
    },
});

const LOGIN_STEPS = ['start'];
const CALLBACK_STEPS = ['read_query', 'take_pending', 'provider', 'check_answer', 'claim_attempt',
    'exchange_code', 'verify_id_token', 'fetch_userinfo', 'fill_session', 'store_session'];
const REFRESH_STEPS = ['start', 'lock', 'reload', 'call', 'verify_id_token', 'save', 'unlock', 'done'];

/** The request id (%L) of an error-log line, or null. */
function idOf(line) {
    const m = /\[id ([^\]]*)\]/.exec(line);
    return m && m[1] !== '-' ? m[1] : null;
}

/** The lines of `kind` step `name` ("callback step read_query: ..."). */
function stepLines(lines, kind, name) {
    return lines.filter((l) => new RegExp(`BFF032\\d\\d: ${kind} step ${name}:`).test(l));
}

/** Every value the trace must never show, with what it is. */
function secretsOf(login, extra) {
    const q = new URL(login.callbackUrl).searchParams;
    const authz = new URL(login.authorizeUrl).searchParams;
    const values = [
        ['authorization code', q.get('code')],
        ['state', q.get('state')],
        ['nonce', authz.get('nonce')],
        ['PKCE challenge', authz.get('code_challenge')],
        ['client secret', env.clientSecret],
        ['session cookie', login.sessionCookie],
        ...txCookiesOf(login.start).map((c) => [`pending-login cookie ${c.name}`, c.value]),
        ...env.provider.tokenRequests.filter((t) => t.codeVerifier).map((t) => ['PKCE verifier', t.codeVerifier]),
        ...env.provider.issued.access.map((v) => ['access token', v]),
        ...env.provider.issued.refresh.map((v) => ['refresh token', v]),
        ...env.provider.issued.id.map((v) => ['ID token', v]),
        ...extra,
    ];
    // Every 8-character piece of each value (a value cut short in a log, a
    // %.8s of it, is found too), but a JWT's header: the same for many tokens
    // and no secret.
    const out = [];
    for (const [what, v] of values) {
        assert.ok(v, `the test has the ${what}`);
        const parts = v.split('.');
        for (const part of parts.length === 3 ? parts.slice(1) : [v]) {
            for (let i = 0; i + PIECE <= part.length; i += 1) out.push([what, part.slice(i, i + PIECE)]);
        }
    }
    return out;
}

const PIECE = 8;

/** The secrets of `secrets` that have a piece in `log`. */
function leaked(log, secrets) {
    const seen = new Set();
    for (let i = 0; i + PIECE <= log.length; i += 1) seen.add(log.slice(i, i + PIECE));
    return [...new Set(secrets.filter(([, piece]) => seen.has(piece)).map(([what]) => what))];
}

test('bff:trace8 traces a login and a refresh step by step, under one request id each, without a secret', async () => {
    const c = env.client();
    const login = await c.followLogin(env.url('/bff/login?returnTo=/app.html'));
    assert.ok(login.sessionCookie, 'signed in');
    const issuedAt = Date.now();
    const user = await c.get(env.url('/bff/user'), { headers: { 'X-CSRF': '1' } });
    assert.equal(user.status, 200, user.body);
    const sidGuard = new URL(JSON.parse(user.body).logoutUrl, env.url('/')).searchParams.get('sid');

    // The access token is due WINDOW s after issue: the next relayed request refreshes it.
    const refreshesBefore = env.provider.tokenCalls.refresh_token || 0;
    await sleep(Math.max(0, issuedAt + (TTL - WINDOW) * 1000 + 300 - Date.now()));
    const relayed = await c.get(env.url('/api/data'), { headers: { 'X-CSRF': '1', 'x-test': 'trace' } });
    assert.equal(relayed.status, 200, relayed.body);
    assert.equal((env.provider.tokenCalls.refresh_token || 0) - refreshesBefore, 1, 'one refresh');
    const bearer = bearerOf(up.byTest('trace')[0].headers);
    assert.equal(bearer, env.provider.issued.access.at(-1), 'the refreshed token was relayed');

    const log = env.httpd.errorLog();
    const lines = log.split('\n');

    // A line per step, all of one request under one id.
    for (const [kind, steps] of [['login', LOGIN_STEPS], ['callback', CALLBACK_STEPS], ['refresh', REFRESH_STEPS]]) {
        const ids = new Set();
        for (const step of steps) {
            const found = stepLines(lines, kind, step);
            assert.ok(found.length >= 1, `a ${kind} step ${step} line:\n${lines.filter((l) => l.includes('BFF032')).join('\n')}`);
            for (const l of found) {
                assert.match(l, /\[bff:debug\]/, l);
                ids.add(idOf(l));
            }
        }
        assert.ok(!ids.has(null), `${kind}: every line has a request id`);
        assert.equal(ids.size, 1, `${kind}: the lines of one request share one id: ${[...ids]}`);
    }
    const callbackId = idOf(stepLines(lines, 'callback', 'read_query')[0]);
    const refreshId = idOf(stepLines(lines, 'refresh', 'start')[0]);
    assert.notEqual(callbackId, refreshId, 'two requests, two ids');
    // The other lines of those requests (store reads at trace1, the login's
    // info line) carry the same id.
    assert.ok(lines.some((l) => l.includes('BFF00223') && idOf(l) === callbackId), 'BFF00223 under the callback id');

    // Not one secret anywhere in the log.
    const secrets = secretsOf(login, [['sid guard of the logout link', sidGuard], ['relayed token', bearer]]);
    assert.deepEqual(leaked(log, secrets), [], 'secrets in the error log');
    assert.ok(lines.some((l) => /\[bff:trace1\]/.test(l)), 'trace levels are on');
});
