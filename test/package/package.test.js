// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// The Debian package on this machine's httpd, as an admin would use it:
// dpkg -i libapache2-mod-bff_*.deb, a2enmod bff, then an httpd that loads the
// module through the installed /etc/apache2/mods-enabled/bff.load (and
// bff.conf) runs a full login and /bff/user against the test provider.
//
// Needs root: it installs and purges the package. Whatever the test finds at
// the package's paths (a mod_bff.so from `make install` or build/demo.sh, a
// hand-made bff.load, a2enmod's state) is put aside first and put back after
// the purge, and the test fails if the machine is not as before.
//
//   BFF_DEB=_build-deb/libapache2-mod-bff_<version>_amd64.deb node --test test/package/
// Without BFF_DEB it builds the package first (build/package.sh, about 40 s).
// build/test.sh runs it once, after building the package, not in the ASan pass.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { getUser, startEnv } from '../integration/lib/env.js';
import { REPO } from '../integration/lib/httpd.js';

const PKG = 'libapache2-mod-bff';
const MODULE = '/usr/lib/apache2/modules/mod_bff.so';
const AVAILABLE = '/etc/apache2/mods-available';
const ENABLED = '/etc/apache2/mods-enabled';
const STATE = '/var/lib/apache2/module'; // a2enmod's and the maintainer scripts' records
const VERSION = /AC_INIT\(\[mod_bff\],\s*\[([^\]]+)\]/
    .exec(fs.readFileSync(path.join(REPO, 'configure.ac'), 'utf8'))[1];

function run(cmd, args, opts = {}) {
    const r = spawnSync(cmd, args, {
        encoding: 'utf8', timeout: opts.timeout || 120000, cwd: opts.cwd,
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', ...(opts.env || {}) },
    });
    return { status: r.status, out: `${r.stdout || ''}${r.stderr || ''}`, stdout: r.stdout || '' };
}

function must(cmd, args, opts) {
    const r = run(cmd, args, opts);
    assert.equal(r.status, 0, `${cmd} ${args.join(' ')}:\n${r.out}`);
    return r;
}

/** dpkg, waiting (up to 2 min) while another apt/dpkg holds the lock. */
async function dpkg(args) {
    const deadline = Date.now() + 120000;
    for (;;) {
        const r = run('dpkg', args);
        if (r.status === 0 || !/lock/i.test(r.out) || Date.now() > deadline) return r;
        await new Promise((res) => setTimeout(res, 2000));
    }
}

function installed() {
    return run('dpkg-query', ['-W', '-f=${db:Status-Status}', PKG]).stdout === 'installed';
}

/** Every path the package or a2enmod may create, that exists now. */
function packagePaths() {
    const fixed = [MODULE, `${AVAILABLE}/bff.load`, `${AVAILABLE}/bff.conf`,
        `${ENABLED}/bff.load`, `${ENABLED}/bff.conf`];
    const state = fs.existsSync(STATE)
        ? fs.readdirSync(STATE).map((d) => path.join(STATE, d, 'bff'))
        : [];
    return [...fixed, ...state].filter((p) => {
        try { fs.lstatSync(p); return true; } catch { return false; }
    });
}

/** What is at those paths: symlink targets, file modes, owners and contents. */
function snapshot() {
    return packagePaths().map((p) => {
        const st = fs.lstatSync(p);
        const entry = { path: p, mode: st.mode, uid: st.uid, gid: st.gid, atime: st.atime, mtime: st.mtime };
        if (st.isSymbolicLink()) entry.link = fs.readlinkSync(p);
        else entry.data = fs.readFileSync(p);
        return entry;
    });
}

function digest(snap) {
    return snap.map((e) => `${e.path} ${e.mode.toString(8)} ${e.uid}:${e.gid} ${e.link ??
        crypto.createHash('sha256').update(e.data).digest('hex')}`).sort().join('\n');
}

function clear(snap) {
    for (const e of snap) fs.rmSync(e.path, { force: true });
}

function restore(snap) {
    for (const e of snap) {
        fs.mkdirSync(path.dirname(e.path), { recursive: true });
        fs.rmSync(e.path, { force: true });
        if (e.link !== undefined) fs.symlinkSync(e.link, e.path);
        else fs.writeFileSync(e.path, e.data, { mode: e.mode & 0o7777 });
        fs.lchownSync(e.path, e.uid, e.gid);
        if (e.link === undefined) {
            fs.chmodSync(e.path, e.mode & 0o7777);
            fs.utimesSync(e.path, e.atime, e.mtime);
        }
    }
}

function buildPackage() {
    const r = run('bash', ['build/package.sh'], { cwd: REPO, timeout: 600000 });
    assert.equal(r.status, 0, `build/package.sh:\n${r.out}`);
    return r.stdout.trim().split('\n').at(-1);
}

let saved = null;
let env = null;

before(async () => {
    assert.equal(process.getuid(), 0, 'the package test installs a package: run it as root');
    assert.ok(!installed(), `${PKG} is installed on this machine already; this test installs and ` +
        `purges it. Remove it first: dpkg --purge ${PKG}`);
    const deb = process.env.BFF_DEB || buildPackage();
    assert.ok(fs.existsSync(deb), `no package at ${deb}`);
    saved = snapshot();
    clear(saved);
    const r = await dpkg(['-i', deb]);
    assert.equal(r.status, 0, `dpkg -i ${deb}:\n${r.out}`);
});

after(async () => {
    const problems = [];
    if (env) {
        await env.stop();
        try { env.httpd.assertCleanLog(); env.httpd.cleanup(); } catch (e) { problems.push(e.message); }
    }
    // Also after a failed dpkg -i: "dpkg --purge" runs prerm/postrm (a2dismod).
    const st = run('dpkg-query', ['-W', '-f=${db:Status-Status}', PKG]).stdout;
    if (st && st !== 'not-installed') {
        const r = await dpkg(['--purge', PKG]);
        if (r.status !== 0) problems.push(`dpkg --purge ${PKG}:\n${r.out}`);
    }
    const left = packagePaths();
    if (left.length) problems.push(`left behind by the purge: ${left.join(' ')}`);
    clear(snapshot());
    if (saved) {
        restore(saved);
        const now = digest(snapshot());
        if (now !== digest(saved)) problems.push(`machine not as before:\n${now}\n---\n${digest(saved)}`);
    }
    if (installed()) problems.push(`${PKG} still installed`);
    assert.deepEqual(problems, []);
});

test('dpkg -i installs the module, bff.load and a commented bff.conf; Depends from shlibs and dh_apache2', () => {
    const [version, depends] = must('dpkg-query', ['-W', '-f=${Version}\t${Depends}', PKG]).stdout.split('\t');
    assert.match(version, new RegExp(`^${VERSION.replace(/\./g, '\\.')}-\\d+$`), 'debian/changelog follows configure.ac');
    for (const dep of [/\bapache2-api-\d{8}\b/, /\blibssl3 \(>= 3/, /\blibcurl4\b/, /\blibjansson4\b/,
        /\blibapr1\b/, /\blibaprutil1\b/]) {
        assert.match(depends, dep);
    }
    const files = must('dpkg', ['-L', PKG]).stdout.split('\n');
    for (const f of [MODULE, `${AVAILABLE}/bff.load`, `${AVAILABLE}/bff.conf`]) {
        assert.ok(files.includes(f), `${f} in dpkg -L`);
    }
    assert.doesNotMatch(must('ldd', [MODULE]).stdout, /not found/);
    assert.equal(fs.readFileSync(`${AVAILABLE}/bff.load`, 'utf8').trim(),
        `LoadModule bff_module ${MODULE}`);

    // Every line of bff.conf is a comment but the <IfModule> around them, and
    // every directive of docs/directives.md is there with its default.
    const conf = fs.readFileSync(`${AVAILABLE}/bff.conf`, 'utf8');
    const active = conf.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(active, ['<IfModule bff_module>', '</IfModule>']);
    const directives = [...fs.readFileSync(path.join(REPO, 'docs/directives.md'), 'utf8')
        .matchAll(/^## (BFF\w+)$/gm)].map((m) => m[1]);
    assert.ok(directives.length > 20);
    const missing = directives.filter((d) => !new RegExp(`^#\\s*${d}\\s`, 'm').test(conf));
    assert.deepEqual(missing, [], 'directives of docs/directives.md missing from debian/bff.conf');
});

test('the package enables the module; a2dismod and a2enmod bff work', () => {
    assert.equal(run('a2query', ['-m', 'bff']).status, 0, 'enabled on installation, as Debian does');
    must('a2dismod', ['-q', 'bff']);
    assert.ok(!fs.existsSync(`${ENABLED}/bff.load`));
    must('a2enmod', ['-q', 'bff']);
    assert.equal(fs.readlinkSync(`${ENABLED}/bff.load`), '../mods-available/bff.load');
    assert.equal(fs.readlinkSync(`${ENABLED}/bff.conf`), '../mods-available/bff.conf');
    assert.equal(run('a2query', ['-m', 'bff']).status, 0);
});

test('httpd with the installed bff.load and bff.conf: a full login and /bff/user', async () => {
    env = await startEnv({
        httpd: { bffInclude: [`${ENABLED}/bff.load`, `${ENABLED}/bff.conf`] },
    });
    const maps = fs.readFileSync(`/proc/${env.httpd.proc.pid}/maps`, 'utf8');
    assert.ok(maps.includes(MODULE), `httpd loaded ${MODULE}`);
    assert.match(env.httpd.errorLog(), new RegExp(`BFF00170: mod_bff/${VERSION.replace(/\./g, '\\.')} started`));

    const { client, login } = await env.login({ returnTo: '/app.html' });
    assert.equal(login.final.status, 200);
    assert.match(login.final.body, /SIGNED-IN/);
    const user = await getUser(client, env);
    assert.equal(user.status, 200);
    assert.equal(user.body.sub, 'alice');
    // The back channel names the installed module's version.
    assert.equal(env.provider.tokenRequests.at(-1).userAgent, `mod_bff/${VERSION}`);
});
