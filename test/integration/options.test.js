// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Non-default settings: client_secret_post, BFFAuthParams, BFFScope,
// BFFCookieSameSite Lax, a client secret and crypto key from files, an explicit
// Mutex for the session store.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { COOKIE, getUser, setCookieOf, useEnv } from './lib/env.js';

const secretDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bff-secrets-'));
fs.chmodSync(secretDir, 0o755);
const clientSecret = crypto.randomBytes(24).toString('base64url');
const keyFile = path.join(secretDir, 'crypto.key');
const secretFile = path.join(secretDir, 'client.secret');
fs.writeFileSync(keyFile, crypto.randomBytes(32).toString('base64url'), { mode: 0o644 });
fs.writeFileSync(secretFile, `${clientSecret}\n`, { mode: 0o644 });
process.once('exit', () => fs.rmSync(secretDir, { recursive: true, force: true }));

const env = useEnv({
    provider: { clientAuth: 'client_secret_post', clientSecret },
    bff: {
        BFFClientSecret: `file:${secretFile}`,
        BFFClientAuth: 'client_secret_post',
        BFFAuthParams: { raw: 'prompt=login max_age=3600' },
        BFFScope: 'openid email',
        BFFCookieSameSite: 'Lax',
        BFFCryptoKey: `file:${keyFile}`,
    },
    // An explicit Mutex for the store wins over the module's own choice.
    httpd: { extraServer: ['Mutex sysvsem bff-shm'] },
    // Weakening SameSite is worth a warning at start-up.
    allow: [/\[bff:warn\].*(SameSite|BFFCookieSameSite)/i],
});

test('Mutex <mechanism> bff-shm picks the session store lock', () => {
    assert.match(env.httpd.errorLog(), /BFF00403: shared-memory session store .* \(lock: sysvsem\)/);
});

test('authorization request carries BFFAuthParams and BFFScope', async () => {
    const r = await env.client().get(env.url('/bff/login?returnTo=%2F'));
    assert.equal(r.status, 302);
    const q = new URL(r.location).searchParams;
    assert.equal(q.get('prompt'), 'login');
    assert.equal(q.get('max_age'), '3600');
    assert.deepEqual(q.get('scope').split(' ').sort(), ['email', 'openid']);
    assert.equal(q.get('code_challenge_method'), 'S256');
});

test('login with client_secret_post (secret from a file) and a Lax cookie', async () => {
    const { client, login } = await env.login();
    assert.equal(login.callback.status, 200);
    const tr = env.provider.tokenRequests.at(-1);
    assert.equal(tr.grantType, 'authorization_code');
    assert.equal(tr.clientAuth, 'client_secret_post');
    assert.equal(tr.status, 200);
    const sc = setCookieOf(login.callback, COOKIE);
    assert.ok(sc);
    assert.equal(sc.attrs.get('samesite'), 'Lax');
    assert.ok(sc.attrs.has('secure') && sc.attrs.has('httponly'));
    const u = await getUser(client, env);
    assert.equal(u.status, 200);
    assert.equal(u.body.claims.email, 'alice@example.test');
    assert.equal(u.body.claims.name, undefined, 'profile scope was not requested');
});

test('weakening SameSite to Lax logs a warning at start-up', () => {
    const warn = env.httpd.errorLines().filter((l) => /\[bff:warn\]/.test(l));
    assert.ok(warn.some((l) => /SameSite/i.test(l)), `warnings: ${warn.join('\n')}`);
});
