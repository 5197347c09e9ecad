/**
 * Every listener of the daemon closes the connections that send nothing, and caps how many it
 * keeps (src/listener-limits.ts), while the operator's own tools keep working. The timeouts are
 * shortened for the daemon under test with NODESOCKD_TEST_LIMITS (documented as for tests).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon } from './helpers/daemon';
import { httpRequest } from './helpers/http';
import { freePort } from './helpers/nginx';
import { silent } from './helpers/silent';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

function isClosed(closed: Promise<void>): Promise<boolean> {
  return Promise.race([closed.then(() => true), new Promise<boolean>((r) => setImmediate(() => r(false)))]);
}

function start(limits: string): Promise<Daemon> {
  return Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, {
    env: { ...process.env, NODESOCKD_TEST_LIMITS: limits },
  }).then((d) => {
    daemon = d;
    return d;
  });
}

describe('metrics', () => {
  test('a connection that sends nothing is closed; a scrape still answers', async () => {
    const port = await freePort();
    app = makeApp({ workers: 1, metrics: `127.0.0.1:${port}` }, 'lib.js');
    await start('metricsIdleMs=300');
    const idle = await Promise.all(Array.from({ length: 10 }, () => silent({ port })));
    await Promise.all(idle.map((c) => c.closed));
    assert.equal((await httpRequest({ port }, { path: '/metrics' })).status, 200);
  });

  test('at the cap the oldest idle connection makes room: a scrape answers while silent ones hold the cap', async () => {
    const port = await freePort();
    app = makeApp({ workers: 1, metrics: `127.0.0.1:${port}` }, 'lib.js');
    const d = await start('metricsConnections=4');
    const idle = [];
    for (let i = 0; i < 4; i++) idle.push(await silent({ port }));
    const res = await httpRequest({ port }, { path: '/metrics' });
    assert.equal(res.status, 200);
    await idle[0]!.closed;
    for (const c of idle.slice(2))
      assert.equal(await isClosed(c.closed), false, 'only the oldest were closed');
    await d.waitOutput(/metrics: 4 connections open \(the cap\); closed the oldest idle one for a new one/);
    for (const c of idle) c.socket.destroy();
  });
});

const prlimit = spawnSync('prlimit', ['--version']).status === 0;

describe('a flood on one listener', () => {
  test('800 silent metrics connections against a daemon limited to 256 descriptors: the CLI still gets in', {
    skip: prlimit ? false : 'needs prlimit (util-linux) to lower the daemon fd limit',
  }, async () => {
    const port = await freePort();
    app = makeApp({ workers: 1, metrics: `127.0.0.1:${port}` }, 'lib.js');
    const d = await start('');
    execFileSync('prlimit', ['--pid', String(d.child.pid), '--nofile=256:256']);
    const flood = await Promise.all(Array.from({ length: 800 }, () => silent({ port }).catch(() => null)));
    for (let i = 0; i < 3; i++) assert.equal((await d.status()).running, true);
    assert.equal((await httpRequest({ port }, { path: '/metrics' })).status, 200);
    for (const c of flood) c?.socket.destroy();
  });
});

describe('control socket', () => {
  test('a connection that sends no request is closed; a flood of them does not lock the CLI out', async () => {
    app = makeApp({ workers: 1 }, 'plain.js');
    const d = await start('controlHandshakeMs=300,controlUnidentified=8');
    const lone = await silent({ path: app.ipcFile });
    await lone.closed;
    // Far more silent connections than the cap, held open: the oldest make room for the CLI.
    const flood = await Promise.all(Array.from({ length: 40 }, () => silent({ path: app.ipcFile })));
    for (let i = 0; i < 3; i++) assert.equal((await d.status()).running, true);
    await Promise.all(flood.map((c) => c.closed));
  });

  test('at the cap of connections that sent a request, the oldest idle one makes room for the CLI', async () => {
    app = makeApp({ workers: 1 }, 'plain.js');
    const d = await start('controlIdentified=4');
    const held = [];
    for (let i = 0; i < 4; i++) {
      const c = await silent({ path: app.ipcFile });
      const replied = new Promise((resolve) => c.socket.once('data', resolve));
      c.socket.write(`${JSON.stringify({ id: 1, type: 'status' })}\n`);
      await replied;
      held.push(c);
    }
    assert.equal((await d.status()).running, true);
    await held[0]!.closed;
    await d.waitOutput(/control socket: 4 connections open \(the cap\); closed the oldest idle one/);
    for (const c of held) c.socket.destroy();
  });

  test("the workers' links to a new daemon stay up past the handshake deadline", async () => {
    app = makeApp({ workers: 2 }, 'lib.js');
    const limits = 'controlHandshakeMs=300';
    const first = await start(limits);
    await first.kill();
    daemon = undefined;
    const d = await start(limits);
    // Each adopted worker reconnects and introduces itself over the control socket.
    await d.waitOutput(/adopted worker/);
    const linked = () => d.cli(['send-msg', 'ping', '--json']);
    await waitFor('both adopted workers linked', async () => (await linked()).code === 0);
    // A silent connection opened now is closed after the deadline: by then the links are older.
    const probe = await silent({ path: app.ipcFile });
    await probe.closed;
    const r = await linked();
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  });
});

describe('dev server', () => {
  test('a connection that sends nothing is closed; requests still answer', async () => {
    const port = await freePort();
    app = makeApp({ workers: 1, devServer: port }, 'plain.js');
    await start('relayHandshakeMs=300');
    const idle = await Promise.all(Array.from({ length: 5 }, () => silent({ port })));
    await Promise.all(idle.map((c) => c.closed));
    assert.equal((await httpRequest({ port })).status, 200);
  });
});
