/**
 * The one byte relay (src/net/relay.ts) and its half-close rule, through each front that relays:
 * a client that sends its request and then half-closes its write side (HTTP/1.0 tools,
 * `nc -N`) gets the whole response, from the pool (a thread worker, a process worker, and
 * while it waits for a worker), the daemon's `listen` front (handed over, and relayed to an
 * adopted worker after a daemon SIGKILL) and the dev server. Real sockets, real processes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DaemonStatus } from '../src/ipc/protocol';
import { ensureBuilt, startPool } from './fixtures/pool/harness.js';
import { makeApp, teardown } from './helpers/app';
import { Daemon, isAlive, killAll } from './helpers/daemon';
import { freePort } from './helpers/nginx';
import { waitFor } from './helpers/wait';

before(() => ensureBuilt());

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsd-relay-half-close-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Sends one HTTP/1.0 request, ends its side at once (FIN), and returns all it got back before the close. */
function halfClosed(port: number, urlPath = '/'): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () =>
      socket.end(`GET ${urlPath} HTTP/1.0\r\nHost: x\r\n\r\n`),
    );
    let got = '';
    socket.on('data', (c: Buffer) => {
      got += c.toString();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      got += `[${err.code}]`;
    });
    socket.on('close', () => resolve(got));
  });
}

function assertAnswered(got: string, body: RegExp, where: string): void {
  assert.match(got, /^HTTP\/1\.1 200 /, `${where}: answered (${JSON.stringify(got.slice(0, 80))})`);
  assert.match(got.slice(got.indexOf('\r\n\r\n') + 4), body, `${where}: the whole body`);
}

describe('the pool', () => {
  for (const workerType of ['thread', 'process'] as const) {
    test(`${workerType} worker: a half-closed client gets its answer, from a ready worker and after waiting for one`, async () => {
      const ready = await startPool({ workerType, workerCount: 1 });
      try {
        assertAnswered(await halfClosed(ready.port, '/now'), /^answered at once by \d+:\d+$/, 'ready');
      } finally {
        await ready.proxy.shutdown({ timeout: 2000 });
      }
      // No worker can start while the flag exists: the client's FIN comes while it waits.
      const flag = path.join(tmp, `broken-${workerType}`);
      fs.writeFileSync(flag, '');
      const { proxy, port } = await startPool(
        {
          workerType,
          minWorkers: 1,
          restartDelay: { initial: 100, max: 100 },
          waitTimeout: 60_000,
          fixture: { throwWhileExists: flag },
        },
        false,
      );
      try {
        const answer = halfClosed(port, '/now');
        await waitFor(
          'the half-closed client to wait',
          () => proxy.stats().waiting === 1 && proxy.stats().crashed >= 1,
        );
        fs.rmSync(flag);
        assertAnswered(await answer, /^answered at once by \d+:\d+$/, 'after waiting');
      } finally {
        await proxy.shutdown({ timeout: 2000 });
      }
    });
  }
});

test('the daemon: a half-closed client gets its answer from the listen front (handed over, relayed to an adopted worker) and the dev server', async () => {
  const [port, devPort] = [await freePort(), await freePort()];
  const app = makeApp({ workers: 1, listen: `127.0.0.1:${port}`, shutdownTimeout: 5000 });
  const args = ['daemon', '-c', app.configFile, `--dev-server=${devPort}`];
  let daemon: Daemon | undefined;
  const pids = new Set<number>();
  try {
    daemon = await Daemon.start(args, app.ipcFile, { online: 1 });
    for (const w of (await daemon.status()).workers) if (w.pid) pids.add(w.pid);
    const workerPid = new RegExp(`"pid":(${[...pids].join('|')})\\b`);
    assertAnswered(await halfClosed(port), workerPid, 'listen, handed over');
    assertAnswered(await halfClosed(devPort), workerPid, 'dev server');
    // The next daemon adopts the worker, which has no channel for handles: the front relays.
    await daemon.kill();
    daemon = await Daemon.start(args, app.ipcFile, { online: 1 });
    assertAnswered(await halfClosed(port), workerPid, 'listen, relayed to the adopted worker');
    assertAnswered(await halfClosed(devPort), workerPid, 'dev server, adopted worker');
    const relayed = (s: DaemonStatus) => Object.values(s.front?.relayed ?? {}).reduce((x, y) => x + y, 0);
    assert.equal(relayed(await daemon.status()), 1, 'the listen front relayed it');
  } finally {
    await teardown(daemon, app);
    killAll([...pids].filter(isAlive));
  }
});
