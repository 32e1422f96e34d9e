// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// One test environment per test file: test PKI, the OpenID provider on
// https://127.0.0.1:P1 and httpd with mod_bff on https://localhost:P2 (two
// host names, so the login round trip is cross-site as in production).
//
//   const env = useEnv({ bff: {...extra directives}, provider: {...} });
//   test('...', async () => { const c = env.client(); ... });
//
// useEnv registers before()/after() hooks; after() stops everything and
// fails the file if the error log has unexpected error lines.

import crypto from 'node:crypto';
import https from 'node:https';
import { after, before } from 'node:test';
import { startProvider } from '../../provider/provider.js';
import { Client, CookieJar, parseSetCookie } from './client.js';
import { freePort, Httpd, moduleBuilt } from './httpd.js';
import { createPki } from './pki.js';

export const COOKIE = '__Host-Http-bff';
export const TX_COOKIE = '__Host-Http-bff-tx';
/** Each pending login has its own sealed cookie in one of 4 slots: TX_PREFIX + 0..3. */
export const TX_PREFIX = `${TX_COOKIE}.`;

/** The pending-login cookies a response sets (non-empty values), parsed. */
export function txCookiesOf(resp) {
    return (resp.setCookies || []).map(parseSetCookie)
        .filter((c) => c && c.name.startsWith(TX_PREFIX) && c.value !== '');
}

/**
 * Start provider + httpd. Options:
 *   provider: extra startProvider options,
 *   bff: BFF* directives added to / overriding the defaults (null value removes one),
 *   httpd: extra Httpd options (mpm, extraServer, site, ...),
 *   allow: regexes of error-log lines this whole file may produce.
 * provider, bff and httpd may also be functions ({ siteOrigin, sitePort,
 * providerPort, providerIssuer }) => options, for values that name the ports.
 */
export async function startEnv(opts = {}) {
    const pki = createPki();
    const sitePort = await freePort();
    let providerPort = await freePort();
    while (providerPort === sitePort) providerPort = await freePort();
    const siteOrigin = `https://localhost:${sitePort}`;
    // provider, bff and httpd may be functions of the ports chosen here.
    const ports = { siteOrigin, sitePort, providerPort, providerIssuer: `https://127.0.0.1:${providerPort}` };
    opts = Object.fromEntries(Object.entries(opts).map(([k, v]) =>
        [k, ['provider', 'bff', 'httpd'].includes(k) && typeof v === 'function' ? v(ports) : v]));
    const clientId = 'bff-test';
    const clientSecret = crypto.randomBytes(24).toString('base64url');
    const redirectUri = `${siteOrigin}/bff/callback`;
    const provider = await startProvider({
        port: providerPort,
        cert: pki.cert,
        key: pki.key,
        ca: pki.ca,
        clientId,
        clientSecret,
        redirectUri,
        postLogoutRedirectUri: `${siteOrigin}/`,
        quiet: true,
        ...(opts.provider || {}),
    });
    const bff = {
        BFFProvider: provider.issuer,
        BFFProviderCAFile: pki.caFile,
        BFFClientID: clientId,
        BFFClientSecret: clientSecret,
        BFFRedirectURI: redirectUri,
        BFFCryptoKey: crypto.randomBytes(32).toString('base64url'),
        ...(opts.bff || {}),
    };
    if (opts.provider?.clientAuth && !('BFFClientAuth' in (opts.bff || {}))) {
        bff.BFFClientAuth = opts.provider.clientAuth;
    }
    const httpd = new Httpd({ pki, port: sitePort, bff, ...(opts.httpd || {}) });
    const clients = [];
    const env = {
        pki,
        provider,
        httpd,
        bff,
        clientId,
        clientSecret,
        siteOrigin,
        redirectUri,
        allow: opts.allow || [],
        url: (p = '/') => `${siteOrigin}${p}`,
        /** A new scripted browser (its own cookie jar unless one is given). */
        client(jar = new CookieJar()) {
            const c = new Client({ ca: pki.ca, jar });
            clients.push(c);
            return c;
        },
        /**
         * A scripted browser that keeps one connection open (keep-alive, one
         * socket); .connections() says how many it opened.
         */
        keepAliveClient() {
            const c = env.client();
            c.agent.destroy();
            c.agent = new https.Agent({ ca: pki.ca, keepAlive: true, maxSockets: 1 });
            let n = 0;
            const connect = c.agent.createConnection.bind(c.agent);
            c.agent.createConnection = (...a) => { n += 1; return connect(...a); };
            c.connections = () => n;
            return c;
        },
        /** Log in as alice (or opts.username) in a new client; returns { client, login }. */
        async login(loginOpts = {}) {
            const c = loginOpts.client || env.client();
            const returnTo = loginOpts.returnTo ?? '/app.html';
            const login = await c.followLogin(env.url(`/bff/login?returnTo=${encodeURIComponent(returnTo)}`),
                loginOpts);
            return { client: c, login };
        },
        async stop() {
            for (const c of clients) c.close();
            await httpd.stop();
            await provider.close();
        },
    };
    try {
        await httpd.start();
    } catch (e) {
        await provider.close();
        if (!moduleBuilt()) httpd.cleanup(); // nothing to look at
        throw e;
    }
    return env;
}

/** Register before/after hooks for one env; the returned object fills in at before(). */
export function useEnv(opts = {}) {
    const holder = {};
    let env = null;
    before(async () => {
        env = await startEnv(opts);
        Object.assign(holder, env);
    });
    after(async () => {
        if (!env) return;
        await env.stop();
        // On failure the temporary directory (config, logs) stays for a look.
        env.httpd.assertCleanLog({ allow: env.allow });
        env.httpd.cleanup();
    });
    return holder;
}

/** The parsed Set-Cookie for `name` in a response, or null. */
export function setCookieOf(resp, name) {
    for (const h of resp.setCookies || []) {
        const c = parseSetCookie(h);
        if (c && c.name === name) return c;
    }
    return null;
}

/** True if the response sets a non-empty session cookie. */
export function setsSession(resp, name = COOKIE) {
    const c = setCookieOf(resp, name);
    return Boolean(c && c.value !== '' && c.attrs.get('max-age') !== '0');
}

/** GET /bff/user with the CSRF header; { status, body (parsed if JSON), resp }. */
export async function getUser(client, env, opts = {}) {
    const headers = opts.csrf === false ? {} : { 'X-CSRF': '1' };
    const resp = await client.get(env.url('/bff/user'), { headers, ...opts });
    let body = null;
    try { body = JSON.parse(resp.body); } catch { /* not JSON */ }
    return { status: resp.status, body, resp };
}
