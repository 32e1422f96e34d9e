// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// A real browser (Debian's Chromium through playwright-core) logs in across
// sites: the site on https://localhost:P1, the provider on https://127.0.0.1:P2.
// Checks that the SameSite=Strict session cookie survives the cross-site
// round trip thanks to the callback's meta refresh.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { COOKIE, useEnv } from './lib/env.js';

const env = useEnv();

const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** A fresh headless Chromium with its own profile, closed by the caller's t.after. */
async function launch(t) {
    const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bff-chromium-'));
    const context = await chromium.launchPersistentContext(profileDir, {
        executablePath: EXECUTABLE,
        headless: true,
        args: ARGS,
        ignoreHTTPSErrors: true,
        timeout: 30000,
    });
    t.after(async () => {
        await context.close();
        fs.rmSync(profileDir, { recursive: true, force: true });
    });
    return context;
}

test('browser login across sites lands signed in with a Strict cookie', async (t) => {
    const context = await launch(t);
    const page = await context.newPage();
    page.setDefaultTimeout(20000);

    await page.goto(env.url('/'));
    assert.match(await page.textContent('h1'), /mod_bff test site/);
    const anon = await page.goto(env.url('/app.html'));
    assert.equal(anon.status(), 200);
    assert.equal((await page.textContent('#state')).trim(), 'ANON');

    await page.goto(env.url('/bff/login?returnTo=/app.html'));
    await page.waitForURL((u) => u.origin === env.provider.issuer);
    await page.fill('#username', 'alice');
    await page.fill('#password', 'alice-pass');
    await Promise.all([
        page.waitForURL(env.url('/app.html'), { timeout: 20000 }),
        page.click('#submit'),
    ]);

    // The very first navigation after login carried the Strict cookie.
    assert.equal((await page.textContent('#state')).trim(), 'SIGNED-IN');

    const user = await page.evaluate(async () => {
        const r = await fetch('/bff/user', { headers: { 'X-CSRF': '1' } });
        return { status: r.status, body: await r.text() };
    });
    assert.equal(user.status, 200, user.body);
    const body = JSON.parse(user.body);
    assert.equal(body.sub, 'alice');
    assert.equal(body.claims.email, 'alice@example.test');

    // Without the custom header the same-origin fetch is refused.
    const noCsrf = await page.evaluate(async () => (await fetch('/bff/user')).status);
    assert.equal(noCsrf, 403);

    // Page script cannot read the session cookie.
    const docCookie = await page.evaluate(() => document.cookie);
    assert.ok(!docCookie.includes(COOKIE), `document.cookie exposes the session: ${docCookie}`);

    const cookies = await context.cookies(env.url('/'));
    const session = cookies.find((c) => c.name === COOKIE);
    assert.ok(session, `session cookie in the browser: ${cookies.map((c) => c.name)}`);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(session.httpOnly, true);
    assert.equal(session.secure, true);
    assert.equal(session.path, '/');
    assert.equal(session.domain, 'localhost');
    assert.equal(session.expires, -1, 'a browser-session cookie');
    assert.match(session.value, /^[A-Za-z0-9_-]{43}$/);

    // Provider cookies stay on the provider's host.
    assert.ok(!cookies.some((c) => c.name.startsWith('_session') || c.name.startsWith('_interaction')));
    await page.close();
});
