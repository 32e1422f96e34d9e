// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// The demo SPA. It never sees a token: it asks the BFF (/bff/user) who is
// logged in, and the browser sends the HttpOnly session cookie by itself.
// Everything is written with textContent, never innerHTML: claims come from
// the identity provider and are data, not markup.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const SECTIONS = ['anon', 'user', 'error'];
  let ticker = null;

  function show(which, status) {
    for (const id of SECTIONS) $(id).hidden = id !== which;
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

  // Only same-origin relative paths are followed; anything else from the
  // server would be a bug, not a place to send the user.
  function safePath(p) {
    return typeof p === 'string' && p.startsWith('/') && !p.startsWith('//') &&
      !p.includes('\\') ? p : null;
  }

  function claimValue(name, v) {
    if (v === null || typeof v !== 'object') {
      const text = String(v);
      if (typeof v === 'number' && ['exp', 'iat', 'auth_time', 'nbf', 'updated_at'].includes(name)) {
        return text + '  (' + new Date(v * 1000).toISOString() + ')';
      }
      return text;
    }
    return JSON.stringify(v);
  }

  function render(u) {
    const claims = (u && typeof u.claims === 'object' && u.claims) || {};
    $('name').textContent = claims.name || claims.preferred_username || u.sub || '(no name)';
    $('email').textContent = claims.email || '(none)';
    $('sub').textContent = u.sub || claims.sub || '';

    const body = $('claims').tBodies[0];
    body.replaceChildren();
    for (const name of Object.keys(claims).sort()) {
      const row = body.insertRow();
      row.insertCell().textContent = name;
      row.insertCell().textContent = claimValue(name, claims[name]);
    }

    const logout = safePath(u.logoutUrl);
    $('logout').hidden = logout === null;
    if (logout !== null) $('logout').href = logout;

    show('user', 'You are logged in.');
    startTicker(Number(u.sessionExpiresIn), Number(u.idleExpiresIn));
  }

  async function load() {
    let res;
    try {
      res = await fetch('/bff/user', {
        method: 'GET',
        // The BFF refuses session calls without this header: a cross-site
        // page cannot add it without a CORS preflight, which is the CSRF defence.
        headers: { 'X-CSRF': '1', 'Accept': 'application/json' },
        credentials: 'same-origin',
        cache: 'no-store',
        redirect: 'error',
      });
    } catch (e) {
      fail('Cannot reach /bff/user: ' + e.message);
      return;
    }
    if (res.status === 401) {
      stopTicker();
      show('anon', 'Not logged in.');
      return;
    }
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const why = data && typeof data.error === 'string' ? data.error : res.statusText;
      fail('/bff/user answered ' + res.status + ' (' + why + ').');
      return;
    }
    if (data === null) {
      fail('/bff/user did not answer JSON.');
      return;
    }
    render(data);
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('reload').addEventListener('click', load);
    $('retry').addEventListener('click', load);
    load();
  });
})();
