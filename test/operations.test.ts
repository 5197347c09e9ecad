import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { BIN, cli, Daemon, isAlive, killAll } from './helpers/daemon';
import { getJson } from './helpers/http';
import { NGINX_BIN } from './helpers/nginx';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

describe('operations', () => {
  test('SIGUSR2 reopens the log files (logrotate)', async () => {
    app = makeApp({ workers: 1, stdout: 'out.log', outputPrefix: '' });
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    const log = path.join(app.dir, 'out.log');
    await getJson({ socketPath: app.published(0) }, '/?log=before');
    await waitFor(
      'the line in out.log',
      () => fs.existsSync(log) && /request log line/.test(fs.readFileSync(log, 'utf8')),
    );
    fs.renameSync(log, `${log}.1`);
    daemon.child.kill('SIGUSR2');
    await daemon.waitOutput(/SIGUSR2: log files reopened/);
    await getJson({ socketPath: app.published(0) }, '/?log=after');
    await waitFor(
      'a new out.log with the next line',
      () => fs.existsSync(log) && /request log line/.test(fs.readFileSync(log, 'utf8')),
    );
    assert.equal(fs.readFileSync(`${log}.1`, 'utf8').match(/request log line/g)?.length, 1);
  });

  test('`nodesockd nginx` prints an upstream over the published paths that nginx accepts', async () => {
    app = makeApp({ workers: 3, upstreamKeepaliveTimeout: 5000, name: 'shop' });
    const r = await cli(['nginx', '-c', app.configFile, '--listen', '127.0.0.1:18080']);
    assert.equal(r.code, 0, r.stderr);
    for (const slot of [0, 1, 2])
      assert.ok(r.stdout.includes(`server unix:${app.published(slot)} max_fails=0;`));
    assert.doesNotMatch(r.stdout, /app\.3\.sock/);
    assert.match(r.stdout, /keepalive_timeout 5s;/);
    assert.match(r.stdout, /proxy_set_header Connection "";/);
    if (NGINX_BIN) {
      // The real nginx parses it (wrapped in the main context a site file is included from).
      const dir = path.join(app.dir, 'nginx');
      fs.mkdirSync(dir);
      const conf = path.join(dir, 'nginx.conf');
      fs.writeFileSync(conf, `pid ${dir}/nginx.pid;\nevents {}\nhttp {\n${r.stdout}\n}\n`);
      execFileSync(NGINX_BIN, ['-t', '-q', '-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], {
        stdio: 'pipe',
      });
    }
  });

  test('`nodesockd systemd` prints a unit that supports adoption and upgrades', async () => {
    app = makeApp({ workers: 1, name: 'shop' });
    const r = await cli(['systemd', '-c', app.configFile]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.ok(lines.includes('KillMode=process'), 'workers survive the daemon leaving');
    assert.ok(lines.includes('Restart=always'), 'a handover (exit 0) brings up the new version');
    assert.ok(lines.includes('Environment=NODESOCKD_SUPERVISED=1'), 'the daemon knows systemd restarts it');
    assert.ok(lines.includes(`ExecStart=${process.execPath} ${BIN} daemon --config ${app.configFile}`));
    assert.ok(lines.includes(`WorkingDirectory=${app.dir}`));
    assert.ok(lines.includes('ExecReload=/bin/kill -HUP $MAINPID'));
    assert.ok(lines.some((l) => /^User=\S+$/.test(l)));
  });

  test('`nodesockd systemd` over a tmpDir emptied at boot: the tmpfiles.d line that makes it again, as it is', async (t) => {
    app = makeApp({ workers: 1, name: 'shop' });
    if (!/^\/(tmp|run|var\/run)\//.test(app.tmpDir)) {
      t.skip(`the test's tmpDir ${app.tmpDir} is not in /tmp or /run`);
      return;
    }
    fs.chmodSync(app.tmpDir, 0o2750);
    const st = fs.statSync(app.tmpDir);
    const name = (file: string, id: number) =>
      fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .find((l) => l.split(':')[2] === String(id))
        ?.split(':')[0] ?? String(id);
    const r = await cli(['systemd', '-c', app.configFile]);
    assert.equal(r.code, 0, r.stderr);
    const line = `d ${app.tmpDir} 2750 ${name('/etc/passwd', st.uid)} ${name('/etc/group', st.gid)} -`;
    assert.ok(
      r.stdout.includes(
        `#   echo '${line}' > /etc/tmpfiles.d/shop.conf && systemd-tmpfiles --create /etc/tmpfiles.d/shop.conf`,
      ),
      r.stdout,
    );
    assert.ok(r.stdout.indexOf('tmpfiles.d') < r.stdout.indexOf('[Unit]'), 'a comment above the unit');
  });

  test('`nodesockd systemd` run as root over a tmpDir another user owns: User= is that owner', async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip('needs root (to give tmpDir to nobody)');
      return;
    }
    app = makeApp({ workers: 1 });
    fs.chownSync(app.tmpDir, 65534, 65534);
    const r = await cli(['systemd', '-c', app.configFile]);
    assert.equal(r.code, 0, r.stderr);
    const owner = /^nobody:/m.test(fs.readFileSync('/etc/passwd', 'utf8')) ? 'nobody' : '65534';
    assert.ok(r.stdout.split('\n').includes(`User=${owner}`), r.stdout);
  });

  test('a state file that cannot be written is said, shown in status, retried; the next daemon still finds the workers', async (t) => {
    app = makeApp({ workers: 2, shutdownTimeout: 2000 });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0750', 'tmpfs', app.tmpDir], {
        stdio: 'pipe',
      });
    } catch (err) {
      t.skip(`cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}): needs root`);
      return;
    }
    const stateFile = `${app.ipcFile}.state`;
    const listed = () =>
      [...fs.readFileSync(stateFile, 'utf8').matchAll(/"pid": (\d+)/g)].map((m) => Number(m[1]));
    const filler = path.join(app.tmpDir, 'filler');
    const fill = () => {
      try {
        fs.writeFileSync(filler, Buffer.alloc(2 * 1024 * 1024));
      } catch {
        // ENOSPC: full now.
      }
    };
    const seen = new Set<number>();
    let first: Daemon | undefined;
    try {
      first = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
      for (const pid of await first.slotPids()) seen.add(pid);
      const restartWhileFull = async (d: Daemon) => {
        fill();
        const r = await d.cli(['restart']);
        assert.equal(r.code, 0, r.stderr);
        const pids = await d.slotPids();
        for (const pid of pids) seen.add(pid);
        await waitFor(
          'the state file problem in status',
          async () => ((await d.status()).problems ?? []).length > 0,
        );
        assert.notDeepEqual(listed().sort(), [...pids].sort(), 'the file is out of date');
        return pids;
      };
      await restartWhileFull(first);
      assert.match(first.output, /cannot write the state file .*ENOSPC.*retrying/);
      assert.match((await first.cli(['status'])).stdout, /problem: the state file .* cannot be written/);
      // Space back: written again without any command.
      fs.rmSync(filler);
      await first.waitOutput(/state file .* written again/);
      assert.deepEqual(listed().sort(), (await first.slotPids()).sort());
      assert.deepEqual((await first.status()).problems, []);
      // Full again, and the daemon dies before it could write: the next one finds the serving workers.
      const serving = await restartWhileFull(first);
      await first.kill();
      fs.rmSync(filler);
      daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
      assert.match(daemon.output, /adopted 2 running worker\(s\) the state file did not list/);
      // The replaced workers the stale file names may still be draining for a moment.
      const d1 = daemon;
      await waitFor(
        'the serving workers adopted',
        async () =>
          (await d1.status()).workers
            .filter((w) => w.slot !== null && w.state !== 'draining')
            .map((w) => w.pid)
            .sort()
            .join() === [...serving].sort().join(),
      );
      // The workers the stale file names were replaced before the kill: they may still be
      // draining (the link wins, they are drained); no second generation is started beside them.
      const d2 = daemon;
      assert.equal(
        (await d2.status()).workers.filter((w) => w.state !== 'draining').length,
        2,
        'no second generation beside them',
      );
      await waitFor('only the 2 serving workers left', async () => (await d2.status()).workers.length === 2);
    } finally {
      await first?.kill();
      await teardown(daemon, app).catch(() => undefined);
      daemon = undefined;
      killAll([...seen].filter(isAlive));
      execFileSync('umount', ['-l', app.tmpDir]);
    }
  });

  test('tmpDir removed: an outage said in the log and status; once it is back (re-created by the daemon as it was, or by the operator) every slot serves again', async () => {
    const broken = () => path.join(app.dir, 'broken');
    app = makeApp({ workers: 2, shutdownTimeout: 2000, maxStartAttempts: 1 });
    fs.appendFileSync(app.configFile, `env: ['FAIL_IF_EXISTS=${broken()}']\n`);
    fs.chmodSync(app.tmpDir, 0o2750);
    const was = fs.statSync(app.tmpDir);
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    const d = daemon;
    const serving = async () => {
      for (const slot of [0, 1]) await getJson({ socketPath: app.published(slot) });
      return ((await d.status()).problems ?? []).length === 0;
    };
    const first = await d.slotPids();

    // (a) Re-created by the operator while new workers cannot start: the outage lasts, and says so.
    fs.writeFileSync(broken(), '');
    fs.rmSync(app.tmpDir, { recursive: true, maxRetries: 20 });
    fs.mkdirSync(app.tmpDir, { mode: 0o750 });
    const problems = async () => (await d.status().catch(() => undefined))?.problems ?? [];
    await waitFor(
      'the outage in status',
      async () => (await problems()).some((p) => /replacing the workers failed/.test(p)),
      {
        intervalMs: 200,
      },
    );
    assert.match((await d.cli(['status'])).stdout, /problem: tmpDir .* every slot is unreachable/);
    assert.match(d.output, /every slot is unreachable/);
    fs.rmSync(broken());
    await waitFor('every slot served again', serving, { intervalMs: 200 });
    const second = await d.slotPids();
    assert.ok(
      second.every((pid) => !first.includes(pid)),
      'new workers',
    );
    assert.match(d.output, /is back: every slot serves again/);

    // (b) Not re-created: the daemon makes it again exactly as it was.
    fs.rmSync(app.tmpDir, { recursive: true, maxRetries: 20 });
    await d.waitOutput(/re-created tmpDir .* as it was \(2750/);
    await waitFor('every slot served again', serving, { intervalMs: 200 });
    const now = fs.statSync(app.tmpDir);
    assert.deepEqual([now.mode, now.uid, now.gid], [was.mode, was.uid, was.gid]);
    assert.ok(
      (await d.slotPids()).every((pid) => !second.includes(pid)),
      'new workers',
    );
    const check = await cli(['check', '-c', app.configFile]);
    assert.doesNotMatch(check.stdout + check.stderr, /error: tmpDir/);
  });
});

describe('a tmpDir in a directory other users can write', () => {
  const NOBODY = 65534;
  const NEEDS_ROOT = 'needs root (another user, uid 65534, takes the name)';

  /** A control socket another user (uid 65534) serves at `file`: counts the connections it gets. */
  async function fakeControlSocket(file: string): Promise<{ connections: () => number; close: () => void }> {
    let connections = 0;
    const server = net.createServer((c) => {
      connections++;
      c.destroy();
    });
    await new Promise<void>((resolve) => server.listen(file, resolve));
    fs.chownSync(file, NOBODY, NOBODY);
    return { connections: () => connections, close: () => server.close() };
  }

  test("tmpDir taken by another user while it was gone: the log says so (not to run as them); root's CLI refuses their control socket; freed, it serves again", async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip(NEEDS_ROOT);
      return;
    }
    app = makeApp({ workers: 1, shutdownTimeout: 2000 });
    fs.chmodSync(app.tmpDir, 0o2750);
    fs.chmodSync(app.dir, 0o1777); // as /tmp is
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1 });
    const d = daemon;
    // The other user's directory, made beforehand: it takes the name as soon as tmpDir is gone.
    const squat = path.join(app.dir, 'squat');
    fs.mkdirSync(squat, { mode: 0o755 });
    fs.chownSync(squat, NOBODY, NOBODY);
    fs.rmSync(app.tmpDir, { recursive: true, maxRetries: 20 });
    fs.renameSync(squat, app.tmpDir);
    await d.waitOutput(/another user, \S+ \(uid 65534\), took its name while it was gone/);
    assert.doesNotMatch(d.output, /run the daemon as its owner/);
    const fake = await fakeControlSocket(app.ipcFile);
    try {
      const r = await d.cli(['status']);
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr,
        /refusing the control socket .* belongs to \S+ \(uid 65534\), and .* can be written by other users \(mode 1777\)/,
      );
      assert.equal(fake.connections(), 0, "root's CLI talked to the other user's socket");
    } finally {
      fake.close();
    }
    // Root frees the name: the daemon makes tmpDir again as it was, and every slot serves.
    fs.rmSync(app.tmpDir, { recursive: true, maxRetries: 20 });
    await d.waitOutput(/is back: every slot serves again/);
    await getJson({ socketPath: app.published(0) });
  });

  test("root's CLI talks to the app user's control socket where only root and that user can write", async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip(NEEDS_ROOT);
      return;
    }
    const dir = fs.mkdtempSync('/run/nsd-trust-');
    try {
      fs.chownSync(dir, NOBODY, NOBODY);
      fs.chmodSync(dir, 0o750);
      const fake = await fakeControlSocket(path.join(dir, 'nodesockd.ipc'));
      try {
        const r = await cli(['status', '--ipc-file', path.join(dir, 'nodesockd.ipc')]);
        assert.doesNotMatch(r.stderr, /refusing/);
        await waitFor('the connection', () => fake.connections() === 1);
      } finally {
        fake.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
