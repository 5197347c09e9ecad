import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { readProcStats } from '../src/daemon/proc';
import { type AppDir, makeApp } from './helpers/app';
import { isAlive, killAll } from './helpers/daemon';
import { RawDaemon } from './helpers/raw-daemon';
import { waitFor } from './helpers/wait';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  // Every cleanup runs, whatever an earlier one threw.
  for (const c of cleanups)
    await Promise.resolve()
      .then(c)
      .catch(() => {});
});

function track(daemon: RawDaemon, app: AppDir): void {
  cleanups.push(async () => {
    const pids = await daemon.workerPids();
    await daemon.kill();
    killAll(pids.filter(isAlive));
    const { rmSync } = await import('node:fs');
    rmSync(app.dir, { recursive: true, force: true });
  });
}

test('a daemon whose stdout and stderr pipes are closed does not spin, and keeps working', async () => {
  const app = makeApp(
    { workers: 2, env: ['PATH', 'CHATTY_MS=5'], shutdownTimeout: 3000, killTimeout: 1000 },
    'output.js',
  );
  const daemon = new RawDaemon(app.configFile, app.ipcFile, ['ignore', 'pipe', 'pipe']);
  track(daemon, app);
  // The read ends go away at once: every write of the daemon now fails with EPIPE.
  daemon.child.stdout?.destroy();
  daemon.child.stderr?.destroy();
  let pids = await daemon.online(2);

  const before = readProcStats(daemon.pid);
  assert.ok(before, 'the daemon has /proc stats');
  const t0 = Date.now();
  // Worker output all along (CHATTY_MS), crashes and replacements (each one logged).
  for (let crash = 0; crash < 3 || Date.now() - t0 < 3000; crash++) {
    const victim = pids[crash % 2] ?? -1;
    process.kill(victim, 'SIGKILL');
    pids = await waitFor('a replacement online', async () => {
      const now = await daemon.online(2);
      return now.includes(victim) ? null : now;
    });
  }
  const cpu = (readProcStats(daemon.pid)?.cpuSeconds ?? Number.NaN) - before.cpuSeconds;
  const wall = (Date.now() - t0) / 1000;
  // A bound against a spin (a core at 100%), not a speed threshold.
  assert.ok(cpu < wall * 0.25, `the daemon used ${cpu.toFixed(2)} s of CPU in ${wall.toFixed(2)} s`);

  const restart = await daemon.cli(['restart']);
  assert.equal(restart.code, 0, restart.stderr);
  const after = await daemon.online(2);
  assert.ok(!after.some((p) => pids.includes(p)), 'restart replaced both workers');
  pids = after;
  assert.deepEqual(await daemon.stop(), { code: 0, signal: null });
  await waitFor('the workers to be gone', () => pids.every((p) => !isAlive(p)));
});
