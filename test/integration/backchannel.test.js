// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// POST /bff/backchannel-logout (OpenID Connect Back-Channel Logout 1.0):
// logout tokens made here and signed with the provider's own signing key end
// the session named by sid (or every session of a sub); every invalid variant
// is a 400 JSON that ends nothing; and a real back-channel logout sent by the
// provider when the user signs out there ends the session.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt, generateSigningKey, signJwt } from '../provider/provider.js';
import { COOKIE, getUser, useEnv } from './lib/env.js';
import { confirmProviderLogout } from './lib/logout.js';

const EVENT = 'http://schemas.openid.net/event/backchannel-logout';

const env = useEnv({
    // The client registers https://localhost:P/bff/backchannel-logout; the
    // provider then puts sid into ID tokens and calls it when its session ends.
    provider: ({ siteOrigin }) => ({ backchannelLogoutUri: `${siteOrigin}/bff/backchannel-logout` }),
});

/** Log in; returns { client, cookie, sub, sid (the ID token's), idToken }. */
async function session(username = 'alice') {
    const before = env.provider.issued.id.length;
    const { client } = await env.login({ username, password: `${username}-pass` });
    const idToken = env.provider.issued.id.slice(before)[0];
    assert.ok(idToken);
    const { claims } = decodeJwt(idToken);
    assert.ok(claims.sid, 'the provider put sid into the ID token');
    return { client, cookie: client.jar.get(COOKIE, env.url('/')).value, sub: claims.sub, sid: claims.sid, idToken };
}

async function alive(s) {
    const c = env.client();
    const r = await c.get(env.url('/bff/user'), { headers: { 'X-CSRF': '1' }, cookie: `${COOKIE}=${s.cookie}` });
    assert.ok([200, 401].includes(r.status), `user: ${r.status} ${r.body}`);
    return r.status === 200;
}

function now() {
    return Math.floor(Date.now() / 1000);
}

/**
 * A logout token signed with the provider's current key. `claims` override
 * the defaults (a value of undefined removes the claim); header likewise.
 */
function logoutToken(claims = {}, { header = {}, key } = {}) {
    const k = env.provider.keys[0];
    const h = { alg: 'RS256', kid: k.kid, typ: 'logout+jwt', ...header };
    const c = {
        iss: env.provider.issuer,
        aud: env.clientId,
        iat: now(),
        exp: now() + 120,
        jti: crypto.randomBytes(16).toString('base64url'),
        events: { [EVENT]: {} },
        ...claims,
    };
    for (const o of [h, c]) {
        for (const [name, v] of Object.entries(o)) if (v === undefined) delete o[name];
    }
    return signJwt(h, c, key === undefined ? k.keyObject : key);
}

/** POST the endpoint like a provider would (no cookies). */
function post(body, contentType = 'application/x-www-form-urlencoded') {
    const c = env.client();
    return c.request(env.url('/bff/backchannel-logout'), {
        method: 'POST',
        body,
        headers: contentType ? { 'content-type': contentType } : {},
        cookies: false,
    });
}

function postToken(token) {
    return post(new URLSearchParams({ logout_token: token }).toString());
}

test('a valid logout token with sid ends that session only: 200, no-store', async () => {
    const a1 = await session('alice');
    const a2 = await session('alice'); // another browser of alice: another provider session
    const b = await session('bob');
    assert.notEqual(a1.sid, a2.sid);
    const r = await postToken(logoutToken({ sid: a1.sid, sub: a1.sub }));
    assert.equal(r.status, 200, r.body);
    assert.match(r.headers['cache-control'] || '', /no-store/);
    assert.equal(r.body, '');
    assert.equal(await alive(a1), false, 'the session of that sid ended');
    const u = await getUser(a1.client, env);
    assert.equal(u.status, 401);
    assert.equal(await alive(a2), true, 'alice\'s other session lives');
    assert.equal(await alive(b), true, 'bob\'s session lives');

    // sid alone (no sub) works too.
    const r2 = await postToken(logoutToken({ sid: a2.sid }));
    assert.equal(r2.status, 200, r2.body);
    assert.equal(await alive(a2), false);
    assert.equal(await alive(b), true);

    // An unknown sid is fine (200) and ends nothing.
    const r3 = await postToken(logoutToken({ sid: 'no-such-sid' }));
    assert.equal(r3.status, 200);
    assert.equal(await alive(b), true);
});

test('valid variants: aud as an array, typ JWT or none, a charset in the content type', async () => {
    const variants = [
        ['aud array', (x) => postToken(logoutToken({ sid: x.sid, aud: [env.clientId] }))],
        ['typ JWT', (x) => postToken(logoutToken({ sid: x.sid }, { header: { typ: 'JWT' } }))],
        ['no typ', (x) => postToken(logoutToken({ sid: x.sid }, { header: { typ: undefined } }))],
        ['no exp', (x) => postToken(logoutToken({ sid: x.sid, exp: undefined }))],
        ['charset', (x) => post(new URLSearchParams({ logout_token: logoutToken({ sid: x.sid }) }).toString(),
            'application/x-www-form-urlencoded; charset=UTF-8')],
    ];
    for (const [what, send] of variants) {
        const x = await session('alice');
        const r = await send(x);
        assert.equal(r.status, 200, `${what}: ${r.body}`);
        assert.equal(await alive(x), false, `${what}: the session ended`);
    }
});

test('a logout token with only sub ends every session of that sub', async () => {
    const a1 = await session('alice');
    const a2 = await session('alice');
    const b = await session('bob');
    const r = await postToken(logoutToken({ sub: 'alice' }));
    assert.equal(r.status, 200, r.body);
    assert.equal(await alive(a1), false);
    assert.equal(await alive(a2), false);
    assert.equal(await alive(b), true);
});

test('invalid logout tokens and requests: 400 JSON, nothing ends', async () => {
    const s = await session('alice');
    const other = await session('bob');
    const base = { sid: s.sid, sub: s.sub };
    const foreign = generateSigningKey(env.provider.keys[0].kid);
    const valid = logoutToken(base);
    const i = valid.lastIndexOf('.') + 1;
    const sig = Buffer.from(valid.slice(i), 'base64url');
    sig[5] ^= 0x01;
    const badSig = valid.slice(0, i) + sig.toString('base64url');
    const form = (t) => new URLSearchParams({ logout_token: t }).toString();

    const variants = [
        ['bad signature', form(badSig)],
        ['signed by a foreign key under the provider\'s kid', form(logoutToken(base, { key: foreign.keyObject }))],
        ['unknown kid', form(logoutToken(base, { header: { kid: 'nope' }, key: foreign.keyObject }))],
        ['alg none', form(logoutToken(base, { header: { alg: 'none' }, key: 'none' }))],
        ['HS256 with the client secret', form(logoutToken(base, { header: { alg: 'HS256' }, key: { hmac: env.clientSecret } }))],
        ['wrong iss', form(logoutToken({ ...base, iss: `${env.provider.issuer}/other` }))],
        ['wrong aud', form(logoutToken({ ...base, aud: 'another-client' }))],
        ['an untrusted extra aud, azp us', form(logoutToken({ ...base, aud: [env.clientId, 'another-client'], azp: env.clientId }))],
        ['missing events', form(logoutToken({ ...base, events: undefined }))],
        ['events without the back-channel member', form(logoutToken({ ...base, events: { 'urn:other': {} } }))],
        ['events not an object', form(logoutToken({ ...base, events: EVENT }))],
        ['with nonce', form(logoutToken({ ...base, nonce: 'n-0S6_WzA2Mj' }))],
        ['stale iat (1 hour old)', form(logoutToken({ ...base, iat: now() - 3600 }))],
        ['iat in the future', form(logoutToken({ ...base, iat: now() + 3600 }))],
        ['expired', form(logoutToken({ ...base, iat: now() - 200, exp: now() - 100 }))],
        ['missing iat', form(logoutToken({ ...base, iat: undefined }))],
        ['missing jti', form(logoutToken({ ...base, jti: undefined }))],
        ['neither sid nor sub', form(logoutToken({ sid: undefined, sub: undefined }))],
        ['empty sid, no sub', form(logoutToken({ sid: '' }))],
        ['typ at+jwt', form(logoutToken(base, { header: { typ: 'at+jwt' } }))],
        ['an ID token', form(s.idToken)],
        ['garbage token', form('abc.def.ghi')],
        ['empty logout_token', 'logout_token='],
        ['no logout_token', 'token=x&other=1'],
        ['empty body', ''],
    ];
    // Refusals are what anyone can cause: info, rate-limited (one line per
    // 10 s per process and reason, debug otherwise), never warn (issue 14).
    const refusalLines = [];
    for (const [what, body] of variants) {
        const { result: r, lines } = await env.httpd.expectLog([/BFF01510/], () => post(body));
        refusalLines.push(...lines.filter((l) => l.includes('BFF01510')));
        assert.equal(r.status, 400, `${what}: ${r.status} ${r.body}`);
        assert.match(r.headers['content-type'] || '', /^application\/json/, what);
        assert.match(r.headers['cache-control'] || '', /no-store/, what);
        assert.equal(JSON.parse(r.body).error, 'invalid_request', what);
        assert.ok(!lines.some((l) => /:warn\].*BFF01510/.test(l)), `${what}: not a warning`);
    }
    assert.ok(refusalLines.length >= 1 && refusalLines.every((l) => /:info\]/.test(l)),
        `refusals logged at info:\n${refusalLines.join('\n')}`);
    // The right token with the wrong content type, or none.
    for (const ct of ['application/json', 'text/plain', 'multipart/form-data; boundary=x', null]) {
        const { result: r } = await env.httpd.expectLog([/BFF01510/], () => post(form(valid), ct));
        assert.equal(r.status, 400, `content type ${ct}: ${r.status}`);
        assert.equal(JSON.parse(r.body).error, 'invalid_request');
    }
    const get = await env.client().get(env.url('/bff/backchannel-logout'), { cookies: false });
    assert.equal(get.status, 405);

    assert.equal(await alive(s), true, 'no invalid request ended the session');
    assert.equal(await alive(other), true);

    // Sanity: the same valid token that was refused with a wrong content type
    // works as a proper form post (so the refusals above were about the variant).
    const ok = await postToken(valid);
    assert.equal(ok.status, 200, ok.body);
    assert.equal(await alive(s), false);
    assert.equal(await alive(other), true);
});

test('a replayed jti is refused, even in a token for another session', async () => {
    const s1 = await session('alice');
    const s2 = await session('bob');
    const jti = crypto.randomBytes(12).toString('base64url');
    const t1 = logoutToken({ sid: s1.sid, jti });
    const r1 = await postToken(t1);
    assert.equal(r1.status, 200);
    assert.equal(await alive(s1), false);

    const { result: again } = await env.httpd.expectLog([/BFF01510/], () => postToken(t1));
    assert.equal(again.status, 400);
    assert.match(JSON.parse(again.body).message, /replay|jti/i);
    const { result: reuse } = await env.httpd.expectLog([/BFF01510/],
        () => postToken(logoutToken({ sid: s2.sid, jti })));
    assert.equal(reuse.status, 400);
    assert.equal(await alive(s2), true, 'the other session lives');
});

test('the provider itself sends a back-channel logout when the user signs out there', async () => {
    const s = await session('alice');
    const bystander = await session('bob');
    const before = env.provider.backchannelLogouts.length;
    // The user signs out at the provider (not through the site's logout).
    const url = `${env.provider.issuer}/session/end?client_id=${encodeURIComponent(env.clientId)}`;
    await confirmProviderLogout(s.client, url, { crossSite: false });
    const deadline = Date.now() + 5000;
    while (env.provider.backchannelLogouts.length === before && Date.now() < deadline) await sleep(50);
    const deliveries = env.provider.backchannelLogouts.slice(before);
    assert.equal(deliveries.length, 1, JSON.stringify(deliveries));
    assert.equal(deliveries[0].ok, true, `the provider's delivery failed: ${JSON.stringify(deliveries[0])}`);
    assert.equal(deliveries[0].sid, s.sid);
    assert.equal(await alive(s), false, 'the site session ended');
    assert.equal(await alive(bystander), true);
});
