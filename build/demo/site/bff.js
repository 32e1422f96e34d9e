// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// bff.js: what a single-page app needs to talk to mod_bff. Copy it into your
// app (an ES module, no dependencies); docs/spa.md shows it with a Vite or
// Angular dev server in front of httpd.
//
//   import { bffFetch, getUser, login, logout } from './bff.js';
//   const user = await getUser();          // null: not logged in
//   if (!user) login();                    // to the provider and back here
//   const res = await bffFetch('/api/orders');   // X-CSRF added; 401 -> login
//   logout(user);                          // ends the session at httpd and the provider
//
// The app never sees a token: the browser sends the HttpOnly session cookie by
// itself, and httpd adds the access token on its way to the API.

const settings = {
    // Where `SetHandler bff` is (<Location /bff>).
    base: '/bff',
    // BFFCSRFHeader: the header every /bff and API call carries; a cross-site
    // page cannot send it without a CORS preflight, which httpd never grants.
    csrfHeader: 'X-CSRF',
    csrfValue: '1',
};

/** Change the defaults above: configureBff({ base: '/auth', csrfHeader: 'X-Requested-With' }). */
export function configureBff(options) {
    Object.assign(settings, options);
}

/** Thrown by bffFetch after it started a login navigation for a 401. */
export class BffLoginStarted extends Error {
    constructor() {
        super('not logged in: the browser is on its way to the login');
        this.name = 'BffLoginStarted';
    }
}

// The page to come back to after a login: this page. `returnTo` must be a
// same-origin path of at most 512 bytes; anything else falls back to "/".
function herePath() {
    const p = window.location.pathname + window.location.search;
    return p.length <= 512 ? p : '/';
}

/** The login URL that brings the browser back to returnTo (default: this page). */
export function loginUrl(returnTo = herePath()) {
    return `${settings.base}/login?returnTo=${encodeURIComponent(returnTo)}`;
}

/** Start a login: a navigation, never a fetch (the provider's page must show). */
export function login(returnTo) {
    window.location.assign(loginUrl(returnTo));
}

function sameOrigin(input) {
    const url = new URL(input instanceof Request ? input.url : String(input), window.location.href);
    return url.origin === window.location.origin;
}

/**
 * fetch() for /bff and the APIs httpd relays: adds the CSRF header and sends
 * the session cookie (same origin only: other origins get a plain fetch, no
 * header, no cookie). A 401 (no session, or it ended) starts a login that
 * comes back to this page and throws BffLoginStarted; pass loginOn401: false
 * to get the 401 response instead.
 */
export async function bffFetch(input, init = {}) {
    const { loginOn401 = true, ...rest } = init;
    if (!sameOrigin(input)) return fetch(input, rest);
    // A Request's own headers count unless init replaces them, as in fetch().
    const headers = new Headers(rest.headers || (input instanceof Request ? input.headers : {}));
    headers.set(settings.csrfHeader, settings.csrfValue);
    const res = await fetch(input, { credentials: 'same-origin', ...rest, headers });
    if (res.status === 401 && loginOn401) {
        login();
        throw new BffLoginStarted();
    }
    return res;
}

/**
 * Who is logged in: /bff/user's answer ({ sub, claims, sessionExpiresIn,
 * idleExpiresIn, logoutUrl }), or null without a session. Other answers
 * (403, 503) throw. slide: false asks without extending the idle timeout (for
 * polling).
 */
export async function getUser({ slide = true } = {}) {
    const res = await bffFetch(`${settings.base}/user${slide ? '' : '?slide=false'}`, {
        loginOn401: false,
        cache: 'no-store',
        headers: { Accept: 'application/json' },
    });
    if (res.status === 401) return null;
    if (!res.ok) {
        let why = res.statusText;
        try {
            const body = await res.json();
            if (body && typeof body.error === 'string') why = body.error;
        } catch { /* not JSON */ }
        throw new Error(`${settings.base}/user answered ${res.status} (${why})`);
    }
    return res.json();
}

/**
 * A same-origin path from the server, or null: nothing else is a place to
 * send the user.
 */
export function safePath(p) {
    return typeof p === 'string' && p.startsWith('/') && !p.startsWith('//') &&
        !p.includes('\\') ? p : null;
}

/** Log out: navigate to the session's logoutUrl (from getUser()). */
export function logout(user) {
    const url = safePath(user && user.logoutUrl);
    if (url === null) throw new Error('no logoutUrl: not logged in');
    window.location.assign(url);
}
