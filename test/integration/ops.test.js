// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Operating mod_bff (issue 14):
// - BFFProviderTimeout bounds every back-channel call: a token endpoint that
//   stalls longer than the configured total fails the sign-in with 504 and a
//   log line naming the timeout (with the default 10 s the same stall would
//   complete the sign-in);
// - refused back-channel logout POSTs, which anyone can send, log at info and
//   rate-limited: a burst of 50 leaves a handful of lines, none at warn;
// - a relative file: path (BFFClientSecret) is read from under ServerRoot,
//   not from httpd's working directory: this file's logins only work so.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { useEnv } from './lib/env.js';

// The client secret lives in a directory beside ServerRoot (a fresh
// /tmp/bff-httpd-*), named by a relative path: "../<dir>/client-secret".
const secretDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bff-ops-secret-'));
const clientSecret = crypto.randomBytes(24).toString('base64url');
fs.writeFileSync(path.join(secretDir, 'client-secret'), `${clientSecret}\n`, { mode: 0o600 });
after(() => fs.rmSync(secretDir, { recursive: true, force: true }));

const env = useEnv({
    provider: { clientSecret },
    bff: {
        BFFClientSecret: `file:../${path.basename(secretDir)}/client-secret`,
        BFFProviderTimeout: { raw: '1s 2s' },
    },
});

test('httpd runs outside ServerRoot and signs in with a client secret read from a relative file: path', async () => {
    assert.notEqual(path.resolve(process.cwd()), path.resolve(env.httpd.dir));
    const { login } = await env.login();
    assert.ok(login.sessionCookie, 'signed in');
    // The provider accepted the secret from the file (a wrong one is invalid_client, 502).
    const last = env.provider.tokenRequests.at(-1);
    assert.equal(last.grantType, 'authorization_code');
    assert.equal(last.status, 200);
});

test('a token endpoint that stalls past BFFProviderTimeout fails the sign-in with 504, the log naming the timeout', async () => {
    const c = env.client();
    const login = await c.followLogin(env.url('/bff/login?returnTo=/app.html'), { stopAtCallback: true });
    env.provider.tokenDelay = { authorization_code: 5000 }; // longer than 2 s, shorter than the default 10 s
    try {
        const { result: cb, lines } = await env.httpd.expectLog([/BFF00219/],
            () => c.get(login.callbackUrl, { crossSite: login.callbackCrossSite }));
        assert.equal(cb.status, 504, `callback: ${cb.status} ${cb.body}`);
        assert.ok(!cb.setCookies.some((h) => /^__Host-Http-bff=[^;]/.test(h)), 'no session cookie');
        const line = lines.find((l) => l.includes('BFF00219')) || '';
        assert.match(line, /code exchange at \S+ timed out/, `the log names the timeout: ${lines.join('\n')}`);
    } finally {
        env.provider.tokenDelay = null;
    }
});

test('a burst of 50 refused back-channel logouts logs a few info lines, no warning', async () => {
    const mark = env.httpd.logMark();
    for (let i = 0; i < 50; i += 1) {
        const body = i % 2 ? 'logout_token=abc.def.ghi' : 'nothing=here';
        const r = await env.client().request(env.url('/bff/backchannel-logout'), {
            method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' }, cookies: false,
        });
        assert.equal(r.status, 400, r.body);
    }
    const lines = env.httpd.logSince(mark).filter((l) => l.includes('BFF01510'));
    assert.deepEqual(lines.filter((l) => !/:info\]/.test(l)), [], 'every line at info');
    assert.ok(lines.length >= 1, `a refusal is logged:\n${env.httpd.logSince(mark).join('\n')}`);
    // Two reasons, at most one line per 10 s per process and reason: with up to
    // 4 child processes and one 10 s boundary crossed, at most 16.
    assert.ok(lines.length <= 16, `${lines.length} lines for 50 refusals:\n${lines.join('\n')}`);
});
