// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// The Markdown report: bench/results/<date>-<host>.md and latest.md.

import fs from 'node:fs';
import path from 'node:path';
import { median } from './measure.mjs';

const f0 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(0));
const f1 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(1));
const f2 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(2));
const f3 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(3));
const k1 = (x) => (x === null || x === undefined ? '–' : `${(x / 1000).toFixed(1)}k`);

function table(head, rows) {
    const out = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
    for (const r of rows) out.push(`| ${r.join(' | ')} |`);
    return out.join('\n');
}

const TARGETS = { 'bff-shm': 0.95, 'bff-memcache': 0.85 };

/** Summaries per (variant, conns): medians and the median ratio to plain of the same round. */
export function summarise(results) {
    const keys = results.variants.filter((v) => v.status === 'run').map((v) => v.key);
    const conns = [...new Set(results.runs.map((r) => r.conns))];
    const rows = [];
    for (const c of conns) {
        for (const k of keys) {
            const runs = results.runs.filter((r) => r.variant === k && r.conns === c);
            if (!runs.length) continue;
            const ratios = runs.map((r) => {
                const p = results.runs.find((x) => x.variant === 'plain' && x.conns === c && x.rep === r.rep);
                return p && p.rps ? r.rps / p.rps : null;
            }).filter((x) => x !== null);
            rows.push({
                variant: k, conns: c, rps: median(runs.map((r) => r.rps)), ratio: median(ratios),
                p50: median(runs.map((r) => r.p50)), p99: median(runs.map((r) => r.p99)),
                non2xx: runs.reduce((a, r) => a + r.non2xx, 0), n: runs.length,
                cpu: cpuMedians(runs),
                mcOps: opsMedians(runs),
            });
        }
    }
    return rows;
}

function cpuMedians(runs) {
    const withCpu = runs.filter((r) => r.cpu);
    if (!withCpu.length) return null;
    const out = {};
    for (const k of ['front', 'upstream', 'memcached', 'machine']) {
        const xs = withCpu.map((r) => r.cpu[k]).filter((x) => typeof x === 'number');
        out[k] = xs.length ? median(xs) : null;
    }
    return out;
}

/** memcached commands per relayed request, median over the runs that counted them; null without. */
function opsMedians(runs) {
    const withOps = runs.filter((r) => r.mcOps);
    if (!withOps.length) return null;
    const out = {};
    for (const k of Object.keys(withOps[0].mcOps)) out[k] = median(withOps.map((r) => r.mcOps[k]));
    return out;
}

/** Target checks: [{ what, ok, detail }]. */
export function targets(results, rows) {
    const out = [];
    for (const r of rows) {
        const t = TARGETS[r.variant];
        if (t !== undefined && r.ratio !== null) {
            out.push({ what: `${r.variant} c=${r.conns} >= ${t} of mod_proxy`, ok: r.ratio >= t, detail: f3(r.ratio) });
        }
    }
    // Issue 13: with every server up, replicas=2 reads from one server, as replicas=1 does.
    for (const r of rows.filter((x) => x.variant === 'bff-memcache-3r2' && x.mcOps)) {
        const one = rows.find((x) => x.variant === 'bff-memcache-3' && x.conns === r.conns && x.mcOps);
        if (one) {
            out.push({
                what: `bff-memcache-3r2 c=${r.conns}: memcached gets per request no more than bff-memcache-3's`,
                ok: r.mcOps.get <= one.mcOps.get * 1.01 + 0.001,
                detail: `${f3(r.mcOps.get)} vs ${f3(one.mcOps.get)}`,
            });
        }
    }
    for (const store of ['shm', 'memcache']) {
        for (const r of rows.filter((x) => x.variant === `bff-${store}`)) {
            const o = rows.find((x) => x.variant === `openidc-${store}` && x.conns === r.conns);
            if (o) {
                out.push({
                    what: `bff-${store} ahead of openidc-${store} c=${r.conns} (req/s)`, ok: r.rps > o.rps,
                    detail: `${f0(r.rps)} vs ${f0(o.rps)}`,
                });
            }
        }
        const bl = results.logins.find((x) => x.variant === `bff-${store}`);
        const ol = results.logins.find((x) => x.variant === `openidc-${store}`);
        if (bl && ol) {
            out.push({
                what: `bff-${store} ahead of openidc-${store} (logins/s, 4 parallel)`,
                ok: bl.parallelPerSec > ol.parallelPerSec, detail: `${f1(bl.parallelPerSec)} vs ${f1(ol.parallelPerSec)}`,
            });
        }
        const br = results.refresh.find((x) => x.variant === `bff-${store}`);
        const or = results.refresh.find((x) => x.variant === `openidc-${store}`);
        if (br && or) {
            out.push({
                what: `bff-${store} ahead of openidc-${store} (refresh of all sessions, time)`,
                ok: br.totalMs < or.totalMs, detail: `${f0(br.totalMs)} ms vs ${f0(or.totalMs)} ms`,
            });
        }
    }
    return out;
}

export function render(results) {
    const m = results.machine;
    const c = results.cfg;
    const rows = summarise(results);
    const tg = targets(results, rows);
    const L = [];
    L.push(`# mod_bff benchmark: ${results.started.slice(0, 10)} on ${m.host}`, '');
    L.push(`Command: \`bench/run.sh\`${c.quick ? ' with `BENCH_QUICK=1`' : ''}; started ${results.started}, ` +
        `finished ${results.finished}.`, '');
    L.push('Absolute numbers depend on the machine and on what else runs on it (wrk, the upstream and ' +
        'the provider share the CPUs with httpd); compare the ratios, measured interleaved in one run.', '');
    if (results.failures.length) {
        L.push('## FAILED', '');
        for (const f of results.failures) L.push(`- ${f.split('\n')[0]}`);
        L.push('');
    }
    if (results.notRun.length) {
        L.push('## Not run', '');
        for (const n of results.notRun) L.push(`- **NOT RUN**: ${n}`);
        L.push('');
    }
    L.push('## Machine and versions', '');
    L.push(table(['item', 'value'], [
        ['CPUs (nproc)', m.nproc], ['CPU model', m.cpu], ['memory', `${m.memGiB} GiB`], ['kernel', m.kernel],
        ['load average at start', m.load],
        ...Object.entries(results.versions).map(([k, v]) => [k, `\`${v}\``]),
    ]), '');
    L.push(`Settings: ${c.repeats} repeat(s) of ${c.seconds} s per variant and connection count, ` +
        `connections ${c.connections.join(' and ')}, ${c.threads} wrk threads, variants interleaved round robin.`, '');

    if (rows.length) {
        L.push('## Relayed requests per second', '');
        L.push('Median over the repeats. Ratio: median over the repeats of (variant req/s ÷ mod_proxy req/s ' +
            'of the same round).', '');
        L.push(table(['variant', 'connections', 'req/s', 'ratio to mod_proxy', 'p50 ms', 'p99 ms', 'non-2xx'],
            rows.map((r) => [r.variant, r.conns, f0(r.rps), f3(r.ratio), f2(r.p50), f2(r.p99), r.non2xx])));
        L.push('');
    }
    if (rows.some((r) => r.cpu)) {
        L.push('## CPU time per relayed request', '');
        L.push('Microseconds of CPU per request that wrk counted, median over the repeats, read from /proc: ' +
            'the front httpd (all its processes), the upstream httpd, the variant\'s memcached, and the whole ' +
            'machine (also wrk and the kernel\'s loopback networking). The last column is the machine\'s extra ' +
            'CPU per request over plain mod_proxy at the same connection count: the overhead the ratio reflects. ' +
            'With 2 cores shared by everything, ratio ≈ plain machine µs ÷ variant machine µs. The clock ticks ' +
            'are 10 ms, so each figure is ±1-2 %.', '');
        const plainCpu = (c) => rows.find((x) => x.variant === 'plain' && x.conns === c)?.cpu;
        L.push(table(['variant', 'connections', 'front httpd µs', 'upstream µs', 'memcached µs', 'machine µs',
            'machine µs over plain'],
        rows.filter((r) => r.cpu).map((r) => {
            const p = plainCpu(r.conns);
            return [r.variant, r.conns, f1(r.cpu.front), f1(r.cpu.upstream), r.cpu.memcached === null ? '–'
                : f1(r.cpu.memcached), f1(r.cpu.machine), p && r.variant !== 'plain' ? f1(r.cpu.machine - p.machine) : '–'];
        })));
        L.push('');
    }
    if (rows.some((r) => r.mcOps)) {
        L.push('## memcached commands per relayed request', '');
        L.push('Counted by the variant\'s memcached servers (`stats`: cmd_get, cmd_set, cmd_touch, ' +
            'delete hits + misses; all of the variant\'s servers summed) around each run, divided by the ' +
            'requests wrk counted; median over the repeats. Every request reads its session once; with ' +
            '`replicas=2` and every server up a read goes to one server only, writes to two.', '');
        L.push(table(['variant', 'connections', 'get', 'set', 'touch', 'delete'],
            rows.filter((r) => r.mcOps).map((r) => [r.variant, r.conns, f3(r.mcOps.get), f3(r.mcOps.set),
                f3(r.mcOps.touch), f3(r.mcOps.delete)])));
        L.push('');
    }
    if (tg.length) {
        L.push('## Targets', '');
        L.push(table(['target', 'met', 'value'], tg.map((t) => [t.what, t.ok ? 'yes' : '**MISS**', t.detail])));
        L.push('');
    }
    if (results.logins.length) {
        L.push('## Logins per second (full code flow, fresh browser each)', '');
        L.push(`Median over ${results.logins[0].rounds || 1} round(s), variants in a different order each round, ` +
            'after 5 warm-up logins per variant.', '');
        L.push(table(['variant', 'logins', 'sequential /s', 'parallel', 'parallel /s'],
            results.logins.map((r) => [r.variant, r.n, f1(r.sequentialPerSec), r.parallel, f1(r.parallelPerSec)])));
        L.push('');
    }
    if (results.refresh.length) {
        L.push('## Refresh path', '');
        L.push(`Sessions whose access tokens (lifetime ${c.refreshTTL} s) have expired; one request each, all at once. ` +
            `Median over ${results.refresh[0].rounds || 1} round(s) (refresh calls per round).`, '');
        L.push(table(['variant', 'sessions', 'all done ms', 'p50 ms', 'max ms', 'token endpoint refresh calls', 'statuses'],
            results.refresh.map((r) => [r.variant, r.sessions, f0(r.totalMs), f0(r.p50), f0(r.max), r.refreshCalls,
                JSON.stringify(r.statuses)])));
        L.push('');
        L.push(`One session, ${c.burst} requests at once after its access token expired:`, '');
        L.push(table(['variant', 'requests', 'all done ms', 'token endpoint refresh calls', 'statuses'],
            results.burst.map((r) => [r.variant, r.requests, f0(r.totalMs), r.refreshCalls, JSON.stringify(r.statuses)])));
        L.push('');
    }
    if (results.scale) {
        const s = results.scale;
        L.push('## mod_bff with many live sessions (shm store)', '');
        L.push(`Store \`${s.store}\`; resident size of the store segment (sum of Pss over the httpd processes) ` +
            `when empty: ${f1(s.emptyPss / 1024)} KiB. wrk at ${c.scaleConnections} connections for ` +
            `${c.scaleSeconds} s, each request with the next session's cookie (bench/rotate-cookies.lua).`, '');
        L.push(table(['sessions (target)', 'fill s', 'logins/s while filling', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx',
            'store resident MiB', 'bytes/session'],
            s.steps.map((x) => [`${x.sessions} (${x.target})`, f0(x.fillSeconds), f1(x.loginsPerSec), f0(x.rps),
                f2(x.p50), f2(x.p99), x.non2xx, f1(x.pss / 2 ** 20), f0(x.bytesPerSession)])));
        L.push('');
    }
    if (results.micro) {
        L.push('## The relay\'s own steps, timed natively (bench/micro.c)', '');
        L.push(`One thread, ${results.micro.record} B session record, 200,000 calls each after a warm-up; ` +
            'nanoseconds per call. This is the module\'s CPU on the relay path outside the store round trip ' +
            '(callgrind below counts the same work, but under valgrind OpenSSL runs without SHA-NI and VAES).', '');
        L.push(table(['step', 'ns per call'], results.micro.steps.map((x) => [x.step, f0(x.ns)])));
        L.push('');
    }
    if (results.callgrind.length) {
        L.push('## Instructions per relayed request (callgrind, single process, one keep-alive connection)', '');
        L.push(table(['variant', 'requests', 'total Ir/request', 'mod_bff.so self Ir/request',
            'mod_bff inclusive Ir/request (calls into mod_bff.so)'],
            results.callgrind.map((r) => [r.variant, r.requests, k1(r.totalPerReq),
                r.variant === 'plain' ? '–' : k1(r.bffSelfPerReq), r.variant === 'plain' ? '–' : k1(r.bffInclusivePerReq)])));
        L.push('');
        const b = results.callgrind.find((r) => r.variant === 'bff-shm');
        const p = results.callgrind.find((r) => r.variant === 'plain');
        if (b && p) {
            L.push(`Difference bff-shm − plain: ${k1(b.totalPerReq - p.totalPerReq)} Ir/request ` +
                `(${f1((100 * (b.totalPerReq - p.totalPerReq)) / p.totalPerReq)} % more than plain mod_proxy).`, '');
        }
        if (b) {
            L.push('Entry points into mod_bff.so (inclusive Ir/request):', '');
            L.push(table(['function', 'Ir/request'], b.bffEntries.map(([fn, x]) => [`\`${fn}\``, f0(x)])), '');
            L.push('mod_bff functions by inclusive cost (callgrind_annotate --inclusive=yes):', '');
            L.push(table(['function', 'file', 'Ir/request'], b.annotateInclusive.map(([fn, file, x]) => [`\`${fn}\``, file, f0(x)])), '');
            L.push('mod_bff.so functions by self cost:', '');
            L.push(table(['function', 'Ir/request'], b.topBffSelf.map(([fn, x]) => [`\`${fn}\``, f0(x)])), '');
            L.push('Whole process, self cost by object (Ir/request):', '');
            L.push(table(['object', 'Ir/request'], b.byObject.map(([o, x]) => [o, f0(x)])), '');
            L.push('Whole process, top functions by self cost (Ir/request):', '');
            L.push(table(['function', 'object', 'Ir/request'], b.topSelf.map(([fn, o, x]) => [`\`${fn}\``, o, f0(x)])), '');
        }
        if (b && b.login) {
            const l = b.login;
            L.push(`### One login on the httpd side (bff-shm, mean of ${l.logins}: /bff/login, callback, page)`, '');
            L.push(`Total ${f1(l.totalPerLogin / 1e6)}M Ir per login; calls into mod_bff.so ` +
                `${f1(l.bffInclusivePerLogin / 1e6)}M Ir.`, '');
            L.push(table(['object (self)', 'Ir/login'], l.byObject.map(([o, x]) => [o, f0(x)])), '');
            L.push(table(['mod_bff function (inclusive)', 'file', 'Ir/login'],
                l.annotateInclusive.map(([fn, file, x]) => [`\`${fn}\``, file, f0(x)])), '');
        }
        if (p) {
            L.push('plain mod_proxy, self cost by object (Ir/request):', '');
            L.push(table(['object', 'Ir/request'], p.byObject.map(([o, x]) => [o, f0(x)])), '');
        }
    }
    if (results.runs.length) {
        L.push('## Raw runs', '');
        L.push(table(['repeat', 'connections', 'variant', 'req/s', 'requests', 'p50 ms', 'p99 ms', 'non-2xx',
            'upstream served', 'socket errors'],
            results.runs.map((r) => [r.rep + 1, r.conns, r.variant, f1(r.rps), r.requests, f3(r.p50), f3(r.p99), r.non2xx,
                `${r.upstream}${r.upstreamOk ? '' : ' **MISMATCH**'}`,
                Object.values(r.socketErrors).some((x) => x) ? JSON.stringify(r.socketErrors) : '0'])));
        L.push('');
    }
    if (results.warnings.length) {
        L.push('## Warnings', '');
        for (const w of results.warnings) L.push(`- ${w}`);
        L.push('');
    }
    L.push('## Variants', '');
    L.push(table(['variant', 'what', 'status'], results.variants.map((v) => [v.key, v.label, v.status + (v.note ? `: ${v.note}` : '')])));
    L.push('', 'See bench/README.md for how each variant is configured and how to read the numbers.', '');
    return L.join('\n');
}

/** Write <dir>/<date>-<host>.md (+ .json) and, for full runs, latest.md; returns the paths. */
export function writeReport(results, dir) {
    fs.mkdirSync(dir, { recursive: true });
    const text = render(results);
    const stamp = results.started.slice(0, 10);
    const host = (results.machine.host || 'host').replace(/[^A-Za-z0-9._-]/g, '_');
    // A run of some variants only (BENCH_VARIANTS) is not the reference run either.
    const partial = results.cfg.quick || results.cfg.variants;
    const stem = path.join(dir, `${stamp}-${host}${results.cfg.quick ? '-quick' : ''}${results.cfg.variants ? '-variants' : ''}`);
    const json = `${JSON.stringify(results, null, 2)}\n`;
    fs.writeFileSync(`${stem}.md`, text);
    fs.writeFileSync(`${stem}.json`, json);
    const files = [`${stem}.md`, `${stem}.json`];
    if (!partial) {
        fs.writeFileSync(path.join(dir, 'latest.md'), text);
        files.push(path.join(dir, 'latest.md'));
    }
    process.stdout.write(`\n${text}\n`);
    return files;
}
