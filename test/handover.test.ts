// Connection handover (docs/lifecycle.md#connection-handover): a replaced worker's kept-alive
// connections move to its successor; the client's next request on the same connection is
// answered by the new release.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon, isAlive } from './helpers/daemon';
import { getOn } from './helpers/http';
import { makeCert } from './helpers/tls';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

interface Answer {
  pid: number;
  body: Record<string, unknown>;
  headers: http.IncomingHttpHeaders;
  /** The client's socket: the same object means the same connection. */
  socket: unknown;
}

/** One request on a kept-alive agent (one connection) to `socketPath`. */
function get(agent: http.Agent, socketPath: string, urlPath = '/', body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, agent, path: urlPath, method: body === undefined ? 'GET' : 'POST' },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => {
          const parsed = JSON.parse(text) as Record<string, unknown>;
          resolve({ pid: parsed.pid as number, body: parsed, headers: res.headers, socket: req.socket });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface Connections {
  moved: number;
  busy: number;
  drained: number;
}

async function restart(d: Daemon, ...args: string[]): Promise<Connections> {
  const r = await d.cli(['restart', '--json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { connections: Connections }).connections;
}

async function start(fixture: string, config: Record<string, unknown> = {}): Promise<Daemon> {
  app = makeApp({ workers: 1, upstreamKeepaliveTimeout: 60_000, ...config }, fixture);
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1 });
  return daemon;
}

/**
 * A daemon with one worker and one kept-alive connection to it, whose next worker spins after
 * 'online' (taking no connection) until the test removes `spin`.
 */
async function spinningSuccessor(debug = false) {
  const spin = path.join(os.tmpdir(), `nsd-spin-${process.pid}-${Date.now()}`);
  const d = await start('plain.js', {
    ...(debug ? { debug: true } : {}),
    env: [`SPIN_AFTER_ONLINE_IF_EXISTS=${spin}`],
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const first = await get(agent, app.published(0));
  fs.writeFileSync(spin, '');
  return { d, spin, agent, first };
}

/**
 * A daemon with one worker and a kept-alive connection to it with a request in flight (until
 * the test creates `release`), and the restart that finds it busy.
 */
async function busyAtRestart(fixture = 'lib.js', config: Record<string, unknown> = {}) {
  const d = await start(fixture, config);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const first = await get(agent, app.published(0));
  const release = path.join(app.dir, 'release');
  const held = get(agent, app.published(0), `/wait?file=${encodeURIComponent(release)}`);
  await d.waitOutput(/waiting request started/);
  assert.deepEqual(await restart(d), { moved: 0, busy: 1, drained: 0 });
  return { d, agent, first, release, held };
}

/**
 * A busy connection at a restart: its response ends on the old worker, then the connection
 * moves and its next request reaches the new worker.
 */
async function busyConnectionMoves(fixture: string, config: Record<string, unknown> = {}) {
  const { d, agent, first, release, held } = await busyAtRestart(fixture, config);
  fs.writeFileSync(release, '');
  const answered = await held;
  assert.equal(answered.pid, first.pid, 'the request in flight ends on the old worker');
  const [fresh] = await d.slotPids();
  const next = await get(agent, app.published(0));
  assert.equal(next.socket, first.socket, 'the same connection');
  assert.equal(next.pid, fresh, 'the next request reaches the new worker');
  await waitFor('the old worker to exit', () => !isAlive(first.pid));
  agent.destroy();
  return { d, old: first.pid };
}

for (const fixture of ['lib.js', 'plain.js']) {
  describe(`handover (${fixture === 'lib.js' ? 'serve()' : 'an unmodified app'})`, () => {
    test('an idle kept-alive connection moves: the next request on it reaches the new worker', async () => {
      const d = await start(fixture);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const first = await get(agent, app.published(0));
      assert.deepEqual(await restart(d), { moved: 1, busy: 0, drained: 0 });
      const [fresh] = await d.slotPids();
      const second = await get(agent, app.published(0));
      assert.equal(second.socket, first.socket, 'the same connection');
      assert.equal(second.pid, fresh, 'answered by the new worker');
      await waitFor('the old worker to exit', () => !isAlive(first.pid));
      assert.deepEqual((await d.status()).handovers, { moved: 1, failed: 0 });
      const status = await d.cli(['status']);
      assert.match(status.stdout, /connections moved to new workers: 1\n/);
      agent.destroy();
    });

    test('a busy connection moves once its response has ended', async () => {
      await busyConnectionMoves(fixture);
    });

    test('a POST answered before its body was read: the connection moves after the body', async () => {
      const d = await start(fixture);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const first = await get(agent, app.published(0), '/', 'x'.repeat(200_000));
      await restart(d);
      const [fresh] = await d.slotPids();
      const next = await get(agent, app.published(0), '/', 'y'.repeat(200_000));
      assert.equal(next.socket, first.socket, 'the same connection');
      assert.equal(next.pid, fresh);
      agent.destroy();
    });

    test('with handover: false the connection closes the old way', async () => {
      const d = await start(fixture, { handover: false });
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const first = await get(agent, app.published(0));
      assert.deepEqual(await restart(d), { moved: 0, busy: 0, drained: 0 });
      const next = await get(agent, app.published(0));
      assert.equal(next.pid, first.pid, 'the old worker answers the kept-alive connection');
      assert.equal(next.headers.connection, 'close', 'and closes it');
      agent.destroy();
    });
  });
}

describe('handover (serve(), suspended)', () => {
  test('restart --suspended: a request on a moved connection waits for resume and runs the new release', async () => {
    const d = await start('lib.js');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(agent, app.published(0));
    assert.deepEqual(await restart(d, '--suspended'), { moved: 1, busy: 0, drained: 0 });
    const [fresh] = await d.slotPids();
    let resumed = false;
    const held = get(agent, app.published(0)).then((a) => ({ a, resumed }));
    await waitFor('the held request to reach the new worker', async () => {
      const s = await d.status();
      return s.workers.some((w) => w.pid === fresh && (w.inflight ?? 0) > 0);
    });
    resumed = true;
    const r = await d.cli(['resume']);
    assert.equal(r.code, 0, r.stderr);
    const { a, resumed: after } = await held;
    assert.ok(after, 'answered only after resume');
    assert.equal(a.socket, first.socket, 'on the same connection');
    assert.equal(a.pid, fresh, 'by the new release');
    assert.equal(a.body.suspended, false);
    agent.destroy();
  });
});

for (const [label, fixture] of [
  ['a seed-style Express app, suspend.express', 'seed-express.js'],
  ['the v2 example app, nodesockd.suspendMiddleware', 'original-v2-server.js'],
] as const) {
  describe(`handover (${label}, suspended)`, () => {
    test('restart --suspended: a request on a moved connection waits for resume and runs the new release', async () => {
      const d = await start(fixture, { env: ['LOG_ARRIVALS=1'] });
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const first = await get(agent, app.published(0));
      assert.deepEqual(await restart(d, '--suspended'), { moved: 1, busy: 0, drained: 0 });
      const [fresh] = await d.slotPids();
      let answered = false;
      const held = get(agent, app.published(0)).finally(() => {
        answered = true;
      });
      // Held: it reached the new worker, and has no answer when `resume` is asked for.
      await d.waitOutput(new RegExp(`request arrived on ${fresh}\\b`));
      assert.equal(answered, false, 'not answered before resume');
      const r = await d.cli(['resume']);
      assert.equal(r.code, 0, r.stderr);
      const a = await held;
      assert.equal(a.socket, first.socket, 'on the same connection');
      assert.equal(a.pid, fresh, 'by the new release');
      const onOld = d.output.split(`request arrived on ${first.pid}\n`).length - 1;
      assert.equal(onOld, 1, 'the old release saw only the first request');
      agent.destroy();
    });
  });
}

describe('handover: restart, reload and a slowly sent POST', () => {
  test('restart says how the connections went; a reload that restarts moves them too', async () => {
    const d = await start('lib.js');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(agent, app.published(0));
    const r = await d.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /connections: 1 moved to the new workers, 0 busy \(move as their responses end\), 0 close the old way/,
    );
    const second = await get(agent, app.published(0));
    assert.equal(second.socket, first.socket, 'the same connection');
    fs.appendFileSync(app.configFile, 'env: [RELEASE=2]\n');
    const reload = await d.cli(['reload']);
    assert.equal(reload.code, 0, reload.stderr);
    await waitFor('the reload to replace the worker', async () => !(await d.slotPids()).includes(second.pid));
    const [fresh] = await d.slotPids();
    const third = await get(agent, app.published(0));
    assert.equal(third.socket, first.socket, 'still the same connection');
    assert.equal(third.pid, fresh, 'answered by the reloaded release');
    assert.deepEqual((await d.status()).handovers, { moved: 2, failed: 0 });
    agent.destroy();
  });

  test('a slowly sent POST answered early: the connection moves once the rest of its body has come', async () => {
    const d = await start('early-answer.js');
    const socket = net.connect(app.published(0));
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    const pids = (): number[] => [...received.matchAll(/\{"pid":(\d+)\}/g)].map((m) => Number(m[1]));
    const body = 'x'.repeat(100_000);
    socket.write(
      `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 50_000)}`,
    );
    await waitFor('the early answer', () => pids().length === 1);
    const [old] = pids();
    assert.deepEqual(await restart(d), { moved: 0, busy: 1, drained: 0 });
    const [fresh] = await d.slotPids();
    // The next request right behind the body (the old worker may read both at once: it then
    // answers it, and the connection moves after it), and one more.
    socket.write(`${body.slice(50_000)}GET / HTTP/1.1\r\nHost: x\r\n\r\n`);
    await waitFor('the second answer', () => pids().length === 2);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor('the third answer', () => pids().length === 3);
    assert.equal(pids()[2], fresh, 'answered by the new worker on the same connection');
    assert.ok([old, fresh].includes(pids()[1] as number));
    assert.doesNotMatch(received, /connection: close/i);
    await waitFor('the old worker to exit', () => !isAlive(old as number));
    assert.equal(socket.destroyed, false, 'the connection is still open');
    socket.destroy();
  });
});

describe('handover: what cannot move, and apps that end sockets', () => {
  test('pipelined requests: both are answered by the old worker, which then closes the connection', async () => {
    const d = await start('lib.js');
    const release = path.join(app.dir, 'release');
    const socket = net.connect(app.published(0));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      received += chunk;
    });
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(
      `GET /wait?file=${encodeURIComponent(release)} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    await d.waitOutput(/waiting request started/);
    const [old] = await d.slotPids();
    assert.deepEqual(await restart(d), { moved: 0, busy: 0, drained: 1 });
    fs.writeFileSync(release, '');
    await ended;
    const answers = received.split('HTTP/1.1 200').slice(1);
    assert.equal(answers.length, 2, received);
    for (const a of answers) assert.ok(a.includes(`"pid":${old}`), 'both answered by the old worker');
  });

  test('a server-sent-events response that never ends does not move: it ends at shutdownTimeout, an idle connection moves', async () => {
    const d = await start('plain.js', { shutdownTimeout: 1000 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(agent, app.published(0));
    const events = await new Promise<{ data: string; ended: Promise<void> }>((resolve, reject) => {
      const req = http.get({ socketPath: app.published(0), path: '/events', agent: false }, (res) => {
        const ended = new Promise<void>((r) => res.once('close', () => r()));
        res.setEncoding('utf8');
        res.once('data', (data: string) => resolve({ data, ended }));
      });
      req.on('error', reject);
    });
    assert.match(events.data, new RegExp(`"pid":${first.pid}`));
    assert.deepEqual(await restart(d), { moved: 1, busy: 1, drained: 0 });
    const [fresh] = await d.slotPids();
    const next = await get(agent, app.published(0));
    assert.equal(next.socket, first.socket, 'the idle connection moved');
    assert.equal(next.pid, fresh);
    await events.ended;
    await waitFor('the old worker to exit', () => !isAlive(first.pid));
    assert.match(
      d.output,
      /still running 1000 ms after shutdown; sending SIGTERM/,
      'ended at shutdownTimeout',
    );
    assert.deepEqual((await d.status()).handovers, { moved: 1, failed: 0 });
    agent.destroy();
  });

  test('HTTP/2 (h2c on the worker socket): the session does not move, it closes the old way, a new session reaches the new release', async () => {
    const d = await start('front-h2.js');
    const session = http2.connect('http://localhost', {
      createConnection: () => net.connect(app.published(0)),
    });
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    const ask = (s: http2.ClientHttp2Session) =>
      new Promise<{ id: string; httpVersion: string }>((resolve, reject) => {
        const stream = s.request({ ':path': '/' });
        let text = '';
        stream.setEncoding('utf8');
        stream.on('data', (c: string) => {
          text += c;
        });
        stream.on('end', () => resolve(JSON.parse(text) as { id: string; httpVersion: string }));
        stream.on('error', reject);
      });
    const first = await ask(session);
    assert.equal(first.httpVersion, '2.0');
    const old = (await d.status()).workers.find((w) => w.id === first.id)?.pid;
    assert.equal(typeof old, 'number');
    const connections = await restart(d);
    assert.deepEqual(connections, { moved: 0, busy: 0, drained: 1 }, 'an HTTP/2 session does not move');
    await goaway;
    await closed;
    await waitFor('the old worker to exit', () => !isAlive(old as number));
    const [fresh] = await d.slotPids();
    const again = http2.connect('http://localhost', {
      createConnection: () => net.connect(app.published(0)),
    });
    try {
      const next = await ask(again);
      assert.notEqual(next.id, first.id);
      assert.equal((await d.status()).workers.find((w) => w.id === next.id)?.pid, fresh, 'the new release');
    } finally {
      again.close();
    }
    assert.equal((await d.status()).handovers?.moved, 0);
  });

  test('TLS ended in the worker: the connection does not move, and its next request closes it the old way', async () => {
    app = makeApp(
      { workers: 1, upstreamKeepaliveTimeout: 60_000, env: ['TLS_KEY', 'TLS_CERT'] },
      'front-https.js',
    );
    const { key, cert } = makeCert(app.dir, 'worker', 'localhost');
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, {
      env: { ...process.env, TLS_KEY: key, TLS_CERT: cert },
    });
    daemon = d;
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    const ask = async () => {
      const a = await getOn<{ id: string }>(https.request, agent, app.published(0));
      return { id: a.body.id, connection: a.headers.connection, socket: a.socket };
    };
    const first = await ask();
    assert.deepEqual(await restart(d), { moved: 0, busy: 0, drained: 1 });
    const next = await ask();
    assert.equal(next.socket, first.socket, 'the same connection');
    assert.equal(next.id, first.id, 'answered by the old worker');
    assert.equal(next.connection, 'close', 'which closes it');
    assert.equal((await d.status()).handovers?.moved, 0);
    agent.destroy();
  });

  test('a worker adopted after a daemon crash: its connection does not move, and closes the old way', async () => {
    const crashed = await start('plain.js');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(agent, app.published(0));
    await crashed.kill();
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1 });
    daemon = d;
    await d.waitOutput(/adopted 1 worker/);
    assert.deepEqual(await restart(d), { moved: 0, busy: 0, drained: 0 });
    const next = await get(agent, app.published(0));
    assert.equal(next.socket, first.socket, 'the same connection');
    assert.equal(next.pid, first.pid, 'answered by the adopted worker');
    assert.equal(next.headers.connection, 'close', 'which closes it');
    await waitFor('the adopted worker to exit', () => !isAlive(first.pid));
    assert.equal((await d.status()).handovers?.moved, 0);
    agent.destroy();
  });

  test('an app that ends idle sockets on shutdown (stoppable-style): the moved connection stays open', async () => {
    const d = await start('ends-sockets.js');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(agent, app.published(0));
    assert.deepEqual(await restart(d), { moved: 1, busy: 0, drained: 0 });
    const [fresh] = await d.slotPids();
    const next = await get(agent, app.published(0));
    assert.equal(next.socket, first.socket, 'the same connection');
    assert.equal(next.pid, fresh);
    await waitFor('the old worker to exit', () => !isAlive(first.pid));
    agent.destroy();
  });
});

/** The lowest free descriptor number of a process: with its soft limit there, its next open fails. */
function lowestFreeFd(pid: number): number {
  const used = new Set(fs.readdirSync(`/proc/${pid}/fd`).map(Number));
  let fd = 0;
  while (used.has(fd)) fd++;
  return fd;
}

const hasPrlimit = (() => {
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('stopping with no successor', () => {
  test('stop: an idle kept-alive connection is closed by the worker after the default stopIdleTimeout, not kept for upstreamKeepaliveTimeout (60 s)', async () => {
    const d = await start('lib.js');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(agent, app.published(0));
    const client = first.socket as net.Socket;
    let closed = false;
    client.once('close', () => {
      closed = true;
    });
    const r = await d.cli(['stop']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the worker to close the idle connection and exit', () => closed && !isAlive(first.pid));
    agent.destroy();
  });
});

describe('handover: races', () => {
  test('the daemon at its open-file limit: the connection stays with the old worker, served, and closes the old way', {
    skip: hasPrlimit ? false : 'prlimit (util-linux) is not installed',
  }, async () => {
    const { d, agent, first, release, held } = await busyAtRestart();
    const pid = d.child.pid!;
    const limits = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--raw', '--noheadings'], {
      encoding: 'utf8',
    })
      .trim()
      .split(/\s+/);
    const [soft, hard] = [limits.at(-3)!, limits.at(-2)!];
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${lowestFreeFd(pid)}:${hard}`]);
    try {
      fs.writeFileSync(release, '');
      assert.equal((await held).pid, first.pid);
      const next = await get(agent, app.published(0));
      assert.equal(next.pid, first.pid, 'the old worker kept the connection it could not pass');
      assert.equal(next.headers.connection, 'close');
    } finally {
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
    }
    assert.deepEqual((await d.status()).handovers, { moved: 0, failed: 1 });
    agent.destroy();
  });

  test('set-workers down while a busy connection waits to move: it stays with the old worker and closes the old way', async () => {
    app = makeApp({ workers: 2, upstreamKeepaliveTimeout: 60_000 }, 'lib.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    const d = daemon;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(agent, app.published(1));
    const release = path.join(app.dir, 'release');
    const held = get(agent, app.published(1), `/wait?file=${encodeURIComponent(release)}`);
    await d.waitOutput(/waiting request started/);
    assert.deepEqual(await restart(d), { moved: 0, busy: 1, drained: 0 });
    const scaled = await d.cli(['set-workers', '1']);
    assert.equal(scaled.code, 0, scaled.stderr);
    fs.writeFileSync(release, '');
    assert.equal((await held).pid, first.pid);
    const next = await get(agent, app.published(1)).catch((err: Error) => err);
    // Slot 1 is gone: its path may be unpublished by now. If the kept connection answered, it
    // was the old worker, closing the old way.
    if (!(next instanceof Error)) {
      assert.equal(next.pid, first.pid);
      assert.equal(next.headers.connection, 'close');
    }
    await waitFor('the old worker to exit', () => !isAlive(first.pid));
    assert.equal((await d.status()).handovers?.moved, 0);
    agent.destroy();
  });
});

describe('handover: uploads answered before they are read', () => {
  // Node's client sends its next request right behind a body that was answered before it was
  // read (the old worker parses it: the connection moves after it), and its end(body) writes
  // once more after the body (a zero-length buffer libuv sends later: a connection closed the
  // moment its FIN is out makes it EPIPE, losing the response). docs/lifecycle.md.
  for (const [what, config] of [
    ['the connections move', {}],
    ['handover: false, the connections close', { handover: false }],
  ] as const) {
    test(`256 KiB POSTs answered early on kept-alive connections, 5 restarts (${what}): every request answered`, async () => {
      const d = await start('early-answer.js', config);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
      const body = 'x'.repeat(256 * 1024);
      let stopped = false;
      let answered = 0;
      const failures: string[] = [];
      const sockets = new Set<unknown>();
      const clients = Promise.all(
        [0, 1].map(async () => {
          while (!stopped) {
            try {
              sockets.add((await get(agent, app.published(0), '/', body)).socket);
              answered++;
            } catch (err) {
              failures.push((err as Error).message);
            }
          }
        }),
      );
      try {
        for (let i = 0; i < 5; i++) {
          const before = answered;
          await waitFor('uploads flowing', () => answered > before + 5);
          await restart(d);
        }
      } finally {
        stopped = true;
        await clients;
        agent.destroy();
      }
      assert.deepEqual(failures, [], `${failures.length} failed of ${answered + failures.length}`);
      if (!('handover' in config)) assert.equal(sockets.size, 2, 'the same two connections throughout');
    });
  }
});

describe("handover: the old server's close() callback", () => {
  test('it runs only after the response of a busy connection that moves has ended', async () => {
    const { d, old } = await busyConnectionMoves('plain.js', { env: ['LOG_ENDS=1'] });
    const ended = d.output.indexOf(`response end /wait on ${old}\n`);
    const closed = d.output.indexOf(`server close callback on ${old}\n`);
    assert.ok(ended >= 0 && closed >= 0, d.output);
    assert.ok(ended < closed, 'the response ended before the close callback ran');
  });
});

describe('handover: a successor that hangs between hops', () => {
  test('killed while it holds an unconfirmed connection: the old worker keeps it, served the old way', async () => {
    const { d, spin, agent, first } = await spinningSuccessor();
    try {
      const restarted = restart(d);
      await d.waitOutput(/spinning on (\d+)/);
      const hung = Number(/spinning on (\d+)/.exec(d.output)![1]);
      process.kill(hung, 'SIGKILL');
      fs.rmSync(spin, { force: true });
      assert.deepEqual(await restarted, { moved: 0, busy: 0, drained: 1 });
      const next = await get(agent, app.published(0));
      assert.equal(next.socket, first.socket);
      assert.equal(next.pid, first.pid, 'the old worker kept the connection');
      assert.equal(next.headers.connection, 'close');
    } finally {
      fs.rmSync(spin, { force: true });
      agent.destroy();
    }
  });

  test('hung past the deadlines: the old worker takes the connection back, the successor refuses it late', async () => {
    const { d, spin, agent, first } = await spinningSuccessor();
    try {
      const restarted = restart(d);
      await d.waitOutput(/spinning on \d+/);
      // The daemon gives up on the hung successor, and says so to the old worker.
      assert.deepEqual(await restarted, { moved: 0, busy: 0, drained: 1 });
      const kept = await get(agent, app.published(0));
      assert.equal(kept.socket, first.socket);
      assert.equal(kept.pid, first.pid, 'served by the old worker, which took it back');
      assert.equal(kept.headers.connection, 'close');
      fs.rmSync(spin, { force: true });
      await d.waitOutput(/spun on \d+/);
      const [fresh] = await d.slotPids();
      const again = await get(new http.Agent({ keepAlive: false }), app.published(0));
      assert.equal(again.pid, fresh, 'the successor serves new connections');
      assert.deepEqual((await d.status()).handovers, { moved: 0, failed: 1 });
    } finally {
      fs.rmSync(spin, { force: true });
      agent.destroy();
    }
  });

  test('a request sent while its connection is on its way: answered once, by the successor', async () => {
    const { d, spin, agent, first } = await spinningSuccessor(true);
    try {
      const restarted = restart(d);
      // The old worker stopped reading it; the descriptor waits for the hung successor.
      await d.waitOutput(/passing a connection of worker/);
      const during = get(agent, app.published(0));
      fs.rmSync(spin, { force: true });
      assert.deepEqual(await restarted, { moved: 1, busy: 0, drained: 0 });
      const [fresh] = await d.slotPids();
      const answer = await during;
      assert.equal(answer.socket, first.socket, 'on the same connection');
      assert.equal(answer.pid, fresh, 'by the successor, not the old worker');
      await waitFor('the old worker to exit', () => !isAlive(first.pid));
      assert.deepEqual((await d.status()).handovers, { moved: 1, failed: 0 });
    } finally {
      fs.rmSync(spin, { force: true });
      agent.destroy();
    }
  });

  test('the old worker killed while its connection is on its way: the successor takes it and serves it', async () => {
    const { d, spin, agent, first } = await spinningSuccessor(true);
    try {
      const restarted = restart(d);
      // The descriptor is in the daemon, on its way to the hung successor.
      await d.waitOutput(/passing a connection of worker/);
      process.kill(first.pid, 'SIGKILL');
      await waitFor('the old worker gone', () => !isAlive(first.pid));
      fs.rmSync(spin, { force: true });
      await restarted;
      const [fresh] = await d.slotPids();
      const next = await get(agent, app.published(0));
      assert.equal(next.socket, first.socket, 'the same connection survived its old worker');
      assert.equal(next.pid, fresh);
    } finally {
      fs.rmSync(spin, { force: true });
      agent.destroy();
    }
  });
});

// Red team round three, 03: a replaced worker floods the daemon with moves of one connection
// while its successor confirms none. The daemon holds at most `handoverMoves` of them, says the
// cap once with a count, and closes its copy of each at its confirm deadline.
describe('handover: a hostile old worker and a successor that never confirms', () => {
  test('1,000 moves of one connection: at most the cap held, all closed at the deadline, the daemon serves on', async () => {
    app = makeApp({ workers: 1, env: ['MOVES=1000'] }, 'move-flood.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, {
      online: 1,
      env: { ...process.env, NODESOCKD_TEST_LIMITS: 'handoverMoves=40' },
    });
    const d = daemon;
    const fds = () => fs.readdirSync(`/proc/${d.child.pid}/fd`).length;
    const before = fds();
    let most = before;
    const sampler = setInterval(() => {
      most = Math.max(most, fds());
    }, 5);
    try {
      assert.equal((await d.cli(['restart'])).code, 0);
      await d.waitOutput(/moved one connection 1000 times/);
      await d.waitOutput(
        /handover: 40 moved connections already wait for a successor \(the cap\); refused a move/,
      );
      // Kept until the successor exits, they would stay; closed at the deadline, the daemon is back.
      await waitFor('the daemon holding none of the moved descriptors', () => fds() < before + 10);
    } finally {
      clearInterval(sampler);
    }
    assert.ok(most < before + 40 + 20, `the daemon went from ${before} to ${most} descriptors`);
    const agent = new http.Agent({ keepAlive: false });
    assert.equal(typeof (await get(agent, app.published(0))).pid, 'number');
    const s = await d.status();
    assert.equal(s.workers.filter((w) => w.state === 'online').length, 1);
  });
});
