import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { BIN, Daemon, isAlive, makeTempDir } from './helpers/daemon';
import { getJson, httpRequest } from './helpers/http';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

const start = async (
  config: Record<string, unknown>,
  fixture: string,
  online: number,
  env?: NodeJS.ProcessEnv,
) => {
  app = makeApp({ upstreamKeepaliveTimeout: 1000, ...config }, fixture);
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, {
    online,
    ...(env ? { env: { ...process.env, ...env } } : {}),
  });
  return daemon;
};

const byRole = async (d: Daemon, role: string) => (await d.status()).workers.filter((w) => w.role === role);

describe('zero downtime', () => {
  test('an in-flight request longer than the restart completes on the old worker', async () => {
    const d = await start({ workers: 1 }, 'lib.js', 1);
    const [oldPid] = await d.slotPids();
    const slow = getJson<{ pid: number; slow: boolean }>({ socketPath: app.published(0) }, '/slow?ms=3000');
    await d.waitOutput(new RegExp(`slow request started on ${oldPid}`));
    const r = await d.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual((await d.slotPids())[0], oldPid);
    const body = await slow;
    assert.deepEqual(body, { pid: oldPid, slow: true });
    await waitFor('the old worker to exit after its request', () => !isAlive(oldPid!));
  });

  test('handover: false: a request on a kept-alive connection during the drain succeeds and closes the connection', async () => {
    const d = await start({ workers: 1, handover: false, stopIdleTimeout: 30_000 }, 'lib.js', 1);
    const [oldPid] = await d.slotPids();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await httpRequest({ socketPath: app.published(0) }, { agent });
      assert.equal(JSON.parse(first.body).pid, oldPid);
      const r = await d.cli(['restart']);
      assert.equal(r.code, 0, r.stderr);
      await waitFor('the old worker to be draining', async () => (await byRole(d, 'draining')).length === 1);
      // The agent reuses its connection to the old worker, which is draining.
      const second = await httpRequest({ socketPath: app.published(0) }, { agent });
      assert.equal(second.status, 200);
      assert.equal(JSON.parse(second.body).pid, oldPid);
      assert.equal(second.headers.connection, 'close');
      await waitFor('the old worker to exit', () => !isAlive(oldPid!));
    } finally {
      agent.destroy();
    }
  });

  test('a standby is promoted at once into the slot of a dead worker, and replaced', async () => {
    const d = await start({ workers: 1, standby: 1 }, 'plain.js', 1);
    const standby = await waitFor('a standby', async () => (await byRole(d, 'standby'))[0]);
    assert.equal(standby.state, 'suspended');
    await httpRequest({ socketPath: app.published(0) }, { path: '/crash' }).catch(() => undefined);
    await waitFor('the standby to serve slot 0', async () => (await d.slotPids())[0] === standby.pid);
    assert.equal((await getJson<{ pid: number }>({ socketPath: app.published(0) })).pid, standby.pid);
    const next = await waitFor('a new standby', async () => (await byRole(d, 'standby'))[0]);
    assert.notEqual(next.pid, standby.pid);
    assert.match(d.output, /promoting standby/);
  });

  test('a promotion during a suspended window stays suspended until resume', async () => {
    const d = await start({ workers: 1, standby: 1 }, 'lib.js', 1);
    await waitFor('a standby', async () => (await byRole(d, 'standby')).length === 1);
    const r = await d.cli(['restart', '--suspended']);
    assert.equal(r.code, 0, r.stderr);
    const spare = await waitFor('the new standby', async () => (await byRole(d, 'standby'))[0]);
    const [serving] = await d.slotPids();
    process.kill(serving!, 'SIGKILL');
    await waitFor('the standby promoted', async () => (await d.slotPids())[0] === spare.pid);
    const promoted = (await d.status()).workers.find((w) => w.pid === spare.pid);
    assert.equal(promoted?.state, 'suspended');
    let resumeSent = false;
    const held = httpRequest({ socketPath: app.published(0) }).then((res) => ({
      res,
      afterResume: resumeSent,
    }));
    await d.waitOutput(/connection while suspended/);
    resumeSent = true;
    assert.equal((await d.cli(['resume'])).code, 0);
    const { res, afterResume } = await held;
    assert.equal(res.status, 200);
    assert.equal(afterResume, true, 'answered only after resume');
    assert.equal(JSON.parse(res.body).pid, spare.pid);
  });

  test('a crash loop backs off, shows in status, and leaves the other slots alone', async () => {
    const dir = makeTempDir();
    const flag = path.join(dir, 'fail');
    const d = await start({ workers: 2, env: ['FAIL_IF_EXISTS', 'FAIL_ONLY_INDEX'] }, 'plain.js', 2, {
      FAIL_IF_EXISTS: flag,
      FAIL_ONLY_INDEX: '0',
    });
    const [, other] = await d.slotPids();
    fs.writeFileSync(flag, '');
    await httpRequest({ socketPath: app.published(0) }, { path: '/crash' }).catch(() => undefined);
    // The crash and three failed replacements put the next retry at 0.5–1 × 100 ms × 2^4 or more.
    const slot = await waitFor(
      'the backoff to grow',
      async () => {
        const s = (await d.status()).slots[0]!;
        return s.backoffMs !== null && s.backoffMs >= 800 ? s : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const spawns = d.output.match(/boom: the database schema is too old/g)?.length ?? 0;
    // How fast the delays grow is the policy suite's job (test/policy.test.ts, on a fake clock).
    assert.ok(spawns >= 3, `${spawns} spawns`);
    assert.ok(slot.restarts >= 3, `${slot.restarts} restarts`);
    assert.equal(slot.workerId, null);
    assert.match(slot.lastExit ?? '', /exited with code 3/);
    const human = await d.cli(['status']);
    assert.match(human.stdout, /slot 0: no worker online \(\d+ restarts, next try in/);
    assert.equal((await d.slotPids())[0], other, 'slot 1 keeps its worker');
    fs.rmSync(dir, { recursive: true });
    await waitFor('slot 0 back', async () => (await d.slotPids()).length === 2, { timeoutMs: 60_000 });
  });

  test('a worker that crashes right after coming online backs off too', async () => {
    const dir = makeTempDir();
    const flag = path.join(dir, 'crash');
    const d = await start({ workers: 1, env: ['CRASH_AFTER_ONLINE_IF_EXISTS'] }, 'plain.js', 1, {
      CRASH_AFTER_ONLINE_IF_EXISTS: flag,
    });
    fs.writeFileSync(flag, '');
    await httpRequest({ socketPath: app.published(0) }, { path: '/crash' }).catch(() => undefined);
    await waitFor('the backoff to grow', async () => ((await d.status()).slots[0]?.backoffMs ?? 0) >= 800, {
      timeoutMs: 30_000,
    });
    const crashes = d.output.match(/crashing right after online/g)?.length ?? 0;
    assert.ok(crashes >= 3, `${crashes} crashes`);
    fs.rmSync(dir, { recursive: true });
    await waitFor('a stable worker again', async () => (await d.slotPids()).length === 1, {
      timeoutMs: 60_000,
    });
  });

  test('readiness by connect: an app that listens but never says online is served and restarted', async () => {
    const dir = makeTempDir();
    const flag = path.join(dir, 'hang');
    fs.writeFileSync(flag, '');
    const d = await start({ workers: 1, readiness: 'connect', env: ['HANG_IF_EXISTS'] }, 'plain.js', 1, {
      HANG_IF_EXISTS: flag,
    });
    const [pid] = await d.slotPids();
    await getJson({ socketPath: app.published(0) });
    const r = await d.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual((await d.slotPids())[0], pid);
    // It never handles 'shutdown': it is stopped with SIGTERM straight away.
    await waitFor('the old worker to exit', () => !isAlive(pid!));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a restart whose CLI is killed still completes in the daemon', async () => {
    const dir = makeTempDir();
    const block = path.join(dir, 'block');
    const d = await start({ workers: 2, env: ['BLOCK_IF_EXISTS'] }, 'plain.js', 2, {
      BLOCK_IF_EXISTS: block,
    });
    const before = await d.slotPids();
    fs.writeFileSync(block, '');
    const restart = spawn(process.execPath, [BIN, 'restart', '--ipc-file', app.ipcFile], { stdio: 'ignore' });
    await waitFor('new workers starting', async () => (await byRole(d, 'starting')).length === 2);
    restart.kill('SIGKILL');
    await new Promise((r) => restart.once('exit', r));
    fs.rmSync(dir, { recursive: true });
    await waitFor('the new generation serving', async () => {
      const pids = await d.slotPids();
      return pids.length === 2 && pids.every((p) => !before.includes(p));
    });
    await getJson({ socketPath: app.published(1) });
    assert.equal(d.child.exitCode, null, 'the daemon is alive');
  });
});
