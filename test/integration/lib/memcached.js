// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// A throw-away memcached for the session-store tests: a foreground child
// process on 127.0.0.1 (TCP only) that the test stops, kills, pauses
// (SIGSTOP/SIGCONT) and restarts on the same port by its PID, plus a tiny
// text-protocol client to look at and tamper with what mod_bff stored.
//
//   const mc = await startMemcached();      // mc.port, mc.spec ("127.0.0.1:P")
//   await mc.stats()   -> { curr_items: '3', ... }
//   await mc.keys()    -> ['s:ab12...', ...]   (lru_crawler metadump hash)
//   await mc.get(k)    -> Buffer | null;  await mc.set(k, buf, ttl)
//   await mc.stop(); await mc.start(); mc.pause(); mc.resume(); await mc.close()
//   await mc.kill(); await mc.start()       // a crash, then back empty on the same port
//   await mc.fill(n, size)                  // another tenant's items (pipelined sets)
//   await mc.evictions()                    // stats evictions, a number
//   const ms = await startMemcacheds(3);    // several; specOf(ms) -> "h:p,h:p,h:p"
//
// Small caches: new Memcached({ memoryMb: 4 }) (memcached 1.6 refuses -m 1
// with its default 1 MB item size limit: an item may be at most half the
// memory; itemMaxKb sets -I). Memory comes in 1 MB slab pages, each given
// to one item size class when that class first needs it: items of a class
// that never got a page fail (SERVER_ERROR out of memory) instead of
// evicting, so a test that wants evictions fills with items of the size it
// wants evicted, after the small entries have their pages.
//
// ketamaServers(key, specs, n): the first n distinct servers of key on the
// consistent-hashing ring (docs/deployment.md), computed here independently
// of mod_bff, to check where it put each key.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './httpd.js';

export const MEMCACHED = process.env.MEMCACHED || '/usr/bin/memcached';

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

/** Does the buffer hold a complete answer to a command of this kind? */
function complete(kind, buf) {
    const s = buf.toString('latin1');
    if (kind === 'lines') return /(^|\n)(END|ERROR|CLIENT_ERROR[^\r]*|SERVER_ERROR[^\r]*)\r\n$/.test(s);
    if (kind === 'get') {
        // VALUE <key> <flags> <bytes>\r\n<data>\r\n ... END\r\n
        let i = 0;
        for (;;) {
            if (s.startsWith('END\r\n', i)) return i + 5 === s.length;
            const m = /^VALUE \S+ \d+ (\d+)(?: \d+)?\r\n/.exec(s.slice(i));
            if (!m) return /(ERROR[^\r]*)\r\n$/.test(s);
            i += m[0].length + Number(m[1]) + 2;
            if (i > s.length) return false;
        }
    }
    return s.endsWith('\r\n'); // one status line
}

export class Memcached {
    constructor({ port, memoryMb = 64, itemMaxKb = null, extraArgs = [] } = {}) {
        this.port = port;
        this.memoryMb = memoryMb;
        this.itemMaxKb = itemMaxKb;
        this.extraArgs = extraArgs;
        this.proc = null;
        this.paused = false;
        this.output = '';
    }

    get spec() {
        return `127.0.0.1:${this.port}`;
    }

    get pid() {
        return this.proc ? this.proc.pid : null;
    }

    get running() {
        return Boolean(this.proc && this.proc.exitCode === null && this.proc.signalCode === null);
    }

    /** Start (again) on this.port (a free one the first time); waits until it accepts. */
    async start() {
        if (this.running) throw new Error('memcached is already running');
        if (!this.port) this.port = await freePort();
        const args = ['-l', '127.0.0.1', '-p', String(this.port), '-U', '0', '-m',
            String(this.memoryMb), '-c', '1024',
            ...(this.itemMaxKb ? ['-I', `${this.itemMaxKb}k`] : []), ...this.extraArgs];
        if (process.getuid && process.getuid() === 0) args.push('-u', 'root');
        const proc = spawn(MEMCACHED, args, { stdio: ['ignore', 'ignore', 'pipe'] });
        this.proc = proc;
        this.paused = false;
        proc.stderr.on('data', (d) => { this.output += d; });
        // Never keep the test process alive: a failed test that skips
        // close() must not hang the run (the exit hook kills it).
        proc.unref();
        proc.stderr.unref();
        proc.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
        if (!this.exitHook) {
            this.exitHook = () => {
                try { this.proc?.kill('SIGKILL'); } catch { /* gone */ }
            };
            process.once('exit', this.exitHook);
        }
        const deadline = Date.now() + 10000;
        while (Date.now() < deadline) {
            if (!this.running) {
                throw new Error(`memcached exited at start on port ${this.port}: ${this.output}`);
            }
            if (await canConnect(this.port)) return this;
            await sleep(20);
        }
        throw new Error(`memcached did not start on port ${this.port}: ${this.output}`);
    }

    /** Stop by PID (SIGTERM, or `signal`) and wait for the exit; the port is free after. */
    async stop(signal = 'SIGTERM') {
        const proc = this.proc;
        if (!proc || !this.running) return;
        if (this.paused) proc.kill('SIGCONT');
        proc.kill(signal);
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await proc.exited;
        clearTimeout(t);
        this.paused = false;
    }

    /** SIGKILL: a crash. */
    kill() {
        return this.stop('SIGKILL');
    }

    /** Restart on the same port: everything stored is lost. */
    async restart() {
        await this.stop();
        await this.start();
    }

    /** SIGSTOP: the server keeps accepting connections (kernel backlog) and never answers. */
    pause() {
        this.proc.kill('SIGSTOP');
        this.paused = true;
    }

    resume() {
        this.proc.kill('SIGCONT');
        this.paused = false;
    }

    async close() {
        await this.stop('SIGKILL');
        if (this.exitHook) process.removeListener('exit', this.exitHook);
        this.exitHook = null;
    }

    /** Send raw bytes; resolve with the answer (Buffer) once it is complete. */
    raw(data, kind = 'line', timeoutMs = 3000) {
        return new Promise((resolve, reject) => {
            const s = net.connect({ port: this.port, host: '127.0.0.1' });
            let buf = Buffer.alloc(0);
            const timer = setTimeout(() => {
                s.destroy();
                reject(new Error(`memcached ${this.port}: no complete answer within ${timeoutMs} ms`));
            }, timeoutMs);
            s.on('data', (d) => {
                buf = Buffer.concat([buf, d]);
                if (complete(kind, buf)) {
                    clearTimeout(timer);
                    s.end();
                    resolve(buf);
                }
            });
            s.on('error', (e) => {
                clearTimeout(timer);
                reject(e);
            });
            s.write(data);
        });
    }

    /** `stats` as an object of strings. */
    async stats() {
        const out = (await this.raw('stats\r\n', 'lines')).toString('latin1');
        const st = {};
        for (const m of out.matchAll(/^STAT (\S+) (.*)\r$/gm)) st[m[1]] = m[2];
        return st;
    }

    async itemCount() {
        return Number((await this.stats()).curr_items);
    }

    /**
     * Every live key, decoded: `lru_crawler metadump hash` (recent memcached 1.6)
     * walks the hash table; `metadump all` (older servers) walks the LRUs and
     * can miss items that its maintainer thread moves between them meanwhile
     * (items read shortly before), so it is only the fallback.
     */
    async keys() {
        let out = (await this.raw('lru_crawler metadump hash\r\n', 'lines', 10000)).toString('latin1');
        if (/^(ERROR|CLIENT_ERROR)/m.test(out)) {
            out = (await this.raw('lru_crawler metadump all\r\n', 'lines', 10000)).toString('latin1');
        }
        const keys = [];
        for (const m of out.matchAll(/^key=(\S+) /gm)) keys.push(decodeURIComponent(m[1]));
        return keys;
    }

    /** The value of key (Buffer) or null. */
    async get(key) {
        const out = await this.raw(`get ${key}\r\n`, 'get');
        const head = /^VALUE \S+ \d+ (\d+)\r\n/.exec(out.toString('latin1'));
        if (!head) return null;
        const start = head[0].length;
        return out.subarray(start, start + Number(head[1]));
    }

    /** set key (ttl seconds, 0 = no expiry); true when STORED. */
    async set(key, value, ttl = 0) {
        const v = Buffer.isBuffer(value) ? value : Buffer.from(String(value));
        const out = await this.raw(Buffer.concat([
            Buffer.from(`set ${key} 0 ${ttl} ${v.length}\r\n`), v, Buffer.from('\r\n')]));
        return out.toString('latin1') === 'STORED\r\n';
    }

    async del(key) {
        const out = await this.raw(`delete ${key}\r\n`);
        return out.toString('latin1') === 'DELETED\r\n';
    }

    async flushAll() {
        await this.raw('flush_all\r\n');
    }

    /** The evictions counter of `stats`. */
    async evictions() {
        return Number((await this.stats()).evictions);
    }

    /**
     * Store n items of `size` random bytes under `${prefix}<i>` (noreply sets
     * pipelined on one connection, in batches; a `version` at the end of each
     * batch waits until the server has read it). Returns the number sent.
     */
    async fill(n, size, { prefix = 'filler:', ttl = 0, batch = 500 } = {}) {
        const value = crypto.randomBytes(size);
        for (let i = 0; i < n; i += batch) {
            const parts = [];
            for (let j = i; j < Math.min(n, i + batch); j += 1) {
                parts.push(Buffer.from(`set ${prefix}${j} 0 ${ttl} ${size} noreply\r\n`), value, Buffer.from('\r\n'));
            }
            parts.push(Buffer.from('version\r\n'));
            const out = (await this.raw(Buffer.concat(parts), 'line', 10000)).toString('latin1');
            if (!out.startsWith('VERSION')) throw new Error(`memcached ${this.port}: fill answered ${out.slice(0, 200)}`);
        }
        return n;
    }
}

/** Start n memcached servers on free ports (same options for each). */
export async function startMemcacheds(n, opts = {}) {
    const list = [];
    for (let i = 0; i < n; i += 1) list.push(await startMemcached(opts));
    return list;
}

/** "h:p,h:p,..." of these servers in this order: the BFFSessionStore server list. */
export function specOf(servers) {
    return servers.map((m) => (typeof m === 'string' ? m : m.spec)).join(',');
}

// Consistent hashing as docs/deployment.md describes it (libmemcached's
// ketama): each server "host:port" (as listed) has 160 points on a 32-bit
// ring, 4 from each MD5("host:port-k") ("host-k" for port 11211), k = 0..39, bytes 4i..4i+3 little-
// endian; a key's hash is the first 4 bytes of MD5(key), little-endian; its
// server is the first point >= the hash (after the last point: the first);
// equal points go to the server whose name sorts first. Its replicas are the
// next distinct servers walking the ring on from there.
const rings = new Map();

function ketamaRing(specs) {
    const id = specs.join(',');
    if (!rings.has(id)) {
        const points = [];
        for (const server of specs) {
            for (let k = 0; k < 40; k += 1) {
                // libmemcached leaves the default port out of the point name.
                const name = server.endsWith(':11211') ? server.slice(0, -6) : server;
                const d = crypto.createHash('md5').update(`${name}-${k}`).digest();
                for (let i = 0; i < 4; i += 1) points.push({ value: d.readUInt32LE(4 * i), server });
            }
        }
        points.sort((a, b) => a.value - b.value || (a.server < b.server ? -1 : a.server > b.server ? 1 : 0));
        rings.set(id, points);
    }
    return rings.get(id);
}

/** The share of the ring (0..1) whose keys go to each server: { spec: share }. */
export function ketamaShares(servers) {
    const ring = ketamaRing(servers.map((m) => (typeof m === 'string' ? m : m.spec)));
    const share = {};
    ring.forEach((pt, i) => {
        // The arc ending at this point: (previous point, this point].
        const prev = i ? ring[i - 1].value : ring[ring.length - 1].value - 2 ** 32;
        share[pt.server] = (share[pt.server] || 0) + (pt.value - prev) / 2 ** 32;
    });
    return share;
}

/** The first n distinct servers (specs "h:p") of key on the ring of `servers`. */
export function ketamaServers(key, servers, n = 1) {
    const specs = servers.map((m) => (typeof m === 'string' ? m : m.spec));
    const ring = ketamaRing(specs);
    const h = crypto.createHash('md5').update(key).digest().readUInt32LE(0);
    let lo = 0;
    let hi = ring.length;
    while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (ring[mid].value < h) lo = mid + 1;
        else hi = mid;
    }
    const out = [];
    for (let i = 0; i < ring.length && out.length < Math.min(n, specs.length); i += 1) {
        const s = ring[(lo + i) % ring.length].server;
        if (!out.includes(s)) out.push(s);
    }
    return out;
}

/** Start a memcached on a free port (or `port`). */
export async function startMemcached(opts = {}) {
    const mc = new Memcached(opts);
    await mc.start();
    return mc;
}
