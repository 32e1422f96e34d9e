#!/usr/bin/env node
// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Writes the seed corpora of the JSON/JOSE targets (fuzz_jws, fuzz_jwks,
// fuzz_oidc) and test/fuzz/fuzz_jwks_fixture.h, the public JWKS that
// fuzz_jws verifies against (fresh keys on every run: run it once, commit
// the header and the seeds together). Seeds are a dozen small files per
// target; crashers (crash-*) in those directories are kept.
//   node test/fuzz/make_corpus.cjs
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const dir = __dirname;
const ISS = 'https://op.example.com';
const CLIENT = 'bff-client';
const NOW = 1767225600;  // fixed "now" of fuzz_jws (2026-01-01T00:00:00Z)

function reset(target) {
  const d = path.join(dir, 'corpus', target);
  fs.mkdirSync(d, { recursive: true });
  for (const f of fs.readdirSync(d)) {
    if (!f.startsWith('crash-')) fs.unlinkSync(path.join(d, f));
  }
  return (name, data) => fs.writeFileSync(path.join(d, name), data);
}

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const keys = {
  rsa: crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }),
  p256: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  p384: crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  ed: crypto.generateKeyPairSync('ed25519'),
};
const jwk = (k, kid, extra) => ({ ...k.publicKey.export({ format: 'jwk' }), kid, ...extra });
const jwks = { keys: [
  jwk(keys.rsa, 'rsa1', { use: 'sig', alg: 'RS256' }),
  jwk(keys.p256, 'ec1', { use: 'sig' }),
  jwk(keys.p384, 'ec2', {}),
  jwk(keys.ed, 'ed1', { use: 'sig' }),
] };

function sign(alg, kid, payload, headerExtra) {
  const header = { alg, ...(kid ? { kid } : {}), ...headerExtra };
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  let sig;
  if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), keys.rsa.privateKey);
  else if (alg === 'PS256') sig = crypto.sign('sha256', Buffer.from(input), { key: keys.rsa.privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  else if (alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(input), { key: keys.p256.privateKey, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'ES384') sig = crypto.sign('sha384', Buffer.from(input), { key: keys.p384.privateKey, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'EdDSA') sig = crypto.sign(null, Buffer.from(input), keys.ed.privateKey);
  else sig = Buffer.from('sig');
  return `${input}.${b64u(sig)}`;
}

const idt = { iss: ISS, sub: 'user-1', aud: CLIENT, exp: NOW + 300, iat: NOW - 10,
  nonce: 'n-0S6_WzA2Mj', sid: 'sid-1', auth_time: NOW - 20, email: 'a@example.com' };
const logout = { iss: ISS, aud: [CLIENT], iat: NOW - 5, exp: NOW + 120, jti: 'jti-1', sid: 'sid-1',
  sub: 'user-1', events: { 'http://schemas.openid.net/event/backchannel-logout': {} } };

// fuzz_jws: the first byte picks which front end gets the token (see fuzz_jws.c).
{
  const w = reset('fuzz_jws');
  const put = (name, mode, token) => w(name, Buffer.concat([Buffer.from([mode]), Buffer.from(token)]));
  put('idtoken-rs256', 0, sign('RS256', 'rsa1', idt));
  put('idtoken-es256', 0, sign('ES256', 'ec1', idt));
  put('idtoken-eddsa-nokid', 0, sign('EdDSA', null, idt));
  put('idtoken-ps256-aud-array', 0, sign('PS256', 'rsa1', { ...idt, aud: [CLIENT, 'x'], azp: CLIENT }));
  put('logout-es384', 1, sign('ES384', 'ec2', logout, { typ: 'logout+jwt' }));
  put('logout-sub-only', 1, sign('RS256', 'rsa1', { ...logout, sid: undefined }, { typ: 'JWT' }));
  put('refreshed-rs256', 2, sign('RS256', 'rsa1', { ...idt, nonce: undefined, iat: NOW - 86400 }));
  put('unknown-kid', 0, sign('RS256', 'other', idt));
  put('alg-none', 0, `${b64u('{"alg":"none"}')}.${b64u(JSON.stringify(idt))}.`);
  put('crit', 3, sign('RS256', 'rsa1', idt, { crit: ['exp'] }));
}

// fuzz_jwks: JWKS documents.
{
  const w = reset('fuzz_jwks');
  w('four-keys.json', JSON.stringify(jwks));
  w('rsa-only.json', JSON.stringify({ keys: [jwks.keys[0]] }));
  w('mixed-skipped.json', JSON.stringify({ keys: [
    { kty: 'oct', k: 'c2VjcmV0', kid: 'h' }, { kty: 'RSA', n: 'AQAB', e: 'AQAB' },
    { ...jwks.keys[1], use: 'enc' }, { ...jwks.keys[1], crv: 'P-384' }, { kty: 'OKP', crv: 'X25519', x: 'AA' },
    jwks.keys[3] ] }));
  w('x5c.json', JSON.stringify({ keys: [{ ...jwks.keys[0], x5c: ['MIIB'], x5t: 'abc' }] }));
  w('empty.json', '{"keys":[]}');
}

// fuzz_oidc: the first byte picks discovery (0) or a token response (1: 200,
// 2: 400, 3: 401, other: that byte as status - see fuzz_oidc.c).
{
  const w = reset('fuzz_oidc');
  const put = (name, mode, obj) => w(name, Buffer.concat([Buffer.from([mode]),
    Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj))]));
  const meta = { issuer: ISS, authorization_endpoint: `${ISS}/auth`, token_endpoint: `${ISS}/token`,
    jwks_uri: `${ISS}/jwks`, userinfo_endpoint: `${ISS}/me`, end_session_endpoint: `${ISS}/session/end?x=1`,
    revocation_endpoint: `${ISS}/token/revocation`, response_types_supported: ['code'],
    id_token_signing_alg_values_supported: ['RS256', 'ES256', 'HS256', 'none'],
    code_challenge_methods_supported: ['S256', 'plain'], authorization_response_iss_parameter_supported: true,
    backchannel_logout_supported: true, backchannel_logout_session_supported: true };
  put('discovery-full', 0, meta);
  put('discovery-minimal', 0, { issuer: ISS, authorization_endpoint: `${ISS}/a`, token_endpoint: `${ISS}/t`,
    jwks_uri: `${ISS}/j`, id_token_signing_alg_values_supported: ['EdDSA'] });
  put('discovery-loopback-http', 0, { ...meta, token_endpoint: 'http://127.0.0.1:3000/token' });
  put('discovery-no-s256', 0, { ...meta, code_challenge_methods_supported: ['plain'] });
  put('token-ok', 1, { access_token: 'eyJhbGciOiJSUzI1NiJ9.e30.c2ln', token_type: 'Bearer', expires_in: 300,
    refresh_token: 'rt-1', id_token: sign('RS256', 'rsa1', idt), scope: 'openid email' });
  put('token-minimal', 1, { access_token: 'at', token_type: 'bearer' });
  put('token-dpop', 1, { access_token: 'at', token_type: 'DPoP', expires_in: '300' });
  put('token-error', 2, { error: 'invalid_grant', error_description: 'grant request is invalid' });
  put('token-error-401', 3, { error: 'invalid_client' });
  put('token-html-500', 4, '<html>oops</html>');
}

// The public keys fuzz_jws verifies with.
fs.writeFileSync(path.join(dir, 'fuzz_jwks_fixture.h'),
  '/* Generated by test/fuzz/make_corpus.cjs together with corpus/fuzz_jws/: do not edit. */\n' +
  `#define FUZZ_JWKS ${JSON.stringify(JSON.stringify(jwks))}\n` +
  `#define FUZZ_ISS "${ISS}"\n#define FUZZ_CLIENT "${CLIENT}"\n#define FUZZ_NOW ${NOW}\n`);
console.log('seeds written under test/fuzz/corpus/ (fuzz_jws, fuzz_jwks, fuzz_oidc)');
