/** Every pool example, end to end, with thread workers and with process workers. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { before, test } from 'node:test';
import { collectOutput, ensureBuilt, FIXTURES, ROOT, request } from './fixtures/pool/harness.js';
import { waitFor } from './helpers/wait.js';

before(() => ensureBuilt());

const CA = fs.readFileSync(path.join(FIXTURES, 'cert.pem'));

function httpsGet(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', servername: 'localhost', port, ca: [CA], agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/** Runs an example until it printed `count` "listening on <port>" lines; returns the ports. */
async function run(
  example: string,
  workerType: string,
  count: number,
): Promise<{ child: ChildProcess; ports: number[] }> {
  const child = spawn(process.execPath, [path.join(ROOT, 'examples', 'pool', example, 'index.js')], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HTTP_PORT: '0', WORKER_TYPE: workerType },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { out, err } = collectOutput(child);
  const ports = await waitFor(`${example} to listen (${err()})`, () => {
    const found = [...out().matchAll(/listening on (\d+)/g)].map((m) => Number(m[1]));
    return found.length >= count ? found : null;
  });
  return { child, ports };
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0, 'the example did not shut down cleanly on SIGTERM');
}

for (const workerType of ['thread', 'process']) {
  test(`hello-world (${workerType} workers) answers with the client's own address`, async () => {
    const { child, ports } = await run('hello-world', workerType, 1);
    try {
      const r = await request(ports[0]);
      assert.equal(r.body.toString(), `Hello World! (you are 127.0.0.1:${r.localPort})\n`);
    } finally {
      await stop(child);
    }
  });

  for (const [example, text] of [
    ['express', 'Hello from Express\n'],
    ['fastify', 'Hello from Fastify\n'],
    ['koa', 'Hello from Koa\n'],
  ]) {
    test(`${example} (${workerType} workers)`, async () => {
      const { child, ports } = await run(example, workerType, 1);
      try {
        const replies = await Promise.all([request(ports[0]), request(ports[0]), request(ports[0])]);
        for (const r of replies) {
          assert.equal(r.status, 200);
          assert.equal(r.body.toString(), text);
        }
      } finally {
        await stop(child);
      }
    });
  }

  for (const [example, text] of [
    ['tls-front', 'Hello over TLS ended in the front\n'],
    ['tls-workers', 'Hello over TLS ended in the worker\n'],
  ]) {
    test(`${example} (${workerType} workers): HTTPS served, HTTP redirected to it`, async () => {
      const { child, ports } = await run(example, workerType, 2);
      const [httpsPort, httpPort] = ports;
      try {
        assert.deepEqual(await httpsGet(httpsPort), { status: 200, body: text });
        const redirect = await request(httpPort, { path: '/some/path' });
        assert.equal(redirect.status, 301);
        assert.equal(redirect.headers.location, `https://127.0.0.1:${httpsPort}/some/path`);
      } finally {
        await stop(child);
      }
    });
  }
}
