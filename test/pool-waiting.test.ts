/**
 * Accepted connections of a pool that wait for a worker (red team 2026-12-06, findings 5 and 9):
 * a client that leaves while it waits is dropped, the others are closed at `waitTimeout` or past
 * `maxWaiting` with rate-limited log lines, a connection that waited reaches its worker whole,
 * a front with few descriptors serves again once its module is fixed, and `shutdown()` gives
 * the connections it accepted to a worker before the workers drain.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { type LogRecord, log, type ServiceProxy } from '../src/index.js';
import { ensureBuilt, FIXTURES, type Fixture, request, startPool } from './fixtures/pool/harness.js';
import { waitFor } from './helpers/wait.js';

before(() => ensureBuilt());

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsd-pool-waiting-test-'));
const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups) c();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const records: LogRecord[] = [];
log.setHandler((r) => records.push(r));

/** A flag file that makes the fixture's module throw while it exists (a broken deploy). */
function brokenModule(name: string): { fixture: Fixture; fix: () => void } {
  const flag = path.join(tmp, name);
  fs.writeFileSync(flag, '');
  return { fixture: { throwWhileExists: flag }, fix: () => fs.rmSync(flag, { force: true }) };
}

interface Client {
  socket: net.Socket;
  /** Settles when the front closes it, with what the front sent. */
  closed: Promise<string>;
  isClosed: () => boolean;
}

/** A raw client connection. */
async function client(port: number): Promise<Client> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let got = '';
  socket.on('data', (c: Buffer) => {
    got += c.toString();
  });
  let isClosed = false;
  const closed = once(socket, 'close').then(() => {
    isClosed = true;
    return got;
  });
  await once(socket, 'connect');
  cleanups.push(() => socket.destroy());
  return { socket, closed, isClosed: () => isClosed };
}

/** The counts in the "closed client connections" lines with `what` since record `from`. */
function closedCounts(from: number, what: RegExp): { lines: LogRecord[]; total: number } {
  const lines = records.slice(from).filter((r) => r.message.startsWith('closed client connections'));
  let total = 0;
  for (const r of lines) {
    const m = new RegExp(`(\\d+) ${what.source}`).exec(r.message);
    if (m) total += Number(m[1]);
  }
  return { lines, total };
}

type Pool = ServiceProxy<Worker | ChildProcess>;

/** A pool whose module is broken, after its first failed start (the next is a minute away). */
async function brokenPool(
  name: string,
  options: { waitTimeout?: number; maxWaiting?: number },
): Promise<{ proxy: Pool; port: number }> {
  const { fixture } = brokenModule(name);
  const { proxy, port } = await startPool(
    { minWorkers: 1, restartDelay: { initial: 60_000 }, fixture, ...options },
    false,
  );
  cleanups.push(() => void proxy.shutdown({ timeout: 1000 }));
  await waitFor('the first start to fail', () => proxy.stats().crashed === 1);
  return { proxy, port };
}

describe('while no worker can start', () => {
  test('a client that leaves while it waits is dropped at once', async () => {
    const { proxy, port } = await brokenPool('leaves', { waitTimeout: 60_000 });
    const { socket, closed } = await client(port);
    await waitFor('the connection to wait', () => proxy.stats().waiting === 1);
    socket.end();
    await closed;
    await waitFor('the front to drop it', () => proxy.stats().waiting === 0);
  });

  test('a waiting connection is closed at waitTimeout, with rate-limited log lines', async () => {
    const from = records.length;
    const { proxy, port } = await brokenPool('deadline', { waitTimeout: 300 });
    const clients = await Promise.all(Array.from({ length: 5 }, () => client(port)));
    for (const c of clients) c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const answers = await Promise.all(clients.map((c) => c.closed));
    assert.deepEqual(answers, ['', '', '', '', ''], 'closed without an answer');
    assert.equal(proxy.stats().waiting, 0);
    const { lines, total } = await waitFor('the log lines', () => {
      const c = closedCounts(from, /that waited 300 ms for a worker/);
      return c.total === 5 ? c : null;
    });
    // At most one line a second: the counts add up in between.
    const span = Date.parse(lines[lines.length - 1].isotime) - Date.parse(lines[0].isotime);
    assert.ok(lines.length <= 1 + Math.ceil(span / 1000), `${lines.length} lines in ${span} ms`);
    assert.equal(total, 5);
  });

  test('past maxWaiting a new connection is closed at once', async () => {
    const from = records.length;
    const { proxy, port } = await brokenPool('full', { waitTimeout: 60_000, maxWaiting: 2 });
    await client(port);
    await client(port);
    await waitFor('two waiting', () => proxy.stats().waiting === 2);
    const third = await client(port);
    assert.equal(await third.closed, '');
    assert.equal(proxy.stats().waiting, 2);
    await waitFor('the log line', () => closedCounts(from, /that found maxWaiting/).total === 1);
  });
});

for (const workerType of ['thread', 'process'] as const) {
  describe(`${workerType} workers`, () => {
    test('a request that waited for a fixed module reaches it whole (200 kB, more than the front reads)', async () => {
      const broken = brokenModule(`fixed-${workerType}`);
      const { proxy, port } = await startPool(
        {
          workerType,
          minWorkers: 1,
          restartDelay: { initial: 100, max: 100 },
          waitTimeout: 60_000,
          fixture: broken.fixture,
        },
        false,
      );
      try {
        const body = Buffer.alloc(200_000, 'abcdefghij');
        const reply = request(port, { method: 'POST', body });
        await waitFor('the request to wait', () => proxy.stats().waiting === 1 && proxy.stats().crashed >= 1);
        broken.fix();
        const r = await reply;
        assert.equal(r.status, 200);
        assert.ok(r.body.equals(body), 'the body came back whole');
      } finally {
        await proxy.shutdown({ timeout: 2000 });
      }
    });

    test('shutdown() lets a connection waiting for its starting worker reach it', async () => {
      const { proxy, port } = await startPool(
        { workerType, maxWorkers: 1, fixture: { listenAfterMs: 1000 } },
        false,
      );
      const reply = request(port, { method: 'POST', body: 'accepted before the shutdown' });
      await waitFor('the connection to wait for the starting worker', () => proxy.stats().connections === 1);
      await proxy.shutdown({ timeout: 5000 });
      const r = await reply;
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'accepted before the shutdown');
    });

    test('shutdown() serves the connections already given to a busy worker', async () => {
      const { proxy, port } = await startPool({ workerType, workerCount: 1 });
      const marker = path.join(tmp, `blocked-${workerType}`);
      const blocker = request(port, { path: `/block/2000?marker=${encodeURIComponent(marker)}` });
      await waitFor('the worker to block', () => fs.existsSync(marker));
      const queued = ['one', 'two'].map((body) => request(port, { method: 'POST', body }));
      await waitFor('both to be with the worker', () => proxy.stats().connections === 3);
      await proxy.shutdown({ timeout: 5000 });
      assert.equal((await blocker).body.toString(), 'unblocked');
      const replies = await Promise.all(queued);
      assert.deepEqual(
        replies.map((r) => r.body.toString()),
        ['one', 'two'],
      );
    });
  });
}

test('a front with 256 descriptors serves again once its module is fixed, after 400 clients waited', {
  skip: spawnSync('prlimit', ['--version']).status === 0 ? false : 'needs prlimit (util-linux)',
}, async () => {
  const broken = brokenModule('fds');
  const front = spawn(
    'prlimit',
    ['--nofile=256:256', '--', process.execPath, path.join(FIXTURES, 'front.js'), 'thread', 'default'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        POOL_FIXTURE: JSON.stringify(broken.fixture),
        POOL_FRONT_OPTIONS: JSON.stringify({
          minWorkers: 1,
          maxWorkers: 2,
          restartDelay: { initial: 100, max: 100 },
          waitTimeout: 60_000,
        }),
      },
    },
  );
  cleanups.push(() => front.kill('SIGKILL'));
  let out = '';
  front.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const line = await waitFor('the front to listen', () => out.split('\n').find((l) => l.includes('"port"')));
  const { port } = JSON.parse(line) as { port: number };
  const idle = await Promise.all(Array.from({ length: 400 }, () => client(port)));
  // A quarter of 256 wait (maxWaiting's default); the front closes the others at once.
  await waitFor(
    'the front to close those past maxWaiting',
    () => idle.filter((c) => c.isClosed()).length >= 400 - 64,
  );
  broken.fix();
  const r = await waitFor('a request to be served', () =>
    request(port, { method: 'POST', body: 'served' }).catch(() => null),
  );
  assert.equal(r.body.toString(), 'served');
  // SIGTERM, not SIGKILL: the front removes its relay directory on the way out.
  const exited = once(front, 'exit');
  front.kill('SIGTERM');
  await exited;
});
