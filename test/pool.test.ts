/**
 * The pool's behaviour beyond Socketnaut: client address info under concurrency (TCP and
 * UNIX-socket workers, threads and processes), restart with backoff, 'ready' never lost,
 * graceful shutdown with idle keep-alive clients, scale up and down, a failed worker
 * connection retried elsewhere, and the PROXY protocol.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  createServiceProxy,
  type LogRecord,
  log,
  type ProxySocketAddressInfo,
  SyslogLevel,
  type WorkerAgent,
} from '../src/index.js';
import {
  ensureBuilt,
  FIXTURES,
  HTTP_WORKER,
  json,
  portOf,
  request,
  shutdownWithUploadInFlight,
  startPool,
} from './fixtures/pool/harness.js';
import { waitFor } from './helpers/wait.js';

before(() => ensureBuilt());

/** The pool's log records from now on (the handler before still gets each), until `restore()`. */
function recordLog(): { records: LogRecord[]; restore: () => void } {
  const records: LogRecord[] = [];
  const previous = log.handler;
  log.setHandler((r) => {
    records.push(r);
    previous(r);
  });
  return { records, restore: () => log.setHandler(previous) };
}

interface JsonReply {
  info: ProxySocketAddressInfo;
  remoteAddress?: string;
  remotePort?: number;
  pid: number;
  threadId: number;
}

for (const workerType of ['thread', 'process'] as const) {
  describe(`${workerType} workers`, () => {
    for (const unix of [false, true]) {
      test(`24 concurrent clients each get their own address info (workers on ${unix ? 'UNIX sockets' : 'TCP'})`, async () => {
        const { proxy, port } = await startPool({ workerType, workerCount: 2, fixture: { unix } });
        try {
          const replies = await Promise.all(
            Array.from({ length: 24 }, () => request(port, { path: '/json' })),
          );
          const seen = new Set<number>();
          for (const r of replies) {
            assert.equal(r.status, 200, r.body.toString());
            const body = JSON.parse(r.body.toString()) as JsonReply;
            assert.equal(body.info.remote.port, r.localPort);
            assert.equal(body.info.remote.address, '127.0.0.1');
            assert.equal(body.info.local.port, port);
            // What the app's own server sees: the client, also over the thread relay's UNIX socket.
            assert.equal(body.remoteAddress, '127.0.0.1');
            assert.equal(body.remotePort, r.localPort);
            seen.add(body.info.remote.port);
          }
          assert.equal(seen.size, 24);
          // Both workers served.
          assert.equal(new Set(replies.map((r) => r.headers['x-worker'])).size, 2);
        } finally {
          await proxy.shutdown({ timeout: 2000 });
        }
      });
    }

    test('requestProxySocketAddressInfo resolves undefined for a direct hit on the worker’s own port (a health check)', async () => {
      const { proxy } = await startPool({ workerType, workerCount: 1 });
      try {
        const connect = (await proxy.agents[0].socketConnectOpts) as net.TcpSocketConnectOpts;
        const direct = await request(connect.port, { path: '/json' });
        assert.equal(direct.status, 200, direct.body.toString());
        const body = JSON.parse(direct.body.toString()) as Partial<JsonReply>;
        assert.equal(body.info, undefined);
        assert.equal(proxy.stats().crashed, 0);
      } finally {
        await proxy.shutdown({ timeout: 2000 });
      }
    });

    test('a worker that throws on load is restarted with backoff, and never reported ready', async () => {
      const delays: number[] = [];
      const previous = log.handler;
      log.setHandler((r) => {
        const delay = /; next start in (\d+) ms$/.exec(r.message);
        if (delay) delays.push(Number(delay[1]));
        previous(r);
      });
      let spawns = 0;
      try {
        const { proxy } = await startPool(
          {
            workerType,
            minWorkers: 1,
            restartDelay: { initial: 40, max: 160 },
            fixture: { throwOnLoad: true },
          },
          false,
        );
        let ready = false;
        proxy.on('ready', () => {
          ready = true;
        });
        proxy.on('spawn', () => {
          spawns += 1;
        });
        const crashes: string[] = [];
        proxy.on('crash', (_a: WorkerAgent<Worker | ChildProcess>, reason: string) => crashes.push(reason));
        await waitFor('three restarts', () => spawns >= 3);
        await proxy.shutdown({ timeout: 1000 });
        assert.equal(ready, false);
        // Three restarts come after three crashes; the constructor's start was the first.
        assert.ok(crashes.length >= 3);
        if (workerType === 'thread') assert.match(crashes[0], /thrown while loading/);
        // The delays doubling to the cap; pool-scaler.test.ts checks when each start comes, to the millisecond.
        assert.deepEqual(delays.slice(0, 3), [40, 80, 160]);
      } finally {
        log.setHandler(previous);
      }
    });

    test('a worker that throws on a request is replaced and the pool goes on serving', async () => {
      const { proxy, port } = await startPool({ workerType, workerCount: 2 });
      try {
        const crashed = once(proxy, 'crash');
        await assert.rejects(request(port, { path: '/throw' }));
        await crashed;
        await waitFor('two ready workers again', () => proxy.stats().ready === 2);
        const replies = await Promise.all(Array.from({ length: 4 }, () => json<JsonReply>(port)));
        assert.equal(replies.length, 4);
        assert.equal(proxy.stats().crashed, 1);
      } finally {
        await proxy.shutdown({ timeout: 2000 });
      }
    });

    test('shutdown() without a timeout closes an idle connection at once and never cuts in-flight work (an upload held past the old 10 s cut)', async () => {
      const { proxy, port } = await startPool({ workerType, workerCount: 1 });
      await shutdownWithUploadInFlight(proxy, port, {}, async (done) => {
        // Past the 10 s after which shutdown() used to cut in-flight work by default.
        await new Promise((resolve) => setTimeout(resolve, 11_000));
        assert.equal(done(), false);
      });
    });

    test('shutdown() with a timeout closes an idle keep-alive connection at once and lets an in-flight request finish', async () => {
      const { proxy, port } = await startPool({ workerType, workerCount: 1 });
      await shutdownWithUploadInFlight(proxy, port, { timeout: 60_000 });
    });

    test('shutdown(): a connection its worker got before the drain, whose request comes after the drain began, is served', async () => {
      const { records, restore } = recordLog();
      const { proxy, port } = await startPool({
        workerType,
        workerCount: 1,
        fixture: { level: SyslogLevel.DEBUG },
      });
      const socket = net.connect(port, '127.0.0.1');
      try {
        await once(socket, 'connect');
        await waitFor('the front to take the connection', () => proxy.stats().connections === 1);
        const shutdown = proxy.shutdown({ timeout: 10_000 });
        await waitFor('the worker to drain', () => records.some((r) => / draining\.$/.test(r.message)));
        const chunks: Buffer[] = [];
        socket.on('data', (c: Buffer) => chunks.push(c));
        const ended = new Promise<string>((resolve, reject) => {
          socket.once('error', reject);
          socket.once('close', () => resolve(Buffer.concat(chunks).toString()));
        });
        socket.write('GET /json HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
        assert.match(await ended, /^HTTP\/1\.1 200 /);
        assert.deepEqual(await shutdown, [{ status: 'fulfilled', value: 0 }]);
      } finally {
        socket.destroy();
        restore();
      }
    });
  });
}

for (const tls of [false, true]) {
  test(`an Express worker (${tls ? 'HTTPS in the worker' : 'HTTP'}) sees the client as req.ip and req.socket's remote end`, async () => {
    const server = net.createServer();
    const proxy = createServiceProxy({
      server,
      workerCount: 1,
      workerURL: path.join(FIXTURES, 'express-peer-worker.js'),
      workerOptions: { workerData: { tls } },
    });
    server.listen(0, '127.0.0.1');
    await once(proxy, 'ready');
    try {
      for (let i = 0; i < 3; i++) {
        const r = await request(portOf(server), { tls });
        assert.equal(r.status, 200, r.body.toString());
        assert.deepEqual(JSON.parse(r.body.toString()), {
          ip: '127.0.0.1',
          remoteAddress: '127.0.0.1',
          remotePort: r.localPort,
        });
      }
    } finally {
      await proxy.shutdown({ timeout: 2000 });
    }
  });
}

test("'ready' is never lost: minWorkers 0, and a listener attached after the constructor and an await", async () => {
  const server = net.createServer();
  const proxy = createServiceProxy({ server, workerURL: HTTP_WORKER, maxWorkers: 2 });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const first = await once(proxy, 'ready'); // attached ticks after the constructor
  assert.deepEqual(first, []);
  const again = await once(proxy, 'ready'); // attached after 'ready' was surely emitted
  assert.deepEqual(again, []);
  // On demand, the first connection starts a worker.
  const reply = await json<JsonReply>(portOf(server));
  assert.ok(reply.threadId > 0);
  await proxy.shutdown({ timeout: 2000 });
});

test('cold start: one worker first, then at most maxSpawning at a time; the first client is served from the first online worker, ready when all are', async () => {
  const server = net.createServer();
  const proxy = createServiceProxy({ server, workerURL: HTTP_WORKER, workerCount: 8, maxSpawning: 2 });
  // Listeners attached with the constructor: its first start is counted.
  let spawnedAtFirstOnline = -1;
  proxy.once('online', () => {
    spawnedAtFirstOnline = proxy.stats().spawned;
  });
  let mostStarting = 0;
  proxy.on('spawn', () => {
    mostStarting = Math.max(mostStarting, proxy.stats().starting);
  });
  const readyAt: number[] = [];
  proxy.on('ready', () => readyAt.push(proxy.stats().ready));
  const firstOnline = once(proxy, 'online');
  server.listen(0, '127.0.0.1');
  try {
    const [first] = (await firstOnline) as [WorkerAgent];
    // The constructor started one worker, not the whole floor.
    assert.equal(spawnedAtFirstOnline, 1);
    const reply = await json<JsonReply>(portOf(server));
    assert.ok(reply.threadId > 0);
    assert.ok(first.worker instanceof Worker);
    const agents = (await once(proxy, 'ready')) as WorkerAgent[];
    assert.equal(agents.length, 8);
    assert.deepEqual(readyAt, [8]);
    assert.ok(mostStarting <= 2, `${mostStarting} workers were starting at once`);
    assert.equal(proxy.stats().spawned, 8);
  } finally {
    await proxy.shutdown({ timeout: 2000 });
  }
});

test('scale up under a bounded load, then down one idle worker at a time after the grace period', async () => {
  const { proxy, port } = await startPool({
    minWorkers: 1,
    maxWorkers: 4,
    workersCheckingInterval: 50,
    idleTimeout: 200,
  });
  try {
    const exits: number[] = [];
    proxy.on('exit', () => exits.push(proxy.agents.length));
    const load = Array.from({ length: 4 }, () =>
      request(port, { path: '/slow/400', method: 'POST', body: 'x' }),
    );
    await waitFor('four workers', () => proxy.stats().workers === 4);
    assert.equal(proxy.stats().connections, 4);
    await Promise.all(load);
    await waitFor('back to the floor', () => proxy.stats().workers === 1 && proxy.stats().draining === 0, {
      timeoutMs: 20_000,
    });
    // Each check stops at most one worker: the pool shrank 3, 2, 1.
    assert.deepEqual(exits, [3, 2, 1]);
    assert.equal(proxy.stats().crashed, 0);
  } finally {
    await proxy.shutdown({ timeout: 2000 });
  }
});

test('a connection a worker cannot take is retried on another worker', async () => {
  const { proxy, port } = await startPool({ workerCount: 2, connectAttempts: 3 });
  try {
    const broken = proxy.agents[0];
    assert.ok(broken.worker instanceof Worker);
    const brokenThread = broken.worker.threadId;
    fs.rmSync(broken.hop ?? '', { force: true }); // its relay socket is gone: connects fail
    const replies = await Promise.all(Array.from({ length: 6 }, () => json<JsonReply>(port)));
    assert.ok(replies.every((r) => r.threadId !== brokenThread));
    // The broken worker was retired and replaced.
    await waitFor('a replacement', () => proxy.stats().ready === 2 && !proxy.agents.includes(broken));
  } finally {
    await proxy.shutdown({ timeout: 2000 });
  }
});

function parseV1(header: string): string[] {
  assert.match(header, /^PROXY TCP4 [^\r]*\r\n/);
  return header.split('\r\n')[0].split(' ');
}

for (const [workerType, version] of [
  ['thread', 'v1'],
  ['thread', 'v2'],
  ['process', 'v1'],
  ['process', 'v2'],
] as const) {
  test(`the PROXY protocol ${version} header reaches ${workerType} workers`, async () => {
    const server = net.createServer();
    const proxy = createServiceProxy({
      server,
      workerType,
      workerCount: 1,
      proxyProtocol: version,
      workerURL: path.join(FIXTURES, 'proxy-protocol-worker.js'),
    });
    server.listen(0, '127.0.0.1');
    await once(proxy, 'ready');
    try {
      const client = net.connect(portOf(server), '127.0.0.1');
      await once(client, 'connect');
      client.write('hello');
      const chunks: Buffer[] = [];
      client.on('data', (c: Buffer) => chunks.push(c));
      await once(client, 'end');
      const got = Buffer.from(Buffer.concat(chunks).toString(), 'base64');
      if (version === 'v1') {
        const [, , src, dst, sport, dport] = parseV1(got.toString('latin1'));
        assert.deepEqual(
          [src, dst, Number(sport), Number(dport)],
          ['127.0.0.1', '127.0.0.1', client.localPort, portOf(server)],
        );
      } else {
        assert.equal(got.subarray(0, 12).toString('latin1'), '\r\n\r\n\0\r\nQUIT\n');
        assert.equal(got[12], 0x21);
        assert.equal(got[13], 0x11);
        assert.equal(got.readUInt16BE(14), 12);
        assert.equal([...got.subarray(16, 20)].join('.'), '127.0.0.1');
        assert.equal(got.readUInt16BE(24), client.localPort);
        assert.equal(got.readUInt16BE(26), portOf(server));
      }
      client.destroy();
    } finally {
      await proxy.shutdown({ timeout: 2000 });
    }
  });
}

test('a client destroyed mid-upload costs nothing: the front listens and serves on', async () => {
  const { proxy, port, server } = await startPool({ workerCount: 1 });
  try {
    const client = net.connect(port, '127.0.0.1');
    await once(client, 'connect');
    client.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n');
    client.write(Buffer.alloc(100_000));
    await waitFor('the upload to reach the worker', () => proxy.stats().connections === 1);
    client.destroy();
    await waitFor('the connection to be gone', () => proxy.stats().connections === 0);
    assert.equal(server.listening, true);
    const reply = await request(port, { method: 'POST', body: 'after' });
    assert.equal(reply.body.toString(), 'after');
    assert.equal(proxy.stats().crashed, 0);
  } finally {
    await proxy.shutdown({ timeout: 2000 });
  }
});

test('a process worker’s connection is counted once when its confirmation and its load report reach a busy front together', async () => {
  const { proxy, port } = await startPool({ workerType: 'process', workerCount: 1 });
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const child = proxy.agents[0].worker as ChildProcess;
    const send = child.send.bind(child) as (...args: unknown[]) => boolean;
    // The front is busy right after it hands a connection over: the child's confirmation and
    // its load report (5 ms later) wait in the channel and are read together.
    Object.defineProperty(child, 'send', {
      configurable: true,
      value: (...args: unknown[]) => {
        const sent = send(...args);
        if ((args[0] as { type?: unknown }).type === 'nodesockd:handoff') {
          const reported = Date.now() + 300;
          while (Date.now() < reported);
        }
        return sent;
      },
    });
    for (let i = 0; i < 3; i++) {
      await json<JsonReply>(port, '/json', keepAlive);
      await waitFor('the one open connection counted once', () => proxy.stats().connections === 1);
      for (const s of Object.values(keepAlive.freeSockets).flat()) s?.destroy();
      await waitFor('no connection left', () => proxy.stats().connections === 0);
    }
  } finally {
    keepAlive.destroy();
    await proxy.shutdown({ timeout: 2000 });
  }
});

test("a process pool's plain TCP front makes no socket per connection; one with a 'connection' listener of its own still hears each", async () => {
  // net.Server publishes each socket it makes on this channel (lib/net.js onconnection).
  let made = 0;
  const count = (): void => {
    made += 1;
  };
  diagnostics.subscribe('net.server.socket', count);
  try {
    const { proxy, port } = await startPool({ workerType: 'process', workerCount: 1 });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await json<JsonReply>(port)).remoteAddress, '127.0.0.1');
      assert.equal(made, 0);
    } finally {
      await proxy.shutdown({ timeout: 2000 });
    }
    const server = net.createServer();
    let heard = 0;
    server.on('connection', () => {
      heard += 1;
    });
    const own = createServiceProxy({ server, workerType: 'process', workerCount: 1, workerURL: HTTP_WORKER });
    server.listen(0, '127.0.0.1');
    await once(own, 'ready');
    try {
      for (let i = 0; i < 3; i++) {
        const body = await json<JsonReply>(portOf(server));
        assert.equal(typeof body.remotePort, 'number');
      }
      assert.equal(heard, 3);
    } finally {
      await own.shutdown({ timeout: 2000 });
    }
  } finally {
    diagnostics.unsubscribe('net.server.socket', count);
  }
});

test('a process worker forging NODE_HANDLE_ACK / NACK costs the front one line, then a count per 10 s; it serves on', async () => {
  const { records, restore } = recordLog();
  const { proxy, port } = await startPool({
    workerType: 'process',
    workerCount: 1,
    fixture: { forgeAcks: 200 },
  });
  const said = (pattern: RegExp) => records.filter((r) => pattern.test(r.message));
  try {
    await waitFor('the forged messages sent', () => said(/forged done/).length > 0);
    // Handed connections still go through (their real acknowledgements reach Node).
    assert.equal((await json<JsonReply>(port)).pid, (proxy.agents[0]!.worker as ChildProcess).pid);
    const counted =
      /^worker process \d+: sent \d+ acknowledgements of a descriptor the pool did not send \(NODE_HANDLE_ACK\); ignored in the last 10 s$/;
    await waitFor('the count of the interval', () => said(counted).length > 0, { timeoutMs: 30_000 });
    const lines = said(/NODE_HANDLE_ACK/);
    assert.match(
      lines[0]!.message,
      /^worker process \d+: sent an acknowledgement of a descriptor the pool did not send \(NODE_HANDLE_ACK\); ignored$/,
    );
    assert.equal(lines.length, 2, lines.map((r) => r.message).join('\n'));
    assert.equal(said(/internal error|ERR_INTERNAL_ASSERTION/).length, 0);
    assert.equal(proxy.stats().workers, 1);
  } finally {
    restore();
    await proxy.shutdown({ timeout: 2000 });
  }
});
