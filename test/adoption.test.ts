import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon, isAlive, killAll } from './helpers/daemon';
import { getJson } from './helpers/http';
import { startLoad } from './helpers/load';
import { freePort, KEEPALIVE_SECONDS, NGINX_BIN, Nginx, prepareSocketDir } from './helpers/nginx';
import { makeCert } from './helpers/tls';
import { waitFor } from './helpers/wait';

let daemons: Daemon[] = [];
let app: AppDir;
let nginx: Nginx | undefined;
const extraPids = new Set<number>();

afterEach(async () => {
  await nginx?.stop();
  nginx = undefined;
  const last = daemons.pop();
  for (const d of daemons) await d.kill();
  daemons = [];
  await teardown(last, app);
  killAll([...extraPids].filter(isAlive));
  extraPids.clear();
});

const startDaemon = async (online: number) => {
  const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online });
  daemons.push(d);
  return d;
};

describe('workers outlive the daemon', () => {
  test('after a SIGKILL the workers keep serving; the next daemon adopts the same pids', async () => {
    app = makeApp({ workers: 2, standby: 1 });
    const first = await startDaemon(2);
    await waitFor('the standby', async () =>
      (await first.status()).workers.some((w) => w.role === 'standby'),
    );
    const before = await first.status();
    const pids = before.workers.map((w) => w.pid!);
    for (const pid of pids) extraPids.add(pid);
    await first.kill();
    // Nobody supervises them now, yet they serve, and stdout errors do not kill them.
    for (const round of [1, 2, 3]) {
      for (const slot of [0, 1]) await getJson({ socketPath: app.published(slot) }, `/?log=${round}`);
    }
    assert.ok(pids.every(isAlive));

    const second = await startDaemon(2);
    const after = await second.status();
    assert.deepEqual(
      after.workers.map((w) => [w.role, w.slot, w.pid]).sort(),
      before.workers.map((w) => [w.role, w.slot, w.pid]).sort(),
      'the same processes in the same roles',
    );
    assert.match(second.output, /adopted 3 worker\(s\) of the previous daemon/);
    assert.doesNotMatch(second.output, /listening on/, 'no new worker was started');

    // Adopted workers are fully managed: a restart replaces them and they exit.
    const r = await second.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    const fresh = await second.slotPids();
    assert.ok(fresh.every((pid) => !pids.includes(pid)));
    await waitFor('the adopted workers to exit', () => pids.every((pid) => !isAlive(pid)));
    await getJson({ socketPath: app.published(0) });
  });

  test('a crash of an adopted worker is noticed and replaced', async () => {
    app = makeApp({ workers: 1 });
    const first = await startDaemon(1);
    const [pid] = await first.slotPids();
    extraPids.add(pid!);
    await first.kill();
    const second = await startDaemon(1);
    assert.deepEqual(await second.slotPids(), [pid]);
    process.kill(pid!, 'SIGKILL');
    await waitFor('a replacement', async () => {
      const [now] = await second.slotPids();
      return now !== undefined && now !== pid;
    });
    await getJson({ socketPath: app.published(0) });
  });

  test('a state file naming dead or foreign processes adopts nothing and starts fresh workers', async () => {
    app = makeApp({ workers: 1 });
    fs.writeFileSync(
      `${app.ipcFile}.state`,
      JSON.stringify({
        version: 1,
        daemonPid: 999999,
        running: true,
        suspended: false,
        generation: 3,
        workers: [
          // pid 1 is alive but is not the worker (start time differs) and has no such socket.
          {
            id: 'wdeadbeef',
            pid: 1,
            socketPath: path.join(app.tmpDir, 'app.wdeadbeef.sock'),
            slot: 0,
            role: 'serving',
            suspended: false,
            startedAt: 0,
            generation: 3,
            startTicks: '1',
          },
          {
            id: 'wdeadbee2',
            pid: 999998,
            socketPath: '/etc/passwd',
            slot: 0,
            role: 'serving',
            suspended: false,
            startedAt: 0,
            generation: 3,
            startTicks: null,
          },
        ],
      }),
    );
    const d = await startDaemon(1);
    assert.match(d.output, /not adopting worker wdeadbeef \(pid 1\)/);
    assert.match(d.output, /not adopting worker wdeadbee2 .*not where this config puts it/);
    await getJson({ socketPath: app.published(0) });
  });

  test('SIGKILL of the daemon under load through nginx fails no request', { skip: !NGINX_BIN }, async () => {
    app = makeApp({ workers: 2, upstreamKeepaliveTimeout: KEEPALIVE_SECONDS * 1000 }, 'lib.js');
    prepareSocketDir(app.tmpDir);
    const first = await startDaemon(2);
    const pids = await first.slotPids();
    for (const pid of pids) extraPids.add(pid);
    nginx = await Nginx.start(path.join(app.dir, 'nginx'), [app.published(0), app.published(1)]);
    const load = startLoad(nginx.port);
    await waitFor('some load', () => load.ok() > 50);
    await first.kill();
    const served = load.ok();
    await waitFor('load while no daemon runs', () => load.ok() > served + 50);
    const second = await startDaemon(2);
    assert.deepEqual((await second.slotPids()).sort(), [...pids].sort());
    // Library workers find the new daemon on the control socket.
    await waitFor(
      'both workers to reconnect',
      () => (second.output.match(/reconnected/g) ?? []).length === 2,
    );
    // And are then stopped gracefully over it by a restart, still under load.
    const r = await second.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the adopted workers to exit', () => pids.every((pid) => !isAlive(pid)));
    const { ok, failed } = await load.stop();
    assert.deepEqual(failed, [], `${failed.length} failed of ${ok + failed.length}`);
  });
  test('a resume sent after adoption but before the worker reconnected is delivered when it does', async () => {
    app = makeApp({ workers: 1, upstreamKeepaliveTimeout: 2000 }, 'lib.js');
    const first = await startDaemon(1);
    const r = await first.cli(['restart', '--suspended']);
    assert.equal(r.code, 0, r.stderr);
    const [pid] = await first.slotPids();
    extraPids.add(pid!);
    await first.kill();
    const second = new Daemon(['daemon', '-c', app.configFile], app.ipcFile);
    daemons.push(second);
    // The deploy script's next step, as soon as a daemon answers: before the worker is back.
    const resumed = await waitFor('resume to be accepted', async () => {
      const res = await second.cli(['resume']);
      return res.code === 0 ? res.stdout : undefined;
    });
    assert.match(resumed, /resumed 1 worker/);
    await second.waitOutput(/reconnected/);
    const reply = await getJson<{ pid: number; suspended: boolean }>({ socketPath: app.published(0) });
    assert.equal(reply.pid, pid);
    assert.equal(reply.suspended, false);
    assert.equal((await second.status()).workers[0]?.state, 'online');
  });
});

describe('an out-of-date state file', () => {
  test('names a replaced worker as serving: the published link wins, and the worker it points at is adopted', async () => {
    app = makeApp({ workers: 1, shutdownTimeout: 5000 });
    const first = await startDaemon(1);
    const [old] = await first.slotPids();
    extraPids.add(old!);
    const stale = fs.readFileSync(`${app.ipcFile}.state`);
    // Stopped, the replaced worker cannot act on its shutdown: its socket still accepts.
    process.kill(old!, 'SIGSTOP');
    const r = await first.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    const [fresh] = await first.slotPids();
    extraPids.add(fresh!);
    // The daemon dies after the switch, before its state file says so.
    await first.kill();
    fs.writeFileSync(`${app.ipcFile}.state`, stale, { mode: 0o600 });
    const second = await startDaemon(1);
    assert.match(second.output, /slot 0 no longer publishes worker .* \(the state file is out of date\)/);
    assert.deepEqual(await second.slotPids(), [fresh]);
    process.kill(old!, 'SIGCONT');
    await waitFor('the replaced worker to exit', () => !isAlive(old!));
    assert.equal((await getJson<{ pid: number }>({ socketPath: app.published(0) })).pid, fresh);
  });
});

describe('a daemon that cannot start leaves the workers it would adopt serving', () => {
  /** Kills the daemon, breaks something with `spoil`, and checks a new daemon refuses to start and keeps the workers. */
  const failedStartKeeps = async (spoil: () => Promise<void> | void, why: RegExp) => {
    const first = await startDaemon(2);
    const pids = await first.slotPids();
    for (const pid of pids) extraPids.add(pid);
    await first.kill();
    await spoil();
    const failed = new Daemon(['daemon', '-c', app.configFile], app.ipcFile);
    daemons.push(failed);
    const exit = await failed.exited;
    assert.notEqual(exit.code, 0, failed.output);
    assert.match(failed.output, why);
    assert.doesNotMatch(failed.output, /stopped \d+ worker/);
    assert.ok(pids.every(isAlive), 'the workers still run');
    for (const slot of [0, 1]) await getJson({ socketPath: app.published(slot) });
    return pids;
  };

  test('a TLS key that does not match the certificate (a crash restart mid-renewal)', async () => {
    app = makeApp({
      workers: 2,
      listen: [{ host: '127.0.0.1', port: 0, tls: { key: 'a.key', cert: 'a.crt' } }],
    });
    makeCert(app.dir, 'a', 'a.test');
    const other = makeCert(app.dir, 'b', 'b.test');
    const keep = path.join(app.dir, 'a.key.good');
    fs.copyFileSync(path.join(app.dir, 'a.key'), keep);
    const pids = await failedStartKeeps(
      () => fs.copyFileSync(other.key, path.join(app.dir, 'a.key')),
      /does not match/,
    );
    // Once the key is right again, the next daemon adopts them.
    fs.copyFileSync(keep, path.join(app.dir, 'a.key'));
    const next = await startDaemon(2);
    assert.deepEqual(await next.slotPids(), pids);
  });

  test('a listen port another process holds', async () => {
    const port = await freePort();
    app = makeApp({ workers: 2, listen: `127.0.0.1:${port}` });
    const squatter = net.createServer();
    try {
      const pids = await failedStartKeeps(
        () => new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve)),
        /EADDRINUSE/,
      );
      await new Promise((resolve) => squatter.close(resolve));
      const next = await startDaemon(2);
      assert.deepEqual(await next.slotPids(), pids);
    } finally {
      squatter.close();
    }
  });
});
