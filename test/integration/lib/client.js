// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// A scripted browser for the integration tests: HTTPS client that trusts the
// test CA, a cookie jar that models host-only vs domain cookies, paths,
// Secure, expiry, the __Host-/__Secure- prefixes and SameSite (so the site on
// localhost and the provider on 127.0.0.1 keep their cookies apart and a
// cross-site navigation does not carry Strict cookies), and a helper that walks
// a complete login. Redirects are never followed automatically.

import https from 'node:https';
import net from 'node:net';

// ---------------------------------------------------------------------------
// Cookie jar (RFC 6265 storage model, trimmed to what the tests need)

function defaultPath(pathname) {
    if (!pathname.startsWith('/')) return '/';
    const i = pathname.lastIndexOf('/');
    return i <= 0 ? '/' : pathname.slice(0, i);
}

function domainMatch(host, domain) {
    if (host === domain) return true;
    return !net.isIP(host) && host.endsWith(`.${domain}`);
}

function pathMatch(reqPath, cookiePath) {
    if (reqPath === cookiePath) return true;
    if (!reqPath.startsWith(cookiePath)) return false;
    return cookiePath.endsWith('/') || reqPath[cookiePath.length] === '/';
}

/** The "site" for SameSite purposes: scheme + registrable host (host here). */
export function siteOf(url) {
    const u = new URL(url);
    return `${u.protocol}//${u.hostname}`;
}

/** Parse one Set-Cookie header into { name, value, attrs: Map(lowercase name -> value|true) }. */
export function parseSetCookie(header) {
    const parts = header.split(';');
    const first = parts.shift();
    const eq = first.indexOf('=');
    if (eq < 0) return null;
    const attrs = new Map();
    const attrList = [];
    for (const p of parts) {
        const i = p.indexOf('=');
        const k = (i < 0 ? p : p.slice(0, i)).trim();
        const v = i < 0 ? true : p.slice(i + 1).trim();
        if (!k) continue;
        attrs.set(k.toLowerCase(), v);
        attrList.push([k, v]);
    }
    return { name: first.slice(0, eq).trim(), value: first.slice(eq + 1).trim(), attrs, attrList };
}

export class CookieJar {
    constructor() {
        this.cookies = [];
        this.seq = 0;
    }

    /** Store the Set-Cookie headers of a response to `url`, as a browser would. */
    store(url, setCookies) {
        const u = new URL(url);
        const host = u.hostname.toLowerCase();
        const now = Date.now();
        for (const header of setCookies || []) {
            const c = parseSetCookie(header);
            if (!c || !c.name) continue;
            let domain = host;
            let hostOnly = true;
            const d = c.attrs.get('domain');
            if (typeof d === 'string' && d !== '') {
                const dd = d.replace(/^\./, '').toLowerCase();
                if (!domainMatch(host, dd)) continue; // browsers reject it
                domain = dd;
                // On an IP address a Domain attribute can only name the host itself.
                hostOnly = Boolean(net.isIP(host));
            }
            const p = c.attrs.get('path');
            const cpath = typeof p === 'string' && p.startsWith('/') ? p : defaultPath(u.pathname);
            const secure = c.attrs.has('secure');
            if (secure && u.protocol !== 'https:') continue;
            if (c.name.startsWith('__Secure-') && !secure) continue;
            if (c.name.startsWith('__Host-')
                && (!secure || c.attrs.has('domain') || cpath !== '/')) continue;
            let expires = Infinity;
            const ma = c.attrs.get('max-age');
            const ex = c.attrs.get('expires');
            if (typeof ma === 'string' && /^-?\d+$/.test(ma)) {
                expires = Number(ma) <= 0 ? 0 : now + Number(ma) * 1000;
            } else if (typeof ex === 'string') {
                const t = Date.parse(ex);
                if (!Number.isNaN(t)) expires = t;
            }
            const ss = c.attrs.get('samesite');
            const sameSite = typeof ss === 'string' ? ss.toLowerCase() : 'lax';
            const idx = this.cookies.findIndex((x) => x.name === c.name && x.domain === domain
                && x.path === cpath);
            const created = idx >= 0 ? this.cookies[idx].created : ++this.seq;
            if (idx >= 0) this.cookies.splice(idx, 1);
            if (expires <= now) continue;
            this.cookies.push({
                name: c.name, value: c.value, domain, hostOnly, path: cpath, secure,
                httpOnly: c.attrs.has('httponly'), sameSite, expires, created,
            });
        }
    }

    /**
     * Cookies to send to `url`. crossSite: the request's initiator (or a hop
     * of its redirect chain) is another site; then Strict cookies stay home and
     * Lax ones go only with top-level GET navigations.
     */
    cookiesFor(url, { crossSite = false, method = 'GET', topLevel = true } = {}) {
        const u = new URL(url);
        const host = u.hostname.toLowerCase();
        const now = Date.now();
        this.cookies = this.cookies.filter((c) => c.expires > now);
        return this.cookies
            .filter((c) => (c.hostOnly ? host === c.domain : domainMatch(host, c.domain)))
            .filter((c) => pathMatch(u.pathname, c.path))
            .filter((c) => !c.secure || u.protocol === 'https:')
            .filter((c) => {
                if (!crossSite || c.sameSite === 'none') return true;
                if (c.sameSite === 'strict') return false;
                return topLevel && ['GET', 'HEAD'].includes(method.toUpperCase());
            })
            .sort((a, b) => b.path.length - a.path.length || a.created - b.created);
    }

    header(url, opts) {
        return this.cookiesFor(url, opts).map((c) => `${c.name}=${c.value}`).join('; ');
    }

    /** The stored cookie `name` visible to `url` (or on any host if url is omitted). */
    get(name, url) {
        if (url) return this.cookiesFor(url).find((c) => c.name === name) || null;
        return this.cookies.find((c) => c.name === name) || null;
    }

    /** Set a cookie directly (as if a previous response had set it). */
    set(url, name, value, attrs = '; Path=/; Secure; HttpOnly; SameSite=Strict') {
        this.store(url, [`${name}=${value}${attrs}`]);
    }

    delete(name) {
        this.cookies = this.cookies.filter((c) => c.name !== name);
    }
}

// ---------------------------------------------------------------------------
// HTML helpers

export function decodeEntities(s) {
    return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (m, e) => {
        const l = e.toLowerCase();
        if (l === 'amp') return '&';
        if (l === 'lt') return '<';
        if (l === 'gt') return '>';
        if (l === 'quot') return '"';
        if (l === 'apos') return "'";
        if (l.startsWith('#x')) return String.fromCodePoint(parseInt(l.slice(2), 16));
        return String.fromCodePoint(parseInt(l.slice(1), 10));
    });
}

/** URL of a `<meta http-equiv="refresh" content="0;url=...">`, or null. */
export function metaRefreshUrl(html) {
    const tags = html.match(/<meta\b[^>]*>/gi) || [];
    for (const tag of tags) {
        if (!/http-equiv\s*=\s*["']?refresh/i.test(tag)) continue;
        const m = /content\s*=\s*("([^"]*)"|'([^']*)')/i.exec(tag);
        if (!m) continue;
        const content = decodeEntities(m[2] ?? m[3]);
        const u = /^\s*\d+\s*;\s*url\s*=\s*(.*)$/i.exec(content);
        if (u) return u[1].trim().replace(/^(["'])(.*)\1$/, '$2');
    }
    return null;
}

function formFields(html) {
    const fields = {};
    for (const tag of html.match(/<input\b[^>]*>/gi) || []) {
        const name = /name\s*=\s*"([^"]*)"/i.exec(tag);
        const value = /value\s*=\s*"([^"]*)"/i.exec(tag);
        if (name) fields[decodeEntities(name[1])] = value ? decodeEntities(value[1]) : '';
    }
    return fields;
}

function formAction(html) {
    const m = /<form\b[^>]*\baction\s*=\s*"([^"]*)"/i.exec(html);
    return m ? decodeEntities(m[1]) : null;
}

// ---------------------------------------------------------------------------

export class LoginError extends Error {
    constructor(message, steps) {
        const last = steps[steps.length - 1];
        const detail = last ? ` (last: ${last.method} ${last.url} -> ${last.status}` +
            ` ${String(last.body).slice(0, 300).replace(/\s+/g, ' ')})` : '';
        super(message + detail);
        this.steps = steps;
    }
}

export class Client {
    /** ca: PEM text of the test CA; jar: share one to model tabs of one browser. */
    constructor({ ca, jar = new CookieJar(), timeout = 15000 } = {}) {
        this.jar = jar;
        // No keep-alive: servers restart under the tests (graceful, key rotation).
        this.agent = new https.Agent({ ca, keepAlive: false });
        this.timeout = timeout;
    }

    close() {
        this.agent.destroy();
    }

    /**
     * One request, no redirect following. Options: method, headers, body
     * (string/Buffer), form (object -> urlencoded), cookies (false: do not send
     * jar cookies), cookie (explicit Cookie header), crossSite, topLevel, store
     * (false: do not store Set-Cookie). Returns { status, headers, body,
     * setCookies, location, url, method, json() }.
     */
    request(url, opts = {}) {
        const method = (opts.method || 'GET').toUpperCase();
        const headers = { ...(opts.headers || {}) };
        let body = opts.body;
        if (opts.form) {
            body = new URLSearchParams(opts.form).toString();
            headers['content-type'] = 'application/x-www-form-urlencoded';
        }
        const hasCookieHeader = Object.keys(headers).some((k) => k.toLowerCase() === 'cookie');
        if (opts.cookie !== undefined) {
            headers.cookie = opts.cookie;
        } else if (opts.cookies !== false && !hasCookieHeader) {
            const c = this.jar.header(url, { crossSite: opts.crossSite, method, topLevel: opts.topLevel ?? true });
            if (c) headers.cookie = c;
        }
        if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
        return new Promise((resolve, reject) => {
            const req = https.request(url, { method, headers, agent: this.agent, timeout: this.timeout }, (res) => {
                const chunks = [];
                res.on('data', (c) => chunks.push(c));
                res.on('end', () => {
                    const text = Buffer.concat(chunks).toString('utf8');
                    const setCookies = res.headers['set-cookie'] || [];
                    if (opts.store !== false) this.jar.store(url, setCookies);
                    const loc = res.headers.location;
                    resolve({
                        url,
                        method,
                        status: res.statusCode,
                        headers: res.headers,
                        rawHeaders: res.rawHeaders,
                        body: text,
                        setCookies,
                        location: loc ? new URL(loc, url).href : null,
                        rawLocation: loc ?? null,
                        json() {
                            return JSON.parse(text);
                        },
                    });
                });
                res.on('error', reject);
            });
            req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${url}`)));
            req.on('error', reject);
            if (body !== undefined) req.write(body);
            req.end();
        });
    }

    get(url, opts = {}) {
        return this.request(url, { ...opts, method: 'GET' });
    }

    post(url, form, opts = {}) {
        return this.request(url, { ...opts, method: 'POST', form });
    }

    /**
     * Walk a login the way a browser does: GET startUrl (/bff/login?...) ->
     * 302 to the provider's authorization endpoint -> interaction login form
     * -> POST credentials -> provider redirects -> (cross-site) GET
     * /bff/callback -> follow the meta refresh (same-site) to the return URL.
     *
     * Options: username, password, cancel (press Cancel on the login form),
     * start (a response of an earlier GET startUrl, to continue from it),
     * stopAtCallback (return before requesting the callback). Returns { start, authorizeUrl, callbackUrl, callback,
     * final, returnTo, sessionCookie, steps }.
     */
    async followLogin(startUrl, opts = {}) {
        const username = opts.username ?? 'alice';
        const password = opts.password ?? 'alice-pass';
        const siteOrigin = new URL(startUrl).origin;
        const steps = [];
        const start = opts.start || await this.get(startUrl);
        steps.push(start);
        if (start.status !== 302 || !start.location) {
            throw new LoginError('login endpoint did not redirect', steps);
        }
        const authorizeUrl = start.location;
        // Navigation state: the initiator's site and the sites of the redirect chain.
        let chainSites = new Set([siteOf(startUrl)]);
        let url = authorizeUrl;
        let method = 'GET';
        let form;
        let posted = false;
        let callbackUrl = null;
        for (let hop = 0; hop < 15; hop += 1) {
            if (new URL(url).origin === siteOrigin) {
                callbackUrl = url;
                break;
            }
            chainSites.add(siteOf(url));
            const crossSite = chainSites.size > 1;
            const r = await this.request(url, { method, form, crossSite });
            steps.push(r);
            form = undefined;
            method = 'GET';
            if ([301, 302, 303, 307].includes(r.status) && r.location) {
                url = r.location;
                continue;
            }
            if (r.status === 200 && /<form\b[^>]*id="login"/i.test(r.body) && !posted) {
                const action = formAction(r.body);
                if (!action) throw new LoginError('login form without action', steps);
                form = opts.cancel ? { cancel: '1' } : { ...formFields(r.body), username, password };
                url = new URL(action, url).href;
                method = 'POST';
                posted = true;
                // A form submitted from the provider's page: a new navigation.
                chainSites = new Set([siteOf(r.url)]);
                continue;
            }
            throw new LoginError('unexpected provider response', steps);
        }
        if (!callbackUrl) throw new LoginError('provider never redirected back', steps);
        // The provider's redirect back is a cross-site navigation.
        chainSites.add(siteOf(callbackUrl));
        const callbackCrossSite = chainSites.size > 1;
        const result = {
            start, authorizeUrl, callbackUrl, callbackCrossSite, steps, callback: null, final: null,
        };
        if (opts.stopAtCallback) return result;
        const callback = await this.get(callbackUrl, { crossSite: callbackCrossSite });
        steps.push(callback);
        result.callback = callback;
        if (callback.status !== 200) throw new LoginError('callback failed', steps);
        const refresh = metaRefreshUrl(callback.body);
        if (!refresh) throw new LoginError('callback page has no meta refresh', steps);
        result.returnTo = refresh;
        const sc = callback.setCookies.map(parseSetCookie).find((c) => c && !/-tx($|\.)/.test(c.name)
            && c.value !== '');
        result.sessionCookie = sc ? sc.value : null;
        // The meta refresh is a navigation initiated by the site's own page.
        const final = await this.get(new URL(refresh, callbackUrl).href, { crossSite: false });
        steps.push(final);
        result.final = final;
        return result;
    }
}
