// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// wrk runs and the parsing of its report.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './servers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROTATE_LUA = path.join(HERE, '..', 'rotate-cookies.lua');

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60000, h: 3600000 };

function toMs(v, unit) {
    return Number(v) * UNIT_MS[unit];
}

/** Parse wrk's text report (run with --latency). */
export function parseWrk(text) {
    const out = { requests: null, seconds: null, rps: null, p50: null, p75: null, p90: null, p99: null,
        non2xx: 0, socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 } };
    const dist = /^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$/gm;
    for (const m of text.matchAll(dist)) out[`p${m[1]}`] = toMs(m[2], m[3]);
    let m = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)/m.exec(text);
    if (m) {
        out.requests = Number(m[1]);
        out.seconds = toMs(m[2], m[3]) / 1000;
    }
    m = /^Requests\/sec:\s+([\d.]+)/m.exec(text);
    if (m) out.rps = Number(m[1]);
    m = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text);
    if (m) out.non2xx = Number(m[1]);
    m = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
    if (m) {
        out.socketErrors = { connect: Number(m[1]), read: Number(m[2]), write: Number(m[3]), timeout: Number(m[4]) };
    }
    return out;
}

/**
 * One wrk run against url. opts: connections, threads (2), seconds,
 * headers (object), script (lua file), env (extra environment for the script).
 */
export async function wrk(url, { connections, threads = 2, seconds, headers = {}, script = null, env = {} }) {
    const args = ['-t', String(Math.min(threads, connections)), '-c', String(connections),
        '-d', `${seconds}s`, '--timeout', '5s', '--latency'];
    for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
    if (script) args.push('-s', script);
    args.push(url);
    const saved = {};
    for (const [k, v] of Object.entries(env)) {
        saved[k] = process.env[k];
        process.env[k] = v;
    }
    let r;
    try {
        r = await run('wrk', args, { timeoutMs: (seconds + 30) * 1000 });
    } finally {
        for (const [k, v] of Object.entries(saved)) {
            if (v === undefined) delete process.env[k];
            else process.env[k] = v;
        }
    }
    if (r.code !== 0) throw new Error(`wrk failed (${r.code ?? r.signal}): ${r.stderr}${r.stdout}`);
    const res = parseWrk(r.stdout);
    if (res.requests === null || res.rps === null) throw new Error(`cannot parse wrk output:\n${r.stdout}`);
    res.raw = r.stdout;
    return res;
}
