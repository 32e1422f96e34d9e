// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// The demo's API: a tiny upstream behind httpd's `ProxyPass /api/ ... ` with
// `BFFTokenRelay On`. It answers every request with what it received, so the
// SPA can show the API's view of a call:
//   method, path, the Authorization header's scheme and, when the token is a
//   JWT, its header and claims (decoded, not verified: a real API verifies the
//   signature; this one only shows what arrived), and the names of the cookies
//   that reached it (never their values).
// It never echoes the token itself. Loopback only.
//
//   node build/demo/api.mjs --port 9080        (build/demo.sh starts it)
//   import { startApi } from './api.mjs'        (the browser test)

import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const MAX_HEADER_TOKEN = 16384;

/** A JWT's header and claims (base64url JSON), or null when it is not one. */
export function decodeJwt(token) {
    const parts = token.split('.');
    if (parts.length !== 3 || token.length > MAX_HEADER_TOKEN) return null;
    try {
        const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
        const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
        if (typeof header !== 'object' || typeof claims !== 'object' || !header || !claims) return null;
        return { header, claims };
    } catch {
        return null;
    }
}

/** What the Authorization header says, without the credential itself. */
function describeAuthorization(value) {
    if (value === undefined) return null;
    const m = /^(\S+)\s+(\S+)$/.exec(value);
    if (!m) return { scheme: null, note: 'not "<scheme> <credential>"' };
    const jwt = decodeJwt(m[2]);
    if (!jwt) return { scheme: m[1], token: null, note: 'not a JWT (an opaque token)' };
    return { scheme: m[1], token: jwt };
}

/** Names of the cookies in a Cookie header; values are never read out. */
function cookieNames(header) {
    if (!header) return [];
    return header.split(';').map((c) => c.split('=')[0].trim()).filter((n) => n !== '');
}

function handle(req, res) {
    // The body is not shown; read and drop it so keep-alive works.
    req.resume();
    req.on('end', () => {
        const body = JSON.stringify({
            api: 'mod_bff demo API',
            method: req.method,
            path: req.url,
            authorization: describeAuthorization(req.headers.authorization),
            cookies: cookieNames(req.headers.cookie),
        }, null, 2);
        res.writeHead(200, {
            'Content-Type': 'application/json',
            'Cache-Control': 'no-store',
            'Content-Length': Buffer.byteLength(body),
        });
        res.end(req.method === 'HEAD' ? undefined : body);
    });
}

/** Start the API on 127.0.0.1:port (0: any free port); resolves { port, close() }. */
export function startApi({ port = 0, host = '127.0.0.1' } = {}) {
    const server = http.createServer(handle);
    server.headersTimeout = 10000;
    server.requestTimeout = 10000;
    return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
            resolve({
                port: server.address().port,
                close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
            });
        });
    });
}

async function main() {
    const i = process.argv.indexOf('--port');
    const port = i > 0 ? Number(process.argv[i + 1]) : NaN;
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        console.error('usage: node api.mjs --port N');
        process.exit(2);
    }
    const api = await startApi({ port });
    console.log(`demo API on http://127.0.0.1:${api.port}/`);
    const stop = () => api.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    main().catch((e) => {
        console.error(e.stack || String(e));
        process.exit(1);
    });
}
