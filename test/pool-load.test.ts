/**
 * Socketnaut's own load case, through our thread pool: 1000 concurrent HTTPS POSTs of 100 kB,
 * TLS ended in the workers (a raw TCP front), a pool of 10 to 100 threads that each block for
 * 100 ms per request; every body must come back intact, with no error.
 *
 * The workers block with Atomics.wait: the thread is as stuck as with a busy loop, but the
 * 100 CPU-seconds of Socketnaut's busy loop would not fit two shared cores.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { before, test } from 'node:test';
import { createServiceProxy } from '../src/index.js';
import { ensureBuilt, FIXTURES, portOf } from './fixtures/pool/harness.js';

before(() => ensureBuilt());

const CA = fs.readFileSync(path.join(FIXTURES, 'cert.pem'));

function post(
  agent: https.Agent,
  port: number,
  body: Buffer,
): Promise<{ status: number; body: Buffer; clientPort: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port,
        method: 'POST',
        path: '/',
        ca: [CA],
        agent,
        headers: { 'content-length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks),
            clientPort: String(res.headers['x-client-port']),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('1000 concurrent HTTPS POSTs of 100 kB through 10 to 100 blocking threads: every body echoed intact', async () => {
  const server = net.createServer();
  const proxy = createServiceProxy({
    server,
    minWorkers: 10,
    maxWorkers: 100,
    workersCheckingInterval: 100,
    idleTimeout: 1000,
    workerURL: path.join(FIXTURES, 'https-echo-worker.js'),
    workerOptions: { resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 } },
  });
  // A backlog for a burst of 1000 connects (Node's default, 511, overflows and resets some).
  server.listen({ port: 0, host: '127.0.0.1', backlog: 2048 });
  await once(proxy, 'ready');
  let peak = proxy.stats().workers;
  proxy.on('spawn', () => {
    peak = Math.max(peak, proxy.stats().workers);
  });
  const agent = new https.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const data = crypto.randomBytes(1e5);
  const started = Date.now();
  try {
    const results = await Promise.allSettled(
      Array.from({ length: 1000 }, () => post(agent, portOf(server), data)),
    );
    const took = Date.now() - started;
    const failed = results.filter((r) => r.status === 'rejected');
    assert.equal(
      failed.length,
      0,
      `errors: ${failed
        .map((r) => String((r as PromiseRejectedResult).reason))
        .slice(0, 5)
        .join('; ')}`,
    );
    for (const r of results) {
      assert.equal(r.status, 'fulfilled');
      assert.equal(r.value.status, 200);
      assert.ok(r.value.body.equals(data), 'a body came back altered');
      assert.match(r.value.clientPort, /^\d+$/);
    }
    // Within the floor and the ceiling; how far it scales up depends on the machine's speed
    // (pool-scaler.test.ts checks the scale-up rules exactly).
    assert.ok(peak >= 10 && peak <= 100, `the pool peaked at ${peak} workers`);
    process.stdout.write(`# 1000 POSTs in ${took} ms; the pool peaked at ${peak} threads\n`);
  } finally {
    agent.destroy();
    await proxy.shutdown({ timeout: 5000 });
  }
});
