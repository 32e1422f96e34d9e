// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// AuthType bff as the rest of httpd's request pipeline sees it (issue 11):
// - a CGI script (mod_cgid, a /bin/sh script this file writes into a
//   ScriptAlias directory) gets REMOTE_USER, AUTH_TYPE=bff, BFF_CLAIM_* and
//   BFF_SESSION_EXPIRES_IN; BFFPassClaims none/headers and
//   BFFRemoteUserClaim change what it gets; a refused user never runs it;
// - the session is read from the store once per request, also across an
//   ErrorDocument (internal redirect), SSI includes (subrequests),
//   DirectoryIndex and AuthType bff + BFFTokenRelay: this httpd logs
//   bff:trace1, where each store read is one BFF01390 line naming the
//   initial request's path.
// Users: alice (groups admins, staff), bob (groups staff).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { useEnv } from './lib/env.js';
import { bearerOf, startUpstream } from './lib/upstream.js';

const up = await startUpstream();
after(() => up.close());

// The CGI script: what it was given, one NAME=value a line.
const cgiDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bff-cgi-'));
fs.chmodSync(cgiDir, 0o755);
fs.writeFileSync(path.join(cgiDir, 'env.cgi'), [
    '#!/bin/sh',
    "printf 'Content-Type: text/plain\\n\\n'",
    "env | grep -E '^(REMOTE_USER|AUTH_TYPE|BFF_|HTTP_X_BFF_)' | sort",
    '',
].join('\n'), { mode: 0o755 });
fs.chmodSync(path.join(cgiDir, 'env.cgi'), 0o755);
after(() => fs.rmSync(cgiDir, { recursive: true, force: true }));

const ACCOUNTS = {
    alice: { password: 'alice-pass', claims: { sub: 'alice', email: 'alice@example.test', groups: ['admins', 'staff'], realm_access: { roles: ['editor'] } } },
    bob: { password: 'bob-pass', claims: { sub: 'bob', email: 'bob@example.test', groups: ['staff'] } },
};

/** A ScriptAlias to the CGI directory under AuthType bff with these lines. */
function cgi(urlPath, lines) {
    return [
        `ScriptAlias ${urlPath} "${cgiDir}/"`,
        `<Location ${urlPath}>`,
        '    AuthType bff',
        ...lines.map((l) => `    ${l}`),
        '</Location>',
    ];
}

/** A <Location> under AuthType bff with these lines. */
function authLoc(urlPath, lines) {
    return [`<Location ${urlPath}>`, '    AuthType bff', ...lines.map((l) => `    ${l}`), '</Location>'];
}

const WHO = '<!--#echo var="REMOTE_USER" -->';

const env = useEnv({
    provider: { accounts: ACCOUNTS, claims: { groups: ['groups', 'realm_access'] }, scopes: ['groups'] },
    bff: { BFFScope: 'openid profile email groups' },
    httpd: {
        extraModules: ['proxy', 'proxy_http', 'authn_core', 'authz_user', 'cgid'],
        logLevel: 'info ssl:warn bff:trace1',
        site: {
            'errpage/notfound.html': `<p id="err">not found, ${WHO}</p>\n`,
            'ssi/page.html': `<p id="top">top ${WHO}</p>\n<!--#include virtual="/inc/part.html" -->\n`
                + '<!--#include virtual="/inc/other.html" -->\n',
            'inc/part.html': `<p id="part">part ${WHO}</p>\n`,
            'inc/other.html': `<p id="other">other ${WHO}</p>\n`,
            'dir/index.html': `<p id="index">index ${WHO}</p>\n`,
        },
        extraServer: [
            `<Directory "${cgiDir}">`,
            '    Require all denied',
            '</Directory>',
            ...cgi('/cgi/', ['Require valid-user']),
            ...cgi('/cgi-none/', ['Require valid-user', 'BFFPassClaims none']),
            ...cgi('/cgi-headers/', ['Require valid-user', 'BFFPassClaims headers']),
            ...cgi('/cgi-email/', ['Require valid-user', 'BFFRemoteUserClaim email']),
            ...cgi('/cgi-admin/', ['Require bff-claim groups admins']),
            ...cgi('/cgi-open/', ['Require valid-user', 'BFFUnauthAction pass']),
            // A missing file under AuthType bff; its ErrorDocument is another AuthType bff location.
            ...authLoc('/ir/', ['Require valid-user', 'ErrorDocument 404 /errpage/notfound.html']),
            ...authLoc('/errpage/', ['Require bff-claim groups staff']),
            ...authLoc('/ssi/', ['Require valid-user']),
            ...authLoc('/inc/', ['Require bff-claim groups staff']),
            // The index file has its own Require: its lookup (a subrequest) authenticates again.
            ...authLoc('/dir/', ['Require valid-user']),
            ...authLoc('/dir/index.html', ['Require bff-claim groups staff']),
            ...authLoc('/api2/', ['Require valid-user', 'BFFTokenRelay On',
                `ProxyPass http://127.0.0.1:${up.port}/api2/`]),
        ],
    },
});

/** The CGI script's answer as { NAME: value }. */
function cgiVars(resp) {
    assert.equal(resp.status, 200, resp.body);
    assert.match(resp.headers['content-type'], /^text\/plain/);
    const vars = {};
    for (const line of resp.body.split('\n')) {
        const i = line.indexOf('=');
        if (i > 0) vars[line.slice(0, i)] = line.slice(i + 1);
    }
    return vars;
}

const sessions = {};
async function as(user) {
    if (!sessions[user]) {
        const { client } = await env.login({ username: user, password: `${user}-pass` });
        sessions[user] = client;
    }
    return sessions[user];
}

test('a CGI script sees REMOTE_USER, AUTH_TYPE=bff, the claims and BFF_SESSION_EXPIRES_IN', async () => {
    const v = cgiVars(await (await as('alice')).get(env.url('/cgi/env.cgi')));
    assert.equal(v.REMOTE_USER, 'alice');
    assert.equal(v.AUTH_TYPE, 'bff');
    assert.equal(v.BFF_CLAIM_SUB, 'alice');
    assert.equal(v.BFF_CLAIM_EMAIL, 'alice@example.test');
    assert.equal(v.BFF_CLAIM_GROUPS, 'admins,staff', 'an array claim, comma-joined');
    assert.equal(v.BFF_CLAIM_REALM_ACCESS, '{"roles":["editor"]}', 'an object claim, compact JSON');
    assert.match(v.BFF_SESSION_EXPIRES_IN, /^\d+$/);
    const left = Number(v.BFF_SESSION_EXPIRES_IN);
    assert.ok(left > 0 && left <= 8 * 3600, `BFF_SESSION_EXPIRES_IN=${left}: within the 8 h lifetime`);
    assert.equal(Object.keys(v).filter((k) => k.startsWith('HTTP_X_BFF_')).length, 0,
        'BFFPassClaims env (the default) adds no headers');

    const bob = cgiVars(await (await as('bob')).get(env.url('/cgi/env.cgi')));
    assert.equal(bob.REMOTE_USER, 'bob');
    assert.equal(bob.BFF_CLAIM_GROUPS, 'staff');
    assert.equal(bob.BFF_CLAIM_REALM_ACCESS, undefined, 'bob has no such claim');
});

test('BFFPassClaims none: no BFF_CLAIM_* (a forged X-BFF-Claim-* header neither); the user still', async () => {
    const forged = { 'X-BFF-Claim-Groups': 'admins', 'X-BFF-Claim-Email': 'mallory@evil.test' };
    const v = cgiVars(await (await as('alice')).get(env.url('/cgi-none/env.cgi'), { headers: forged }));
    assert.equal(v.REMOTE_USER, 'alice');
    assert.equal(v.AUTH_TYPE, 'bff');
    const leaked = Object.keys(v).filter((k) => k.startsWith('BFF_CLAIM_') || k.startsWith('HTTP_X_BFF_CLAIM_'));
    assert.deepEqual(leaked, [], 'no claim variable');
});

test('BFFPassClaims headers: the claims as X-BFF-Claim-* (HTTP_X_BFF_CLAIM_*), not as variables', async () => {
    const v = cgiVars(await (await as('bob')).get(env.url('/cgi-headers/env.cgi'),
        { headers: { 'X-BFF-Claim-Groups': 'admins' } }));
    assert.equal(v.REMOTE_USER, 'bob');
    assert.equal(v.HTTP_X_BFF_CLAIM_GROUPS, 'staff', 'mod_bff\'s value, not the forged one');
    assert.equal(v.HTTP_X_BFF_CLAIM_EMAIL, 'bob@example.test');
    assert.deepEqual(Object.keys(v).filter((k) => k.startsWith('BFF_CLAIM_')), []);
});

test('BFFRemoteUserClaim email: REMOTE_USER is the email', async () => {
    const v = cgiVars(await (await as('alice')).get(env.url('/cgi-email/env.cgi')));
    assert.equal(v.REMOTE_USER, 'alice@example.test');
    assert.equal(v.BFF_CLAIM_SUB, 'alice');
});

test('a refused user gets 403 and the script does not run; without a session GET/HEAD go to the login, POST gets 401', async () => {
    const alice = cgiVars(await (await as('alice')).get(env.url('/cgi-admin/env.cgi')));
    assert.equal(alice.REMOTE_USER, 'alice');
    const bobClient = await as('bob');
    const { result: bob, lines } = await env.httpd.expectLog([/AH01631: user bob: authorization failure/],
        () => bobClient.get(env.url('/cgi-admin/env.cgi')));
    assert.equal(bob.status, 403, bob.body);
    assert.ok(lines.some((l) => /BFF00184: user bob is signed in but not authorized/.test(l)), lines.join('\n'));
    assert.doesNotMatch(bob.body, /REMOTE_USER=/, 'the script ran for a refused user');

    const anon = env.client();
    for (const method of ['GET', 'HEAD']) {
        const r = await anon.request(env.url('/cgi/env.cgi?a=1'), { method });
        assert.equal(r.status, 302, `${method}: ${r.body}`);
        const to = new URL(r.location);
        assert.equal(to.pathname, '/bff/login');
        assert.equal(to.searchParams.get('returnTo'), '/cgi/env.cgi?a=1');
    }
    const post = await anon.request(env.url('/cgi/env.cgi'), {
        method: 'POST', body: 'a=1', headers: { origin: env.siteOrigin, 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(post.status, 401, post.body);
    assert.equal(post.location, null);
    assert.doesNotMatch(post.body, /REMOTE_USER=/);

    // BFFUnauthAction pass: the script runs without a user and without claims.
    const open = cgiVars(await anon.get(env.url('/cgi-open/env.cgi'), { headers: { 'X-BFF-Claim-Groups': 'admins' } }));
    assert.ok(!open.REMOTE_USER, `REMOTE_USER=${open.REMOTE_USER}`);
    assert.deepEqual(Object.keys(open).filter((k) => k.includes('BFF_CLAIM')), []);
});

// ---- one store read per request ----------------------------------------

const READ = /BFF01390: reading the session for (\S+) from the store/;

/** Run fn (one request); the store reads it made, as the paths they name. */
async function storeReads(fn) {
    const mark = env.httpd.logMark();
    const result = await fn();
    const reads = env.httpd.logSince(mark).map((l) => READ.exec(l)).filter(Boolean).map((m) => m[1]);
    return { result, reads };
}

test('store reads: a plain AuthType bff page reads once (the counter works)', async () => {
    const { client } = await env.login();
    const { result: r, reads } = await storeReads(() => client.get(env.url('/errpage/notfound.html')));
    assert.equal(r.status, 200, r.body);
    assert.match(r.body, /not found, alice/);
    assert.deepEqual(reads, ['/errpage/notfound.html']);
    const again = await storeReads(() => client.get(env.url('/errpage/notfound.html')));
    assert.deepEqual(again.reads, ['/errpage/notfound.html'], 'each request reads once');
    const anon = await storeReads(() => env.client().get(env.url('/errpage/notfound.html')));
    assert.equal(anon.result.status, 302);
    assert.deepEqual(anon.reads, [], 'no cookie, no read');
});

test('store reads: ErrorDocument to another AuthType bff location (internal redirect) reads once', async () => {
    const { client } = await env.login();
    const { result: r, reads } = await storeReads(() => client.get(env.url('/ir/missing')));
    assert.equal(r.status, 404);
    assert.match(r.body, /<p id="err">not found, alice<\/p>/, 'the error page ran as alice');
    assert.deepEqual(reads, ['/ir/missing']);
});

test('store reads: SSI includes of other AuthType bff locations (subrequests) read once', async () => {
    const { client } = await env.login();
    const { result: r, reads } = await storeReads(() => client.get(env.url('/ssi/page.html')));
    assert.equal(r.status, 200, r.body);
    assert.match(r.body, /<p id="top">top alice<\/p>/);
    assert.match(r.body, /<p id="part">part alice<\/p>/, 'the include ran as alice');
    assert.match(r.body, /<p id="other">other alice<\/p>/);
    assert.deepEqual(reads, ['/ssi/page.html']);
});

test('store reads: DirectoryIndex (subrequest, then internal redirect) reads once', async () => {
    const { client } = await env.login();
    const { result: r, reads } = await storeReads(() => client.get(env.url('/dir/')));
    assert.equal(r.status, 200, r.body);
    assert.match(r.body, /<p id="index">index alice<\/p>/);
    assert.deepEqual(reads, ['/dir/']);
});

test('store reads: AuthType bff with BFFTokenRelay (authentication and relay) reads once', async () => {
    const { client } = await env.login();
    const { result: r, reads } = await storeReads(() =>
        client.get(env.url('/api2/x'), { headers: { 'X-CSRF': '1' } }));
    assert.equal(r.status, 200, r.body);
    const seen = up.find((q) => q.seq === r.json().seq);
    assert.ok(env.provider.issued.access.includes(bearerOf(seen.headers)), 'the token was relayed');
    assert.deepEqual(reads, ['/api2/x']);
});
