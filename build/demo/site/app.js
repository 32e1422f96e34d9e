// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// The demo SPA. It never sees a token: it asks the BFF (/bff/user, through
// bff.js) who is logged in, the browser sends the HttpOnly session cookie by
// itself, and httpd puts the access token on the calls it relays to /api/.
// The API (build/demo/api.mjs) answers with the request it received, which
// this page shows. Everything is written with textContent, never innerHTML:
// claims come from the identity provider and the API and are data, not markup.

import { bffFetch, getUser, safePath } from './bff.js';

const $ = (id) => document.getElementById(id);
const SECTIONS = ['anon', 'user', 'error'];
const API_URL = '/api/whoami';
const TIME_CLAIMS = ['exp', 'iat', 'auth_time', 'nbf', 'updated_at'];
let ticker = null;
let lastIat = null; // the iat of the last token the API showed
let waiting = false;

function show(which, status) {
    for (const id of SECTIONS) $(id).hidden = id !== which;
    $('api').hidden = which === 'error';
    $('status').textContent = status;
}

function fail(message) {
    stopTicker();
    $('error-text').textContent = message;
    show('error', 'Something went wrong.');
}

function duration(secs) {
    if (!Number.isFinite(secs)) return 'unknown';
    if (secs <= 0) return 'expired';
    const h = Math.floor(secs / 3600);
    const m = Math.floor((secs % 3600) / 60);
    const s = Math.floor(secs % 60);
    const pad = (n) => String(n).padStart(2, '0');
    return (h > 0 ? h + 'h ' : '') + pad(m) + 'm ' + pad(s) + 's';
}

function stopTicker() {
    if (ticker !== null) {
        clearInterval(ticker);
        ticker = null;
    }
}

// Counts down locally; the server is the authority, so once either limit
// runs out, ask it again (it will answer 401 and we show "Log in").
function startTicker(sessionSecs, idleSecs) {
    stopTicker();
    const t0 = Date.now();
    const tick = () => {
        const gone = (Date.now() - t0) / 1000;
        const s = sessionSecs - gone;
        const i = idleSecs - gone;
        $('session-left').textContent = duration(s);
        $('idle-left').textContent = duration(i);
        if (s <= 0 || i <= 0) {
            stopTicker();
            load();
        }
    };
    tick();
    ticker = setInterval(tick, 1000);
}

function claimValue(name, v) {
    if (v === null || typeof v !== 'object') {
        const text = String(v);
        if (typeof v === 'number' && TIME_CLAIMS.includes(name)) {
            return text + '  (' + new Date(v * 1000).toISOString() + ')';
        }
        return text;
    }
    return JSON.stringify(v);
}

function fillClaims(table, claims) {
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const name of Object.keys(claims).sort()) {
        const row = body.insertRow();
        row.insertCell().textContent = name;
        row.insertCell().textContent = claimValue(name, claims[name]);
    }
}

function render(u) {
    const claims = (u && typeof u.claims === 'object' && u.claims) || {};
    $('name').textContent = claims.name || claims.preferred_username || u.sub || '(no name)';
    $('email').textContent = claims.email || '(none)';
    $('sub').textContent = u.sub || claims.sub || '';
    fillClaims($('claims'), claims);

    const logout = safePath(u.logoutUrl);
    $('logout').hidden = logout === null;
    if (logout !== null) $('logout').href = logout;

    show('user', 'You are logged in.');
    startTicker(Number(u.sessionExpiresIn), Number(u.idleExpiresIn));
}

async function load() {
    let user;
    try {
        user = await getUser();
    } catch (e) {
        fail(e.message);
        return;
    }
    if (user === null) {
        stopTicker();
        show('anon', 'Not logged in.');
        return;
    }
    render(user);
}

// ---- the API ----------------------------------------------------------------

// One call to the API; { status, statusText, body (parsed JSON or null) }.
async function callApi(withCsrf) {
    const init = { cache: 'no-store', headers: { Accept: 'application/json' } };
    // Without the CSRF header: a plain fetch, as a page that forgot it (or a
    // cross-site form) would send. With it: bff.js, but show a 401 here
    // instead of starting a login, so the demo can show it.
    const res = withCsrf
        ? await bffFetch(API_URL, { ...init, loginOn401: false })
        : await fetch(API_URL, { ...init, credentials: 'same-origin' });
    let body = null;
    try {
        body = await res.json();
    } catch {
        body = null;
    }
    return { status: res.status, statusText: res.statusText, body };
}

function showApi(label, r) {
    $('api-out').hidden = false;
    $('api-call').textContent = label;
    let status = r.status + ' ' + r.statusText;
    const ok = r.status === 200 && r.body && r.body.api;
    if (!ok && r.body && typeof r.body.error === 'string') {
        status += ' - ' + r.body.error + (typeof r.body.message === 'string' ? ': ' + r.body.message : '');
    }
    $('api-status').textContent = status;
    $('api-view').hidden = !ok;
    $('api-refused').hidden = ok;
    $('api-refused').textContent = ok ? '' : 'httpd answered itself; the API never saw this request.';
    if (!ok) return null;

    const b = r.body;
    $('api-request').textContent = b.method + ' ' + b.path;
    $('api-cookies').textContent = b.cookies.length ? b.cookies.join(', ') : '(none)';
    const auth = b.authorization;
    const token = auth && auth.token;
    if (!auth) {
        $('api-auth').textContent = '(no Authorization header)';
    } else if (!token) {
        $('api-auth').textContent = auth.scheme + ' ' + (auth.note || '');
    } else {
        $('api-auth').textContent = auth.scheme + ' <a JWT: header and claims below>';
    }
    const claims = (token && token.claims) || {};
    $('api-token-header').textContent = token ? JSON.stringify(token.header) : '';
    $('api-iat').textContent = 'iat' in claims ? claimValue('iat', claims.iat) : '(none)';
    $('api-exp').textContent = 'exp' in claims ? claimValue('exp', claims.exp) : '(none)';
    fillClaims($('api-claims'), claims);
    $('api-token').hidden = !token;
    return typeof claims.iat === 'number' ? claims.iat : null;
}

async function onCallApi(withCsrf) {
    const label = withCsrf ? 'GET ' + API_URL + ' with X-CSRF: 1' : 'GET ' + API_URL + ' without X-CSRF';
    try {
        const iat = showApi(label, await callApi(withCsrf));
        if (iat !== null) lastIat = iat;
    } catch (e) {
        fail('Cannot reach ' + API_URL + ': ' + e.message);
    }
}

// httpd refreshes the access token when a relayed call finds it close to its
// expiry (half its lifetime for short-lived tokens). Call the API every few
// seconds until the token it receives was issued later than the last one.
async function onWaitRefresh() {
    if (waiting) return;
    waiting = true;
    const out = $('refresh-status');
    const started = Date.now();
    try {
        const first = await callApi(true);
        let iat = showApi('GET ' + API_URL + ' with X-CSRF: 1', first);
        const from = lastIat !== null ? lastIat : iat;
        if (iat === null || from === null) {
            out.textContent = 'No token to watch (see the answer above).';
            return;
        }
        while (iat === from && Date.now() - started < 180000) {
            const exp = Number(first.body.authorization.token.claims.exp);
            const left = Number.isFinite(exp) ? Math.round(exp - Date.now() / 1000) : NaN;
            out.textContent = 'Waiting for a refresh: the API still gets the token issued at ' +
                new Date(from * 1000).toISOString() + (Number.isFinite(left) ? ' (it expires in ' + left + ' s)' : '') +
                '; calling again every 2 s…';
            await new Promise((r) => setTimeout(r, 2000));
            const r = await callApi(true);
            iat = showApi('GET ' + API_URL + ' with X-CSRF: 1', r);
            if (iat === null) {
                out.textContent = 'The call failed while waiting (see the answer above).';
                return;
            }
        }
        if (iat === from) {
            out.textContent = 'No refresh within 3 minutes.';
            return;
        }
        lastIat = iat;
        out.textContent = 'Refreshed: httpd got a new access token, issued at ' +
            new Date(iat * 1000).toISOString() + ' (iat ' + iat + '; the one before: iat ' + from + ').';
    } catch (e) {
        out.textContent = 'Failed: ' + e.message;
    } finally {
        waiting = false;
    }
}

document.addEventListener('DOMContentLoaded', () => {
    $('reload').addEventListener('click', load);
    $('retry').addEventListener('click', load);
    $('call-api').addEventListener('click', () => onCallApi(true));
    $('call-nocsrf').addEventListener('click', () => onCallApi(false));
    $('wait-refresh').addEventListener('click', onWaitRefresh);
    // The session cookie is HttpOnly: this stays empty however logged in we are.
    $('doc-cookie').textContent = JSON.stringify(document.cookie);
    load();
});
