// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Idle timeout and maximum lifetime, enforced on real requests:
//   - BFFSessionIdleTimeout 5s: a session used every 2 s stays alive past
//     the idle timeout (each use slides it); one unused for 6 s is over (401);
//   - BFFSessionMaxLifetime 8s alone (the idle timeout left at its default,
//     which the lifetime then caps): httpd starts, and a session used every
//     2 s still ends 8 s after login.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { getUser, useEnv } from './lib/env.js';

const idle = useEnv({ bff: { BFFSessionIdleTimeout: '5s' } });
const short = useEnv({ bff: { BFFSessionMaxLifetime: '8s' } });

/** Log in; { client, start, done } (ms timestamps around the login). */
async function login(env) {
    const start = Date.now();
    const { client } = await env.login();
    return { client, start, done: Date.now() };
}

async function sleepUntil(t) {
    if (t > Date.now()) await sleep(t - Date.now());
}

test('idle timeout 5s: a session used every 2 s stays alive for 9 s and more', async (t) => {
    const { client, done } = await login(idle);
    const seen = [];
    for (let i = 1; Date.now() - done < 9000; ++i) {
        await sleepUntil(done + i * 2000);
        const u = await getUser(client, idle);
        seen.push(u.status);
        assert.equal(u.status, 200, `use ${i} at ${Date.now() - done} ms after login`);
    }
    t.diagnostic(`uses: ${seen.length}, last at ${Date.now() - done} ms after login`);
    assert.ok(seen.length >= 4);
});

test('idle timeout 5s: a session unused for 6 s is over', async () => {
    const { client } = await login(idle);
    const u = await getUser(client, idle);
    assert.equal(u.status, 200);
    const lastUse = Date.now();
    await sleepUntil(lastUse + 6000);
    const late = await getUser(client, idle);
    assert.equal(late.status, 401, late.resp.body);
});

test('BFFSessionMaxLifetime 8s alone: httpd starts and a session in use ends after 8 s', async (t) => {
    const { client, start, done } = await login(short);
    // Alive while well inside its lifetime (it starts between start and done,
    // and whole seconds may take up to one off its end), used every 2 s.
    let uses = 0;
    for (let i = 1; done + i * 2000 < start + 6500; ++i) {
        await sleepUntil(done + i * 2000);
        const u = await getUser(client, short);
        assert.equal(u.status, 200, `use at ${Date.now() - done} ms after login`);
        uses += 1;
    }
    await sleepUntil(done + 8200);
    const late = await getUser(client, short);
    t.diagnostic(`uses inside the lifetime: ${uses}; after 8 s: ${late.status}`);
    assert.equal(late.status, 401, late.resp.body);
});
