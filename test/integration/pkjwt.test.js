// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// private_key_jwt client authentication (RFC 7523, BFFClientAuth private_key_jwt +
// BFFClientKey) against the real oidc-provider, whose client is registered with
// token_endpoint_auth_method private_key_jwt and jwks_uri = the module's /bff/jwks:
//   - RSA and EC keys: login (code exchange), refresh and logout (revocation) each
//     authenticate with a fresh signed assertion; no client secret configured;
//   - /bff/jwks serves only the public key (no d, p, q, dp, dq, qi), cacheable;
//   - a key the provider does not know: the login fails clearly (502 page,
//     BFF00220 naming invalid_client, no session);
//   - apache2 -t refuses a 1024-bit RSA key, a P-384 key, and private_key_jwt
//     without BFFClientKey.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt } from '../provider/provider.js';
import { COOKIE, getUser, setsSession, useEnv } from './lib/env.js';
import { BFF_MODULE, Httpd, moduleBuilt } from './lib/httpd.js';
import { createPki } from './lib/pki.js';
import { bearerOf, startUpstream } from './lib/upstream.js';

const TTL = 4; // access token lifetime (s)
const WINDOW = 2; // BFFRefreshBeforeExpiry

const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bff-pkjwt-'));
fs.chmodSync(keyDir, 0o755);
process.once('exit', () => fs.rmSync(keyDir, { recursive: true, force: true }));

/** A fresh private key in a PEM file: { file, keyObject }. */
function keyFile(name, type, options) {
    const { privateKey } = crypto.generateKeyPairSync(type, options);
    const file = path.join(keyDir, `${name}.pem`);
    fs.writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o644 });
    return { file, keyObject: privateKey };
}

const RSA = keyFile('rsa', 'rsa', { modulusLength: 2048 });
const EC = keyFile('ec', 'ec', { namedCurve: 'P-256' });

/** RFC 7638 thumbprint, computed here from node's own export of the key. */
function thumbprint(keyObject) {
    const j = crypto.createPublicKey(keyObject).export({ format: 'jwk' });
    const members = j.kty === 'RSA' ? { e: j.e, kty: j.kty, n: j.n }
        : { crv: j.crv, kty: j.kty, x: j.x, y: j.y };
    return crypto.createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

const up = await startUpstream();
after(() => up.close());

/** One environment whose provider knows the module by its jwks_uri. */
function pkjwtEnv(key) {
    return useEnv({
        provider: ({ siteOrigin }) => ({
            clientAuth: 'private_key_jwt',
            clientJwksUri: `${siteOrigin}/bff/jwks`,
            accessTokenTTL: TTL,
            rotateRefreshToken: true,
        }),
        bff: {
            BFFClientKey: `file:${key.file}`,
            // Not needed with private_key_jwt: the module starts without one.
            BFFClientSecret: null,
            BFFRefreshBeforeExpiry: String(WINDOW),
        },
        httpd: {
            extraModules: ['proxy', 'proxy_http'],
            extraServer: [
                '<Location /api/>',
                `    ProxyPass http://127.0.0.1:${up.port}/api/`,
                '    BFFTokenRelay On',
                '</Location>',
            ],
        },
    });
}

/** The assertion a token or revocation request carried, checked as RFC 7523 wants it. */
function checkAssertion(env, jwt, alg, key) {
    assert.ok(jwt, 'a client_assertion was sent');
    const { header, claims } = decodeJwt(jwt);
    assert.equal(header.alg, alg);
    assert.equal(header.typ, 'JWT');
    assert.equal(header.kid, thumbprint(key.keyObject));
    assert.equal(claims.iss, env.clientId);
    assert.equal(claims.sub, env.clientId);
    assert.equal(claims.aud, env.provider.issuer);
    assert.ok(typeof claims.jti === 'string' && claims.jti.length >= 43, `jti: ${claims.jti}`);
    assert.ok(Number.isInteger(claims.iat) && Number.isInteger(claims.exp));
    assert.ok(claims.exp > claims.iat && claims.exp - claims.iat <= 60,
        `exp at most 60 s after iat: iat ${claims.iat}, exp ${claims.exp}`);
    // The signature verifies with the public key the module serves.
    const [h, p, s] = jwt.split('.');
    const pub = crypto.createPublicKey(key.keyObject);
    const input = Buffer.from(`${h}.${p}`);
    const sig = Buffer.from(s, 'base64url');
    const ok = alg === 'ES256'
        ? crypto.verify('sha256', input, { key: pub, dsaEncoding: 'ieee-p1363' }, sig)
        : crypto.verify('sha256', input, alg === 'PS256'
            ? { key: pub, padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
                saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST }
            : pub, sig);
    assert.ok(ok, 'the assertion verifies with the public key');
    return claims;
}

async function getJwks(env) {
    const r = await env.client().get(env.url('/bff/jwks'));
    assert.equal(r.status, 200, r.body);
    assert.match(r.headers['content-type'] || '', /^application\/json/);
    assert.match(r.headers['cache-control'] || '', /public/);
    assert.match(r.headers['cache-control'] || '', /max-age=\d+/);
    assert.doesNotMatch(r.headers['cache-control'] || '', /no-store|private/);
    return { doc: JSON.parse(r.body), resp: r };
}

const PRIVATE = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** The JWKS holds exactly the public key of `key`, and nothing private. */
function checkJwks(doc, key, kty) {
    assert.equal(doc.keys.length, 1);
    const jwk = doc.keys[0];
    for (const m of PRIVATE) assert.equal(jwk[m], undefined, `no private member ${m} in the JWKS`);
    const pub = crypto.createPublicKey(key.keyObject).export({ format: 'jwk' });
    assert.equal(jwk.kty, kty);
    assert.equal(jwk.use, 'sig');
    assert.equal(jwk.kid, thumbprint(key.keyObject));
    if (kty === 'RSA') {
        assert.deepEqual(Object.keys(jwk).sort(), ['e', 'kid', 'kty', 'n', 'use']);
        assert.equal(jwk.n, pub.n);
        assert.equal(jwk.e, pub.e);
    } else {
        assert.deepEqual(Object.keys(jwk).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
        assert.equal(jwk.alg, 'ES256');
        assert.equal(jwk.crv, 'P-256');
        assert.equal(jwk.x, pub.x);
        assert.equal(jwk.y, pub.y);
    }
}

/** Login, a refresh on the relay path, logout with revocation: each with an assertion. */
async function roundTrip(env, key, alg) {
    const before = env.provider.tokenRequests.length;
    const { client, login } = await env.login();
    assert.equal(login.callback.status, 200);
    const exchange = env.provider.tokenRequests.slice(before);
    assert.equal(exchange.length, 1);
    assert.equal(exchange[0].grantType, 'authorization_code');
    assert.equal(exchange[0].clientAuth, 'private_key_jwt');
    assert.equal(exchange[0].status, 200);
    const first = checkAssertion(env, exchange[0].clientAssertion, alg, key);
    const u = await getUser(client, env);
    assert.equal(u.status, 200);
    assert.equal(u.body.claims.sub, 'alice');

    // Refresh: the access token is due after TTL - WINDOW seconds.
    const r1 = await client.get(env.url('/api/one'), { headers: { 'X-CSRF': '1', 'x-test': `${alg}-1` } });
    assert.equal(r1.status, 200);
    const t1 = bearerOf(up.byTest(`${alg}-1`)[0].headers);
    await sleep((TTL - WINDOW) * 1000 + 600);
    const r2 = await client.get(env.url('/api/two'), { headers: { 'X-CSRF': '1', 'x-test': `${alg}-2` } });
    assert.equal(r2.status, 200);
    const t2 = bearerOf(up.byTest(`${alg}-2`)[0].headers);
    assert.notEqual(t2, t1, 'a refreshed access token was relayed');
    const refresh = env.provider.tokenRequests.slice(before + 1);
    assert.equal(refresh.length, 1);
    assert.equal(refresh[0].grantType, 'refresh_token');
    assert.equal(refresh[0].clientAuth, 'private_key_jwt');
    assert.equal(refresh[0].status, 200);
    const second = checkAssertion(env, refresh[0].clientAssertion, alg, key);
    assert.notEqual(second.jti, first.jti, 'a fresh jti for every assertion');

    // Logout: the refresh token is revoked with client authentication.
    const revBefore = env.provider.revocations.length;
    const out = await client.get(env.url(u.body.logoutUrl));
    assert.equal(out.status, 302);
    const revs = env.provider.revocations.slice(revBefore);
    assert.equal(revs.length, 1);
    assert.equal(revs[0].status, 200, 'the provider accepted the revocation request');
    const third = checkAssertion(env, revs[0].clientAssertion, alg, key);
    assert.ok(![first.jti, second.jti].includes(third.jti));
    assert.equal((await getUser(client, env)).status, 401);
}

describe('private_key_jwt with an RSA key', () => {
    const env = pkjwtEnv(RSA);

    test('/bff/jwks serves only the public RSA key, cacheable', async () => {
        const { doc } = await getJwks(env);
        checkJwks(doc, RSA, 'RSA');
        const head = await env.client().request(env.url('/bff/jwks'), { method: 'HEAD' });
        assert.equal(head.status, 200);
        const post = await env.client().request(env.url('/bff/jwks'), { method: 'POST', form: {} });
        assert.equal(post.status, 405);
    });

    test('the start-up log names the key and where its public key is served', () => {
        const line = env.httpd.errorLines().find((l) => /BFF02101/.test(l));
        assert.ok(line, 'BFF02101 at start-up');
        assert.match(line, /RSA 2048 bits/);
        assert.ok(line.includes(thumbprint(RSA.keyObject)), line);
        assert.ok(line.includes(`${env.siteOrigin}/bff/jwks`), line);
        assert.ok(!/BEGIN|PRIVATE/.test(env.httpd.errorLog()), 'no key material in the log');
    });

    test('login, refresh and logout authenticate with PS256 assertions', async () => {
        await roundTrip(env, RSA, 'PS256');
    });
});

describe('private_key_jwt with an EC P-256 key', () => {
    const env = pkjwtEnv(EC);

    test('/bff/jwks serves only the public EC key', async () => {
        const { doc } = await getJwks(env);
        checkJwks(doc, EC, 'EC');
    });

    test('login, refresh and logout authenticate with ES256 assertions', async () => {
        await roundTrip(env, EC, 'ES256');
    });
});

describe('private_key_jwt with a key the provider does not know', () => {
    // The provider has another public key on record for the client.
    const other = keyFile('other', 'ec', { namedCurve: 'P-256' });
    const otherJwk = { ...crypto.createPublicKey(other.keyObject).export({ format: 'jwk' }),
        kid: 'registered', use: 'sig', alg: 'ES256' };
    const env = useEnv({
        provider: { clientAuth: 'private_key_jwt', clientJwks: { keys: [otherJwk] } },
        bff: { BFFClientKey: `file:${EC.file}`, BFFClientSecret: null },
        allow: [/BFF00220/],
    });

    test('the login fails with a 502 page, a log line naming invalid_client, no session', async () => {
        const c = env.client();
        const res = await c.followLogin(env.url('/bff/login?returnTo=%2Fapp.html'), { stopAtCallback: true });
        const cb = await c.get(res.callbackUrl, { crossSite: res.callbackCrossSite });
        assert.equal(cb.status, 502, cb.body);
        assert.match(cb.headers['content-type'] || '', /text\/html/);
        assert.ok(!setsSession(cb), 'no session cookie');
        assert.equal(c.jar.get(COOKIE, env.url('/')), null);
        assert.equal((await getUser(c, env)).status, 401);
        const tr = env.provider.tokenRequests.at(-1);
        assert.equal(tr.clientAuth, 'private_key_jwt');
        assert.equal(tr.status, 401);
        assert.equal(tr.error, 'invalid_client');
        const line = env.httpd.errorLines().find((l) => /BFF00220/.test(l));
        assert.ok(line, 'BFF00220 logged');
        assert.match(line, /invalid_client/);
    });
});

describe('private_key_jwt when the provider takes no algorithm the key signs', () => {
    // An EC key, a provider that takes RSA signatures only.
    const env = useEnv({
        provider: ({ siteOrigin }) => ({
            clientAuth: 'private_key_jwt',
            clientJwksUri: `${siteOrigin}/bff/jwks`,
            clientAuthSigningAlgs: ['RS256', 'PS256'],
        }),
        bff: { BFFClientKey: `file:${EC.file}`, BFFClientSecret: null },
        allow: [/BFF00219/],
    });

    test('the login fails before any token request, the log line names the provider\'s list', async () => {
        const c = env.client();
        const res = await c.followLogin(env.url('/bff/login?returnTo=%2Fapp.html'), { stopAtCallback: true });
        const cb = await c.get(res.callbackUrl, { crossSite: res.callbackCrossSite });
        assert.equal(cb.status, 502, cb.body);
        assert.ok(!setsSession(cb), 'no session cookie');
        assert.equal(env.provider.tokenCalls.total, 0, 'nothing was sent to the token endpoint');
        const line = env.httpd.errorLines().find((l) => /BFF00219/.test(l));
        assert.ok(line, 'BFF00219 logged');
        assert.match(line, /takes none of the algorithms an EC P-256 key signs/);
        assert.match(line, /token_endpoint_auth_signing_alg_values_supported: RS256 PS256/);
    });
});

// ---------------------------------------------------------------------------
// Start-up refusals (apache2 -t)

const pki = createPki();
const created = [];
after(() => created.forEach((h) => h.cleanup()));

async function configTest(bff) {
    assert.ok(moduleBuilt(), `mod_bff is not built: ${BFF_MODULE} (set BFF_MODULE)`);
    const h = new Httpd({
        pki,
        bff: {
            BFFProvider: 'https://127.0.0.1:9443',
            BFFProviderCAFile: pki.caFile,
            BFFClientID: 'bff-test',
            BFFRedirectURI: 'https://localhost:8443/bff/callback',
            BFFCryptoKey: 'an-example-crypto-key-of-32-bytes!!',
            BFFClientAuth: 'private_key_jwt',
            ...bff,
        },
    });
    created.push(h);
    const r = await h.configTest();
    return { ...r, out: `${r.stderr}${r.stdout}` };
}

describe('start-up checks', () => {
    test('private_key_jwt with an RSA key and no client secret passes apache2 -t', async () => {
        const r = await configTest({ BFFClientKey: [[`file:${RSA.file}`, 'key-1']] });
        assert.equal(r.status, 0, r.out);
    });

    test('apache2 -t refuses a 1024-bit RSA key', async () => {
        const weak = keyFile('rsa1024', 'rsa', { modulusLength: 1024 });
        const r = await configTest({ BFFClientKey: `file:${weak.file}` });
        assert.notEqual(r.status, 0, r.out);
        assert.match(r.out, /BFFClientKey/);
        assert.match(r.out, /RSA of 1024 bits/);
        assert.match(r.out, /at least 2048 bits or EC P-256/);
        assert.ok(!/BEGIN|MII/.test(r.out), 'the key is not echoed');
    });

    test('apache2 -t refuses a P-384 key', async () => {
        const p384 = keyFile('p384', 'ec', { namedCurve: 'P-384' });
        const r = await configTest({ BFFClientKey: `file:${p384.file}` });
        assert.notEqual(r.status, 0, r.out);
        assert.match(r.out, /BFFClientKey/);
        assert.match(r.out, /EC on secp384r1/);
        assert.match(r.out, /needs EC P-256/);
    });

    test('apache2 -t refuses a key that is not a file: argument or not a key', async () => {
        let r = await configTest({ BFFClientKey: RSA.file });
        assert.notEqual(r.status, 0, r.out);
        assert.match(r.out, /BFFClientKey: expected file:/);
        const pub = path.join(keyDir, 'public.pem');
        fs.writeFileSync(pub, crypto.createPublicKey(RSA.keyObject).export({ format: 'pem', type: 'spki' }));
        r = await configTest({ BFFClientKey: `file:${pub}` });
        assert.notEqual(r.status, 0, r.out);
        assert.match(r.out, /BFFClientKey: .*no unencrypted private key/);
    });

    test('apache2 -t refuses BFFClientAuth private_key_jwt without BFFClientKey', async () => {
        const r = await configTest({});
        assert.notEqual(r.status, 0, r.out);
        assert.match(r.out, /BFFClientAuth private_key_jwt .* BFFClientKey is missing/);
    });
});
