// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// How the tests stop httpd (lib/httpd.js stop()): a graceful stop, never a
// plain SIGTERM to a busy server. With SIGTERM, an event-MPM child whose
// worker is closing a connection can crash inside httpd (a use-after-free in
// event.c's close_worker_sockets(), reproduced without mod_bff:
// test/repro/README.md), and every test file's log check would then fail at
// random. A graceful stop lets the requests in flight finish, so the user
// and the API see a complete answer, and the log shows no crash.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { useEnv } from './lib/env.js';
import { bearerOf, relayLocation, startUpstream } from './lib/upstream.js';

const DELAY = 1500; // the API's answer delay: the request is in flight when the stop comes
const up = await startUpstream({ delayMs: DELAY });
after(() => up.close());

const env = useEnv({
    httpd: {
        extraModules: ['proxy', 'proxy_http'],
        extraServer: [
            ...relayLocation(up),
        ],
    },
});

test('stopping httpd lets a relayed request in flight finish; no child crashes', async () => {
    const { client } = await env.login();
    const mark = env.httpd.logMark();
    const inFlight = client.get(env.url('/api/slow'), { headers: { 'X-CSRF': '1', 'x-test': 'slow' } })
        .then((r) => ({ status: r.status, body: r.body }), (e) => ({ error: e.message }));
    for (let i = 0; i < 100 && up.byTest('slow').length === 0; i += 1) await sleep(20);
    assert.equal(up.byTest('slow').length, 1, 'the request reached the API before the stop');

    const info = await env.httpd.stop();
    const r = await inFlight;
    assert.equal(r.error, undefined, `the request in flight was cut off: ${r.error}`);
    assert.equal(r.status, 200, r.body);
    assert.ok(bearerOf(up.byTest('slow')[0].headers), 'the API got the bearer token');
    assert.deepEqual(info, { code: 0, signal: null }, 'httpd exited normally');
    const lines = env.httpd.logSince(mark);
    // AH00492 (event), AH00170 (prefork).
    assert.ok(lines.some((l) => /caught SIGWINCH, shutting down gracefully/.test(l)),
        `a graceful stop:\n${lines.join('\n')}`);
    assert.deepEqual(lines.filter((l) => /exit signal|AH0004[5-7]/.test(l)), [],
        'no child crashed or had to be signalled');
});
