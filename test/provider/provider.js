// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Test and demo OpenID provider for mod_bff: a real oidc-provider 9 instance
// served over HTTPS on 127.0.0.1, with one confidential client, a few test
// accounts and a plain HTML login form.
//
// Library use (integration tests):
//   import { startProvider } from './provider.js';
//   const op = await startProvider({ port, cert, key, clientId, clientSecret,
//                                    redirectUri, postLogoutRedirectUri });
//   ... op.issuer, op.tokenCalls, op.refreshUses, op.owners, op.tamper = fn,
//   await op.rotateKeys(), await op.close(), await op.restart(), await op.revokeGrants(sub)
//
// Command line (demo):
//   node test/provider/provider.js --port 9443 --host 127.0.0.1 --cert c.pem --key k.pem \
//     --client-id ID --client-secret S --redirect-uri URI --post-logout-redirect-uri URI
//   prints the issuer and runs until killed.

import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// oidc-provider 9 warns once that Node 20 is not a supported runtime; it works.
import Provider from 'oidc-provider';

export const ACCOUNTS = Object.freeze({
    alice: {
        password: 'alice-pass',
        claims: {
            sub: 'alice',
            email: 'alice@example.test',
            email_verified: true,
            name: 'Alice Example',
            given_name: 'Alice',
            family_name: 'Example',
        },
    },
    bob: {
        password: 'bob-pass',
        claims: {
            sub: 'bob',
            email: 'bob@example.test',
            email_verified: false,
            name: 'Bob Example',
            given_name: 'Bob',
            family_name: 'Example',
        },
    },
});

// ---------------------------------------------------------------------------
// Keys and JWS helpers (node:crypto only, so the tests need no extra package)

function b64u(buf) {
    return Buffer.from(buf).toString('base64url');
}

/** A fresh RSA signing key: { kid, privateJwk, publicJwk, keyObject }. */
export function generateSigningKey(kid = `k-${crypto.randomBytes(6).toString('hex')}`) {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const privateJwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
    const { d, p, q, dp, dq, qi, ...publicJwk } = privateJwk;
    return { kid, privateJwk, publicJwk, keyObject: privateKey };
}

export function decodeJwt(jwt) {
    const [h, p] = jwt.split('.');
    return {
        header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
        claims: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
    };
}

/**
 * Compact JWS. key: a KeyObject (RSA/EC private key), { hmac: Buffer|string }
 * for HS*, or 'none' (unsigned, empty signature).
 */
export function signJwt(header, claims, key) {
    const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
    const alg = header.alg;
    if (key === 'none' || alg === 'none') {
        return `${input}.`;
    }
    let sig;
    if (key && key.hmac !== undefined) {
        const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg] || 'sha256';
        sig = crypto.createHmac(hash, key.hmac).update(input).digest();
    } else if (/^RS(256|384|512)$/.test(alg)) {
        sig = crypto.sign(`sha${alg.slice(2)}`, Buffer.from(input), key);
    } else if (/^PS(256|384|512)$/.test(alg)) {
        sig = crypto.sign(`sha${alg.slice(2)}`, Buffer.from(input), {
            key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
            saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST,
        });
    } else if (/^ES(256|384|512)$/.test(alg)) {
        sig = crypto.sign(`sha${alg.slice(2)}`, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    } else {
        throw new Error(`signJwt: unsupported alg ${alg}`);
    }
    return `${input}.${b64u(sig)}`;
}

// ---------------------------------------------------------------------------
// Small HTTP helpers for the interaction route (plain node req/res)

function readBody(req, limit = 64 * 1024) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let size = 0;
        req.on('data', (c) => {
            size += c.length;
            if (size > limit) {
                reject(new Error('body too large'));
                req.destroy();
                return;
            }
            chunks.push(c);
        });
        req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        req.on('error', reject);
    });
}

function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendHtml(res, status, html) {
    res.statusCode = status;
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.end(html);
}

function page(title, body) {
    return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
${body}
</body>
</html>
`;
}

function loginPage(uid, clientId, message) {
    return page('Sign in', `<h1>Sign in to the test provider</h1>
<p>Client: <code>${escapeHtml(clientId)}</code></p>
${message ? `<p id="error" role="alert">${escapeHtml(message)}</p>` : ''}
<form id="login" method="post" action="/interaction/${escapeHtml(uid)}" autocomplete="off">
  <label>Username <input id="username" name="username" type="text" required autofocus></label>
  <label>Password <input id="password" name="password" type="password" required></label>
  <button id="submit" type="submit">Sign in</button>
  <button id="cancel" type="submit" name="cancel" value="1" formnovalidate>Cancel</button>
</form>
<p>Test accounts: alice / alice-pass, bob / bob-pass.</p>`);
}

// ---------------------------------------------------------------------------
// Minimal fetch over node:https for the provider's own outgoing calls
// (back-channel logout to https://localhost with the test CA). oidc-provider's
// default fetch refuses loopback targets (SSRF guard) and cannot take a CA.

function makeFetch(ca) {
    return (url, options = {}) => new Promise((resolve, reject) => {
        const u = new URL(url);
        const headers = {};
        if (options.headers) {
            for (const [k, v] of new Headers(options.headers)) {
                headers[k] = v;
            }
        }
        const req = https.request(u, {
            method: options.method || 'GET', headers, ca, timeout: 5000,
        }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const h = new Headers();
                for (const [k, v] of Object.entries(res.headers)) {
                    h.set(k, Array.isArray(v) ? v.join(', ') : v);
                }
                const status = res.statusCode;
                const body = [101, 204, 205, 304].includes(status) ? null : Buffer.concat(chunks);
                resolve(new Response(body, { status, headers: h }));
            });
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        if (options.signal) {
            options.signal.addEventListener('abort', () => req.destroy(new Error('aborted')));
        }
        if (options.body !== undefined && options.body !== null) {
            req.write(typeof options.body === 'string' || Buffer.isBuffer(options.body)
                ? options.body : String(options.body));
        }
        req.end();
    });
}

function readMaybeFile(v) {
    if (v === undefined || v === null) return v;
    if (Buffer.isBuffer(v)) return v;
    const s = String(v);
    return s.includes('-----BEGIN') ? s : fs.readFileSync(s);
}

function asList(v) {
    if (v === undefined || v === null) return [];
    return Array.isArray(v) ? v : [v];
}

// ---------------------------------------------------------------------------

/**
 * Start the provider. Options:
 *   port (required), host ('127.0.0.1'), cert, key (PEM text or file path),
 *   ca (PEM or path; trusted for the provider's own outgoing calls),
 *   clientId ('bff-test'), clientSecret, redirectUri (string or list),
 *   postLogoutRedirectUri (string or list), backchannelLogoutUri,
 *   clientAuth ('client_secret_basic' | 'client_secret_post' | 'private_key_jwt'),
 *   clientJwksUri (the client's jwks_uri, for private_key_jwt), clientJwks (a JWKS
 *   object registered with the client instead), clientAuthSigningAlgs (the
 *   provider's token_endpoint_auth_signing_alg_values_supported; default oidc-provider's),
 *   rotateRefreshToken (false), accessTokenTTL (600 s), idTokenTTL (3600 s),
 *   refreshTokenTTL (86400 s), clockTolerance (0 s), scopes (extra scopes),
 *   accounts (more accounts: { name: { password, claims: { sub: name, ... } } }),
 *   claims (more scope -> claim names, e.g. { groups: ['groups'] }, with scopes: ['groups']),
 *   pushedAuthorizationRequests (true: PAR endpoint offered), requirePushedAuthorizationRequests
 *   (false: true makes the provider refuse authorization requests not pushed first),
 *   quiet (true: do not print provider errors),
 *   metadataAliases ({ '/some/path': { ...fields } }: the discovery document served at
 *     that path as well, those fields replaced, e.g. { issuer: 'https://x/{tenantid}' }),
 *   conformIdTokenClaims (false: scope claims in the ID token too; true: oidc-provider's
 *     default, scope claims from the userinfo endpoint only),
 *   userinfoSignedAlg (e.g. 'RS256': the client is registered for signed userinfo,
 *     answered as application/jwt),
 *   clientCredentials (false: allow the client the client_credentials grant),
 *   clientCredentialsTTL (600 s: lifetime of a client credentials access token; or a
 *     function (scope) => seconds).
 */
export async function startProvider(opts = {}) {
    const host = opts.host || '127.0.0.1';
    const port = Number(opts.port);
    if (!port) throw new Error('startProvider: port is required');
    const cert = readMaybeFile(opts.cert);
    const key = readMaybeFile(opts.key);
    if (!cert || !key) throw new Error('startProvider: cert and key are required');
    const ca = opts.ca ? readMaybeFile(opts.ca) : undefined;
    // The fixed test accounts plus any the caller adds ({ name: { password, claims } }).
    const accounts = { ...ACCOUNTS, ...(opts.accounts || {}) };
    const issuer = `https://${host}:${port}`;
    const clientId = opts.clientId || 'bff-test';
    const clientSecret = opts.clientSecret || crypto.randomBytes(24).toString('base64url');
    const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

    const client = {
        client_id: clientId,
        client_secret: clientSecret,
        client_name: 'mod_bff test client',
        application_type: 'web',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: asList(opts.redirectUri),
        post_logout_redirect_uris: asList(opts.postLogoutRedirectUri),
        token_endpoint_auth_method: opts.clientAuth || 'client_secret_basic',
        id_token_signed_response_alg: 'RS256',
    };
    if (opts.clientJwksUri) client.jwks_uri = opts.clientJwksUri;
    if (opts.clientJwks) client.jwks = opts.clientJwks;
    if (opts.userinfoSignedAlg) {
        client.userinfo_signed_response_alg = opts.userinfoSignedAlg;
    }
    if (opts.backchannelLogoutUri) {
        client.backchannel_logout_uri = opts.backchannelLogoutUri;
        client.backchannel_logout_session_required = true;
    }

    const op = {
        issuer,
        host,
        port,
        clientId,
        clientSecret,
        accounts,
        /** Current JWKS (private), signing key first. */
        keys: [generateSigningKey()],
        /** POST /token count by grant_type, plus total. */
        tokenCalls: { total: 0, authorization_code: 0, refresh_token: 0 },
        /** One entry per POST /token: { grantType, clientAuth, status, hasCodeVerifier }. */
        tokenRequests: [],
        /** Query of every authorization request (GET /auth). */
        authRequests: [],
        /**
         * Every pushed authorization request (POST /request, RFC 9126): the
         * parameters the provider read from it, its status and the client
         * authentication used.
         */
        parRequests: [],
        revocationCalls: 0,
        /** One entry per POST /token/revocation: { token, tokenTypeHint, status }. */
        revocations: [],
        endSessionCalls: 0,
        jwksCalls: 0,
        discoveryCalls: 0,
        /** Every token value the provider issued to the client. */
        issued: { access: [], refresh: [], id: [] },
        /**
         * Every refresh token presented at POST /token (refresh_token grant):
         * token -> [{ at (ms), status, error, delivered }], one entry per
         * presentation. With rotating refresh tokens each token belongs to one
         * session and one refresh window, so a list longer than 1 is a second
         * grant in the same window. delivered is false when the connection
         * closed before the answer was sent (the provider stopped mid-request).
         */
        refreshUses: new Map(),
        /** Every access/refresh token issued -> the account (sub) it was issued to. */
        owners: new Map(),
        /** Back-channel logout deliveries: { sid, sub, ok }. */
        backchannelLogouts: [],
        /**
         * FAULT INJECTOR on a real provider, for tests only: when set to a
         * function (idTokenClaims, header) => ({ claims, header, key,
         * corruptSignature }) | null, every successful token response has its
         * id_token decoded, passed to the function and re-signed with the result:
         * key undefined = the provider's current signing key, a KeyObject = that
         * (foreign) key, { hmac: secret } = HMAC, 'none' = alg none with an empty
         * signature; corruptSignature flips bits in the signature. Returning
         * null/undefined leaves the token untouched. Not part of any real
         * provider's behaviour; it lets tests feed the relying party bad ID tokens.
         */
        tamper: null,
        /**
         * FAULT INJECTOR, tests only: a function (body, grantType) called with
         * every successful token response body (after `tamper`), which it may
         * change in place (e.g. an access_token with a line break).
         */
        tamperTokens: null,
        /**
         * FAULT INJECTOR, tests only: a promise; while set, GET /jwks waits for
         * it before answering (a slow JWKS endpoint). jwksHeld counts the
         * requests that are waiting.
         */
        holdJwks: null,
        jwksHeld: 0,
        /**
         * FAULT INJECTOR, for tests only: { [grantType]: ms } holds every
         * token response of that grant type this long after the provider made
         * it (tokens issued and rotated, response not yet sent): a slow
         * provider, so that tests can act while a token call is in flight.
         * tokenDelayed counts the responses held so far.
         */
        tokenDelay: null,
        tokenDelayed: 0,
        /** GET/POST /me (userinfo) requests seen. */
        userinfoCalls: 0,
        /**
         * FAULT INJECTOR, tests only: null, or { status } (answer that HTTP
         * status instead of the provider's userinfo), { hangMs } (hold the
         * answer that long: a provider that does not answer in time), or
         * { claims: (claims) => claims } (rewrite the provider's JSON answer,
         * e.g. another sub: a real provider does not produce that on its own).
         */
        userinfoFault: null,
        /** Discovery at other paths (metadataAliases): path -> fields replaced. */
        metadataAliases: new Map(Object.entries(opts.metadataAliases || {})),
        provider: null,
        server: null,
    };

    // Koa middleware: observation hooks and the fault injector.
    function observe(provider) {
        provider.use(async (ctx, next) => {
            const p = ctx.path;
            if (ctx.method === 'GET' && p === '/auth') {
                op.authRequests.push({ ...ctx.query });
            }
            if (p === '/jwks') {
                op.jwksCalls += 1;
                if (op.holdJwks) {
                    op.jwksHeld += 1;
                    try { await op.holdJwks; } finally { op.jwksHeld -= 1; }
                }
            }
            if (p === '/.well-known/openid-configuration') op.discoveryCalls += 1;
            if (p === '/token/revocation') op.revocationCalls += 1;
            if (p.startsWith('/session/end') && !p.includes('success')) op.endSessionCalls += 1;
            // Whether the answer reached the client: 'finish' only fires once it was written.
            let use = null;
            let closed = false;
            if (ctx.method === 'POST' && p === '/token') {
                ctx.res.once('close', () => {
                    closed = true;
                    if (use) use.delivered = ctx.res.writableFinished;
                });
            }
            await next();
            if (ctx.method === 'POST' && p === '/request') {
                const authz = ctx.get('authorization') || '';
                op.parRequests.push({
                    params: { ...(ctx.oidc?.params || {}) },
                    status: ctx.status,
                    clientAuth: /^basic /i.test(authz) ? 'client_secret_basic'
                        : (ctx.oidc?.params?.client_secret ? 'client_secret_post' : 'other'),
                });
            }
            if (ctx.method === 'POST' && p === '/token/revocation') {
                const rp = ctx.oidc?.params || {};
                op.revocations.push({
                    token: rp.token, tokenTypeHint: rp.token_type_hint, status: ctx.status,
                    clientAssertion: rp.client_assertion,
                });
            }
            if (ctx.method !== 'POST' || p !== '/token') return;
            const params = ctx.oidc?.params || {};
            const grantType = params.grant_type || 'unknown';
            op.tokenCalls.total += 1;
            op.tokenCalls[grantType] = (op.tokenCalls[grantType] || 0) + 1;
            const authz = ctx.get('authorization') || '';
            op.tokenRequests.push({
                grantType,
                clientAuth: /^basic /i.test(authz) ? 'client_secret_basic'
                    : (params.client_secret ? 'client_secret_post'
                        : (params.client_assertion ? 'private_key_jwt' : 'other')),
                // private_key_jwt: the signed client assertion (RFC 7523).
                clientAssertion: params.client_assertion,
                hasCodeVerifier: Boolean(params.code_verifier),
                userAgent: ctx.get('user-agent'),
                // The PKCE verifier itself, for "never logged" checks.
                codeVerifier: params.code_verifier,
                status: ctx.status,
                // The refresh token presented (refresh_token grant), for reuse checks.
                refreshToken: params.refresh_token,
                error: ctx.status === 200 ? undefined : ctx.body?.error,
                errorDescription: ctx.status === 200 ? undefined : ctx.body?.error_description,
            });
            if (grantType === 'refresh_token' && typeof params.refresh_token === 'string') {
                use = {
                    at: Date.now(),
                    status: ctx.status,
                    error: ctx.status === 200 ? undefined : ctx.body?.error,
                    // Settled at 'close'; false now if the client is already gone.
                    delivered: closed ? false : undefined,
                };
                const uses = op.refreshUses.get(params.refresh_token) || [];
                uses.push(use);
                op.refreshUses.set(params.refresh_token, uses);
            }
            const body = ctx.body;
            if (ctx.status !== 200 || !body || typeof body !== 'object') return;
            const ents = ctx.oidc?.entities || {};
            const owner = ents.Account?.accountId ?? ents.RefreshToken?.accountId
                ?? ents.AuthorizationCode?.accountId;
            if (body.access_token) op.issued.access.push(body.access_token);
            if (body.refresh_token) op.issued.refresh.push(body.refresh_token);
            for (const t of [body.access_token, body.refresh_token]) {
                if (t && owner !== undefined) op.owners.set(t, owner);
            }
            if (body.id_token && typeof op.tamper === 'function') {
                const { header, claims } = decodeJwt(body.id_token);
                const out = op.tamper({ ...claims }, { ...header });
                if (out) {
                    const h = out.header || header;
                    const c = out.claims || claims;
                    const k = out.key === undefined ? op.keys[0].keyObject : out.key;
                    let jwt = signJwt(h, c, k);
                    if (out.corruptSignature) {
                        const i = jwt.lastIndexOf('.') + 1;
                        const sig = Buffer.from(jwt.slice(i), 'base64url');
                        sig[0] ^= 0x5a;
                        sig[sig.length - 1] ^= 0xa5;
                        jwt = jwt.slice(0, i) + b64u(sig);
                    }
                    body.id_token = jwt;
                }
            }
            if (typeof op.tamperTokens === 'function') op.tamperTokens(body, grantType);
            if (body.id_token) op.issued.id.push(body.id_token);
            const ms = op.tokenDelay?.[grantType];
            if (ms) {
                op.tokenDelayed += 1;
                await new Promise((resolve) => setTimeout(resolve, ms));
            }
        });
    }

    // Koa middleware: discovery at other paths (BFFProviderMetadataURL) and
    // the userinfo fault injector. Registered after observe().
    function discoveryAndUserinfo(provider) {
        provider.use(async (ctx, next) => {
            const alias = ctx.method === 'GET' ? op.metadataAliases.get(ctx.path) : undefined;
            if (alias) {
                ctx.path = '/.well-known/openid-configuration';
                await next();
                if (ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
                    ctx.body = { ...ctx.body, ...alias };
                }
                return;
            }
            if (ctx.path !== '/me') {
                await next();
                return;
            }
            op.userinfoCalls += 1;
            const fault = op.userinfoFault;
            if (fault?.status) {
                ctx.status = fault.status;
                ctx.body = { error: 'temporarily_unavailable' };
                return;
            }
            if (fault?.hangMs) {
                await new Promise((resolve) => setTimeout(resolve, fault.hangMs));
            }
            await next();
            if (typeof fault?.claims === 'function' && ctx.status === 200
                && ctx.body && typeof ctx.body === 'object') {
                ctx.body = fault.claims({ ...ctx.body });
            }
        });
    }

    function configuration() {
        return {
            clients: [client],
            jwks: { keys: op.keys.map((k) => k.privateJwk) },
            cookies: { keys: cookieKeys },
            claims: {
                openid: ['sub'],
                email: ['email', 'email_verified'],
                profile: ['name', 'given_name', 'family_name'],
                ...(opts.claims || {}),
            },
            scopes: ['openid', 'offline_access', 'profile', 'email', ...asList(opts.scopes)],
            // Put scope claims into the ID token too (the BFF shows ID token claims).
            conformIdTokenClaims: Boolean(opts.conformIdTokenClaims),
            clockTolerance: opts.clockTolerance ?? 0,
            pkce: { required: () => true },
            ...(opts.clientAuthSigningAlgs
                ? { enabledJWA: { clientAuthSigningAlgValues: opts.clientAuthSigningAlgs } } : {}),
            features: {
                devInteractions: { enabled: false },
                revocation: { enabled: true },
                ...(opts.userinfoSignedAlg ? { jwtUserinfo: { enabled: true } } : {}),
                backchannelLogout: { enabled: true },
                // RFC 9126: on by default in oidc-provider 9 (metadata lists the
                // endpoint); pushedAuthorizationRequests: false takes it away,
                // requirePushedAuthorizationRequests: true makes it mandatory.
                pushedAuthorizationRequests: {
                    enabled: opts.pushedAuthorizationRequests ?? true,
                    requirePushedAuthorizationRequests: Boolean(opts.requirePushedAuthorizationRequests),
                },
                rpInitiatedLogout: {
                    enabled: true,
                    logoutSource(ctx, form) {
                        ctx.body = page('Sign out', `<h1>Sign out of the test provider?</h1>
${form}
<button id="logout-yes" type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button id="logout-no" type="submit" form="op.logoutForm">No, stay signed in</button>`);
                    },
                    postLogoutSuccessSource(ctx) {
                        ctx.body = page('Signed out', '<h1 id="signed-out">Signed out</h1>');
                    },
                },
            },
            issueRefreshToken: async (ctx, c) => c.grantTypeAllowed('refresh_token'),
            rotateRefreshToken: () => Boolean(opts.rotateRefreshToken),
            ttl: {
                AccessToken: opts.accessTokenTTL ?? 600,
                AuthorizationCode: 60,
                IdToken: opts.idTokenTTL ?? 3600,
                RefreshToken: opts.refreshTokenTTL ?? 86400,
                Interaction: 600,
                Session: 86400,
                Grant: 86400,
            },
            interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
            async findAccount(ctx, sub) {
                const acct = Object.hasOwn(accounts, sub) ? accounts[sub] : null;
                if (!acct) return undefined;
                return { accountId: sub, claims: async () => ({ ...acct.claims }) };
            },
            renderError(ctx, out) {
                ctx.type = 'html';
                ctx.body = page('Error', `<h1>Error</h1><pre id="error">${escapeHtml(JSON.stringify(out, null, 2))}</pre>`);
            },
            fetch: makeFetch(ca),
        };
    }

    async function grantFor(provider, details, accountId) {
        const { params } = details;
        let grant;
        if (details.grantId) grant = await provider.Grant.find(details.grantId);
        if (!grant || grant.accountId !== accountId) {
            grant = new provider.Grant({ accountId, clientId: params.client_id });
        }
        if (params.scope) grant.addOIDCScope(String(params.scope));
        // RFC 8707 (opts.resourceServers): each resource the login asked for
        // is granted with its server's scopes.
        for (const res of [params.resource || []].flat()) {
            const rs = opts.resourceServers?.[res];
            if (rs) grant.addResourceScope(res, rs.scope || '');
        }
        if (params.claims) {
            try {
                const req = JSON.parse(params.claims);
                const names = [...Object.keys(req.id_token || {}), ...Object.keys(req.userinfo || {})];
                if (names.length) grant.addOIDCClaims(names);
            } catch { /* malformed claims: the provider rejects those itself */ }
        }
        return grant.save();
    }

    async function interaction(provider, req, res, uid) {
        let details;
        try {
            details = await provider.interactionDetails(req, res);
        } catch (e) {
            sendHtml(res, 400, page('Error', `<h1>Interaction expired or unknown</h1><p>${escapeHtml(e.message)}</p>`));
            return;
        }
        if (details.uid !== uid) {
            sendHtml(res, 400, page('Error', '<h1>Interaction mismatch</h1>'));
            return;
        }
        const clientId = details.params.client_id;
        if (req.method === 'GET') {
            if (details.prompt.name === 'login') {
                sendHtml(res, 200, loginPage(uid, clientId));
                return;
            }
            // Already signed in; consent is implied for the test client.
            const accountId = details.session?.accountId;
            const grantId = await grantFor(provider, details, accountId);
            await provider.interactionFinished(req, res, { consent: { grantId } });
            return;
        }
        if (req.method !== 'POST') {
            res.statusCode = 405;
            res.end();
            return;
        }
        const form = new URLSearchParams(await readBody(req));
        if (form.get('cancel')) {
            await provider.interactionFinished(req, res, {
                error: 'access_denied', error_description: 'End-User aborted interaction',
            }, { mergeWithLastSubmission: false });
            return;
        }
        const username = form.get('username') || '';
        const acct = Object.hasOwn(accounts, username) ? accounts[username] : null;
        if (!acct || form.get('password') !== acct.password) {
            sendHtml(res, 200, loginPage(uid, clientId, 'Invalid username or password.'));
            return;
        }
        const grantId = await grantFor(provider, details, username);
        await provider.interactionFinished(req, res, {
            login: { accountId: username },
            consent: { grantId },
        }, { mergeWithLastSubmission: false });
    }

    // The client credentials grant (opts.clientCredentials), on top of the
    // configuration, and op.grantOf: access token -> { grantType, scope } for
    // every access token the token endpoint issued.
    op.grantOf = new Map();
    function withClientCredentials(conf) {
        if (!opts.clientCredentials) return conf;
        conf.features.clientCredentials = { enabled: true };
        const ttl = opts.clientCredentialsTTL ?? 600;
        conf.ttl.ClientCredentials = typeof ttl === 'function' ? (ctx, token) => ttl(token.scope) : ttl;
        for (const c of conf.clients) {
            if (!c.grant_types.includes('client_credentials')) c.grant_types.push('client_credentials');
        }
        return conf;
    }
    function observeGrants(provider) {
        provider.use(async (ctx, next) => {
            await next();
            if (ctx.method !== 'POST' || ctx.path !== '/token' || ctx.status !== 200) return;
            const body = ctx.body;
            if (!body || typeof body !== 'object' || !body.access_token) return;
            op.grantOf.set(body.access_token, {
                grantType: ctx.oidc?.params?.grant_type,
                scope: body.scope,
            });
        });
    }

    // Resource indicators (RFC 8707, opts.resourceServers: { <resource URI>:
    // { scope, ttl } }): access tokens for a resource are JWTs whose aud is
    // the resource; a resource not listed is refused (invalid_target).
    // op.resourceRequests: every refresh_token request that carried a
    // resource or scope: { resource, scope, status, error, accessToken }.
    op.resourceRequests = [];
    function withResourceIndicators(conf) {
        const servers = opts.resourceServers;
        if (!servers) return conf;
        conf.features.resourceIndicators = {
            enabled: true,
            defaultResource: () => undefined,
            useGrantedResource: () => false,
            async getResourceServerInfo(ctx, resource) {
                const rs = servers[resource];
                if (!rs) {
                    const { errors } = await import('oidc-provider');
                    throw new errors.InvalidTarget();
                }
                return {
                    scope: rs.scope || '',
                    audience: resource,
                    accessTokenFormat: 'jwt',
                    accessTokenTTL: rs.ttl ?? 600,
                };
            },
        };
        return conf;
    }
    function observeResources(provider) {
        if (!opts.resourceServers) return;
        provider.use(async (ctx, next) => {
            await next();
            const params = ctx.oidc?.params || {};
            if (ctx.method !== 'POST' || ctx.path !== '/token' || params.grant_type !== 'refresh_token'
                || (!params.resource && !params.scope)) return;
            op.resourceRequests.push({
                resource: params.resource, scope: params.scope, status: ctx.status,
                error: ctx.status === 200 ? undefined : ctx.body?.error,
                accessToken: ctx.status === 200 ? ctx.body?.access_token : undefined,
            });
        });
    }

    function build() {
        const provider = new Provider(issuer, withResourceIndicators(withClientCredentials(configuration())));
        observeResources(provider);
        observe(provider);
        discoveryAndUserinfo(provider);
        observeGrants(provider);
        // oidc-provider emits (ctx, client, accountId, sid) and (ctx, err, client, accountId, sid).
        provider.on('backchannel.success', (ctx, c, accountId, sid) => {
            op.backchannelLogouts.push({ sub: accountId, sid, ok: true });
        });
        provider.on('backchannel.error', (ctx, e, c, accountId, sid) => {
            op.backchannelLogouts.push({ sub: accountId, sid, ok: false, error: e?.message });
        });
        if (!opts.quiet) {
            for (const ev of ['server_error', 'grant.error', 'backchannel.error']) {
                provider.on(ev, (ctx, err) => {
                    const e = err instanceof Error ? err : ctx;
                    console.error(`[provider] ${ev}: ${e?.message || e}`);
                });
            }
        }
        const cb = provider.callback();
        const handler = (req, res) => {
            const m = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(new URL(req.url, issuer).pathname);
            if (!m) {
                cb(req, res);
                return;
            }
            interaction(provider, req, res, m[1]).catch((e) => {
                if (!opts.quiet) console.error(`[provider] interaction: ${e.stack || e}`);
                if (!res.headersSent) sendHtml(res, 500, page('Error', '<h1>Internal error</h1>'));
                else res.destroy();
            });
        };
        return { provider, handler };
    }

    let currentHandler = null;

    /** (Re)build the provider unless `reuse`, and serve it on the port. */
    async function listen(reuse = false) {
        const { provider, handler } = reuse && currentHandler
            ? { provider: op.provider, handler: currentHandler } : build();
        currentHandler = handler;
        const server = https.createServer({ cert, key }, handler);
        await new Promise((resolve, reject) => {
            server.once('error', reject);
            server.listen(port, host, () => {
                server.off('error', reject);
                resolve();
            });
        });
        op.provider = provider;
        op.server = server;
    }

    async function closeServer() {
        const server = op.server;
        if (!server) return;
        op.server = null;
        await new Promise((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
        });
    }

    /**
     * Restart on the same port with a new signing key first and the old one
     * second (a new kid), the way a provider rotates keys. Returns the new kid.
     */
    op.rotateKeys = async () => {
        op.keys = [generateSigningKey(), op.keys[0]];
        await closeServer();
        await listen();
        return op.keys[0].kid;
    };
    op.close = closeServer;
    /**
     * Listen again on the same port (after close(), or now): the same
     * provider instance, so keys, grants, sessions and tokens survive, as
     * with a provider that keeps its state in a database.
     */
    op.restart = async () => {
        await closeServer();
        await listen(true);
    };
    /**
     * Revoke (destroy) every grant of `sub` that a refresh token issued so far
     * belongs to, as an administrator revoking a user's sessions would: the
     * next refresh with any of those tokens fails with invalid_grant. Returns
     * how many grants were destroyed.
     */
    op.revokeGrants = async (sub) => {
        const p = op.provider;
        const grantIds = new Set();
        for (const value of op.issued.refresh) {
            const rt = await p.RefreshToken.find(value, { ignoreExpiration: true });
            if (rt && rt.accountId === sub && rt.grantId) grantIds.add(rt.grantId);
        }
        let n = 0;
        for (const id of grantIds) {
            const g = await p.Grant.find(id);
            if (g) {
                await g.destroy();
                n += 1;
            }
        }
        return n;
    };
    /** Every token value issued so far (for "no token leaks" checks). */
    op.allTokens = () => [...op.issued.access, ...op.issued.refresh, ...op.issued.id];

    await listen();
    return op;
}

// ---------------------------------------------------------------------------
// CLI

function parseArgs(argv) {
    const out = {};
    for (let i = 0; i < argv.length; i += 1) {
        const a = argv[i];
        if (!a.startsWith('--')) throw new Error(`unexpected argument: ${a}`);
        const [k, inline] = a.slice(2).split('=', 2);
        const v = inline !== undefined ? inline : argv[++i];
        if (v === undefined) throw new Error(`missing value for --${k}`);
        const name = k.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
        if (out[name] === undefined) out[name] = v;
        else out[name] = [].concat(out[name], v);
    }
    return out;
}

const USAGE = `usage: node provider.js --port N [--host 127.0.0.1] --cert CERT.pem --key KEY.pem
       --client-id ID --client-secret SECRET --redirect-uri URI
       [--post-logout-redirect-uri URI] [--backchannel-logout-uri URI] [--ca CA.pem]
       [--client-auth client_secret_basic|client_secret_post] [--rotate-refresh-token]
       [--access-token-ttl SECONDS] [--resource URI]
  --resource URI: resource indicators on (RFC 8707), URI a resource server with
  scope "api" whose access tokens are JWTs (they live --access-token-ttl seconds too)`;

async function main() {
    let a;
    try {
        const argv = process.argv.slice(2).flatMap((x) => (x === '--rotate-refresh-token' ? [x, '1'] : [x]));
        a = parseArgs(argv);
        if (a.help || !a.port || !a.cert || !a.key || !a.clientId || !a.clientSecret || !a.redirectUri) {
            throw new Error('missing required option');
        }
    } catch (e) {
        console.error(`${e.message}\n${USAGE}`);
        process.exit(2);
    }
    const op = await startProvider({
        port: Number(a.port),
        host: a.host,
        cert: path.resolve(a.cert),
        key: path.resolve(a.key),
        ca: a.ca ? path.resolve(a.ca) : undefined,
        clientId: a.clientId,
        clientSecret: a.clientSecret,
        clientAuth: a.clientAuth,
        redirectUri: a.redirectUri,
        postLogoutRedirectUri: a.postLogoutRedirectUri,
        backchannelLogoutUri: a.backchannelLogoutUri,
        rotateRefreshToken: Boolean(a.rotateRefreshToken),
        accessTokenTTL: a.accessTokenTtl ? Number(a.accessTokenTtl) : undefined,
        // The demo's API (build/demo.sh): JWT access tokens it can show decoded.
        ...(a.resource ? {
            resourceServers: Object.fromEntries([a.resource].flat().map((r) => [r, { scope: 'api' }])),
            scopes: ['api'],
        } : {}),
        quiet: false,
    });
    console.log(op.issuer);
    const stop = () => op.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    main().catch((e) => {
        console.error(e.stack || String(e));
        process.exit(1);
    });
}
