// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Servers for the benchmark: httpd instances (the upstream and one per
// variant) and memcached, each a child process with its own config, pid file,
// logs and ports in a temporary directory, stopped by PID. Nothing listens
// beyond 127.0.0.1 and /etc/apache2 is never read.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const APACHE = process.env.APACHE2 || '/usr/sbin/apache2';
export const MODDIR = process.env.APACHE_MODDIR || '/usr/lib/apache2/modules';
export const OPENIDC_MODULE = process.env.OPENIDC_MODULE || path.join(MODDIR, 'mod_auth_openidc.so');

// The same MPM settings for every front-end variant: two processes of 64
// threads, all started at once and never reaped, so process churn never
// differs between runs; keep-alive connections are never closed by count.
// 64 threads a process: even if all of wrk's 64 connections land in one
// process, mpm_event never runs out of workers and starts closing
// keep-alive connections (which would add TLS handshakes to the runs).
export const MPM_LINES = [
    'StartServers 2', 'ServerLimit 2', 'ThreadLimit 64', 'ThreadsPerChild 64',
    'MaxRequestWorkers 128', 'MinSpareThreads 64', 'MaxSpareThreads 128',
    'MaxConnectionsPerChild 0',
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1, distinct from the ones handed out before. */
const handedOut = new Set();
export async function freePort() {
    for (;;) {
        const port = await new Promise((resolve, reject) => {
            const srv = net.createServer();
            srv.unref();
            srv.on('error', reject);
            srv.listen(0, '127.0.0.1', () => {
                const p = srv.address().port;
                srv.close(() => resolve(p));
            });
        });
        if (!handedOut.has(port)) {
            handedOut.add(port);
            return port;
        }
    }
}

export function canConnect(port) {
    return new Promise((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
    });
}

export function q(v) {
    const s = String(v);
    if (/[\r\n]/.test(s)) throw new Error(`httpd argument with a line break: ${JSON.stringify(s)}`);
    return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

let builtins = null;
function builtinModules() {
    if (!builtins) {
        const r = spawnSync(APACHE, ['-l'], { encoding: 'utf8' });
        builtins = new Set([...(r.stdout || '').matchAll(/mod_(\w+)\.c/g)].map((m) => m[1]));
    }
    return builtins;
}

function loadLines(names) {
    return names.filter((m) => !builtinModules().has(m))
        .map((m) => `LoadModule ${m}_module ${q(path.join(MODDIR, `mod_${m}.so`))}`);
}

// Children run in their own process groups (detached): on an abrupt exit,
// kill each child's whole group, so no httpd worker outlives its parent.
const children = new Set();
process.once('exit', () => {
    for (const c of children) {
        try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ }
    }
});

/** Spawn a long-running child in its own process group; returns a handle. */
function spawnChild(cmd, args, opts = {}) {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...opts });
    const h = { proc, pid: proc.pid, out: '', exitInfo: null };
    proc.stdout.on('data', (d) => { h.out += d; });
    proc.stderr.on('data', (d) => { h.out += d; });
    h.exited = new Promise((resolve) => {
        proc.on('exit', (code, signal) => {
            h.exitInfo = { code, signal };
            children.delete(proc);
            resolve(h.exitInfo);
        });
    });
    children.add(proc);
    return h;
}

async function stopChild(h, signal = 'SIGTERM', graceMs = 15000) {
    if (!h || h.exitInfo) return h?.exitInfo;
    try { process.kill(h.pid, signal); } catch { /* gone */ }
    const t = setTimeout(() => {
        try { process.kill(h.pid, 'SIGKILL'); } catch { /* gone */ }
    }, graceMs);
    const info = await h.exited;
    clearTimeout(t);
    return info;
}

/**
 * One httpd. opts: name, dir (its own directory), port, tls (pki or null),
 * modules (extra module names from MODDIR), load (extra LoadModule lines),
 * mpm (lines; default MPM_LINES), body (lines after the common part),
 * files ({ relative path: text } under htdocs), logLevel.
 */
export class Httpd {
    constructor(opts) {
        this.opts = opts;
        this.name = opts.name;
        this.dir = opts.dir;
        this.port = opts.port;
        this.siteDir = path.join(this.dir, 'htdocs');
        this.runDir = path.join(this.dir, 'run');
        this.confFile = path.join(this.dir, 'httpd.conf');
        this.errorLogFile = path.join(this.dir, 'error.log');
        this.pidFile = path.join(this.runDir, 'httpd.pid');
        for (const d of [this.dir, this.siteDir, this.runDir]) {
            fs.mkdirSync(d, { recursive: true });
            fs.chmodSync(d, 0o755);
        }
        for (const [name, text] of Object.entries(opts.files || {})) {
            const f = path.join(this.siteDir, name);
            fs.mkdirSync(path.dirname(f), { recursive: true, mode: 0o755 });
            fs.writeFileSync(f, text, { mode: 0o644 });
        }
        this.h = null;
    }

    get origin() {
        return `${this.opts.tls ? 'https' : 'http'}://localhost:${this.port}`;
    }

    url(p = '/') {
        return `${this.origin}${p}`;
    }

    config() {
        const o = this.opts;
        const lines = [
            `# ${this.name}: generated by bench/lib/servers.mjs`,
            `ServerRoot ${q(this.dir)}`,
            `LoadModule mpm_event_module ${q(path.join(MODDIR, 'mod_mpm_event.so'))}`,
            ...loadLines(['authz_core', 'authn_core', 'mime', 'dir', 'headers', 'log_config',
                'unixd', ...(o.tls ? ['ssl', 'socache_shmcb'] : []), ...(o.modules || [])]),
            ...(o.load || []),
        ];
        if (process.getuid && process.getuid() === 0) lines.push('User www-data', 'Group www-data');
        lines.push(
            `Listen 127.0.0.1:${this.port}`,
            'ServerName localhost',
            `PidFile ${q(this.pidFile)}`,
            `DefaultRuntimeDir ${q(this.runDir)}`,
            `Mutex ${q(`file:${this.runDir}`)} default`,
            `ErrorLog ${q(this.errorLogFile)}`,
            `LogLevel ${o.logLevel || 'warn'}`,
            'TypesConfig /etc/mime.types',
            'DirectoryIndex index.html',
            'Timeout 30',
            'KeepAlive On',
            'MaxKeepAliveRequests 0',
            'KeepAliveTimeout 15',
            ...(o.mpm || MPM_LINES),
        );
        if (o.tls) {
            lines.push(
                'SSLEngine on',
                `SSLCertificateFile ${q(o.tls.certFile)}`,
                `SSLCertificateKeyFile ${q(o.tls.keyFile)}`,
                `SSLSessionCache ${q(`shmcb:${path.join(this.runDir, 'ssl_scache')}(512000)`)}`,
                'SSLProtocol -all +TLSv1.2 +TLSv1.3',
            );
        }
        lines.push(
            `DocumentRoot ${q(this.siteDir)}`,
            '<Directory />',
            '    AllowOverride None',
            '    Require all denied',
            '</Directory>',
            `<Directory ${q(this.siteDir)}>`,
            '    AllowOverride None',
            '    Require all granted',
            '</Directory>',
            ...(o.body || []),
        );
        return `${lines.join('\n')}\n`;
    }

    writeConfig() {
        fs.writeFileSync(this.confFile, this.config());
        return this.confFile;
    }

    /** `apache2 -t`: { ok, output }. */
    configTest() {
        this.writeConfig();
        const r = spawnSync(APACHE, ['-t', '-f', this.confFile], { encoding: 'utf8', timeout: 30000 });
        return { ok: r.status === 0, output: `${r.stdout || ''}${r.stderr || ''}`.trim() };
    }

    errorLog() {
        try { return fs.readFileSync(this.errorLogFile, 'utf8'); } catch { return ''; }
    }

    /** Start in the foreground as our child; wait until it accepts connections. */
    async start({ args = [], wrap = null, timeoutMs = 20000 } = {}) {
        this.writeConfig();
        const httpdArgs = ['-f', this.confFile, '-DFOREGROUND', ...args];
        this.h = wrap ? spawnChild(wrap[0], [...wrap.slice(1), APACHE, ...httpdArgs])
            : spawnChild(APACHE, httpdArgs);
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
            if (this.h.exitInfo) {
                await sleep(200);
                throw new Error(`${this.name}: httpd exited at start (${JSON.stringify(this.h.exitInfo)}):\n` +
                    `${this.h.out}\n--- ${this.errorLogFile} ---\n${this.errorLog().slice(-4000)}`);
            }
            // A single-process httpd (-X) never logs "resuming normal operations".
            const ready = args.includes('-X') || /resuming normal operations|AH00489/.test(this.errorLog());
            if (ready && await canConnect(this.port)) return this;
            await sleep(100);
        }
        await stopChild(this.h, 'SIGKILL', 1000);
        throw new Error(`${this.name}: httpd did not start on port ${this.port}:\n${this.h.out}\n` +
            `${this.errorLog().slice(-4000)}`);
    }

    get pid() {
        return this.h?.pid;
    }

    /** PIDs of this httpd's processes: the parent and its children. */
    pids() {
        if (!this.h) return [];
        const out = [this.h.pid];
        for (const d of fs.readdirSync('/proc')) {
            if (!/^\d+$/.test(d)) continue;
            try {
                const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
                const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
                if (ppid === this.h.pid) out.push(Number(d));
            } catch { /* gone */ }
        }
        return out;
    }

    /** Lines of the error log that show trouble (error or worse, crashes). */
    badLines() {
        return this.errorLog().split('\n')
            .filter((l) => /:(error|crit|alert|emerg)\]|exit signal|AH00060|segfault/i.test(l));
    }

    async stop(signal = 'SIGTERM') {
        return stopChild(this.h, signal);
    }
}

/** memcached in the foreground on 127.0.0.1:port (no UDP). */
export async function startMemcached(port, { threads = 2, megabytes = 2048 } = {}) {
    const args = ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-t', String(threads),
        '-m', String(megabytes), '-c', '4096'];
    if (process.getuid && process.getuid() === 0) args.push('-u', 'memcache');
    const h = spawnChild('memcached', args);
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
        if (h.exitInfo) throw new Error(`memcached exited: ${h.out}`);
        if (await canConnect(port)) {
            return { port, pid: h.pid, stop: () => stopChild(h) };
        }
        await sleep(50);
    }
    await stopChild(h);
    throw new Error(`memcached did not start on ${port}: ${h.out}`);
}

/** `stats` of the memcached on 127.0.0.1:port, as an object of strings. */
export function memcachedStats(port, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        let buf = '';
        const t = setTimeout(() => {
            s.destroy();
            reject(new Error(`memcached ${port}: no stats within ${timeoutMs} ms`));
        }, timeoutMs);
        s.on('data', (d) => {
            buf += d.toString('latin1');
            if (/(^|\n)END\r\n$/.test(buf)) {
                clearTimeout(t);
                s.end();
                const st = {};
                for (const m of buf.matchAll(/^STAT (\S+) (.*)\r$/gm)) st[m[1]] = m[2];
                resolve(st);
            }
        });
        s.on('error', (e) => {
            clearTimeout(t);
            reject(e);
        });
        s.write('stats\r\n');
    });
}

/** Run a bounded command; resolves { code, signal, stdout, stderr }. */
export function run(cmd, args, { timeoutMs = 120000, input } = {}) {
    return new Promise((resolve, reject) => {
        const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d) => { stdout += d; });
        p.stderr.on('data', (d) => { stderr += d; });
        const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
        p.on('error', (e) => { clearTimeout(t); reject(e); });
        p.on('exit', (code, signal) => {
            clearTimeout(t);
            resolve({ code, signal, stdout, stderr });
        });
        if (input !== undefined) p.stdin.end(input);
        else p.stdin.end();
    });
}

export { stopChild, spawnChild };
