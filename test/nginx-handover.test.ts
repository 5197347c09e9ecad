// Connection handover behind a real nginx with upstream keepalive (docs/lifecycle.md#connection-handover):
// nginx keeps its upstream connections across deploys, and no request sent after `restart`
// returned is answered by an old release.
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon, isAlive, ROOT } from './helpers/daemon';
import { httpRequest } from './helpers/http';
import { NGINX_BIN, Nginx, prepareSocketDir } from './helpers/nginx';
import { waitFor } from './helpers/wait';

const skip = NGINX_BIN ? false : 'nginx is not installed (npm test installs it when run as root on Debian)';

let daemon: Daemon | undefined;
let nginx: Nginx | undefined;
let app: AppDir;

afterEach(async () => {
  await nginx?.stop();
  nginx = undefined;
  await teardown(daemon, app);
  daemon = undefined;
});

/** nginx's keepalive pinned: 60 s, and no replacement of a connection after N requests. */
async function setUp(script: string, config: Record<string, unknown> = {}): Promise<Daemon> {
  app = makeApp({ workers: 2, upstreamKeepaliveTimeout: 60_000, ...config, script });
  prepareSocketDir(app.tmpDir);
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
  nginx = await Nginx.start(path.join(app.dir, 'nginx'), [app.published(0), app.published(1)], {
    keepaliveSeconds: 60,
    keepaliveConnections: 32,
    upstreamExtra: 'keepalive_requests 1000000;',
  });
  return daemon;
}

async function pidOf(
  agent: http.Agent,
  post = false,
  seen?: (h: http.IncomingHttpHeaders) => void,
): Promise<number> {
  const res = await httpRequest(
    { port: nginx!.port },
    post ? { agent, method: 'POST', body: 'payload' } : { agent },
  );
  assert.equal(res.status, 200, `HTTP ${res.status}: ${res.body}\n${nginx!.errorLog()}`);
  seen?.(res.headers);
  return (JSON.parse(res.body) as { pid: number }).pid;
}

for (const [label, script] of [
  ['serve()', 'test/fixtures/apps/lib.js'],
  ['an unmodified seed-style app', 'test/fixtures/apps/plain.js'],
  [
    'a seed-style Express app (suspend.express, server.close() on shutdown)',
    'test/fixtures/apps/seed-express.js',
  ],
] as const) {
  describe(`handover behind a real nginx: ${label}`, { skip }, () => {
    test('a quiet deploy: the same upstream sockets, every later request on the new release, the old workers gone', async () => {
      const d = await setUp(path.join(ROOT, script));
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const before = new Set<number>();
      for (let i = 0; i < 20; i++) before.add(await pidOf(agent, i % 2 === 1));
      assert.equal(before.size, 2);
      const sockets = nginx!.unixSocketInodes();
      const r = await d.cli(['restart']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /connections: \d+ moved/);
      const fresh = await d.slotPids();
      for (let i = 0; i < 20; i++) {
        const pid = await pidOf(agent, i % 2 === 1);
        assert.ok(fresh.includes(pid), `request ${i} after restart answered by ${pid}, not a new worker`);
      }
      assert.deepEqual(
        [...nginx!.unixSocketInodes()].sort(),
        [...sockets].sort(),
        'nginx kept its upstream connections',
      );
      await waitFor('the old workers to exit', () => [...before].every((pid) => !isAlive(pid)));
      agent.destroy();
    });
  });
}

describe('handover behind a real nginx under load', { skip }, () => {
  test('10 restarts under GET+POST load: 0 failed, 0 requests started after a restart returned answered by an old release', async (t) => {
    const d = await setUp(
      path.join(ROOT, 'test/fixtures/apps/lib.js'),
      process.env.NSD_DEBUG_HANDOVER ? { env: ['NSD_DEBUG_HANDOVER=1'] } : {},
    );
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const answers: { started: number; pid: number; post: boolean }[] = [];
    const failed: string[] = [];
    let stopped = false;
    const clients = Promise.all(
      Array.from({ length: 4 }, async (_, n) => {
        for (let i = 0; !stopped; i++) {
          const started = performance.now();
          try {
            const post = (i + n) % 2 === 0;
            answers.push({ started, pid: await pidOf(agent, post), post });
          } catch (err) {
            failed.push((err as Error).message);
          }
        }
      }),
    );
    const deploys: { returned: number; old: number[]; said: string }[] = [];
    try {
      await waitFor('some load', () => answers.length > 20);
      for (let i = 0; i < 10; i++) {
        const old = await d.slotPids();
        const r = await d.cli(['restart']);
        assert.equal(r.code, 0, r.stderr);
        deploys.push({ returned: performance.now(), old, said: r.stdout });
        const count = answers.length;
        await waitFor('load after the restart', () => answers.length > count + 20);
      }
    } finally {
      stopped = true;
      await clients;
      agent.destroy();
    }
    assert.deepEqual(failed, [], `${failed.length} failed\n${nginx!.errorLog()}`);
    const late = answers.filter((a) =>
      deploys.some((dep) => a.started > dep.returned && dep.old.includes(a.pid)),
    );
    assert.deepEqual(
      late,
      [],
      `requests started after a restart returned, answered by an old release\n${deploys.map((dep) => `${dep.returned} ${dep.said}`).join('\n')}\n${d.output.slice(-(Number(process.env.NSD_TAIL) || 4000))}`,
    );
    t.diagnostic(`${answers.length} requests across 10 restarts, 0 failed, 0 answered by an old release`);
  });

  test('restart --suspended: every request started after it returned waits for resume and runs the new release', async () => {
    const d = await setUp(path.join(ROOT, 'test/fixtures/apps/lib.js'));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    for (let i = 0; i < 20; i++) await pidOf(agent);
    const r = await d.cli(['restart', '--suspended']);
    assert.equal(r.code, 0, r.stderr);
    const fresh = await d.slotPids();
    let resumed = false;
    const heldAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const held = Array.from({ length: 8 }, () =>
      httpRequest({ port: nginx!.port }, { agent: heldAgent }).then((res) => ({ res, resumed })),
    );
    await waitFor('the held requests to reach the new workers', async () => {
      const s = await d.status();
      const inflight = s.workers.filter((w) => w.slot !== null).reduce((n, w) => n + (w.inflight ?? 0), 0);
      return inflight >= 8;
    });
    resumed = true;
    assert.equal((await d.cli(['resume'])).code, 0);
    for (const { res, resumed: after } of await Promise.all(held)) {
      assert.equal(res.status, 200);
      assert.ok(after, 'answered after resume');
      const body = JSON.parse(res.body) as { pid: number; suspended: boolean };
      assert.ok(fresh.includes(body.pid), 'by the new release');
      assert.equal(body.suspended, false);
    }
    agent.destroy();
    heldAgent.destroy();
  });
});

describe('stopping behind an idle nginx', { skip }, () => {
  test("terminate does not wait out nginx's 60 s keepalive: idle connections close after stopIdleTimeout", async () => {
    const d = await setUp(path.join(ROOT, 'test/fixtures/apps/plain.js'), {
      shutdownTimeout: 90_000,
      stopIdleTimeout: 500,
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    await Promise.all(Array.from({ length: 8 }, () => pidOf(agent)));
    const r = await d.cli(['terminate']);
    assert.equal(r.code, 0, r.stderr);
    // Long before nginx's keepalive_timeout (60 s) or shutdownTimeout (90 s) could end it.
    await waitFor('the daemon to exit', () => d.child.exitCode !== null || d.child.signalCode !== null, {
      timeoutMs: 30_000,
    });
    agent.destroy();
  });
});
