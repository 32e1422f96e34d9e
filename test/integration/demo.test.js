// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// The demo (build/demo.sh), driven in a real browser as a person would: the
// httpd config and the SPA are the demo's own (`build/demo.sh config` writes
// them, from build/demo/httpd.conf.in and build/demo/site/), the API is
// build/demo/api.mjs; only the ports, the TLS files and the provider are the
// harness's (its provider's access tokens live 4 s instead of the demo's 60,
// so the refresh comes quickly). The test clicks the page's buttons and reads
// what the page shows:
//   - log in: the page greets alice and counts the session down;
//   - "Call the API": the API shows a Bearer JWT for itself (aud = the API),
//     alice's, without mod_bff's cookies, and the page never held that token;
//   - "Call it without X-CSRF": 403 csrf, the API never saw it;
//   - "Wait for a token refresh": a token with a later iat;
//   - "Log out" (confirmed at the provider): back on the SPA, the API 401;
//   - bff.js: a 401 sends the browser to the login and back to the page.
// Each step's screenshot goes to _build/artifacts/demo/ (or
// $BFF_ARTIFACTS_DIR/demo/); the paths are printed.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { startApi } from '../../build/demo/api.mjs';
import { decodeJwt, startProvider } from '../provider/provider.js';
import { COOKIE } from './lib/env.js';
import { BFF_MODULE, freePort, Httpd, MODDIR, REPO } from './lib/httpd.js';
import { createPki } from './lib/pki.js';

const TTL = 4; // seconds an access token lives: a refresh at half of it
const CLIENT_ID = 'bff-demo';
const ARTIFACTS = path.join(process.env.BFF_ARTIFACTS_DIR || path.join(REPO, '_build', 'artifacts'), 'demo');
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/**
 * httpd running the demo's configuration: `build/demo.sh config` writes it
 * into this test's directory, which holds the harness's TLS files and fresh
 * secrets where the demo keeps its own.
 */
class DemoHttpd extends Httpd {
    constructor(opts) {
        super(opts);
        this.confFile = path.join(this.dir, 'httpd.conf');
        this.errorLogFile = path.join(this.dir, 'logs', 'error.log');
        this.pidFile = path.join(this.dir, 'httpd.pid');
        const tls = path.join(this.dir, 'tls');
        const secrets = path.join(this.dir, 'secrets');
        fs.mkdirSync(tls);
        fs.mkdirSync(secrets, { mode: 0o700 });
        fs.copyFileSync(this.pki.caFile, path.join(tls, 'ca.pem'));
        fs.copyFileSync(this.pki.certFile, path.join(tls, 'server.pem'));
        fs.copyFileSync(this.pki.keyFile, path.join(tls, 'server.key'));
        fs.writeFileSync(path.join(secrets, 'client-secret'), opts.clientSecret, { mode: 0o600 });
        fs.writeFileSync(path.join(secrets, 'crypto-key'), crypto.randomBytes(48).toString('base64'), { mode: 0o600 });
    }

    async writeConfig() {
        const r = spawnSync('bash', [path.join(REPO, 'build', 'demo.sh'), 'config'], {
            encoding: 'utf8',
            env: {
                ...process.env,
                BFF_DEMO_DIR: this.dir,
                BFF_DEMO_PORT: String(this.port),
                BFF_DEMO_PROVIDER_URL: this.opts.providerUrl,
                BFF_DEMO_API_PORT: String(this.opts.apiPort),
                BFF_DEMO_CLIENT_ID: CLIENT_ID,
                BFF_DEMO_PUBLIC_URL: '', // httpd's own origin
                BFF_MODULE,
                APACHE_MODDIR: MODDIR,
            },
        });
        if (r.status !== 0) throw new Error(`build/demo.sh config failed:\n${r.stdout}${r.stderr}`);
        return this.confFile;
    }
}

let provider;
let api;
let httpd;
let origin;
let resource;

before(async () => {
    const pki = createPki();
    const port = await freePort();
    let providerPort = await freePort();
    while (providerPort === port) providerPort = await freePort();
    origin = `https://localhost:${port}`;
    resource = `${origin}/api/`; // what build/demo.sh names the API's resource
    const clientSecret = crypto.randomBytes(24).toString('base64url');
    provider = await startProvider({
        port: providerPort,
        cert: pki.cert,
        key: pki.key,
        ca: pki.ca,
        clientId: CLIENT_ID,
        clientSecret,
        redirectUri: `${origin}/bff/callback`,
        postLogoutRedirectUri: `${origin}/`,
        // Every access token lives TTL s (oidc-provider's ttl.AccessToken
        // wins over a resource server's own).
        accessTokenTTL: TTL,
        resourceServers: { [resource]: { scope: 'api' } },
        scopes: ['api'],
        quiet: true,
    });
    api = await startApi();
    httpd = new DemoHttpd({ pki, port, clientSecret, providerUrl: provider.issuer, apiPort: api.port });
    await httpd.start();
    fs.rmSync(ARTIFACTS, { recursive: true, force: true });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
    if (httpd) await httpd.stop();
    if (api) await api.close();
    if (provider) await provider.close();
    if (httpd) {
        httpd.assertCleanLog();
        httpd.cleanup();
    }
});

/** Text of an element, trimmed. */
async function text(page, sel) {
    return (await page.textContent(sel)).trim();
}

/** The access-token claims table as { claim: shown value }. */
async function tokenClaims(page) {
    return page.$$eval('#api-claims tbody tr', (rows) => Object.fromEntries(
        rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent])));
}

test('demo: log in, call the API, no-CSRF 403, a refresh, log out then 401, as seen on the page; bff.js logs in on a 401', async (t) => {
    const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bff-chromium-'));
    const context = await chromium.launchPersistentContext(profileDir, {
        executablePath: EXECUTABLE, headless: true, args: ARGS, ignoreHTTPSErrors: true, timeout: 30000,
        viewport: { width: 1000, height: 1400 },
    });
    t.after(async () => {
        await context.close();
        fs.rmSync(profileDir, { recursive: true, force: true });
    });
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(20000);
    const shots = [];
    const shot = async (name) => {
        const file = path.join(ARTIFACTS, `${String(shots.length + 1).padStart(2, '0')}-${name}.png`);
        await page.screenshot({ path: file, fullPage: true });
        shots.push(file);
    };
    t.after(() => console.log(`demo screenshots:\n${shots.map((f) => `  ${f}`).join('\n')}`));
    // Click a button and wait until the page shows the API call's answer.
    const clickAndWaitForStatus = async (button, re) => {
        await page.$eval('#api-status', (e) => { e.textContent = ''; });
        await page.click(button);
        await page.waitForFunction((want) => new RegExp(want).test(document.getElementById('api-status').textContent),
            re.source);
    };

    // 1. Not logged in.
    await page.goto(`${origin}/`);
    await page.waitForSelector('#anon', { state: 'visible' });
    assert.equal(await text(page, '#status'), 'Not logged in.');
    await shot('not-logged-in');

    // 2. Log in at the provider, back on the SPA.
    await page.click('#login');
    await page.waitForURL((u) => u.origin === provider.issuer);
    await page.fill('#username', 'alice');
    await page.fill('#password', 'alice-pass');
    await shot('provider-login');
    await Promise.all([page.waitForURL(`${origin}/`), page.click('#submit')]);
    await page.waitForSelector('#user', { state: 'visible' });
    assert.equal(await text(page, '#status'), 'You are logged in.');
    assert.equal(await text(page, '#email'), 'alice@example.test');
    assert.match(await text(page, '#session-left'), /^(\d+h )?\d\dm \d\ds$/);
    assert.equal(await text(page, '#doc-cookie'), '""', 'the page can read no cookie');
    await shot('logged-in');

    // 3. Call the API: it received a Bearer JWT for itself, alice's, and no mod_bff cookie.
    await clickAndWaitForStatus('#call-api', /^200 /);
    assert.match(await text(page, '#api-request'), /^GET \/api\/whoami$/);
    assert.match(await text(page, '#api-auth'), /^Bearer /);
    assert.equal(await text(page, '#api-cookies'), '(none)');
    const claims1 = await tokenClaims(page);
    assert.equal(claims1.sub, 'alice');
    assert.equal(claims1.aud, resource);
    assert.equal(claims1.client_id, CLIENT_ID);
    assert.match(claims1.scope, /\bapi\b/);
    // It is the token the provider issued to httpd, which the browser never had.
    const issued = provider.issued.access.filter((tok) => tok.split('.').length === 3
        && decodeJwt(tok).claims.jti === claims1.jti);
    assert.equal(issued.length, 1, 'the API shows a token the provider issued');
    const html = await page.content();
    assert.ok(!html.includes(issued[0]) && !html.includes(issued[0].split('.')[2]), 'the token is not on the page');
    const cookies = await context.cookies(origin);
    assert.ok(cookies.some((c) => c.name === COOKIE && c.httpOnly), 'only the HttpOnly session cookie');
    const iat1 = await text(page, '#api-iat');
    assert.match(iat1, /^\d+ {2}\(\d{4}-/);
    await shot('api-call');

    // 4. Without the CSRF header httpd refuses, and the API never sees it.
    await clickAndWaitForStatus('#call-nocsrf', /^403 /);
    assert.match(await text(page, '#api-status'), /csrf/);
    assert.ok(await page.isHidden('#api-view'));
    assert.match(await text(page, '#api-refused'), /API never saw/);
    await shot('api-call-without-csrf');

    // 5. Wait for a refresh: the API gets a token issued later.
    await page.click('#wait-refresh');
    await page.waitForFunction(() => /^Refreshed/.test(document.getElementById('refresh-status').textContent),
        null, { timeout: 30000 }).catch(async (e) => {
        await shot('refresh-failed');
        throw new Error(`no refresh shown: "${await text(page, '#refresh-status')}" (${e.message})`);
    });
    const iat2 = await text(page, '#api-iat');
    assert.notEqual(iat2, iat1);
    assert.ok(Number(iat2.split(' ')[0]) > Number(iat1.split(' ')[0]), `${iat2} after ${iat1}`);
    assert.match(await text(page, '#api-auth'), /^Bearer /);
    assert.notEqual((await tokenClaims(page)).jti, claims1.jti);
    await shot('token-refreshed');

    // 6. Log out, confirm at the provider, back on the SPA: the API answers 401.
    await page.click('#logout');
    await page.waitForURL((u) => u.origin === provider.issuer);
    await shot('provider-logout');
    await Promise.all([page.waitForURL(`${origin}/`), page.click('#logout-yes')]);
    await page.waitForSelector('#anon', { state: 'visible' });
    assert.equal(await text(page, '#status'), 'Not logged in.');
    await clickAndWaitForStatus('#call-api', /^401 /);
    assert.match(await text(page, '#api-status'), /unauthenticated/);
    assert.ok(await page.isHidden('#api-view'));
    await shot('logged-out-api-401');
    assert.equal(shots.length, 8);

    // 7. bff.js as an app uses it: a call that gets 401 starts a login that
    // comes back to the page it was made on.
    await page.goto(`${origin}/?from=bff-js`);
    await page.waitForSelector('#anon', { state: 'visible' });
    const loginRequest = page.waitForRequest((req) => new URL(req.url()).pathname === '/bff/login');
    await page.evaluate(() => {
        import('/bff.js').then((m) => m.bffFetch('/api/whoami')).catch(() => { /* BffLoginStarted */ });
    });
    assert.equal(new URL((await loginRequest).url()).searchParams.get('returnTo'), '/?from=bff-js');
    await page.waitForURL((u) => u.origin === provider.issuer);
    await page.fill('#username', 'alice');
    await page.fill('#password', 'alice-pass');
    await Promise.all([page.waitForURL(`${origin}/?from=bff-js`), page.click('#submit')]);
    await page.waitForSelector('#user', { state: 'visible' });
});
