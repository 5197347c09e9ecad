import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon, isAlive } from './helpers/daemon';
import { getJson, httpRequest } from './helpers/http';
import { freePort } from './helpers/nginx';
import { waitFor } from './helpers/wait';

// `--dev-server=<port>` (SPEC §6): a 127.0.0.1 HTTP front that balances over the online
// workers, answers 503 when there is none, and no client can hurt.

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

/** A daemon with 2 workers and the dev server on a free port, serving. */
async function startWithDevServer(): Promise<{ d: Daemon; port: number }> {
  const port = await freePort();
  app = makeApp({ workers: 2 });
  const d = await Daemon.start(['daemon', '-c', app.configFile, `--dev-server=${port}`], app.ipcFile, {
    online: 2,
  });
  daemon = d;
  assert.equal((await d.status()).devServer, `http://127.0.0.1:${port}`, d.output);
  return { d, port };
}

/** GETs through the dev server (a new connection each time) until every pid in `expected` answered. */
async function reachAll(port: number, expected: number[]): Promise<Set<number>> {
  const seen = new Set<number>();
  await waitFor(`responses from every worker ${expected}`, async () => {
    const { pid } = await getJson<{ pid: number }>({ port });
    assert.ok(expected.includes(pid), `pid ${pid} is one of the serving workers ${expected}`);
    seen.add(pid);
    return expected.every((p) => seen.has(p));
  });
  return seen;
}

/** How many sockets the process has open (Linux). */
function socketCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:');
    } catch {
      return false; // closed meanwhile
    }
  }).length;
}

/** Where a TCP connection attempt ends: 'connected' or the error code. */
function connectOutcome(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.on('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

type Rude = 'close' | 'reset' | 'half request' | 'request, no read';

/** A client that connects and leaves at once, in one of several rude ways. */
function rudeClient(port: number, how: Rude): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      if (how === 'close') socket.destroy();
      else if (how === 'reset') socket.resetAndDestroy();
      else if (how === 'half request') socket.write('GET / HTTP/1.1\r\nHost: x\r\n', () => socket.destroy());
      else socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n', () => socket.destroy());
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
  });
}

const RUDE: Rude[] = ['close', 'reset', 'half request', 'request, no read'];

describe('dev server', () => {
  test('balances requests over both workers', async () => {
    const { d, port } = await startWithDevServer();
    const pids = await d.slotPids();
    assert.equal(pids.length, 2);
    const seen = await reachAll(port, pids);
    assert.equal(seen.size, 2, 'two distinct workers answered');
    // Every further request also lands on one of them.
    for (let i = 0; i < 6; i++) {
      const { pid } = await getJson<{ pid: number }>({ port });
      assert.ok(pids.includes(pid));
    }
  });

  test('after `nodesockd restart` requests reach the new workers only', async () => {
    const { d, port } = await startWithDevServer();
    const before = await d.slotPids();
    await reachAll(port, before);
    const r = await d.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    const after = await d.slotPids();
    assert.ok(
      after.every((pid) => !before.includes(pid)),
      `new pids ${after} differ from ${before}`,
    );
    // reachAll fails on any response from a pid outside `after`.
    await reachAll(port, after);
    await waitFor('the old workers to exit', () => before.every((pid) => !isAlive(pid)));
  });

  test('with no worker online it answers 503 and stays up; `start` brings service back', async () => {
    const { d, port } = await startWithDevServer();
    const stop = await d.cli(['stop']);
    assert.equal(stop.code, 0, stop.stderr);
    const res = await httpRequest({ port });
    assert.equal(res.status, 503);
    assert.match(res.body, /no worker is online/);
    // Rude clients while nothing serves do not hurt either (SPEC §4.6).
    for (const how of RUDE) await rudeClient(port, how);
    assert.equal((await httpRequest({ port })).status, 503);
    assert.equal(d.child.exitCode, null, 'the daemon is alive');
    assert.equal((await d.status()).running, false);
    const start = await d.cli(['start']);
    assert.equal(start.code, 0, start.stderr);
    const pids = await d.slotPids();
    assert.equal(pids.length, 2);
    await reachAll(port, pids);
  });

  test('binds 127.0.0.1 only', async () => {
    const { d, port } = await startWithDevServer();
    assert.equal((await d.status()).devServer, `http://127.0.0.1:${port}`);
    assert.equal(await connectOutcome('127.0.0.1', port), 'connected');
    // Bound to 0.0.0.0 it would accept these too: another loopback address, and every
    // non-loopback address of this host.
    assert.equal(await connectOutcome('127.0.0.2', port), 'ECONNREFUSED');
    const others = Object.values(os.networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && !a.internal && a.family === 'IPv4')
      .map((a) => a!.address);
    for (const address of others) {
      assert.equal(await connectOutcome(address, port), 'ECONNREFUSED', `${address}:${port}`);
    }
    assert.notEqual(await connectOutcome('::1', port), 'connected', 'not on IPv6 loopback either');
  });

  test('clients that connect and leave at once do not hurt it', async () => {
    const { d, port } = await startWithDevServer();
    const pids = await d.slotPids();
    await reachAll(port, pids);
    const daemonPid = d.child.pid!;
    const baseline = socketCount(daemonPid);
    for (let round = 0; round < 5; round++) {
      await Promise.all(RUDE.map((how) => rudeClient(port, how)));
    }
    assert.equal(d.child.exitCode, null, 'the daemon is alive');
    // Same workers, still serving, through the dev server and directly.
    assert.deepEqual(await d.slotPids(), pids);
    assert.ok(pids.every(isAlive));
    await reachAll(port, pids);
    for (const [slot, pid] of pids.entries()) {
      assert.equal((await getJson<{ pid: number }>({ socketPath: app.published(slot) })).pid, pid);
    }
    // No connection to a worker is left behind for the departed clients.
    await waitFor(`the daemon's sockets back to ${baseline}`, () => socketCount(daemonPid) <= baseline);
    assert.doesNotMatch(d.output, /internal error/);
  });
});
