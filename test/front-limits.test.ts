/**
 * The `listen` front under workers that hang and clients that stay silent (red team
 * 2026-12-06, #7, #8, #13, #16): a stopped worker gets no new connections, is shown stalled and
 * replaced, and the connections it held are served by another; relayed connections that send
 * nothing are closed; the per-worker counts forget workers that are gone; a front with no
 * worker logs a count, not a line per connection. Deadlines are shortened with
 * NODESOCKD_TEST_LIMITS (documented as for tests).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon, isAlive } from './helpers/daemon';
import { freePort } from './helpers/nginx';
import { silent } from './helpers/silent';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;
const stopped = new Set<number>();

afterEach(async () => {
  // A test that failed may leave a stopped worker: let it run so that it can be stopped.
  for (const pid of stopped) if (isAlive(pid)) process.kill(pid, 'SIGCONT');
  stopped.clear();
  await teardown(daemon, app);
  daemon = undefined;
});

function start(limits: string, online: number): Promise<Daemon> {
  return Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, {
    online,
    env: { ...process.env, NODESOCKD_TEST_LIMITS: limits },
  }).then((d) => {
    daemon = d;
    return d;
  });
}

/** One GET on a fresh connection; resolves with the id of the worker that answered. */
function served(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => resolve((JSON.parse(body) as { id: string }).id));
      })
      .on('error', reject);
  });
}

/** How many times the log lines matching `pattern` count: 1 per plain line, N per "closed N". */
function counted(output: string, pattern: RegExp): { lines: number; total: number } {
  const lines = output.split('\n').filter((l) => pattern.test(l));
  const total = lines.reduce((n, l) => n + Number(/closed (\d+)/.exec(l)?.[1] ?? 1), 0);
  return { lines: lines.length, total };
}

describe('listen: a hung worker', () => {
  test('a stopped worker gets no new connections, is shown stalled and replaced; what it held is served by another', async () => {
    const port = await freePort();
    app = makeApp(
      { workers: 2, listen: `127.0.0.1:${port}`, shutdownTimeout: 500, killTimeout: 500 },
      'front.js',
    );
    const d = await start('handoffStallMs=1000', 2);
    const before = (await d.status()).workers.filter((w) => w.slot !== null);
    const hung = before.find((w) => w.slot === 0)!;
    stopped.add(hung.pid!);
    process.kill(hung.pid!, 'SIGSTOP');
    const answers = Array.from({ length: 16 }, () => served(port));
    await waitFor('the stopped worker shown stalled', async () => {
      const s = await d.cli(['status']);
      return s.stdout.includes(`stalled (being replaced): ${hung.id} for`);
    });
    const warning =
      /listen: worker (w[0-9a-f]{8}) is stalled \((\d+) handed connection\(s\) unconfirmed/.exec(d.output);
    assert.equal(warning?.[1], hung.id, d.output);
    assert.ok(Number(warning?.[2]) <= 4, `at most a window of 4 sent to it: ${warning?.[0]}`);
    // Replaced like a crashed worker: it is drained (up to SIGKILL), and the connections it
    // never confirmed, still whole in the daemon, go to a worker that serves.
    const ids = await Promise.all(answers);
    assert.ok(!ids.includes(hung.id), `all 16 answered by other workers: ${ids.join(' ')}`);
    await waitFor('the stalled worker gone', () => !isAlive(hung.pid!));
    const after = await waitFor('its slot served by a new worker', async () => {
      const s = await d.status();
      const slot0 = s.workers.find((w) => w.slot === 0 && w.state === 'online');
      return slot0 && slot0.id !== hung.id ? s : undefined;
    });
    assert.deepEqual(after.front?.stalled, {});
    assert.match(after.slots[0]?.lastExit ?? '', /^stalled: \d+ handed connection/);
  });
});

describe('listen: counts and warnings', () => {
  test('per-worker counts only for workers that exist; the totals keep every connection', async () => {
    const port = await freePort();
    app = makeApp(
      { workers: 2, listen: `127.0.0.1:${port}`, shutdownTimeout: 2000, killTimeout: 1000 },
      'front.js',
    );
    const d = await start('', 2);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) await served(port);
      const r = await d.cli(['restart']);
      assert.equal(r.code, 0, r.stderr);
    }
    const s = await waitFor('the old workers gone', async () => {
      const s = await d.status();
      return s.workers.length === 2 ? s : undefined;
    });
    const live = s.workers.map((w) => w.id);
    await waitFor('the counts of the workers gone pruned', async () => {
      const handed = Object.keys((await d.status()).front?.handedOut ?? {});
      return handed.every((id) => live.includes(id));
    });
    assert.equal((await d.status()).front?.totals?.handedOut, 12);
    const line = (await d.cli(['status'])).stdout.split('\n')[1] ?? '';
    assert.match(line, /connections handed out: 12 in all/);
  });

  test('no serving worker: one warning, then a count per interval; beyond the waiting cap a connection is closed at once', async () => {
    const port = await freePort();
    app = makeApp({ workers: 1, listen: `127.0.0.1:${port}` }, 'front.js');
    const d = await start('frontWaiting=10,warnIntervalMs=500', 1);
    assert.equal((await d.cli(['stop'])).code, 0);
    const clients = await Promise.all(Array.from({ length: 30 }, () => silent({ port })));
    await Promise.all(clients.map((c) => c.closed));
    await waitFor('the counts logged', () => {
      const full = counted(d.output, /already wait for a worker \(the cap\)/);
      const none = counted(d.output, /no serving worker for 5000 ms/);
      return full.total === 20 && none.total === 10;
    });
    const none = counted(d.output, /no serving worker for 5000 ms/);
    assert.ok(none.lines < 10, `${none.lines} lines for 10 connections:\n${d.output}`);
    assert.ok(counted(d.output, /already wait for a worker/).lines < 20, d.output);
  });
});

/** A daemon SIGKILLed, and the next one, which relays to the worker it adopted. */
async function adoptedFront(limits: string): Promise<{ port: number; adopted: string; d: Daemon }> {
  const port = await freePort();
  app = makeApp({ workers: 1, listen: `127.0.0.1:${port}`, shutdownTimeout: 2000 }, 'front.js');
  const first = await start(limits, 1);
  const adopted = (await first.status()).workers[0]!.id;
  await first.kill();
  daemon = undefined;
  return { port, adopted, d: await start(limits, 1) };
}

describe('listen: relayed to adopted workers', () => {
  test('a relayed connection that sends nothing is closed; requests are still relayed', async () => {
    const { port, adopted, d } = await adoptedFront('relayHandshakeMs=300');
    assert.equal(await served(port), adopted);
    assert.ok((await d.status()).front?.relayed?.[adopted], 'relayed');
    const clients = await Promise.all(Array.from({ length: 5 }, () => silent({ port })));
    await Promise.all(clients.map((c) => c.closed));
    assert.equal(await served(port), adopted);
  });

  test('at the relay cap with every relay under way a new connection waits for room, then is relayed', async () => {
    // The third connection waits as long as the test needs (not the default 5 s).
    const { port, adopted, d } = await adoptedFront('relays=2,frontWaitMs=60000,relayHandshakeMs=60000');
    const held = await underWay(port, 2);
    // Both relays open before the third arrives (else it could take a relay not yet counted).
    await waitFor('two relays open', async () => ((await d.status()).front?.relayed?.[adopted] ?? 0) >= 2);
    const answer = served(port);
    await waitFor('the third connection waiting', async () => (await d.status()).front?.waiting === 1);
    held[0]!.socket.destroy();
    assert.equal(await answer, adopted);
    held[1]!.socket.destroy();
  });

  test('at the relay cap the oldest relay whose client sent nothing is closed for a new one (red team 3, 02)', async () => {
    const { port, adopted, d } = await adoptedFront('relays=2,relayHandshakeMs=60000');
    const held = [await silent({ port }), await silent({ port })];
    await waitFor('two relays open', async () => ((await d.status()).front?.relayed?.[adopted] ?? 0) >= 2);
    // Without room made, it would wait 5 s and be closed.
    assert.equal(await served(port), adopted);
    await held[0]!.closed;
    assert.equal(held[1]!.socket.destroyed, false, 'the newer silent relay stays');
    assert.match(
      d.output,
      /listen: relays to adopted workers: 2 connections open \(the cap\); closed the oldest idle one for a new one/,
    );
    held[1]!.socket.destroy();
  });

  test('at the relay cap with every relay under way, a connection that waited out is said closed for the cap, not for no worker', async () => {
    const { port, adopted, d } = await adoptedFront('relays=2,frontWaitMs=300,relayHandshakeMs=60000');
    const held = await underWay(port, 2);
    await waitFor('two relays open', async () => ((await d.status()).front?.relayed?.[adopted] ?? 0) >= 2);
    await assert.rejects(served(port));
    await d.waitOutput(
      /listen: 2 relays to adopted workers open \(the cap\), each under way; closed a connection that waited 300 ms for room/,
    );
    assert.doesNotMatch(d.output, /no serving worker/);
    for (const h of held) h.socket.destroy();
  });
});

/** `n` connections, each with a request begun (under way: never closed for another). */
async function underWay(port: number, n: number): Promise<{ socket: net.Socket }[]> {
  const held: { socket: net.Socket }[] = [];
  for (let i = 0; i < n; i++) {
    const h = await silent({ port });
    h.socket.write('GET / HTTP/1.1\r\n');
    held.push(h);
  }
  return held;
}
