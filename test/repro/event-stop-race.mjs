// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Reproducer for an httpd child crash at SIGTERM (ungraceful stop) with the
// event MPM, without mod_bff: httpd serves one static file (no TLS, no
// proxy, no third-party module), a few clients make short connections, and
// the parent is sent SIGTERM while connections are still ending. Counts the
// stops whose error log has "exit signal" (AH00051). See README.md here.
//
//   ulimit -c unlimited; nice -n 10 node test/repro/event-stop-race.mjs [rounds]
// env: APACHE2 (/usr/sbin/apache2), APACHE_MODDIR (/usr/lib/apache2/modules),
//      STOP=term|graceful-stop, KEEP=dir (copies of rounds with a crash).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const APACHE = process.env.APACHE2 || '/usr/sbin/apache2';
const MODDIR = process.env.APACHE_MODDIR || '/usr/lib/apache2/modules';
const ROUNDS = Number(process.argv[2] || 100);
const STOP = process.env.STOP || 'term';
const KEEP = process.env.KEEP || path.join(os.tmpdir(), 'event-stop-race');
const CLIENTS = Number(process.env.CLIENTS || 32);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
    return new Promise((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

function config(dir, port) {
    const user = process.getuid() === 0 ? ['User www-data', 'Group www-data'] : [];
    return [
        `ServerRoot "${dir}"`,
        `LoadModule mpm_event_module "${MODDIR}/mod_mpm_event.so"`,
        `LoadModule authz_core_module "${MODDIR}/mod_authz_core.so"`,
        ...user,
        `Listen 127.0.0.1:${port}`,
        'ServerName localhost',
        `PidFile "${dir}/httpd.pid"`,
        `DefaultRuntimeDir "${dir}"`,
        `Mutex "file:${dir}" default`,
        `ErrorLog "${dir}/error.log"`,
        'LogLevel info',
        `CoreDumpDirectory "${dir}/cores"`,
        'StartServers 2', 'ServerLimit 4', 'ThreadsPerChild 10',
        'MinSpareThreads 10', 'MaxSpareThreads 30', 'MaxRequestWorkers 40',
        `DocumentRoot "${dir}/htdocs"`,
        `<Directory "${dir}/htdocs">`, '    Require all granted', '</Directory>',
        '',
    ].join('\n');
}

/** One GET on a fresh connection (no keep-alive); resolves on any outcome. */
function get(port) {
    return new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/index.html', agent: false }, (res) => {
            res.resume();
            res.on('end', resolve);
            res.on('error', resolve);
        });
        req.on('error', resolve);
        req.setTimeout(5000, () => req.destroy());
    });
}

async function round(n) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'event-stop-race-'));
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(path.join(dir, 'htdocs'));
    fs.writeFileSync(path.join(dir, 'htdocs', 'index.html'), 'x'.repeat(2000));
    fs.mkdirSync(path.join(dir, 'cores'));
    fs.chmodSync(path.join(dir, 'cores'), 0o777);
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'httpd.conf'), config(dir, port));
    const proc = spawn(APACHE, ['-f', path.join(dir, 'httpd.conf'), '-DFOREGROUND'],
        { stdio: 'ignore', detached: true });
    const exited = new Promise((r) => proc.on('exit', r));
    const log = () => { try { return fs.readFileSync(path.join(dir, 'error.log'), 'utf8'); } catch { return ''; } };
    for (let i = 0; i < 100 && !/AH00489/.test(log()); i += 1) await sleep(50);
    // Connections that end while the stop comes: CLIENTS clients, each a loop of
    // short connections; the signal is sent in the middle of it.
    let stopping = false;
    const clients = Array.from({ length: CLIENTS }, async () => {
        while (!stopping) await get(port);
    });
    await sleep(300);
    if (STOP === 'graceful-stop') proc.kill('SIGWINCH');
    else proc.kill('SIGTERM');
    stopping = true;
    await Promise.all(clients);
    const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
    await exited;
    clearTimeout(t);
    const bad = log().split('\n').filter((l) => /exit signal|AH00060/.test(l));
    const cores = fs.readdirSync(path.join(dir, 'cores'));
    if (bad.length || cores.length) {
        const keep = path.join(KEEP, `round-${process.pid}-${n}`);
        fs.mkdirSync(KEEP, { recursive: true });
        fs.cpSync(dir, keep, { recursive: true });
        console.log(`round ${n}: ${bad.join(' | ')} cores: ${cores.join(',') || 'none'}; kept in ${keep}`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
    return bad.length > 0 || cores.length > 0;
}

let crashed = 0;
for (let n = 1; n <= ROUNDS; n += 1) {
    if (await round(n)) crashed += 1;
    if (n % 25 === 0) console.log(`after ${n} stops: ${crashed} with a crashed child`);
}
console.log(`RESULT ${APACHE} (${MODDIR}), stop=${STOP}: ${ROUNDS} stops, ${crashed} with a crashed child`);
