// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Start/load/stop loop: how often does an httpd child crash when the server
// is stopped? Each round starts httpd (event MPM unless BFF_MPM), does a few
// logins and relayed requests (so curl, OpenSSL and memcache state exists in
// the children), then stops it (STOP: SIGTERM to the parent by default) and
// counts "exit signal" lines in the error log. Cores (CoreDumpDirectory;
// run under `ulimit -c unlimited`) are kept in the round's directory.
//
//   ulimit -c unlimited; nice -n 10 node test/repro/stoploop.mjs [rounds]
// env: BFF_MODULE, STOP=term|graceful-stop|lib (lib/httpd.js stop()), STORE=memcache|shm, NOBFF=1 (no mod_bff:
// httpd + mod_ssl + mod_proxy only), ROTATE=1 (a key rotation by graceful restart and more
// load before the stop), OUT=dir (kept rounds with a crash).

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startProvider } from '../provider/provider.js';
import { Client } from '../integration/lib/client.js';
import { freePort, Httpd, APACHE } from '../integration/lib/httpd.js';
import { startMemcached } from '../integration/lib/memcached.js';
import { createPki } from '../integration/lib/pki.js';
import { startUpstream } from '../integration/lib/upstream.js';

const ROUNDS = Number(process.argv[2] || 20);
const STOP = process.env.STOP || 'term';
const STORE = process.env.STORE || 'memcache';
const NOBFF = Boolean(process.env.NOBFF);
const ROTATE = Boolean(process.env.ROTATE);
const OUT = process.env.OUT || '/tmp/bff-stoploop';
fs.mkdirSync(OUT, { recursive: true });

const pki = createPki();
const mc = STORE === 'memcache' ? await startMemcached() : null;
const up = await startUpstream();
const port = await freePort();
let pport = await freePort();
while (pport === port) pport = await freePort();
const origin = `https://localhost:${port}`;
const clientId = 'bff-test';
const clientSecret = crypto.randomBytes(24).toString('base64url');
const provider = await startProvider({
    port: pport, cert: pki.cert, key: pki.key, ca: pki.ca, clientId, clientSecret,
    redirectUri: `${origin}/bff/callback`, postLogoutRedirectUri: `${origin}/`, quiet: true,
});
const bff = NOBFF ? null : {
    BFFProvider: provider.issuer,
    BFFProviderCAFile: pki.caFile,
    BFFClientID: clientId,
    BFFClientSecret: clientSecret,
    BFFRedirectURI: `${origin}/bff/callback`,
    BFFCryptoKey: crypto.randomBytes(32).toString('base64url'),
    ...(STORE === 'memcache' ? { BFFSessionStore: `memcache:${mc.spec}` } : {}),
};

let crashes = 0;
let stops = 0;
for (let round = 1; round <= ROUNDS; round += 1) {
    const h = new Httpd({
        pki, port, bff: bff && { ...bff },
        extraModules: ['proxy', 'proxy_http'],
        extraServer: [
            'CoreDumpDirectory "CORE_DIR"',
            '<Location /api/>',
            `    ProxyPass http://127.0.0.1:${up.port}/api/`,
            NOBFF ? '' : '    BFFTokenRelay On',
            '</Location>',
        ],
    });
    const coreDir = path.join(h.dir, 'cores');
    fs.mkdirSync(coreDir, { mode: 0o777 });
    fs.chmodSync(coreDir, 0o777);
    h.opts.extraServer[0] = `CoreDumpDirectory "${coreDir}"`;
    await h.start();
    const clients = [];
    const load = async () => {
        const work = Array.from({ length: 4 }, async (_, i) => {
            const c = new Client({ ca: pki.ca });
            clients.push(c);
            if (NOBFF) {
                for (let k = 0; k < 5; k += 1) await c.get(`${origin}/api/x${i}`);
                return;
            }
            await c.followLogin(`${origin}/bff/login?returnTo=%2Fapp.html`);
            for (let k = 0; k < 5; k += 1) {
                await c.get(`${origin}/api/data`, { headers: { 'X-CSRF': '1' } });
                await c.get(`${origin}/bff/user`, { headers: { 'X-CSRF': '1' } });
            }
        });
        await Promise.all(work);
    };
    try {
        await load();
        if (ROTATE && !NOBFF) {
            // Key rotation by graceful restart, then more load (old-generation
            // children exit meanwhile).
            h.opts.bff.BFFCryptoKey = [crypto.randomBytes(32).toString('base64url'), bff.BFFCryptoKey];
            await h.graceful();
            await load();
        }
    } catch (e) {
        console.log(`round ${round}: load error ${e.message}`);
    }
    for (const c of clients) c.close();
    if (process.env.SELFTEST) {
        // Check of the core set-up: one child killed with SIGSEGV must leave a core.
        const kids = spawnSync('pgrep', ['-P', String(h.proc.pid)], { encoding: 'utf8' }).stdout.trim().split('\n');
        process.kill(Number(kids[0]), 'SIGSEGV');
        await new Promise((r) => setTimeout(r, 500));
    }
    if (STOP === 'graceful-stop') {
        spawnSync(APACHE, ['-f', h.confFile, '-k', 'graceful-stop'], { env: h.childEnv() });
        const t = setTimeout(() => h.proc.kill('SIGKILL'), 15000);
        await h.exited;
        clearTimeout(t);
    } else if (STOP === 'term') {
        // What lib/httpd.js stop() did before: SIGTERM to the parent.
        h.proc.kill('SIGTERM');
        const t = setTimeout(() => h.proc.kill('SIGKILL'), 15000);
        await h.exited;
        clearTimeout(t);
    } else {
        await h.stop(); // STOP=lib: the tests' way (lib/httpd.js)
    }
    stops += 1;
    const bad = h.errorLines().filter((l) => /exit signal|seg(mentation)? ?fault/i.test(l));
    const cores = fs.readdirSync(coreDir);
    if (bad.length || cores.length) {
        crashes += 1;
        const keep = path.join(OUT, `round-${process.pid}-${round}`);
        fs.cpSync(h.dir, keep, { recursive: true });
        console.log(`round ${round}: CRASH ${bad.join(' | ')} cores=${cores.join(',')} kept in ${keep}`);
    }
    h.cleanup();
    if (round % 10 === 0) console.log(`after ${round} rounds: ${stops} stops, ${crashes} with a crashed child`);
}
console.log(`RESULT stop=${STOP} store=${STORE} nobff=${NOBFF} rotate=${ROTATE}: ${stops} stops, ${crashes} with a crashed child`);
up.close();
await provider.close();
if (mc) await mc.close();
process.exit(0);
