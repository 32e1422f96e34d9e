// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// A logout wins over a token refresh in flight. The provider holds its
// refresh_token answers for 3 s (its tokenDelay fault injector); a relayed
// request starts a refresh, and while the provider holds the answer the
// session is ended by a front-channel logout (/bff/logout?sid=, which waits
// for the refresh in flight and then revokes the token it got) or by a
// back-channel logout token. The refresh must not write the session back:
// after a back-channel logout the relayed request gets 401 (after a
// front-channel one it completes first), the old cookie gets 401 afterwards,
// the refresh token it got is revoked, and the
// store holds no session record for it. Also right after a BFFCryptoKey
// rotation, when the refresh's write moves the record to a new store key.
// Once on the shm store, once on memcached (two nodes would share the
// latter: the write is memcached's replace, which never recreates a removed
// item).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt, signJwt } from '../provider/provider.js';
import { COOKIE, getUser, useEnv } from './lib/env.js';
import { startMemcached } from './lib/memcached.js';
import { bearerOf, relayLocation, startUpstream } from './lib/upstream.js';

const TTL = 4; // access token lifetime (s); refresh from TTL - WINDOW s after issue
const WINDOW = 2;
const DELAY_MS = 3000;
const EVENT = 'http://schemas.openid.net/event/backchannel-logout';

const up = await startUpstream();
const mc = await startMemcached();
after(() => up.close());
after(() => mc.close());

function envFor(store) {
    return useEnv({
        provider: ({ siteOrigin }) => ({
            accessTokenTTL: TTL,
            rotateRefreshToken: true,
            // sid in the ID token, for the back-channel logout token
            backchannelLogoutUri: `${siteOrigin}/bff/backchannel-logout`,
        }),
        bff: { BFFRefreshBeforeExpiry: String(WINDOW), ...(store ? { BFFSessionStore: store } : {}) },
        httpd: {
            extraModules: ['proxy', 'proxy_http'],
            extraServer: [
                ...relayLocation(up),
            ],
        },
    });
}

const envs = { shm: envFor(null), memcache: envFor(`memcache:${mc.spec}`) };

let seq = 0;

/** One relayed GET with an explicit cookie; { status, body, token seen upstream or null }. */
async function relay(env, cookie) {
    const id = `lr${++seq}`;
    const c = env.client();
    const resp = await c.get(env.url('/api/data'), {
        headers: { 'X-CSRF': '1', 'x-test': id }, cookie: `${COOKIE}=${cookie}`,
    });
    const seen = up.byTest(id);
    return { status: resp.status, body: resp.body, token: seen.length ? bearerOf(seen[0].headers) : null };
}

async function userStatus(env, cookie) {
    const c = env.client();
    return (await getUser(c, env, { cookie: `${COOKIE}=${cookie}` })).status;
}

/** Session records in memcached ("s:" keys); null on the shm store. */
async function sessionKeys(store) {
    return store === 'memcache' ? (await mc.keys()).filter((k) => k.startsWith('s:')).sort() : null;
}

/** Log in; { client, cookie, at (ms of the token response), sid, sub, logoutUrl }. */
async function login(env) {
    const before = env.provider.issued.id.length;
    const { client } = await env.login();
    const at = Date.now();
    const { claims } = decodeJwt(env.provider.issued.id.slice(before)[0]);
    const u = await getUser(client, env);
    assert.equal(u.status, 200);
    return {
        client, at, sid: claims.sid, sub: claims.sub, logoutUrl: u.body.logoutUrl,
        cookie: client.jar.get(COOKIE, env.url('/')).value,
    };
}

function logoutToken(env, sid, sub) {
    const k = env.provider.keys[0];
    const now = Math.floor(Date.now() / 1000);
    return signJwt({ alg: 'RS256', kid: k.kid, typ: 'logout+jwt' }, {
        iss: env.provider.issuer, aud: env.clientId, iat: now, exp: now + 120,
        jti: crypto.randomBytes(16).toString('base64url'), events: { [EVENT]: {} }, sid, sub,
    }, k.keyObject);
}

const LOGOUTS = {
    async 'front channel'(env, s) {
        const r = await s.client.get(env.url(s.logoutUrl));
        assert.equal(r.status, 302, r.body);
    },
    async 'back channel'(env, s) {
        const r = await env.client().request(env.url('/bff/backchannel-logout'), {
            method: 'POST',
            body: new URLSearchParams({ logout_token: logoutToken(env, s.sid, s.sub) }).toString(),
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            cookies: false,
        });
        assert.equal(r.status, 200, r.body);
    },
};

/** Put a new BFFCryptoKey first, keeping the old one after it (graceful restart). */
async function rotateKey(env) {
    const ring = [].concat(env.bff.BFFCryptoKey);
    env.bff.BFFCryptoKey = [crypto.randomBytes(32).toString('base64url'), ...ring];
    await env.httpd.writeConfig();
    await env.httpd.graceful();
}

for (const [store, env] of Object.entries(envs)) {
    const cases = Object.entries(LOGOUTS).map(([how, logout]) => [how, logout, false]);
    // After a key rotation the refresh's write moves the record to the new
    // key's store key (add there, remove the old): the logout removed the old
    // one first, so the move must not leave a copy under the new one.
    cases.push(['front channel', LOGOUTS['front channel'], true]);
    for (const [how, logout, rotate] of cases) {
        const what = rotate ? ' right after a key rotation' : '';
        test(`${store}: a ${how} logout during a refresh in flight${what} ends the session for good`, async (t) => {
            const keysBefore = await sessionKeys(store);
            const s = await login(env);
            assert.equal((await relay(env, s.cookie)).status, 200);
            if (rotate) await rotateKey(env);
            // Into the refresh window, before the token expires.
            await sleep(Math.max(0, s.at + (TTL - WINDOW + 1) * 1000 + 100 - Date.now()));
            const op = env.provider;
            const delayed = op.tokenDelayed;
            const issuedRt = op.issued.refresh.length;
            op.tokenDelay = { refresh_token: DELAY_MS };
            try {
                const pending = relay(env, s.cookie);
                // Wait until the provider holds the refresh answer.
                const deadline = Date.now() + 10000;
                while (op.tokenDelayed === delayed && Date.now() < deadline) await sleep(20);
                assert.equal(op.tokenDelayed, delayed + 1, 'the relayed request started a refresh');
                await logout(env, s);
                const r = await pending;
                t.diagnostic(`relayed request that was refreshing: ${r.status}`);
                if (how === 'front channel') {
                    // The front-channel logout waits for the refresh in flight
                    // (the session lock), so that request, older than the
                    // logout, completes; the logout then ends the session and
                    // revokes the refresh token that refresh got.
                    assert.equal(r.status, 200, r.body);
                    assert.ok(r.token, 'the request older than the logout was relayed');
                }
                else {
                    assert.equal(r.status, 401, `the refresh did not bring the session back: ${r.body}`);
                    assert.equal(r.token, null, 'nothing was relayed');
                }
                // The refresh token issued to the ended session is revoked, not left valid.
                const rt = op.issued.refresh.slice(issuedRt);
                assert.equal(rt.length, 1);
                assert.ok(op.revocations.some((v) => v.token === rt[0] && v.status === 200),
                    'the refresh token issued during the logout was revoked');
            } finally {
                op.tokenDelay = null;
            }
            assert.equal(await userStatus(env, s.cookie), 401);
            const after = await relay(env, s.cookie);
            assert.equal(after.status, 401);
            assert.equal(after.token, null);
            if (store === 'memcache') {
                assert.deepEqual(await sessionKeys(store), keysBefore, 'no session record is left');
            }
        });
    }
}
