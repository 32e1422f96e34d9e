// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Directives: the code's command table and docs/directives.md list the same
// names, and httpd refuses bad values at config-test time, naming the directive.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { BFF_MODULE, Httpd, REPO, moduleBuilt } from './lib/httpd.js';
import { createPki } from './lib/pki.js';

/** #define NAME "BFF..." from the module's sources. */
function directiveMacros() {
    const files = [path.join(REPO, 'mod_bff.c')];
    const src = path.join(REPO, 'src');
    if (fs.existsSync(src)) {
        for (const f of fs.readdirSync(src)) {
            if (/^mod_bff.*\.[ch]$/.test(f)) files.push(path.join(src, f));
        }
    }
    const macros = new Map();
    for (const f of files) {
        if (!fs.existsSync(f)) continue;
        const text = fs.readFileSync(f, 'utf8');
        for (const m of text.matchAll(/^\s*#\s*define\s+(\w+)\s+"(BFF\w+)"/gm)) macros.set(m[1], m[2]);
    }
    return macros;
}

/** Directive names in mod_bff.c's command table (literal or via a #define). */
export function codeDirectives() {
    const text = fs.readFileSync(path.join(REPO, 'mod_bff.c'), 'utf8');
    const macros = directiveMacros();
    const names = new Set();
    for (const m of text.matchAll(/AP_INIT_\w+\(\s*(?:"(BFF\w+)"|(\w+))\s*,/g)) {
        if (m[1]) names.add(m[1]);
        else if (macros.has(m[2])) names.add(macros.get(m[2]));
        else assert.fail(`command table entry ${m[2]} does not resolve to a "BFF..." name`);
    }
    return names;
}

export function docDirectives() {
    const text = fs.readFileSync(path.join(REPO, 'docs', 'directives.md'), 'utf8');
    return new Set([...text.matchAll(/^##\s+(BFF\w+)\s*$/gm)].map((m) => m[1]));
}

test('every directive in the code is documented and vice versa', () => {
    const code = codeDirectives();
    const docs = docDirectives();
    assert.ok(code.size >= 10, `found ${code.size} directives in mod_bff.c`);
    const undocumented = [...code].filter((n) => !docs.has(n));
    const stale = [...docs].filter((n) => !code.has(n));
    assert.deepEqual(undocumented, [], 'directives missing from docs/directives.md');
    assert.deepEqual(stale, [], 'documented directives the code does not have');
});

// ---------------------------------------------------------------------------

const pki = createPki();
const created = [];
after(() => created.forEach((h) => h.cleanup()));

const VALID = {
    BFFProvider: 'https://127.0.0.1:9443',
    BFFProviderCAFile: pki.caFile,
    BFFClientID: 'bff-test',
    BFFClientSecret: 'a-client-secret-for-config-tests',
    BFFRedirectURI: 'https://localhost:8443/bff/callback',
    BFFCryptoKey: 'an-example-crypto-key-of-32-bytes!!',
};

async function configTest(overrides) {
    const h = new Httpd({ pki, bff: { ...VALID, ...overrides } });
    created.push(h);
    return h.configTest();
}

function needModule() {
    assert.ok(moduleBuilt(), `mod_bff is not built: ${BFF_MODULE} (set BFF_MODULE)`);
}

test('a valid configuration passes apache2 -t', async () => {
    needModule();
    const r = await configTest({});
    assert.equal(r.status, 0, `apache2 -t failed:\n${r.stderr}${r.stdout}`);
    assert.match(`${r.stderr}${r.stdout}`, /Syntax OK/);
});

test('valid spellings of every directive pass apache2 -t', async () => {
    needModule();
    const r = await configTest({
        BFFClientAuth: 'client_secret_post',
        BFFScope: 'openid profile email',
        BFFAuthParams: { raw: 'prompt=login acr_values=x' },
        BFFSessionStore: 'shm:16M',
        BFFCryptoKey: ['an-example-crypto-key-of-32-bytes!!', 'an-older-crypto-key-still-decrypts'],
        BFFCookieName: '__Host-Http-bff',
        BFFCookieSameSite: 'Lax',
        BFFSessionIdleTimeout: '15m',
        BFFSessionMaxLifetime: '1d',
    });
    assert.equal(r.status, 0, `apache2 -t failed:\n${r.stderr}${r.stdout}`);
});

test('BFFSessionMaxLifetime shorter than the default idle timeout passes apache2 -t alone', async () => {
    needModule();
    // The idle timeout left at its default is capped at the lifetime.
    const r = await configTest({ BFFSessionMaxLifetime: '8s' });
    assert.equal(r.status, 0, `apache2 -t failed:\n${r.stderr}${r.stdout}`);
});

test('apache2 -t refuses an explicit BFFSessionIdleTimeout longer than BFFSessionMaxLifetime', async () => {
    needModule();
    const r = await configTest({ BFFSessionIdleTimeout: '1h', BFFSessionMaxLifetime: '30m' });
    const out = `${r.stderr}${r.stdout}`;
    assert.notEqual(r.status, 0, `accepted: ${out}`);
    assert.ok(out.includes('BFFSessionIdleTimeout') && out.includes('BFFSessionMaxLifetime'),
        `the message names both directives: ${out}`);
});

const BAD = [
    ['BFFCookieSameSite', 'None'],
    ['BFFCookieSameSite', 'strictly'],
    ['BFFSessionIdleTimeout', 'abc'],
    ['BFFSessionIdleTimeout', '-5m'],
    ['BFFSessionMaxLifetime', '10x'],
    ['BFFSessionMaxLifetime', '99999999999999999999d'],
    ['BFFProvider', 'http://example.com'],
    ['BFFProvider', 'not a url'],
    ['BFFProvider', 'https://127.0.0.1:9443/#frag'],
    ['BFFRedirectURI', '/bff/callback'],
    ['BFFRedirectURI', 'http://localhost:8443/bff/callback'],
    ['BFFClientAuth', 'none'],
    ['BFFCryptoKey', 'too-short'],
    ['BFFCryptoKey', 'file:/nonexistent/bff-key'],
    ['BFFClientSecret', 'file:/nonexistent/bff-secret'],
    ['BFFSessionStore', 'bogus'],
    ['BFFSessionStore', 'shm:lots'],
    ['BFFSessionStore', [['memcache:127.0.0.1:1,127.0.0.1:2', 'replicas=3']]],
    ['BFFSessionStore', [['memcache:127.0.0.1:1,127.0.0.1:2', 'replicas=0']]],
    ['BFFSessionStore', [['shm', 'replicas=1']]],
    ['BFFScope', 'profile email'],
    ['BFFCookieName', 'bad;name'],
    ['BFFTokenRelay', 'clients'],
    ['BFFTokenScope', 'api"read'],
    ['BFFTokenScope', 'x'.repeat(1100)],
    ['BFFTokenResource', '/orders/'],
    ['BFFTokenResource', 'https://api.example/#frag'],
    ['BFFTokenResource', 'https://api.example/\u00e9'],
];

for (const [name, value] of BAD) {
    test(`apache2 -t refuses ${name} ${JSON.stringify(value)}`, async () => {
        needModule();
        const r = await configTest({ [name]: value });
        const out = `${r.stderr}${r.stdout}`;
        assert.notEqual(r.status, 0, `accepted: ${out}`);
        assert.ok(out.includes(name), `the message names ${name}: ${out}`);
        assert.ok(!out.includes('Segmentation') && r.signal === null, `crashed: ${r.signal} ${out}`);
    });
}

test('apache2 -t refuses a URL with user information and does not echo the password', async () => {
    needModule();
    const r = await configTest({ BFFProvider: 'https://admin:s3cret-pw@127.0.0.1:9443' });
    const out = `${r.stderr}${r.stdout}`;
    assert.notEqual(r.status, 0, `accepted: ${out}`);
    assert.match(out, /BFFProvider: URLs with user information/);
    assert.ok(!out.includes('s3cret-pw'), `the password is echoed: ${out}`);
});
