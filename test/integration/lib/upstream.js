// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// A test API upstream for the token relay: a plain HTTP/1.1 server (and, on
// request, an h2c server) on 127.0.0.1 that records every request it sees
// (method, path, headers, body) and answers JSON. It also accepts WebSocket
// upgrades (a minimal RFC 6455 handshake, then one text frame "hello"), and a
// WebSocket client helper talks to httpd over TLS.
//
//   const up = await startUpstream();           // up.port, up.requests
//   ... up.last(), up.find((r) => r.headers['x-test'] === id), await up.close()

import crypto from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function wsAccept(key) {
    return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** The token of `Authorization: Bearer <token>`, or null. */
/** httpd config lines: a <Location> that mod_proxy forwards to this
 * upstream with BFFTokenRelay On (the tests' usual API location). */
export function relayLocation(up, path = '/api/') {
    return [`<Location ${path}>`, `    ProxyPass http://127.0.0.1:${up.port}${path}`,
        '    BFFTokenRelay On', '</Location>'];
}

export function bearerOf(headers) {
    const a = headers?.authorization;
    if (typeof a !== 'string') return null;
    const m = /^Bearer ([^\s]+)$/.exec(a);
    return m ? m[1] : null;
}

/** Cookie header -> Map(name -> value). */
export function cookiesOf(headers) {
    const out = new Map();
    const h = headers?.cookie;
    if (!h) return out;
    for (const part of String(h).split(';')) {
        const i = part.indexOf('=');
        if (i < 0) continue;
        out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
    }
    return out;
}

/**
 * Start the upstream. Options: h2 (also start an h2c server; its port is
 * up.h2Port), delayMs (answer delay), respond ((rec) => ({ status, type,
 * body }) or null: a custom answer, e.g. an HTML page). Every request is pushed to
 * up.requests as { seq, proto, method, path, headers, body (Buffer),
 * websocket (bool) }; the JSON answer is { ok, seq, method, path, proto,
 * bodyLength, bodySha256, auth: sha256 hex of the Authorization header or null }.
 */
export async function startUpstream(opts = {}) {
    const up = {
        requests: [],
        port: 0,
        h2Port: 0,
        servers: [],
        last() {
            return this.requests[this.requests.length - 1] || null;
        },
        find(fn) {
            return this.requests.find(fn) || null;
        },
        /** Requests carrying the header x-test: id. */
        byTest(id) {
            return this.requests.filter((r) => r.headers['x-test'] === id);
        },
        async close() {
            await Promise.all(this.servers.map((s) => new Promise((resolve) => {
                s.close(() => resolve());
                if (s.closeAllConnections) s.closeAllConnections();
                for (const sock of s.bffSockets || []) sock.destroy();
            })));
            this.servers = [];
        },
    };
    let seq = 0;

    function record(proto, req, body, websocket = false) {
        const headers = {};
        for (const [k, v] of Object.entries(req.headers)) {
            if (!k.startsWith(':')) headers[k] = v;
        }
        const rec = {
            seq: ++seq, proto, method: req.method, path: req.url, headers, body, websocket,
        };
        up.requests.push(rec);
        return rec;
    }

    function answer(rec) {
        const a = rec.headers.authorization;
        return JSON.stringify({
            ok: true,
            seq: rec.seq,
            method: rec.method,
            path: rec.path,
            proto: rec.proto,
            bodyLength: rec.body.length,
            bodySha256: crypto.createHash('sha256').update(rec.body).digest('hex'),
            auth: a ? crypto.createHash('sha256').update(a).digest('hex') : null,
        });
    }

    function handle(proto) {
        return (req, res) => {
            const chunks = [];
            req.on('data', (c) => chunks.push(c));
            req.on('end', () => {
                const rec = record(proto, req, Buffer.concat(chunks));
                const send = () => {
                    const custom = opts.respond ? opts.respond(rec) : null;
                    const body = custom ? custom.body : answer(rec);
                    res.writeHead(custom?.status || 200, {
                        'content-type': custom?.type || 'application/json',
                        'content-length': Buffer.byteLength(body),
                    });
                    res.end(body);
                };
                if (opts.delayMs) setTimeout(send, opts.delayMs);
                else send();
            });
        };
    }

    const server = http.createServer(handle('http/1.1'));
    server.bffSockets = new Set();
    server.on('upgrade', (req, socket) => {
        server.bffSockets.add(socket);
        socket.on('close', () => server.bffSockets.delete(socket));
        const rec = record('http/1.1', req, Buffer.alloc(0), true);
        const key = req.headers['sec-websocket-key'];
        if (String(req.headers.upgrade).toLowerCase() !== 'websocket' || !key) {
            socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
            return;
        }
        socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
            + `Connection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(key)}\r\n\r\n`);
        // One unmasked text frame (server to client), then leave it open.
        const text = Buffer.from(`hello ${rec.seq}`);
        socket.write(Buffer.concat([Buffer.from([0x81, text.length]), text]));
        socket.on('error', () => {});
        socket.on('data', () => {});
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
    });
    up.port = server.address().port;
    up.servers.push(server);

    if (opts.h2) {
        const h2 = http2.createServer(handle('h2c'));
        h2.bffSockets = new Set();
        h2.on('connection', (s) => {
            h2.bffSockets.add(s);
            s.on('close', () => h2.bffSockets.delete(s));
        });
        await new Promise((resolve, reject) => {
            h2.once('error', reject);
            h2.listen(0, '127.0.0.1', () => resolve());
        });
        up.h2Port = h2.address().port;
        up.servers.push(h2);
    }
    return up;
}

/**
 * A WebSocket handshake to `url` (https) through httpd. Resolves
 * { status, headers, firstMessage } where firstMessage is the text of the
 * first frame when the upgrade succeeded, or { status, headers, body } when
 * the server answered without upgrading.
 */
export function wsConnect(url, { ca, headers = {}, timeout = 10000 } = {}) {
    const key = crypto.randomBytes(16).toString('base64');
    return new Promise((resolve, reject) => {
        const req = https.request(url, {
            ca,
            agent: false,
            timeout,
            headers: {
                connection: 'Upgrade',
                upgrade: 'websocket',
                'sec-websocket-version': '13',
                'sec-websocket-key': key,
                ...headers,
            },
        });
        req.on('upgrade', (res, socket, head) => {
            let buf = Buffer.from(head);
            const done = (msg) => {
                socket.destroy();
                resolve({
                    status: res.statusCode,
                    headers: res.headers,
                    acceptOk: res.headers['sec-websocket-accept'] === wsAccept(key),
                    firstMessage: msg,
                });
            };
            const tryFrame = () => {
                if (buf.length >= 2) {
                    const len = buf[1] & 0x7f;
                    if (buf.length >= 2 + len) {
                        done(buf.subarray(2, 2 + len).toString('utf8'));
                        return true;
                    }
                }
                return false;
            };
            if (tryFrame()) return;
            const timer = setTimeout(() => done(null), timeout);
            socket.on('data', (d) => {
                buf = Buffer.concat([buf, d]);
                if (tryFrame()) clearTimeout(timer);
            });
            socket.on('error', () => {});
        });
        req.on('response', (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({
                status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'),
            }));
        });
        req.on('timeout', () => req.destroy(new Error(`timeout: websocket ${url}`)));
        req.on('error', reject);
        req.end();
    });
}
