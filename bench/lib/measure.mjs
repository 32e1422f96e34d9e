// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Small measurement helpers: statistics, shared-memory residency of the
// mod_bff store segment, machine facts and tool versions.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export function median(xs) {
    const v = xs.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b);
    if (!v.length) return null;
    const m = Math.floor(v.length / 2);
    return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function percentile(xs, p) {
    const v = [...xs].sort((a, b) => a - b);
    if (!v.length) return null;
    return v[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)];
}

/**
 * Resident memory of the shared segment of about `size` bytes (the mod_bff
 * shm store) summed over the processes that map it: the sum of Pss over all
 * sharers is the segment's resident size, counted once. { pss, rss, mappings }
 * in bytes.
 */
export function segmentResidency(pids, size) {
    let pss = 0;
    let rss = 0;
    let mappings = 0;
    for (const pid of pids) {
        let text;
        try { text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8'); } catch { continue; }
        const lines = text.split('\n');
        let inSeg = false;
        for (const l of lines) {
            const h = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) /.exec(l);
            if (h) {
                const len = Number(BigInt(`0x${h[2]}`) - BigInt(`0x${h[1]}`));
                inSeg = h[3].includes('s') && len >= size && len <= size + 64 * 1024 * 1024;
                if (inSeg) mappings += 1;
                continue;
            }
            if (!inSeg) continue;
            const m = /^(Pss|Rss):\s+(\d+) kB/.exec(l);
            if (m && m[1] === 'Pss') pss += Number(m[2]) * 1024;
            if (m && m[1] === 'Rss') rss = Math.max(rss, Number(m[2]) * 1024);
        }
    }
    return { pss, rss, mappings };
}

function cmd(c, args) {
    const r = spawnSync(c, args, { encoding: 'utf8', timeout: 10000 });
    return `${r.stdout || ''}${r.stderr || ''}`.trim();
}

function dpkgVersion(pkg) {
    return cmd('dpkg-query', ['-W', '-f=${Version}', pkg]) || 'unknown';
}

export function machineInfo() {
    let cpu = 'unknown';
    try {
        const m = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
        if (m) cpu = m[1].trim();
    } catch { /* no /proc/cpuinfo */ }
    return {
        host: os.hostname(),
        nproc: os.cpus().length,
        cpu,
        memGiB: (os.totalmem() / 2 ** 30).toFixed(1),
        kernel: os.release(),
        load: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    };
}

export function versions(apache) {
    const first = (s) => s.split('\n')[0];
    return {
        httpd: (/Server version:\s*(.*)/.exec(cmd(apache, ['-v'])) || [])[1] || 'unknown',
        mod_auth_openidc: `libapache2-mod-auth-openidc ${dpkgVersion('libapache2-mod-auth-openidc')}`,
        openssl: first(cmd('openssl', ['version'])),
        curl: first(cmd('curl', ['--version'])),
        memcached: first(cmd('memcached', ['-V'])),
        wrk: first(cmd('wrk', ['-v'])),
        valgrind: first(cmd('valgrind', ['--version'])),
        node: process.version,
    };
}
