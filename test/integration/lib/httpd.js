// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// A throw-away httpd for one test file: its own config, ports, pid file,
// mutexes, runtime dir and logs in a temporary directory; /etc/apache2 is
// never read. Debian's /usr/sbin/apache2 with modules from
// /usr/lib/apache2/modules, mod_bff from $BFF_MODULE or <repo>/.libs.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const APACHE = process.env.APACHE2 || '/usr/sbin/apache2';
export const MODDIR = process.env.APACHE_MODDIR || '/usr/lib/apache2/modules';
export const BFF_MODULE = process.env.BFF_MODULE || path.join(REPO, '.libs', 'mod_bff.so');

export function moduleBuilt() {
    return fs.existsSync(BFF_MODULE);
}

/** A free TCP port on 127.0.0.1 (bind to 0, read it back, release it). */
export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

function canConnect(port) {
    return new Promise((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.once('connect', () => {
            s.destroy();
            resolve(true);
        });
        s.once('error', () => resolve(false));
    });
}

/** How many processes whose parent is `pid` are running (zombies not counted); Linux /proc. */
export function liveChildren(pid) {
    let n = 0;
    for (const d of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(d)) continue;
        let stat;
        try {
            stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        } catch {
            continue; // gone meanwhile
        }
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(ppid) === pid && state !== 'Z') n += 1;
    }
    return n;
}

/** Quote one httpd directive argument. */
export function quoteArg(v) {
    const s = String(v);
    if (/[\r\n]/.test(s)) throw new Error(`httpd argument with a line break: ${JSON.stringify(s)}`);
    return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * Directives from an object: { Name: value | [values] | [[arg, arg]] | null }.
 * An array value repeats the directive; an inner array gives several
 * arguments; null/undefined omits it; { raw: 'text' } is written unquoted.
 */
export function directiveLines(obj) {
    const out = [];
    for (const [name, value] of Object.entries(obj || {})) {
        if (value === undefined || value === null) continue;
        const values = Array.isArray(value) ? value : [value];
        for (const v of values) {
            if (v && typeof v === 'object' && 'raw' in v) out.push(`${name} ${v.raw}`);
            else if (Array.isArray(v)) out.push(`${name} ${v.map(quoteArg).join(' ')}`);
            else out.push(`${name} ${quoteArg(v)}`);
        }
    }
    return out;
}

const STD_MODULES = [
    'authz_core', 'mime', 'dir', 'alias', 'headers', 'ssl', 'socache_shmcb', 'include',
    'setenvif', 'log_config', 'unixd',
];

let builtins = null;

/** Modules compiled into the httpd binary (Debian builds in log_config and unixd). */
function builtinModules() {
    if (!builtins) {
        const r = spawnSync(APACHE, ['-l'], { encoding: 'utf8' });
        builtins = new Set([...(r.stdout || '').matchAll(/mod_(\w+)\.c/g)].map((m) => m[1]));
    }
    return builtins;
}

const APP_HTML = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>mod_bff test app</title></head>
<body>
<h1>Test app</h1>
<p id="state"><!--#if expr="%{HTTP_COOKIE} =~ /__Host-Http-bff=/" -->SIGNED-IN<!--#else -->ANON<!--#endif --></p>
</body>
</html>
`;

const INDEX_HTML = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>mod_bff test site</title></head>
<body><h1>mod_bff test site</h1><p><a href="/bff/login?returnTo=/app.html">Sign in</a></p></body>
</html>
`;

/**
 * A Httpd instance: `new Httpd(opts)` writes the config, `start()` runs it.
 * Options:
 *   pki (from pki.js, required), port (free port if omitted), mpm ('event'|'prefork';
 *   default $BFF_MPM or event),
 *   bff: object of BFF* directives (server scope) or null to leave mod_bff out,
 *   bffLocation ('/bff'), extraServer: lines (array/string) in server scope,
 *   extraModules: names loaded from MODDIR, site: { 'file.html': text } extra files,
 *   bffInclude: config files Included instead of `LoadModule bff_module $BFF_MODULE`
 *   (an installed package's mods-enabled/bff.load and bff.conf),
 *   logLevel ('info ssl:warn').
 */
export class Httpd {
    constructor(opts) {
        if (!opts?.pki) throw new Error('Httpd: pki is required');
        this.opts = opts;
        this.pki = opts.pki;
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bff-httpd-'));
        fs.chmodSync(this.dir, 0o755);
        this.siteDir = path.join(this.dir, 'htdocs');
        this.runDir = path.join(this.dir, 'run');
        this.confFile = path.join(this.dir, 'httpd.conf');
        this.errorLogFile = path.join(this.dir, 'error.log');
        this.accessLogFile = path.join(this.dir, 'access.log');
        this.pidFile = path.join(this.runDir, 'httpd.pid');
        for (const d of [this.siteDir, this.runDir]) {
            fs.mkdirSync(d, { recursive: true });
            fs.chmodSync(d, 0o755);
        }
        const files = { 'index.html': INDEX_HTML, 'app.html': APP_HTML, ...(opts.site || {}) };
        for (const [name, text] of Object.entries(files)) {
            const f = path.join(this.siteDir, name);
            fs.mkdirSync(path.dirname(f), { recursive: true });
            fs.writeFileSync(f, text, { mode: 0o644 });
        }
        this.proc = null;
        this.acceptedLines = new Set();
        this.port = opts.port;
    }

    get origin() {
        return `https://localhost:${this.port}`;
    }

    url(p = '/') {
        return `${this.origin}${p}`;
    }

    /** Build and write the config file; returns its path. */
    async writeConfig() {
        const o = this.opts;
        if (!this.port) this.port = await freePort();
        const mpm = o.mpm || process.env.BFF_MPM || 'event';
        const lines = [
            '# Generated by test/integration/lib/httpd.js',
            `ServerRoot ${quoteArg(this.dir)}`,
            `LoadModule mpm_${mpm}_module ${quoteArg(path.join(MODDIR, `mod_mpm_${mpm}.so`))}`,
            ...[...STD_MODULES, ...(o.extraModules || [])]
                .filter((m) => !builtinModules().has(m))
                .map((m) => `LoadModule ${m}_module ${quoteArg(path.join(MODDIR, `mod_${m}.so`))}`),
        ];
        if (o.bff !== null && o.bffInclude) {
            // An installed package's files (bff.load names the module's path).
            lines.push(...o.bffInclude.map((f) => `Include ${quoteArg(f)}`));
        } else if (o.bff !== null) {
            lines.push(`LoadModule bff_module ${quoteArg(BFF_MODULE)}`);
        }
        if (process.getuid && process.getuid() === 0) {
            lines.push('User www-data', 'Group www-data');
        }
        lines.push(
            `Listen 127.0.0.1:${this.port}`,
            'ServerName localhost',
            `ServerAdmin root@localhost`,
            `PidFile ${quoteArg(this.pidFile)}`,
            `DefaultRuntimeDir ${quoteArg(this.runDir)}`,
            `Mutex ${quoteArg(`file:${this.runDir}`)} default`,
            `ErrorLog ${quoteArg(this.errorLogFile)}`,
            `LogLevel ${o.logLevel || 'info ssl:warn'}`,
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" timed',
            `CustomLog ${quoteArg(this.accessLogFile)} timed`,
            'TypesConfig /etc/mime.types',
            'AddType text/html .html',
            'AddOutputFilter INCLUDES .html',
            'DirectoryIndex index.html',
            'Timeout 30',
            'KeepAlive On',
        );
        if (mpm === 'prefork') {
            lines.push('StartServers 2', 'MinSpareServers 2', 'MaxSpareServers 4',
                'MaxRequestWorkers 16', 'ServerLimit 16');
        } else {
            lines.push('StartServers 2', 'ServerLimit 4', 'ThreadsPerChild 10',
                'MinSpareThreads 10', 'MaxSpareThreads 30', 'MaxRequestWorkers 40');
        }
        lines.push(
            'SSLEngine on',
            `SSLCertificateFile ${quoteArg(this.pki.certFile)}`,
            `SSLCertificateKeyFile ${quoteArg(this.pki.keyFile)}`,
            `SSLSessionCache ${quoteArg(`shmcb:${path.join(this.runDir, 'ssl_scache')}(512000)`)}`,
            'SSLProtocol -all +TLSv1.2 +TLSv1.3',
            `DocumentRoot ${quoteArg(this.siteDir)}`,
            '<Directory />',
            '    AllowOverride None',
            '    Require all denied',
            '</Directory>',
            `<Directory ${quoteArg(this.siteDir)}>`,
            '    Options +Includes',
            '    Require all granted',
            '</Directory>',
        );
        if (o.bff !== null) {
            lines.push(...directiveLines(o.bff || {}));
        }
        const extra = o.extraServer;
        if (extra) lines.push(...(Array.isArray(extra) ? extra : [extra]));
        if (o.bff !== null) {
            lines.push(`<Location ${quoteArg(o.bffLocation || '/bff')}>`, '    SetHandler bff', '</Location>');
        }
        if (o.extraTail) lines.push(...(Array.isArray(o.extraTail) ? o.extraTail : [o.extraTail]));
        fs.writeFileSync(this.confFile, `${lines.join('\n')}\n`);
        return this.confFile;
    }

    /** `apache2 -t -f conf`: { status, stdout, stderr }. */
    async configTest() {
        await this.writeConfig();
        const r = spawnSync(APACHE, ['-t', '-f', this.confFile], { encoding: 'utf8', timeout: 20000, env: this.childEnv() });
        return { status: r.status, stdout: r.stdout, stderr: r.stderr, signal: r.signal };
    }

    /** Start in the foreground as our child and wait until it accepts connections. */
    async start() {
        if (this.opts.bff !== null && !this.opts.bffInclude && !moduleBuilt()) {
            throw new Error(`mod_bff is not built: ${BFF_MODULE} does not exist (set BFF_MODULE)`);
        }
        await this.writeConfig();
        this.stderr = '';
        // detached: its own process group, because httpd (prefork) signals its
        // whole process group at shutdown and would take the test runner along.
        const proc = spawn(APACHE, ['-f', this.confFile, '-DFOREGROUND'], {
            stdio: ['ignore', 'pipe', 'pipe'],
            detached: true,
            env: this.childEnv(),
        });
        this.proc = proc;
        proc.stdout.on('data', (d) => { this.stderr += d; });
        proc.stderr.on('data', (d) => { this.stderr += d; });
        this.exited = new Promise((resolve) => {
            proc.on('exit', (code, signal) => {
                this.exitInfo = { code, signal };
                resolve(this.exitInfo);
            });
        });
        process.once('exit', () => {
            try { proc.kill('SIGKILL'); } catch { /* already gone */ }
        });
        const deadline = Date.now() + 15000;
        while (Date.now() < deadline) {
            if (this.exitInfo) {
                throw new Error(`httpd exited at start (${JSON.stringify(this.exitInfo)}):\n` +
                    `${this.stderr}\n--- error log ---\n${this.errorLog()}`);
            }
            if (await canConnect(this.port) && this.startedCount() >= 1) return this;
            await sleep(50);
        }
        throw new Error(`httpd did not start on port ${this.port}:\n${this.stderr}\n${this.errorLog()}`);
    }

    startedCount() {
        return (this.errorLog().match(/AH00489|resuming normal operations/g) || []).length;
    }

    /** Graceful restart (apachectl graceful) and wait for the new generation. */
    async graceful() {
        const before = this.startedCount();
        const r = spawnSync(APACHE, ['-f', this.confFile, '-k', 'graceful'], { encoding: 'utf8', timeout: 20000, env: this.childEnv() });
        if (r.status !== 0) throw new Error(`graceful failed: ${r.stderr}${r.stdout}`);
        const deadline = Date.now() + 15000;
        while (Date.now() < deadline) {
            if (this.exitInfo) throw new Error(`httpd exited during graceful: ${this.errorLog()}`);
            if (this.startedCount() > before && await canConnect(this.port)) return;
            await sleep(50);
        }
        throw new Error(`httpd did not come back from graceful:\n${this.errorLog()}`);
    }

    /**
     * Change BFF* directives (name: value, null removes one), rewrite the
     * config and restart gracefully, as an operator changes a running node.
     */
    async reconfigure(bffChanges) {
        this.opts.bff = { ...this.opts.bff, ...bffChanges };
        await this.writeConfig();
        await this.graceful();
    }

    /**
     * Stop httpd: graceful-stop (SIGWINCH), wait until its children have
     * exited, then SIGTERM, which ends the parent's one-second wait at once
     * (it only reaps its children then; none is signalled).
     * Not SIGTERM alone: an event-MPM child that gets SIGTERM while a worker
     * thread is closing a connection can crash in httpd itself (the child's
     * main thread closes a socket whose pool the worker has just destroyed,
     * close_worker_sockets() in event.c; about one stop in 75 under these
     * tests' load, with or without mod_bff: test/repro/README.md). A graceful
     * stop never takes that path. A child still running after 10 s gets the
     * plain SIGTERM from its parent, and SIGKILL follows 10 s later.
     */
    async stop() {
        const proc = this.proc;
        if (!proc || this.exitInfo) return this.exitInfo;
        proc.kill('SIGWINCH');
        const deadline = Date.now() + 10000;
        while (!this.exitInfo && Date.now() < deadline && liveChildren(proc.pid) > 0) {
            await sleep(20);
        }
        if (!this.exitInfo) proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
        const info = await this.exited;
        clearTimeout(t);
        return info;
    }

    errorLog() {
        try {
            return fs.readFileSync(this.errorLogFile, 'utf8');
        } catch {
            return '';
        }
    }

    errorLines() {
        return this.errorLog().split('\n').filter((l) => l !== '');
    }

    /** A position in the error log, for logSince(). */
    logMark() {
        return this.errorLines().length;
    }

    logSince(mark) {
        return this.errorLines().slice(mark);
    }

    /**
     * Run fn; afterwards, error-log lines written meanwhile that match one
     * of `patterns` are accepted (assertCleanLog skips them). Returns
     * { result, lines } with all the new lines, so the test can assert that
     * the expected line is there.
     */
    async expectLog(patterns, fn) {
        const mark = this.logMark();
        const result = await fn();
        await sleep(30);
        const all = this.errorLines();
        const lines = all.slice(mark);
        lines.forEach((l, i) => {
            if (patterns.some((re) => re.test(l))) this.acceptedLines.add(mark + i);
        });
        return { result, lines };
    }

    /** Lines that indicate trouble: error and worse, crashes. */
    badLines({ allow = [], warn = true } = {}) {
        const bad = /:(error|crit|alert|emerg)\]|exit signal|AH00060|seg(mentation)? ?fault/i;
        const warnRe = /:warn\]/;
        return this.errorLines().filter((l, i) => {
            if (this.acceptedLines.has(i)) return false;
            if (!(bad.test(l) || (warn && warnRe.test(l)))) return false;
            return !allow.some((re) => re.test(l));
        });
    }

    /** Throw if the error log has an unexpected error/crit/alert/emerg/warn line or a crash. */
    /**
     * BFF_ASAN_PRELOAD=/path/libasan.so runs httpd with a module built with
     * --enable-sanitizers: AddressSanitizer reports go to asan.* files in the
     * test directory and fail assertCleanLog.
     */
    childEnv() {
        if (!process.env.BFF_ASAN_PRELOAD) return process.env;
        return {
            ...process.env,
            LD_PRELOAD: process.env.BFF_ASAN_PRELOAD,
            ASAN_OPTIONS: `detect_leaks=0:log_path=${path.join(this.dir, 'asan')}`,
            UBSAN_OPTIONS: `print_stacktrace=1:log_path=${path.join(this.dir, 'ubsan')}`,
        };
    }

    sanitizerReports() {
        return fs.readdirSync(this.dir)
            .filter((f) => /^(asan|ubsan)\./.test(f))
            .map((f) => fs.readFileSync(path.join(this.dir, f), 'utf8'));
    }

    assertCleanLog(opts = {}) {
        const reports = this.sanitizerReports();
        if (reports.length) {
            throw new Error(`sanitizer reports from httpd:\n${reports.join('\n')}`);
        }
        const bad = this.badLines(opts);
        if (bad.length) {
            throw new Error(`unexpected lines in ${this.errorLogFile}:\n${bad.join('\n')}`);
        }
    }

    cleanup() {
        if (process.env.BFF_KEEP_TMP) return;
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}
