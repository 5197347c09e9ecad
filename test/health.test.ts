/**
 * `nodesockd health` and the metrics listener's `/healthz` and `/readyz`, through the real
 * daemon: healthy only while every slot has a worker whose published socket accepts a
 * connection (suspended counts), one line saying why not, exit 2 when no daemon answers.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { cli, Daemon } from './helpers/daemon';
import { httpRequest } from './helpers/http';
import { freePort } from './helpers/nginx';
import { waitFor } from './helpers/wait';

/** The test's daemon and app dir, torn down after each test. */
let running: { daemon?: Daemon; app: AppDir } | undefined;
afterEach(async () => {
  if (running) await teardown(running.daemon, running.app);
  running = undefined;
});

const start = async (config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}, online = 2) => {
  const app = makeApp({ ...config, env: Object.keys(env) }, 'misbehave.js');
  running = { app };
  running.daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, {
    online,
    env: { ...process.env, ...env },
  });
  return running.daemon;
};

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

describe('nodesockd health', () => {
  test('every slot serves: exit 0; a suspended generation still counts; the JSON names each slot', async () => {
    const d = await start({ workers: 2 });
    let r = await d.cli(['health']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'healthy: 2 of 2 slot(s) accept connections\n');
    assert.equal(r.stderr, '');

    r = await d.cli(['restart', '--suspended']);
    assert.equal(r.code, 0, r.stderr);
    r = await d.cli(['health']);
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, /^healthy: 2 of 2 slot\(s\) accept connections \(2 suspended/);

    r = await d.cli(['health', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { healthy: boolean; reason: null; slots: { state: string }[] };
    assert.equal(report.healthy, true);
    assert.equal(report.reason, null);
    assert.deepEqual(
      report.slots.map((s) => s.state),
      ['suspended', 'suspended'],
    );
  });

  test('a slot in a crash loop: exit 1 with one line naming the slot, the exit, the error and the next try', async () => {
    const d = await start({ workers: 2 }, { CRASH_SLOT: '1' }, 1);
    const r = await waitFor('health to see the crash loop', async () => {
      const r = await d.cli(['health']);
      return /crash loop/.test(r.stdout) ? r : undefined;
    });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(lines(r.stdout).length, 1, r.stdout);
    assert.match(
      r.stdout,
      /^unhealthy: slot 1: no worker online \(crash loop: worker w[0-9a-f]{8} exited with code 1 before reporting online: Error: boom: simulated crash, next try in \d+ s\)\n$/,
    );
    const json = await d.cli(['health', '--json']);
    assert.equal(json.code, 1);
    const report = JSON.parse(json.stdout) as { healthy: boolean; slots: { problem: string | null }[] };
    assert.equal(report.healthy, false);
    assert.equal(report.slots[0]!.problem, null, 'slot 0 serves');
    // Its next try may have begun since: `starting; last failure: …` then.
    assert.match(report.slots[1]!.problem ?? '', /^no worker online \(.*Error: boom: simulated crash/);
  });

  test('accepting is proved by connecting: a worker whose socket is gone makes the slot unhealthy', async () => {
    const d = await start({ workers: 1 }, {}, 1);
    const socket = fs.realpathSync(running!.app.published(0));
    fs.rmSync(socket);
    const r = await d.cli(['health']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stdout,
      new RegExp(
        `^unhealthy: slot 0: worker w[0-9a-f]{8} \\(pid \\d+\\) does not accept connections on ${running!.app.published(0)}\\n$`,
      ),
    );
  });

  test('a SIGSTOPped worker does not serve (its socket still completes connections): the slot and pid named, healthy again after SIGCONT', async () => {
    const port = await freePort();
    const d = await start({ workers: 2, metrics: `127.0.0.1:${port}` });
    const [, pid] = await d.slotPids();
    assert.ok(pid);
    process.kill(pid, 'SIGSTOP');
    try {
      const r = await d.cli(['health']);
      assert.equal(r.code, 1, r.stdout);
      const reason = `slot 1: worker w[0-9a-f]{8} \\(pid ${pid}\\) is stopped \\(SIGSTOP\\): it accepts no connection until it is continued \\(SIGCONT\\)`;
      assert.match(r.stdout, new RegExp(`^unhealthy: ${reason}\\n$`));
      const ready = await httpRequest({ port }, { path: '/readyz' });
      assert.equal(ready.status, 503);
      assert.match(ready.body, new RegExp(`^not ready: ${reason}`));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const r = await d.cli(['health']);
    assert.equal(r.code, 0, r.stdout);
    assert.equal((await httpRequest({ port }, { path: '/readyz' })).status, 200);
  });

  test('workers stopped: exit 1; no daemon: exit 2 and one line on stderr', async () => {
    const d = await start({ workers: 1 }, {}, 1);
    assert.equal((await d.cli(['stop'])).code, 0);
    const r = await d.cli(['health']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^unhealthy: the workers are stopped/);
    const none = await cli(['health', '--ipc-file', path.join(running!.app.tmpDir, 'missing.ipc')]);
    assert.equal(none.code, 2, none.stderr);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /^nodesockd: no daemon is running at .*missing\.ipc \(ENOENT\)\n$/);
  });
});

describe('/healthz and /readyz on the metrics listener', () => {
  test('healthz answers 200 while the daemon runs; readyz follows health, 503 with its reason', async () => {
    const port = await freePort();
    const d = await start({ workers: 2, metrics: `127.0.0.1:${port}` }, { CRASH_SLOT: '1' }, 1);
    const healthz = await httpRequest({ port }, { path: '/healthz' });
    assert.equal(healthz.status, 200);
    assert.equal(healthz.body, 'ok\n');
    const ready = await waitFor('readyz to see the crash loop', async () => {
      const res = await httpRequest({ port }, { path: '/readyz' });
      return /crash loop/.test(res.body) ? res : undefined;
    });
    assert.equal(ready.status, 503);
    assert.match(
      ready.body,
      /^not ready: slot 1: no worker online \(crash loop: .*exited with code 1 before reporting online: Error: boom/,
    );
    // The same rule as the command.
    assert.equal((await d.cli(['health'])).code, 1);
  });

  test('readyz is 200 when every slot serves', async () => {
    const port = await freePort();
    await start({ workers: 2, metrics: `127.0.0.1:${port}` });
    const res = await httpRequest({ port }, { path: '/readyz' });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.body, 'ready\n');
  });
});
