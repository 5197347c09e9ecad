import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { cleanupsAfterAll, makeApp, teardown } from './helpers/app';
import { cli, Daemon, isAlive, killAll } from './helpers/daemon';
import { getJson } from './helpers/http';
import { waitFor } from './helpers/wait';
import { daemonUnderNonReapingParent, isZombie, NO_SUBREAPER, parentOf } from './helpers/zombie';

// A process that has exited but that its parent has not reaped (a zombie) still answers
// kill(pid, 0). nodesockd must take it for gone: the red team's "Also found" (issue 18).

const cleanups = cleanupsAfterAll();

test('terminate returns when the stopped daemon is a zombie its parent has not reaped', async () => {
  const a = makeApp({ workers: 1, shutdownTimeout: 3000, killTimeout: 1000 });
  cleanups.push(() => fs.rmSync(a.dir, { recursive: true, force: true }));
  const { pid, parent } = await daemonUnderNonReapingParent(a);
  cleanups.push(parent.kill);
  const r = await cli(['terminate', '--ipc-file', a.ipcFile]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`daemon ${pid} stopped`));
  assert.ok(isZombie(pid), 'the daemon is a zombie (exited, not reaped)');
  assert.ok(!fs.existsSync(`${a.ipcFile}.lock.sock`), 'its lock is gone');
});

test('an adopted worker that dies unreaped (a zombie) is replaced', { skip: NO_SUBREAPER }, async () => {
  const a = makeApp({ workers: 1, shutdownTimeout: 3000, killTimeout: 1000 }, 'lib.js');
  // The first daemon's parent adopts its orphans and reaps nothing (a container's PID 1 like that).
  const { pid: first, parent } = await daemonUnderNonReapingParent(a, { subreaper: true });
  cleanups.push(parent.kill);
  const [worker] = (await statusPids(a.ipcFile)).workers;
  assert.ok(worker);
  cleanups.push(() => killAll([worker].filter(isAlive)));
  process.kill(first, 'SIGKILL');
  await waitFor('the first daemon to be a zombie', () => isZombie(first));
  await waitFor('the worker to be adopted by the non-reaping parent', () => parentOf(worker) !== first);

  const d = await Daemon.start(['daemon', '-c', a.configFile], a.ipcFile);
  cleanups.push(() => teardown(d, a));
  await d.waitOutput(/adopted 1 worker/);
  process.kill(worker, 'SIGKILL');
  await waitFor('the worker to be a zombie', () => isZombie(worker));
  await waitFor('a new worker in slot 0', async () => {
    const [now] = await d.slotPids();
    return now !== undefined && now !== worker;
  });
  await getJson({ socketPath: a.published(0) });
});

async function statusPids(ipcFile: string): Promise<{ workers: number[] }> {
  const r = await cli(['status', '--json', '--ipc-file', ipcFile]);
  const s = JSON.parse(r.stdout) as { workers: { pid: number | null }[] };
  return { workers: s.workers.map((w) => w.pid ?? -1) };
}
