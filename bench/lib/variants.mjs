// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// The upstream and the front-end variants, configured alike: same MPM,
// same TLS, same mod_proxy location, keep-alive on. Only the auth part
// differs. Also the scripted logins for mod_bff and mod_auth_openidc.

import crypto from 'node:crypto';
import path from 'node:path';
import { Client, LoginError, parseSetCookie } from '../../test/integration/lib/client.js';
import { Httpd, OPENIDC_MODULE, q } from './servers.mjs';

export const BFF_COOKIE = '__Host-Http-bff';
export const OIDC_COOKIE = 'mod_auth_openidc_session';
/* Same length as BFF_COOKIE, matched by neither module nor the upstream's check. */
export const PLAIN_COOKIE = '__Host-Http-pln';
export const API_PATH = '/api/data.json';

const DATA_JSON = '{"ok":true,"items":[{"id":1,"name":"one"},{"id":2,"name":"two"}]}\n';
const INDEX_HTML = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>bench</title></head>' +
    '<body><p>signed in</p></body></html>\n';

/**
 * The upstream API: plain http, a tiny static JSON file under /api/. It
 * answers 403 unless the request carries a bearer token and
 * none of the modules' session cookies, so a relay that lost its token or
 * leaked its cookie shows up as non-2xx in wrk. Enough threads never to be
 * the bottleneck; mod_status counts the requests it served.
 */
export function upstreamHttpd(dir, port) {
    return new Httpd({
        name: 'upstream',
        dir,
        port,
        tls: null,
        modules: ['status', 'authz_host'],
        mpm: ['StartServers 2', 'ServerLimit 2', 'ThreadLimit 128', 'ThreadsPerChild 128',
            'MaxRequestWorkers 256', 'MinSpareThreads 128', 'MaxSpareThreads 256',
            'MaxConnectionsPerChild 0'],
        files: { 'api/data.json': DATA_JSON },
        body: [
            'ExtendedStatus On',
            '<Location /server-status>',
            '    SetHandler server-status',
            '    Require ip 127.0.0.1',
            '</Location>',
            '<Location /api/>',
            '    <RequireAll>',
            '        Require expr "%{HTTP:Authorization} =~ m#^Bearer [A-Za-z0-9._~+/=-]{16,}$#"',
            `        Require expr "! %{HTTP_COOKIE} =~ /${BFF_COOKIE}|${OIDC_COOKIE}/"`,
            '    </RequireAll>',
            '</Location>',
        ],
    });
}

/** "Total Accesses" of the upstream (mod_status). */
export async function upstreamAccesses(port) {
    const http = await import('node:http');
    return new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/server-status?auto', agent: false }, (res) => {
            let b = '';
            res.on('data', (d) => { b += d; });
            res.on('end', () => {
                const m = /Total Accesses: (\d+)/.exec(b);
                if (!m) reject(new Error(`no Total Accesses in server-status: ${b.slice(0, 200)}`));
                else resolve(Number(m[1]));
            });
        }).on('error', reject);
    });
}

function proxyLocation(upPort, upPath, extra = []) {
    return [
        '<Location /api/>',
        `    ProxyPass http://127.0.0.1:${upPort}${upPath}`,
        ...extra.map((l) => `    ${l}`),
        '</Location>',
    ];
}

/**
 * The memcached servers of the benchmark: name -> number of servers. Each
 * variant that uses memcached has its own (variant.memcache names them), so
 * its memcached CPU time and operation counts are its own.
 */
export const MEMCACHE_SETS = { bff: 1, bff3: 3, bff3r2: 3, openidc: 1 };

/** "127.0.0.1:P,127.0.0.1:Q,..." of a memcached set (ctx.memcachePorts[name]: a port or a list). */
function memcacheList(ctx, name) {
    return [].concat(ctx.memcachePorts[name]).map((p) => `127.0.0.1:${p}`).join(',');
}

/**
 * Variant definitions. ctx: { baseDir, pki, provider, clientId,
 * clientSecret, upstreamPort, bffModule, baselineModule (optional),
 * memcachePorts: { bff, bff3: [3 ports], bff3r2: [3 ports], openidc } }.
 * Each: { key, label, kind: 'plain'|'bff'|'openidc', cookieName, memcache (set name), make(port) }.
 */
export function variantDefs(ctx) {
    const { pki, provider, upstreamPort } = ctx;
    const files = { 'index.html': INDEX_HTML, 'oidc-login/index.html': INDEX_HTML };
    const base = (key, port) => ({
        name: key, dir: path.join(ctx.baseDir, key), port, tls: pki, files,
        modules: ['proxy', 'proxy_http', 'authz_user'],
    });

    // authn: the API under AuthType bff as well (Require valid-user, the user
    // and the claims passed on), as mod_auth_openidc's variants protect theirs.
    const bff = (key, store, authn = false, module = ctx.bffModule) => (port) => new Httpd({
        ...base(key, port),
        load: [`LoadModule bff_module ${q(module)}`],
        body: [
            `BFFProvider ${q(provider.issuer)}`,
            `BFFProviderCAFile ${q(pki.caFile)}`,
            `BFFClientID ${q(ctx.clientId)}`,
            `BFFClientSecret ${q(ctx.clientSecret)}`,
            `BFFRedirectURI ${q(`https://localhost:${port}/bff/callback`)}`,
            `BFFCryptoKey ${q(crypto.randomBytes(32).toString('base64url'))}`,
            'BFFScope "openid profile email"',
            // store: one argument, or a list (memcache:... replicas=N).
            `BFFSessionStore ${[].concat(store).map(q).join(' ')}`,
            'BFFSessionIdleTimeout 30m',
            'BFFSessionMaxLifetime 8h',
            'BFFRefreshBeforeExpiry 60',
            '<Location /bff>',
            '    SetHandler bff',
            '</Location>',
            ...proxyLocation(upstreamPort, '/api/', ['BFFTokenRelay On',
                ...(authn ? ['AuthType bff', 'Require valid-user'] : [])]),
        ],
    });

    const openidc = (key, cache) => (port) => new Httpd({
        ...base(key, port),
        load: [`LoadModule auth_openidc_module ${q(OPENIDC_MODULE)}`],
        body: [
            `OIDCProviderMetadataURL ${q(`${provider.issuer}/.well-known/openid-configuration`)}`,
            `OIDCCABundlePath ${q(pki.caFile)}`,
            'OIDCSSLValidateServer On',
            `OIDCClientID ${q(ctx.clientId)}`,
            `OIDCClientSecret ${q(ctx.clientSecret)}`,
            `OIDCRedirectURI ${q(`https://localhost:${port}/oidc/redirect_uri`)}`,
            `OIDCCryptoPassphrase ${q(crypto.randomBytes(32).toString('base64url'))}`,
            'OIDCScope "openid profile email"',
            'OIDCPKCEMethod S256',
            'OIDCSessionType server-cache',
            ...(cache === 'shm' ? ['OIDCCacheType shm']
                : ['OIDCCacheType memcache', `OIDCMemCacheServers ${q(`127.0.0.1:${ctx.memcachePorts.openidc}`)}`]),
            // mod_bff encrypts every stored record; make mod_auth_openidc do the same.
            'OIDCCacheEncrypt On',
            'OIDCSessionInactivityTimeout 1800',
            'OIDCSessionMaxDuration 28800',
            'OIDCRefreshAccessTokenBeforeExpiry 60',
            'OIDCCookieSameSite On',
            'OIDCPassClaimsAs environment',
            `OIDCStripCookies ${OIDC_COOKIE} ${OIDC_COOKIE}_chunks ${OIDC_COOKIE}_0 ${OIDC_COOKIE}_1`,
            '<Location /oidc/>',
            '    AuthType openid-connect',
            '    Require valid-user',
            '</Location>',
            '<Location /oidc-login/>',
            '    AuthType openid-connect',
            '    Require valid-user',
            '</Location>',
            ...proxyLocation(upstreamPort, '/api/', [
                'AuthType openid-connect',
                'Require valid-user',
                'OIDCUnAuthAction 401',
                'RequestHeader set Authorization "Bearer %{OIDC_access_token}e"',
            ]),
        ],
    });

    return [
        {
            // The ceiling proxies the very request the modules produce: wrk sends
            // a bearer token of an access token's length and a cookie of the
            // session cookie's size under another name, and the upstream runs
            // the same checks on it (they cost CPU on the shared cores too).
            key: 'plain', label: 'mod_proxy, no auth', kind: 'plain', cookieName: PLAIN_COOKIE,
            extraHeaders: { Authorization: `Bearer ${crypto.randomBytes(32).toString('base64url')}` },
            make: (port) => new Httpd({ ...base('plain', port), body: proxyLocation(upstreamPort, '/api/') }),
        },
        { key: 'bff-shm', label: 'mod_bff, shm', kind: 'bff', cookieName: BFF_COOKIE, make: bff('bff-shm', 'shm') },
        {
            key: 'bff-shm-authn', label: 'mod_bff, shm, AuthType bff', kind: 'bff', cookieName: BFF_COOKIE,
            make: bff('bff-shm-authn', 'shm', true),
        },
        {
            key: 'bff-memcache', label: 'mod_bff, memcache (1 server)', kind: 'bff', cookieName: BFF_COOKIE, memcache: 'bff',
            make: (port) => bff('bff-memcache', `memcache:${memcacheList(ctx, 'bff')}`)(port),
        },
        // Consistent hashing over 3 servers (issue 13): every key on one of them...
        {
            key: 'bff-memcache-3', label: 'mod_bff, memcache, 3 servers', kind: 'bff', cookieName: BFF_COOKIE,
            memcache: 'bff3',
            make: (port) => bff('bff-memcache-3', `memcache:${memcacheList(ctx, 'bff3')}`)(port),
        },
        // ...and on two of them (writes to both, a read from the first that answers).
        {
            key: 'bff-memcache-3r2', label: 'mod_bff, memcache, 3 servers, replicas=2', kind: 'bff',
            cookieName: BFF_COOKIE, memcache: 'bff3r2',
            make: (port) => bff('bff-memcache-3r2', [`memcache:${memcacheList(ctx, 'bff3r2')}`, 'replicas=2'])(port),
        },
        // BENCH_BASELINE_MODULE: an earlier build measured in the same run,
        // interleaved, for a before/after ratio under the same load.
        ...(ctx.baselineModule ? [{
            key: 'bff-shm-base', label: 'mod_bff baseline build, shm', kind: 'bff', cookieName: BFF_COOKIE,
            make: bff('bff-shm-base', 'shm', false, ctx.baselineModule),
        }] : []),
        {
            key: 'openidc-shm', label: 'mod_auth_openidc, shm', kind: 'openidc', cookieName: OIDC_COOKIE,
            make: openidc('openidc-shm', 'shm'),
        },
        {
            key: 'openidc-memcache', label: 'mod_auth_openidc, memcache', kind: 'openidc', cookieName: OIDC_COOKIE,
            memcache: 'openidc',
            make: openidc('openidc-memcache', 'memcache'),
        },
    ];
}

/** The redirect URI a variant registers at the provider. */
export function redirectUriFor(kind, port) {
    if (kind === 'bff') return `https://localhost:${port}/bff/callback`;
    if (kind === 'openidc') return `https://localhost:${port}/oidc/redirect_uri`;
    return null;
}

function cookieFrom(resp, name) {
    for (const h of resp.setCookies || []) {
        const c = parseSetCookie(h);
        if (c && c.name === name && c.value) return c.value;
    }
    return null;
}

/** A full mod_bff login (code flow through the provider); returns the session cookie value. */
export async function loginBff(client, origin) {
    const r = await client.followLogin(`${origin}/bff/login?returnTo=%2Findex.html`);
    if (!r.sessionCookie) throw new LoginError('no session cookie from the callback', r.steps);
    if (!r.final || r.final.status !== 200) throw new LoginError('return page not 200', r.steps);
    return r.sessionCookie;
}

/**
 * A full mod_auth_openidc login: a protected page redirects to the
 * provider, the provider back to its redirect URI, which answers 302 to the
 * original URL with the session cookie.
 */
export async function loginOpenidc(client, origin) {
    const startUrl = `${origin}/oidc-login/index.html`;
    // mod_auth_openidc answers 401 instead of redirecting to the provider
    // when the request does not look like a browser navigation.
    const nav = { headers: { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } };
    const start = await client.get(startUrl, nav);
    const r = await client.followLogin(startUrl, { start, stopAtCallback: true });
    const cb = await client.get(r.callbackUrl, { ...nav, crossSite: r.callbackCrossSite });
    r.steps.push(cb);
    if (cb.status !== 302 || !cb.location) throw new LoginError('redirect URI did not answer 302', r.steps);
    const cookie = cookieFrom(cb, OIDC_COOKIE);
    if (!cookie) throw new LoginError('no session cookie from the redirect URI', r.steps);
    const final = await client.get(cb.location, nav);
    r.steps.push(final);
    if (final.status !== 200) throw new LoginError('original URL not 200 after login', r.steps);
    return cookie;
}

export function loginFor(kind) {
    if (kind === 'bff') return loginBff;
    if (kind === 'openidc') return loginOpenidc;
    throw new Error(`no login for ${kind}`);
}

/** One login in a fresh scripted browser (own cookie jar, no keep-alive). */
export async function freshLogin(kind, ca, origin) {
    const c = new Client({ ca });
    try {
        return await loginFor(kind)(c, origin);
    } finally {
        c.close();
    }
}
