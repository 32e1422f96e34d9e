// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Two httpd nodes, A and B, behind an imagined load balancer: the same
// BFFCryptoKey, client and BFFRedirectURI (it names B; the tests deliver the
// provider's redirect to either node), the same BFFSessionStore unless a
// test gives each node its own; a relaying /api/ location to a recording
// upstream on both. Cookies do not separate by port, so a session cookie
// reaches both nodes. (multinode.test.js has the same setup inline.)
//
//   const cl = await startNodes({ store: 'memcache:h:p,h:p', users: 100 });
//   const s = await cl.login(cl.A, cl.B, 'u007');   // { cookie, username, ... }
//   await cl.user(cl.A, s)                            // { status, body }
//   await cl.relay(cl.B, s)                           // { status, token }
//   const tx = await cl.startLogin(cl.A, 'u001');     // stopped before the callback
//   await cl.callback(tx, cl.B)                       // the provider's redirect, delivered
//   await cl.reconfigure({ BFFSessionStore: ... })    // both nodes, graceful
//   cl.ttl.access = 4                                 // lifetime of access tokens issued from now on
//   await cl.stop()                                   // stops both nodes and the provider, checks the logs
//
// Accounts: alice, bob and `users` more, u000, u001, ... (password
// "<name>-pass", name "User <n>"), so every session can be told apart.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startProvider } from '../../provider/provider.js';
import { Client } from './client.js';
import { COOKIE } from './env.js';
import { freePort, Httpd } from './httpd.js';
import { createPki } from './pki.js';
import { bearerOf, startUpstream } from './upstream.js';

/** The test accounts u000.. u(n-1). */
export function userNames(n) {
    return Array.from({ length: n }, (_, i) => `u${String(i).padStart(3, '0')}`);
}

function accountsFor(n) {
    return Object.fromEntries(userNames(n).map((u) => [u, {
        password: `${u}-pass`,
        claims: { sub: u, name: `User ${u.slice(1)}`, email: `${u}@example.test`, email_verified: true },
    }]));
}

/**
 * Start provider, upstream and the nodes. Options: store (BFFSessionStore of
 * both nodes), storeA/storeB (per node), users (extra accounts), bff (more
 * directives for both), provider (more provider options), refreshBefore
 * (BFFRefreshBeforeExpiry, default 2), accessTTL (s, default 600; cl.ttl.access
 * changes it for tokens issued later).
 */
export async function startNodes(opts = {}) {
    const pki = createPki();
    const up = await startUpstream();
    const ports = new Set();
    while (ports.size < 3) ports.add(await freePort());
    const [portA, portB, portP] = [...ports];
    const originB = `https://localhost:${portB}`;
    const redirectUri = `${originB}/bff/callback`;
    const clientId = 'bff-test';
    const clientSecret = crypto.randomBytes(24).toString('base64url');
    const ttl = { access: opts.accessTTL ?? 600 };
    const provider = await startProvider({
        port: portP,
        cert: pki.cert,
        key: pki.key,
        ca: pki.ca,
        clientId,
        clientSecret,
        redirectUri,
        postLogoutRedirectUri: `${originB}/`,
        rotateRefreshToken: true,
        accessTokenTTL: () => ttl.access,
        accounts: accountsFor(opts.users || 0),
        quiet: true,
        ...(opts.provider || {}),
    });
    const bff = {
        BFFProvider: provider.issuer,
        BFFProviderCAFile: pki.caFile,
        BFFClientID: clientId,
        BFFClientSecret: clientSecret,
        BFFRedirectURI: redirectUri,
        BFFPostLogoutRedirectURI: `${originB}/`,
        BFFCryptoKey: crypto.randomBytes(32).toString('base64url'),
        BFFRefreshBeforeExpiry: String(opts.refreshBefore ?? 2),
        ...(opts.bff || {}),
    };
    const httpdOpts = {
        pki,
        extraModules: ['proxy', 'proxy_http'],
        extraServer: [
            '<Location /api/>',
            `    ProxyPass http://127.0.0.1:${up.port}/api/`,
            '    BFFTokenRelay On',
            '</Location>',
        ],
    };
    const A = new Httpd({ ...httpdOpts, port: portA, bff: { ...bff, BFFSessionStore: opts.storeA || opts.store } });
    const B = new Httpd({ ...httpdOpts, port: portB, bff: { ...bff, BFFSessionStore: opts.storeB || opts.store } });
    A.label = 'A';
    B.label = 'B';
    const clients = [];
    const newClient = () => {
        const c = new Client({ ca: pki.ca });
        clients.push(c);
        return c;
    };
    const shared = newClient();
    let seq = 0;

    /** The same URL on another node (port). */
    const onNode = (url, node) => {
        const u = new URL(url);
        u.port = String(node.port);
        return u.href;
    };

    const cl = {
        pki, provider, up, A, B, nodes: [A, B], ttl, redirectUri, onNode, newClient,

        /**
         * /bff/login on `start`, through the provider's login form as
         * `username`, stopped before the callback: { client, username,
         * callbackUrl, crossSite }.
         */
        async startLogin(start, username = 'alice') {
            const client = newClient();
            const first = await client.get(start.url('/bff/login?returnTo=%2Fapp.html'));
            assert.equal(first.status, 302, first.body);
            const r = await client.followLogin(`${originB}/bff/login`, {
                start: first, stopAtCallback: true, username, password: `${username}-pass`,
            });
            return { client, username, callbackUrl: r.callbackUrl, crossSite: r.callbackCrossSite };
        },

        /** Deliver a started login's callback to `node` (the browser's cookies, nothing stored). */
        callback(tx, node) {
            return tx.client.get(onNode(tx.callbackUrl, node), { crossSite: tx.crossSite, store: false });
        },

        /** A whole login, started on `start`, its callback on `callback`: { cookie, username, client }. */
        async login(start, callback, username = 'alice') {
            const tx = await cl.startLogin(start, username);
            const cb = await tx.client.get(onNode(tx.callbackUrl, callback), { crossSite: tx.crossSite });
            assert.equal(cb.status, 200, `callback of ${username} on ${callback.label}: ${cb.status} ${cb.body}`);
            const cookie = tx.client.jar.get(COOKIE, originB)?.value;
            assert.ok(cookie, 'session cookie set');
            tx.client.close();
            return { cookie, username, client: tx.client };
        },

        /** Log in each of `users` (start on A or B in turn, callback on the other), `parallel` at a time. */
        async loginMany(users, parallel = 4) {
            const out = new Array(users.length);
            let next = 0;
            const worker = async () => {
                while (next < users.length) {
                    const i = next++;
                    const [s, c] = i % 2 ? [B, A] : [A, B];
                    out[i] = await cl.login(s, c, users[i]);
                }
            };
            await Promise.all(Array.from({ length: parallel }, worker));
            return out;
        },

        /** GET /bff/user on node with the session's cookie; slide: false adds ?slide=false. */
        async user(node, s, { slide = true } = {}) {
            const r = await shared.get(node.url(slide ? '/bff/user' : '/bff/user?slide=false'), {
                headers: { 'X-CSRF': '1' }, cookie: `${COOKIE}=${s.cookie}`, store: false,
            });
            let body = null;
            try { body = JSON.parse(r.body); } catch { /* not JSON */ }
            return { status: r.status, body, resp: r };
        },

        /** One relayed GET /api/data through node: { status, body, token (as the upstream saw it) }. */
        async relay(node, s) {
            const id = `n${++seq}`;
            const r = await shared.get(node.url('/api/data'), {
                headers: { 'X-CSRF': '1', 'x-test': id }, cookie: `${COOKIE}=${s.cookie}`, store: false,
            });
            const seen = up.byTest(id);
            return { status: r.status, body: r.body, token: seen.length ? bearerOf(seen[0].headers) : null };
        },

        /** Log out through node (the SPA's logoutUrl): the status of /bff/logout. */
        async logout(node, s) {
            const u = await cl.user(node, s);
            assert.equal(u.status, 200, u.resp.body);
            const r = await shared.get(node.url(u.body.logoutUrl), { cookie: `${COOKIE}=${s.cookie}`, store: false });
            return r.status;
        },

        /** Change directives on both nodes (or `only` some) and restart them gracefully. */
        async reconfigure(changes, only = [A, B]) {
            for (const node of only) await node.reconfigure(changes);
        },

        async stop({ allow = [] } = {}) {
            for (const c of clients) c.close();
            await A.stop();
            await B.stop();
            await provider.close();
            await up.close();
            A.assertCleanLog({ allow });
            B.assertCleanLog({ allow });
            A.cleanup();
            B.cleanup();
        },
    };
    try {
        await A.start();
        await B.start();
    } catch (e) {
        await A.stop();
        await provider.close();
        await up.close();
        throw e;
    }
    return cl;
}
