// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// A real browser (Debian's Chromium through playwright-core) logs in across
// sites: the site on https://localhost:P1, the provider on https://127.0.0.1:P2.
// Checks that the SameSite=Strict session cookie survives the cross-site
// round trip thanks to the callback's meta refresh, and that a page under
// AuthType bff sends a browser without a session to the login and gets it
// back, signed in, on the page it asked for.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { COOKIE, useEnv } from './lib/env.js';
import { bearerOf, startUpstream } from './lib/upstream.js';

const TTL = 4; // short access tokens: refreshed at half their lifetime

const up = await startUpstream();
after(() => up.close());

const env = useEnv({
    provider: { accessTokenTTL: TTL, rotateRefreshToken: true },
    httpd: {
        extraModules: ['proxy', 'proxy_http', 'authn_core', 'authz_user'],
        // A server-rendered page under AuthType bff (BFFUnauthAction login, the default).
        site: {
            'members/page.html': '<h1>Members</h1>\n<p id="user"><!--#echo var="REMOTE_USER" --></p>\n'
                + '<p id="query"><!--#echo var="QUERY_STRING" --></p>\n',
        },
        extraServer: [
            '<Location /members/>',
            '    AuthType bff',
            '    Require valid-user',
            '</Location>',
            '<Location /api/>',
            `    ProxyPass http://127.0.0.1:${up.port}/api/`,
            '    BFFTokenRelay On',
            '</Location>',
            '<Location /ws/>',
            `    ProxyPass http://127.0.0.1:${up.port}/ws/ upgrade=websocket`,
            '    BFFTokenRelay On',
            '</Location>',
        ],
    },
});

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

/** Log in through the provider's form; the page ends on /app.html. */
async function browserLogin(page, username = 'alice') {
    await page.goto(env.url('/bff/login?returnTo=/app.html'));
    await page.waitForURL((u) => u.origin === env.provider.issuer);
    await page.fill('#username', username);
    await page.fill('#password', `${username}-pass`);
    await Promise.all([
        page.waitForURL(env.url('/app.html'), { timeout: 20000 }),
        page.click('#submit'),
    ]);
    assert.equal((await page.textContent('#state')).trim(), 'SIGNED-IN');
}

/** fetch() from the page: { status, body (parsed JSON or text) }. */
function pageFetch(page, url, init = { headers: { 'X-CSRF': '1' } }) {
    return page.evaluate(async ([u, i]) => {
        const r = await fetch(u, i);
        const text = await r.text();
        let body = text;
        try { body = JSON.parse(text); } catch { /* text */ }
        return { status: r.status, body };
    }, [url, init]);
}

test('browser: the API through the page, a refresh after expiry, WebSocket, logout then 401', async (t) => {
    const context = await launch(t);
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    const issuedBefore = env.provider.issued.access.length;
    await browserLogin(page);
    const loginAt = Date.now();
    const token0 = env.provider.issued.access.slice(issuedBefore)[0];
    assert.ok(token0);

    const r1 = await pageFetch(page, '/api/data');
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    assert.equal(r1.body.ok, true);
    const seen1 = up.find((r) => r.seq === r1.body.seq);
    assert.equal(bearerOf(seen1.headers), token0);
    assert.ok(!String(seen1.headers.cookie || '').includes(COOKIE));

    // A page script cannot skip the CSRF header.
    const noCsrf = await pageFetch(page, '/api/data', {});
    assert.equal(noCsrf.status, 403);
    assert.equal(noCsrf.body.error, 'csrf');

    // A WebSocket opened by the page (the browser sends Origin) gets the token upstream.
    const ws = await page.evaluate((url) => new Promise((resolve) => {
        const sock = new WebSocket(url);
        const timer = setTimeout(() => resolve({ error: 'timeout' }), 10000);
        sock.onmessage = (e) => { clearTimeout(timer); sock.close(); resolve({ message: e.data }); };
        sock.onerror = () => { clearTimeout(timer); resolve({ error: 'error' }); };
    }), env.url('/ws/live').replace(/^https:/, 'wss:'));
    assert.match(ws.message || '', /^hello \d+$/, JSON.stringify(ws));
    const wsSeen = up.find((r) => r.seq === Number(ws.message.split(' ')[1]));
    assert.equal(wsSeen.websocket, true);
    assert.equal(wsSeen.headers.origin, env.siteOrigin);
    assert.ok([token0, env.provider.issued.access.at(-1)].includes(bearerOf(wsSeen.headers)));

    // Past the access token's expiry: the next call is relayed with a new token.
    const left = loginAt + TTL * 1000 + 300 - Date.now();
    if (left > 0) await sleep(left);
    const refreshes = env.provider.tokenCalls.refresh_token;
    const r2 = await pageFetch(page, '/api/data');
    assert.equal(r2.status, 200, JSON.stringify(r2.body));
    const token1 = bearerOf(up.find((r) => r.seq === r2.body.seq).headers);
    assert.notEqual(token1, token0, 'the token was refreshed');
    assert.equal(token1, env.provider.issued.access.at(-1));
    assert.equal(env.provider.tokenCalls.refresh_token, refreshes + 1);

    // A cross-site page (the provider's origin) cannot drive the API with the user's cookie.
    await page.goto(`${env.provider.issuer}/.well-known/openid-configuration`);
    const probe = `/api/csrf-probe-${Date.now()}`;
    await page.evaluate(async (u) => {
        try { await fetch(u, { method: 'POST', mode: 'no-cors', credentials: 'include', body: 'x=1' }); } catch { /* opaque */ }
    }, env.url(probe));
    assert.equal(up.find((r) => r.path === probe), null, 'a cross-site request reached the API');
    await page.goto(env.url('/app.html'));

    // Log out via logoutUrl (a navigation), confirm at the provider, back on the site.
    const user = await pageFetch(page, '/bff/user');
    assert.equal(user.status, 200);
    await page.goto(env.url(user.body.logoutUrl));
    await page.waitForURL((u) => u.origin === env.provider.issuer);
    await Promise.all([
        page.waitForURL(env.url('/'), { timeout: 20000 }),
        page.click('#logout-yes'),
    ]);
    const after1 = await pageFetch(page, '/api/data');
    assert.equal(after1.status, 401);
    assert.equal(after1.body.error, 'unauthenticated');
    const after2 = await pageFetch(page, '/bff/user');
    assert.equal(after2.status, 401);
    const cookies = await context.cookies(env.url('/'));
    assert.ok(!cookies.some((c) => c.name === COOKIE), 'the session cookie is gone from the browser');
    await page.close();
});

test('browser: an AuthType bff page sends the browser to the login and back to the page, signed in', async (t) => {
    const context = await launch(t);
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    const want = env.url('/members/page.html?x=1&y=two%20words');

    // No session: the page itself is never shown, the provider's form is.
    const first = await page.goto(want);
    assert.equal(new URL(page.url()).origin, env.provider.issuer, `not at the provider: ${page.url()}`);
    assert.ok(first.request().redirectedFrom(), 'the page redirected');
    const chain = [];
    for (let req = first.request(); req; req = req.redirectedFrom()) chain.unshift(req.url());
    assert.equal(chain[0], want);
    const login = new URL(chain[1]);
    assert.equal(login.origin + login.pathname, env.url('/bff/login'));
    assert.equal(login.searchParams.get('returnTo'), '/members/page.html?x=1&y=two%20words');

    await page.fill('#username', 'bob');
    await page.fill('#password', 'bob-pass');
    await Promise.all([
        page.waitForURL(want, { timeout: 20000 }),
        page.click('#submit'),
    ]);
    assert.equal(page.url(), want, 'back on the page asked for, with its query');
    assert.equal((await page.textContent('h1')).trim(), 'Members');
    assert.equal((await page.textContent('#user')).trim(), 'bob', 'the page shows the signed-in user');
    assert.equal((await page.textContent('#query')).trim(), 'x=1&y=two%20words');

    // Signed in, the page shows at once (no second trip to the provider).
    const again = await page.goto(env.url('/members/page.html'));
    assert.equal(again.status(), 200);
    assert.equal(again.request().redirectedFrom(), null);
    assert.equal((await page.textContent('#user')).trim(), 'bob');
    await page.close();
});
