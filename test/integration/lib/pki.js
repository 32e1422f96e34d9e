// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Test PKI: a throw-away CA and one server certificate valid for localhost
// and 127.0.0.1 (the site and the provider share it), made with the openssl
// CLI in a temporary directory, once per test process (= per test file).

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let cached = null;

function openssl(args, cwd) {
    try {
        execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
        throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr || e.message}`);
    }
}

/**
 * Returns { dir, caFile, certFile, keyFile, ca, cert, key } (PEM text and
 * paths). Certificates are world-readable because httpd children run as
 * www-data and read the CA file when they talk to the provider; the server
 * key is read by root only (httpd's parent, the provider).
 */
export function createPki() {
    if (cached) return cached;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bff-pki-'));
    fs.chmodSync(dir, 0o755);
    const ext = path.join(dir, 'server.ext');
    fs.writeFileSync(ext, [
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature, keyEncipherment',
        'extendedKeyUsage = serverAuth',
        'subjectAltName = DNS:localhost, IP:127.0.0.1',
        '',
    ].join('\n'));
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=mod_bff test CA',
        '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
    openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
        '-CAcreateserial', '-days', '2', '-out', 'server.pem', '-extfile', ext], dir);
    for (const f of ['ca.pem', 'server.pem']) {
        fs.chmodSync(path.join(dir, f), 0o644);
    }
    fs.chmodSync(path.join(dir, 'server.key'), 0o600);
    fs.rmSync(path.join(dir, 'ca.key'));
    const caFile = path.join(dir, 'ca.pem');
    const certFile = path.join(dir, 'server.pem');
    const keyFile = path.join(dir, 'server.key');
    cached = {
        dir,
        caFile,
        certFile,
        keyFile,
        ca: fs.readFileSync(caFile, 'utf8'),
        cert: fs.readFileSync(certFile, 'utf8'),
        key: fs.readFileSync(keyFile, 'utf8'),
        cleanup() {
            fs.rmSync(dir, { recursive: true, force: true });
            cached = null;
        },
    };
    if (!process.env.BFF_KEEP_TMP) {
        process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    }
    return cached;
}
