// `listen` entries with `accept: "workers"` (issue 19): the serving workers accept on the
// listening socket the daemon gives them, and the daemon hands out no connection. Through the
// binary, with a connection per request (Connection: close).
import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type AppDir, cleanupsAfterAll, makeApp, teardown } from './helpers/app';
import { cli, Daemon, isAlive, killAll } from './helpers/daemon';
import { httpRequest } from './helpers/http';
import { makeCert } from './helpers/tls';
import { waitFor } from './helpers/wait';

interface Answer {
  id: string;
  suspended: boolean;
  length: number;
}

/** `clients` loops of one request per new connection (Connection: close), GET and POST, until stopped. */
function closeLoad(port: number, clients = 4) {
  let stopped = false;
  let phase = 0;
  const answers: { phase: number; answer: Answer }[] = [];
  const failed: string[] = [];
  const deadline = setTimeout(() => {
    stopped = true;
  }, 120_000);
  deadline.unref();
  const loops = Array.from({ length: clients }, async (_, n) => {
    for (let i = 0; !stopped; i++) {
      const body = (i + n) % 2 === 0 ? `payload ${n}/${i}` : '';
      const started = phase;
      try {
        const res = await httpRequest(
          { port },
          { method: body ? 'POST' : 'GET', body, headers: { connection: 'close' } },
        );
        const answer = JSON.parse(res.body) as Answer;
        if (res.status !== 200 || answer.length !== body.length)
          failed.push(`HTTP ${res.status} ${res.body}`);
        else answers.push({ phase: started, answer });
      } catch (err) {
        failed.push((err as Error).message);
      }
    }
  });
  return {
    answers,
    setPhase: (p: number) => {
      phase = p;
    },
    async flowing(what: string, n = 20) {
      const start = answers.length;
      await waitFor(what, () => answers.length >= start + n, { timeoutMs: 30_000 });
    },
    async stop() {
      stopped = true;
      clearTimeout(deadline);
      await Promise.all(loops);
      return failed;
    },
  };
}

async function servingIds(daemon: Daemon): Promise<string[]> {
  return (await daemon.status()).workers.filter((w) => w.role === 'serving').map((w) => w.id);
}

describe('listen with accept: "workers"', () => {
  let app: AppDir;
  let daemon: Daemon;
  let port: number;

  before(async () => {
    app = makeApp(
      { workers: 2, listen: { host: '127.0.0.1', port: 0, accept: 'workers' }, shutdownTimeout: 30_000 },
      'front-serve.js',
    );
    daemon = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
    const address = (await daemon.status()).front?.addresses[0];
    port = Number(/:(\d+)$/.exec(address ?? '')?.[1]);
    assert.ok(port > 0, `front address ${address}`);
  });
  after(() => teardown(daemon, app));

  test('the workers accept the connections themselves; both serve some', async () => {
    const ids = await servingIds(daemon);
    const load = closeLoad(port);
    try {
      // No exact split: the kernel picks the accepting worker.
      await waitFor(
        'both workers answered',
        () => ids.every((id) => load.answers.some((a) => a.answer.id === id)),
        {
          timeoutMs: 60_000,
        },
      );
    } finally {
      assert.deepEqual(await load.stop(), []);
    }
    const front = (await daemon.status()).front;
    assert.deepEqual(front?.handedOut, {}, 'the daemon handed out no connection');
    assert.equal(front?.totals?.handedOut, 0);
  });

  test('a restart under Connection: close load loses no request; then only the new workers answer', async () => {
    const old = await servingIds(daemon);
    const load = closeLoad(port);
    let fresh: string[] = [];
    try {
      await load.flowing('requests before the restart');
      const r = await daemon.cli(['restart'], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      fresh = await servingIds(daemon);
      assert.equal(fresh.filter((id) => old.includes(id)).length, 0, 'a new generation serves');
      load.setPhase(1);
      await load.flowing('requests after the restart', 40);
    } finally {
      assert.deepEqual(await load.stop(), []);
    }
    // Requests started once the restart had returned: the old workers no longer accept.
    const after = load.answers.filter((a) => a.phase === 1).map((a) => a.answer.id);
    assert.ok(after.length >= 40);
    assert.deepEqual(
      after.filter((id) => !fresh.includes(id)),
      [],
      'only the new workers answer after the restart',
    );
  });

  test('restart --suspended: the suspended workers hold the requests until resume', async () => {
    const load = closeLoad(port);
    let fresh: string[] = [];
    let resumed = false;
    try {
      await load.flowing('requests before the restart');
      const r = await daemon.cli(['restart', '--suspended'], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      load.setPhase(1);
      fresh = await servingIds(daemon);
      await waitFor('a connection held by the suspended generation', () =>
        fresh.some((id) => new RegExp(`connection while suspended on ${id}`).test(daemon.output)),
      );
      const res = await daemon.cli(['resume']);
      assert.equal(res.code, 0, res.stderr);
      resumed = true;
      load.setPhase(2);
      await load.flowing('requests after resume');
    } finally {
      if (!resumed) await daemon.cli(['resume']).catch(() => undefined);
      assert.deepEqual(await load.stop(), []);
    }
    assert.equal(load.answers.filter((a) => a.answer.suspended).length, 0, 'no request ran while suspended');
    const held = load.answers.filter((a) => a.phase === 1 && fresh.includes(a.answer.id));
    assert.ok(held.length > 0, 'requests started while suspended were held, then served by the new workers');
  });

  test('set-workers up then down under Connection: close load: the new worker accepts, 0 failed', async () => {
    const load = closeLoad(port);
    try {
      let r = await daemon.cli(['set-workers', '3'], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      const ids = await servingIds(daemon);
      assert.equal(ids.length, 3);
      await waitFor(
        'all 3 workers answered',
        () => ids.every((id) => load.answers.some((a) => a.answer.id === id)),
        {
          timeoutMs: 60_000,
        },
      );
      r = await daemon.cli(['set-workers', '2'], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      await load.flowing('requests after scaling down');
    } finally {
      assert.deepEqual(await load.stop(), []);
    }
  });
});

describe('listen with accept: "workers" and an app that ends on its own', () => {
  const cleanups = cleanupsAfterAll();

  test('a replaced worker exits once its server closes (the socket keeps no worker alive)', async () => {
    const listen = { host: '127.0.0.1', port: 0, accept: 'workers' };
    const app = makeApp({ workers: 1, listen, shutdownTimeout: 60_000 }, 'front-natural-exit.js');
    let daemon: Daemon | undefined;
    cleanups.push(() => teardown(daemon, app));
    daemon = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 1 });
    const pid = (await daemon.status()).workers[0]?.pid ?? 0;
    const r = await daemon.cli(['restart'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    // Well before shutdownTimeout, when the daemon would kill it.
    await waitFor('the replaced worker to exit', () => !isAlive(pid), { timeoutMs: 20_000 });
  });
});

describe('listen with accept: "workers" when the daemon is killed', () => {
  const cleanups = cleanupsAfterAll();
  const pids = new Set<number>();
  cleanups.push(() => killAll([...pids].filter(isAlive)));

  test('the workers let the socket go; the next daemon binds the port, accepts for the adopted workers, and after a restart the new ones accept', async () => {
    const probe = net.createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => probe.once('listening', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const listen = { host: '127.0.0.1', port, accept: 'workers' };
    const app = makeApp({ workers: 2, listen, shutdownTimeout: 5000 }, 'front-serve.js');
    let daemon: Daemon | undefined;
    cleanups.push(() => teardown(daemon, app));
    const first = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
    daemon = first;
    const adoptedIds = await servingIds(first);
    for (const w of (await first.status()).workers) pids.add(w.pid!);
    await httpRequest({ port });
    await first.kill();

    const second = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
    daemon = second;
    assert.doesNotMatch(second.output, /EADDRINUSE|cannot listen/);
    assert.deepEqual((await servingIds(second)).sort(), [...adoptedIds].sort(), 'the workers were adopted');
    for (let i = 0; i < 10; i++) {
      const answer = JSON.parse((await httpRequest({ port })).body) as Answer;
      assert.ok(adoptedIds.includes(answer.id), `${answer.id} is an adopted worker`);
    }
    assert.match(
      second.output,
      /has no channel for the socket of 127\.0\.0\.1:\d+: the daemon accepts its connections too/,
    );

    const r = await second.cli(['restart'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    for (const w of (await second.status()).workers) pids.add(w.pid!);
    for (let i = 0; i < 10; i++) {
      const answer = JSON.parse((await httpRequest({ port })).body) as Answer;
      assert.ok(!adoptedIds.includes(answer.id), 'served by a worker of the new daemon');
    }
  });
});

describe('listen with accept: "workers" and tls', () => {
  const cleanups = cleanupsAfterAll();

  test('the workers end TLS on the connections they accept; both answer', async () => {
    const tls = { key: 'front.key', cert: 'front.crt' };
    const app = makeApp(
      { workers: 2, listen: { host: '127.0.0.1', port: 0, tls, accept: 'workers' }, shutdownTimeout: 5000 },
      'front-serve.js',
    );
    makeCert(app.dir, 'front', 'front.test');
    let daemon: Daemon | undefined;
    cleanups.push(() => teardown(daemon, app));
    daemon = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
    const address = (await daemon.status()).front?.addresses[0];
    const port = Number(/:(\d+)$/.exec(address ?? '')?.[1]);
    const ids = await servingIds(daemon);
    const seen = new Set<string>();
    await waitFor('both workers answered over TLS', async () => {
      const body = await new Promise<string>((resolve, reject) => {
        const req = https.get({ host: '127.0.0.1', port, agent: false, rejectUnauthorized: false }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
      });
      seen.add((JSON.parse(body) as Answer).id);
      return ids.every((id) => seen.has(id));
    });
    assert.deepEqual((await daemon.status()).front?.handedOut, {}, 'the daemon handed out no connection');
  });
});

describe('listen accept: the config errors', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      'a bad value',
      { listen: { port: 0, accept: 'kernel' } },
      /listen accept must be "daemon" or "workers", not "kernel"/,
    ],
    [
      'with sticky: true',
      { listen: [8080, { port: 0, accept: 'workers' }], sticky: true },
      /sticky: true cannot be used with listen\[1\] accept: "workers"/,
    ],
  ];
  for (const [what, config, error] of cases) {
    test(what, async () => {
      const app = makeApp(config);
      try {
        const r = await cli(['check', '-c', app.configFile]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, error);
        assert.equal(
          r.stderr
            .trim()
            .split('\n')
            .filter((l) => error.test(l)).length,
          1,
          r.stderr,
        );
      } finally {
        await teardown(undefined, app);
      }
    });
  }
});
