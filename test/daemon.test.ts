import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { cli, Daemon, FIXTURES, isAlive, killAll } from './helpers/daemon';
import { getJson, httpRequest } from './helpers/http';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

const startDaemon = async (extraArgs: string[] = [], online = 2) => {
  daemon = await Daemon.start(['daemon', '-c', app.configFile, ...extraArgs], app.ipcFile, { online });
  return daemon;
};

describe('daemon', () => {
  test('serves each slot from its own worker through a published symlink', async () => {
    app = makeApp({ workers: 2 });
    const d = await startDaemon();
    const pids = new Set<number>();
    for (const slot of [0, 1]) {
      const link = app.published(slot);
      assert.ok(fs.lstatSync(link).isSymbolicLink(), `${link} is a symlink`);
      const target = path.join(app.tmpDir, fs.readlinkSync(link));
      assert.match(path.basename(target), /^app\.w[0-9a-f]{8}\.sock$/);
      // Group read/write so nginx's group can connect (SPEC §4.10).
      assert.equal(fs.statSync(target).mode & 0o770, 0o770);
      const body = await getJson<{ pid: number; index: string }>({ socketPath: link });
      assert.equal(body.index, String(slot));
      pids.add(body.pid);
    }
    assert.equal(pids.size, 2);
    // Only the daemon's user may use the control socket.
    assert.equal(fs.statSync(app.ipcFile).mode & 0o777, 0o600);
    const status = await d.status();
    assert.equal(status.workers.length, 2);
    assert.ok(
      status.workers.every((w) => w.state === 'online' && w.rssBytes !== null && w.cpuSeconds !== null),
    );
    const human = await d.cli(['status']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /SLOT\s+ID\s+PID\s+STATE/);
  });

  test('restart replaces every worker and the old ones exit', async () => {
    app = makeApp({ workers: 2 });
    const d = await startDaemon();
    const before = await d.slotPids();
    const r = await d.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    const after = await d.slotPids();
    assert.equal(after.length, 2);
    assert.ok(
      after.every((pid) => !before.includes(pid)),
      `new pids ${after} differ from ${before}`,
    );
    await waitFor('old workers to exit', () => before.every((pid) => !isAlive(pid)));
    for (const slot of [0, 1]) {
      const body = await getJson<{ pid: number }>({ socketPath: app.published(slot) });
      assert.ok(after.includes(body.pid));
    }
  });

  /** Two workers of the test app, whose new workers fail to start while `failFlag` exists. */
  async function startFailable(): Promise<{ d: Daemon; failFlag: string }> {
    app = makeApp({ workers: 2, env: ['FAIL_IF_EXISTS'] });
    const failFlag = path.join(app.dir, 'fail');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, {
      online: 2,
      env: { ...process.env, FAIL_IF_EXISTS: failFlag },
    });
    return { d: daemon, failFlag };
  }

  test('a failed restart after a crash says how many previous workers still serve', async () => {
    const { d, failFlag } = await startFailable();
    fs.writeFileSync(failFlag, '');
    await httpRequest({ socketPath: app.published(0) }, { path: '/crash' }).catch(() => undefined);
    await waitFor('slot 0 crashed and its replacement failed', async () => {
      const slot = (await d.status()).slots[0]!;
      return slot.workerId === null && slot.lastFailure != null;
    });
    const r = await d.cli(['restart']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /restart failed, 1 of 2 previous workers keep serving/);
  });

  test('a failed restart leaves the old generation serving and supervised', async () => {
    const { d, failFlag } = await startFailable();
    const before = await d.slotPids();
    fs.writeFileSync(failFlag, '');
    const r = await d.cli(['restart']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /restart failed, the previous workers keep serving/);
    assert.match(r.stderr, /boom: the database schema is too old/, 'the reason includes the worker stderr');
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.deepEqual(await d.slotPids(), before);
    for (const slot of [0, 1]) await getJson({ socketPath: app.published(slot) });
    // Still managed: a crash of an old worker is replaced.
    fs.rmSync(failFlag);
    await httpRequest({ socketPath: app.published(0) }, { path: '/crash' }).catch(() => undefined);
    await waitFor('slot 0 replaced', async () => {
      const pids = await d.slotPids();
      return pids.length === 2 && pids[0] !== before[0] && pids[1] === before[1];
    });
    await getJson({ socketPath: app.published(0) });
  });

  test('a crashed worker is replaced', async () => {
    app = makeApp({ workers: 1 });
    const d = await startDaemon([], 1);
    const [pid] = await d.slotPids();
    await httpRequest({ socketPath: app.published(0) }, { path: '/crash' }).catch(() => undefined);
    await waitFor('a new worker in slot 0', async () => {
      const [now] = await d.slotPids();
      return now !== undefined && now !== pid;
    });
    const body = await getJson<{ pid: number }>({ socketPath: app.published(0) });
    assert.notEqual(body.pid, pid);
    const s = await d.status();
    assert.equal(s.workers[0]?.restarts, 1);
    assert.match(d.output, /exited with code 7/);
  });

  test('stop removes the published paths and keeps the daemon; start brings workers back', async () => {
    app = makeApp({ workers: 2 });
    const d = await startDaemon();
    const pids = await d.slotPids();
    const stop = await d.cli(['stop']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.ok(pids.every((pid) => !isAlive(pid)));
    assert.ok(!fs.existsSync(app.published(0)) && !fs.existsSync(app.published(1)));
    const s = await d.status();
    assert.equal(s.running, false);
    assert.equal(s.workers.length, 0);
    const resume = await d.cli(['resume']);
    assert.equal(resume.code, 1);
    assert.match(resume.stderr, /not running/);
    const start = await d.cli(['start']);
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stdout, /2 worker\(s\) online/);
    await getJson({ socketPath: app.published(1) });
    const again = await d.cli(['start']);
    assert.match(again.stdout, /already running/);
  });

  test('SIGTERM drains the workers and removes published paths and the control socket', async () => {
    app = makeApp({ workers: 2 });
    const d = await startDaemon();
    const pids = await d.slotPids();
    const exit = await d.stop();
    assert.equal(exit.code, 0);
    assert.ok(pids.every((pid) => !isAlive(pid)));
    assert.deepEqual(fs.readdirSync(app.tmpDir), []);
  });

  test('a restart asked while SIGTERM drains is refused: no worker outlives the daemon', async () => {
    app = makeApp(
      { workers: 1, debug: true, shutdownTimeout: 600_000, env: ['STUBBORN_HELPER=1'] },
      'misbehave.js',
    );
    const d = await startDaemon([], 1);
    const [pid] = await d.slotPids();
    d.child.kill('SIGTERM');
    // The worker ignores 'shutdown' and SIGTERM: the drain lasts until the test kills it.
    await d.waitOutput(/SIGTERM: draining workers/);
    const restart = d.cli(['restart']);
    await d.waitOutput(/control request restart/);
    process.kill(pid!, 'SIGKILL');
    assert.equal((await d.exited).code, 0);
    const r = await restart;
    assert.notEqual(r.code, 0);
    daemon = undefined;
    // Its helper gets SIGTERM as the worker exits; a worker started after the drain never goes.
    const left = () => processesWithEnv(`NODESOCKD_IPC_FILE=${app.ipcFile}`);
    try {
      await waitFor('no process of the app to be left', () => left().length === 0);
    } finally {
      killAll(left());
    }
  });

  test('stale links, temp links and dead sockets from a crash are cleaned at start; live sockets are kept', async () => {
    app = makeApp({ workers: 1 });
    // A dead socket: its process was SIGKILLed, so nobody unlinked it.
    const dead = path.join(app.tmpDir, 'app.wdeadbeef.sock');
    const holder = fork(path.join(FIXTURES, 'listen-forever.js'), [dead], { stdio: 'ignore' });
    await waitFor('the dead socket to exist', () => fs.existsSync(dead));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    fs.symlinkSync('app.wdeadbeef.sock', app.published(0));
    fs.symlinkSync('app.wdeadbeef.sock', `${app.published(0)}.new-0a1b2c3d`);
    // A live socket that is not ours to remove.
    const live = path.join(app.tmpDir, 'app.wcafebabe.sock');
    const server = net.createServer((c) => c.end());
    await new Promise<void>((r) => server.listen(live, r));
    try {
      await startDaemon([], 1);
      const names = fs.readdirSync(app.tmpDir).sort();
      assert.ok(!names.includes('app.wdeadbeef.sock'));
      assert.ok(!names.some((n) => n.includes('.new-')));
      assert.ok(names.includes('app.wcafebabe.sock'), 'a live socket is never unlinked');
      await getJson({ socketPath: app.published(0) });
    } finally {
      server.close();
    }
  });

  test('a second daemon for the same app refuses and touches nothing', async () => {
    app = makeApp({ workers: 1 });
    const d = await startDaemon([], 1);
    const [pid] = await d.slotPids();
    const second = await cli(['daemon', '-c', app.configFile]);
    assert.equal(second.code, 1);
    assert.match(
      second.stderr,
      /another nodesockd daemon \(pid \d+\) is already running on .*nodesockd\.ipc/,
    );
    assert.deepEqual(await d.slotPids(), [pid]);
    await getJson({ socketPath: app.published(0) });
  });

  test('workers get the socket, ids, a filtered env, the logical cwd and args', async () => {
    app = makeApp({ workers: 1, env: ['NSD_PASSED', 'NSD_SET=fixed'], args: ['--flag', 'x'] });
    // The app dir reached through a symlink, as in `current -> releases/42` deploys.
    const link = `${app.dir}-current`;
    fs.symlinkSync(app.dir, link);
    try {
      daemon = await Daemon.start(['daemon', '-c', path.join(link, 'nodesockd.yaml')], app.ipcFile, {
        env: { ...process.env, NSD_PASSED: 'yes', SECRET_TOKEN: 'hidden' },
      });
      const body = await getJson<{ cwd: string; argv: string[]; env: Record<string, string> }>({
        socketPath: app.published(0),
      });
      assert.equal(body.env.NSD_PASSED, 'yes');
      assert.equal(body.env.NSD_SET, 'fixed');
      assert.equal(body.env.SECRET_TOKEN, undefined);
      assert.equal(body.env.PATH, process.env.PATH);
      assert.equal(body.env.NODESOCKD_WORKER_INDEX, '0');
      assert.match(body.env.NODESOCKD_WORKER_ID ?? '', /^w[0-9a-f]{8}$/);
      assert.equal(body.env.LISTEN_ON, body.env.NODESOCKD_SOCKET_PATH);
      // The kernel resolves the symlink (so a deploy that moves `current` starts workers in
      // the new release); PWD keeps the logical path, as a shell would.
      assert.equal(body.cwd, fs.realpathSync(link));
      assert.equal(body.env.PWD, link);
      assert.deepEqual(body.argv, ['--flag', 'x']);
    } finally {
      fs.rmSync(link);
    }
  });

  test('v1 usage: flags override the file, bare `nodesockd -c file` runs the daemon', async () => {
    app = makeApp({ workers: 1 });
    daemon = await Daemon.start(
      ['-c', app.configFile, '-w', '2', '-l', 'MY_SOCKET', '-p', '<{worker}/{instance}> '],
      app.ipcFile,
      {
        online: 2,
      },
    );
    const s = await daemon.status();
    assert.equal(s.workers.length, 2);
    await daemon.waitOutput(/<1\/0> listening on \S+app\.w[0-9a-f]{8}\.sock from MY_SOCKET/);
    await getJson({ socketPath: app.published(1) });
  });

  test('worker output can go to files', async () => {
    app = makeApp({ workers: 1, stdout: 'out.log', stderr: 'err.log', outputPrefix: '{worker}: ' });
    daemon = await startDaemon([], 1);
    await waitFor('the worker stdout line in out.log', () => {
      const text =
        fs.existsSync(path.join(app.dir, 'out.log')) &&
        fs.readFileSync(path.join(app.dir, 'out.log'), 'utf8');
      return text && /^0: listening on /m.test(text);
    });
  });

  test('a worker that never comes online makes start fail with the reason; the daemon stays up', async () => {
    app = makeApp({ workers: 1, onlineTimeout: 1000, env: ['HANG_IF_EXISTS'] });
    const flag = path.join(app.dir, 'hang');
    fs.writeFileSync(flag, '');
    daemon = new Daemon(['daemon', '-c', app.configFile], app.ipcFile, {
      env: { ...process.env, HANG_IF_EXISTS: flag },
    });
    await daemon.waitOutput(/did not report online within 1000 ms/);
    const s = await daemon.status();
    assert.equal(s.running, true);
    assert.match(s.slots[0]?.lastExit ?? '', /did not report online/);
    fs.rmSync(flag);
    await waitFor('the retried worker online', async () => (await daemon!.slotPids()).length === 1, {
      timeoutMs: 60_000,
    });
  });
});

/** Pids of the processes whose environment holds `entry` (the workers of one daemon). */
function processesWithEnv(entry: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        return fs.readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(entry);
      } catch {
        return false;
      }
    })
    .map(Number);
}
