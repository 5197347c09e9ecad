/**
 * `reusePort: true`: the front listens with SO_REUSEPORT and each worker thread binds the same
 * port and accepts its own share of the clients (only the front's share is relayed). Real
 * threads, real sockets. Needs Node.js ≥ 22.12 / 23.1; on older ones the option falls back to
 * the relay, which is checked here too.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { before, describe, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { createServiceProxy, type ProxySocketAddressInfo, type ServiceProxy } from '../src/index.js';
import { reusePortArgs, reusePortSupported } from '../src/socketnaut/reuse-port.js';
import {
  ensureBuilt,
  HTTP_WORKER,
  json,
  portOf,
  request,
  shutdownWithUploadInFlight,
} from './fixtures/pool/harness.js';
import { waitFor } from './helpers/wait.js';

before(() => ensureBuilt());

const SUPPORTED = reusePortSupported();
const skip = SUPPORTED ? false : `reusePort needs Node.js 22.12 or 23.1 (this is ${process.version})`;

interface JsonReply {
  info: ProxySocketAddressInfo;
  remoteAddress?: string;
  threadId: number;
}

async function startPool(
  o: { workerCount?: number; minWorkers?: number; maxWorkers?: number; unix?: boolean } & Record<
    string,
    unknown
  >,
): Promise<{ proxy: ServiceProxy<Worker>; port: number; server: net.Server }> {
  const server = net.createServer();
  const { unix, ...rest } = o;
  const proxy = createServiceProxy({
    workerURL: HTTP_WORKER,
    ...rest,
    reusePort: true,
    server,
    workerOptions: { workerData: { unix: unix === true } },
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  await once(proxy, 'ready');
  return { proxy, port: portOf(server), server };
}

test('reusePortArgs: TCP listen() forms get reusePort, paths and handles do not', () => {
  const cb = (): void => {};
  assert.deepEqual(reusePortArgs([0, '127.0.0.1', cb]), [
    { reusePort: true, port: 0, host: '127.0.0.1' },
    cb,
  ]);
  assert.deepEqual(reusePortArgs([8080]), [{ reusePort: true, port: 8080 }]);
  assert.deepEqual(reusePortArgs(['8080', 511]), [{ reusePort: true, port: '8080', backlog: 511 }]);
  assert.deepEqual(reusePortArgs([3000, '::', 100, cb]), [
    { reusePort: true, port: 3000, host: '::', backlog: 100 },
    cb,
  ]);
  assert.deepEqual(reusePortArgs([cb]), [{ reusePort: true, port: 0 }, cb]);
  assert.deepEqual(reusePortArgs([{ port: 0, host: 'localhost' }, cb]), [
    { port: 0, host: 'localhost', reusePort: true },
    cb,
  ]);
  assert.equal(reusePortArgs(['/tmp/x.sock']), null);
  assert.equal(reusePortArgs([{ path: '/tmp/x.sock' }]), null);
  assert.equal(reusePortArgs([{ fd: 3 }]), null);
  assert.equal(reusePortArgs([net.createServer()]), null);
});

test('reusePort is a boolean, and for thread workers only', () => {
  const server = net.createServer();
  assert.throws(
    () => createServiceProxy({ server, workerURL: HTTP_WORKER, reusePort: 'yes' as unknown as boolean }),
    /createServiceProxy: reusePort must be a boolean, got yes/,
  );
  assert.throws(
    () => createServiceProxy({ server, workerURL: HTTP_WORKER, workerType: 'process', reusePort: true }),
    /reusePort is for thread workers/,
  );
});

test('without reusePort support, reusePort: true still serves through the relay', {
  skip: SUPPORTED,
}, async () => {
  const { proxy, port } = await startPool({ workerCount: 2 });
  try {
    const replies = await Promise.all(Array.from({ length: 8 }, () => json<JsonReply>(port)));
    assert.ok(replies.every((r) => r.info.remote.address === '127.0.0.1'));
    assert.equal(proxy.stats().direct, 0);
  } finally {
    await proxy.shutdown({ timeout: 2000 });
  }
});

describe('threads accepting on the front port', { skip }, () => {
  for (const unix of [false, true]) {
    test(`24 concurrent clients each get their own address info (app servers on ${unix ? 'UNIX sockets' : 'TCP'})`, async () => {
      const { proxy, port } = await startPool({ workerCount: 2, unix });
      try {
        await waitFor('both threads accepting', () => proxy.stats().direct === 2);
        assert.ok(proxy.agents.every((a) => a.direct));
        const replies = await Promise.all(Array.from({ length: 24 }, () => request(port, { path: '/json' })));
        const seen = new Set<number>();
        let direct = 0;
        for (const r of replies) {
          assert.equal(r.status, 200, r.body.toString());
          const body = JSON.parse(r.body.toString()) as JsonReply;
          assert.equal(body.info.remote.port, r.localPort);
          assert.equal(body.info.remote.address, '127.0.0.1');
          assert.equal(body.info.local.port, port);
          // Accepted by the thread itself: the socket is the client's own TCP connection.
          if (body.remoteAddress === '127.0.0.1') direct += 1;
          seen.add(body.info.remote.port);
        }
        assert.equal(seen.size, 24);
        assert.ok(direct > 0, 'no connection was accepted by a thread itself');
        assert.equal(new Set(replies.map((r) => r.headers['x-worker'])).size, 2);
      } finally {
        await proxy.shutdown({ timeout: 2000 });
      }
    });
  }

  for (const order of ['listening before', 'listen() just before'] as const) {
    test(`the server's listen() before createServiceProxy (Socketnaut's examples' order, ${order}): the threads accept on the front's port too`, async () => {
      const server = net.createServer();
      let listenings = 0;
      let closes = 0;
      server.on('close', () => {
        closes += 1;
      });
      server.listen(0, '127.0.0.1', () => {
        listenings += 1;
      });
      if (order === 'listening before') await once(server, 'listening');
      const proxy = createServiceProxy({ server, workerURL: HTTP_WORKER, workerCount: 2, reusePort: true });
      try {
        await once(proxy, 'ready');
        const port = portOf(server);
        await waitFor('both threads accepting', () => proxy.stats().direct === 2);
        const replies = await Promise.all(Array.from({ length: 12 }, () => json<JsonReply>(port)));
        assert.equal(replies.length, 12);
        // The app's listen callback ran once, and the server never closed.
        assert.equal(listenings, 1);
        assert.equal(closes, 0);
        assert.equal(portOf(server), port);
      } finally {
        await proxy.shutdown({ timeout: 2000 });
      }
    });
  }

  test('the front counts the connections its threads accepted themselves', async () => {
    const { proxy, port } = await startPool({ workerCount: 2 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 12 });
    try {
      await waitFor('both threads accepting', () => proxy.stats().direct === 2);
      await Promise.all(Array.from({ length: 12 }, () => json<JsonReply>(port, '/json', agent)));
      await waitFor('12 open connections counted', () => proxy.stats().connections === 12);
      agent.destroy();
      await waitFor('none left', () => proxy.stats().connections === 0);
    } finally {
      agent.destroy();
      await proxy.shutdown({ timeout: 2000 });
    }
  });

  test('shutdown() with a timeout closes an idle keep-alive connection at once and lets an in-flight request finish', async () => {
    const { proxy, port } = await startPool({ workerCount: 1 });
    await waitFor('the thread accepting', () => proxy.stats().direct === 1);
    await shutdownWithUploadInFlight(proxy, port, { timeout: 60_000 });
    // Nothing listens on the port any more: neither the front nor the thread.
    await assert.rejects(request(port), /ECONNREFUSED/);
  });

  test('server.close() stops the threads accepting too', async () => {
    const { proxy, port, server } = await startPool({ workerCount: 2 });
    try {
      await waitFor('both threads accepting', () => proxy.stats().direct === 2);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      assert.equal(proxy.stats().direct, 0);
      await waitFor('the port refused', () =>
        request(port).then(
          () => false,
          (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
        ),
      );
    } finally {
      await proxy.shutdown({ timeout: 2000 }).catch(() => {});
    }
  });

  test('scale up, then down to the floor, under a keep-alive load: 0 failed', async () => {
    const { proxy, port } = await startPool({
      minWorkers: 1,
      maxWorkers: 3,
      workersCheckingInterval: 50,
      idleTimeout: 200,
    });
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    // One keep-alive connection (on one thread) asked by two loops all the time.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const loops = Array.from({ length: 2 }, async () => {
      while (!stop) {
        try {
          const r = await request(port, { path: '/json', agent });
          if (r.status === 200) ok += 1;
          else failures.push(`status ${r.status}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    });
    try {
      // Busy until the pool has grown: four slow requests at a time, renewed while threads start
      // (a thread that starts slower than one slow request must not leave the pool idle).
      let grown = false;
      const slow = Array.from({ length: 4 }, async () => {
        while (!grown) await request(port, { path: '/slow/400', method: 'POST', body: 'x' });
      });
      await waitFor('three workers', () => proxy.stats().workers === 3).finally(() => {
        grown = true;
      });
      await Promise.all(slow);
      await waitFor('back to the floor', () => proxy.stats().workers === 1 && proxy.stats().draining === 0, {
        timeoutMs: 20_000,
      });
      const before = ok;
      await waitFor('more requests after the scale-down', () => ok > before + 20);
    } finally {
      stop = true;
      await Promise.all(loops);
      agent.destroy();
      await proxy.shutdown({ timeout: 2000 });
    }
    assert.deepEqual(failures, []);
    assert.ok(ok > 0);
    assert.equal(proxy.stats().crashed, 0);
  });
});
