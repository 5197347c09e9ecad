/**
 * Error paths that used to feed themselves, through the real daemon: broken reports and dying
 * standbys go through the crash backoff, a stop reaches the helpers a worker started, a
 * restart that cannot publish changes nothing, and a removed tmpDir does not lose the daemon.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon, isAlive, killAll, makeTempDir } from './helpers/daemon';
import { getJson } from './helpers/http';
import { freePort } from './helpers/nginx';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;
const strays = new Set<number>();

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
  killAll([...strays].filter(isAlive));
  strays.clear();
});

const start = async (config: Record<string, unknown>, env: NodeJS.ProcessEnv, online = 1) => {
  app = makeApp(config, 'misbehave.js');
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, {
    online,
    env: { ...process.env, ...env },
  });
  return daemon;
};

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const starts = (d: Daemon, what: RegExp) => d.output.match(what)?.length ?? 0;

/**
 * The lower bound of the n-th delay in a row (from 1) of the restart policy with its defaults:
 * 100 ms doubled per failure, capped at 30 s, jittered to 50-100 % (exact: test/policy.test.ts).
 */
const leastDelay = (n: number) => Math.min(100 * 2 ** (n - 1), 30_000) / 2;

describe('crash loops back off', () => {
  test('a worker that reports broken every 50 ms is replaced one at a time, each after a longer backoff', async () => {
    const d = await start({ workers: 1, env: ['BROKEN_EVERY_MS'] }, { BROKEN_EVERY_MS: '50' });
    const seen = await waitFor('slot 0 replaced 4 times, its next try scheduled', async () => {
      const logged = starts(d, /started \d+ index=0/g);
      const s = await d.status();
      const slot = s.slots[0]!;
      return slot.restarts >= 4 && slot.backoffMs !== null ? { logged, s, slot } : undefined;
    });
    const { logged, s, slot } = seen;
    // Each replacement follows a failure, and a failure reported while one is pending adds none.
    assert.ok(logged <= slot.restarts + 1, `${logged} starts for ${slot.restarts} replacements`);
    assert.ok(
      slot.backoffMs! >= leastDelay(slot.restarts),
      `${slot.backoffMs} ms after ${slot.restarts} replacements`,
    );
    assert.ok(s.workers.length <= 3, `${s.workers.length} workers at once`);
    assert.match(slot.lastExit ?? '', /reported broken: database down/);
  });

  test("status: a broken worker serving until its replacement is not 'no worker online'", async () => {
    const d = await start({ workers: 1, env: ['BROKEN_EVERY_MS'] }, { BROKEN_EVERY_MS: '200' });
    const line =
      /^slot 0: (w[0-9a-f]{8}) serves until its replacement is online \(\d+ restarts, next try in \d+s\): reported broken: database down$/m;
    // Between two tries the slot's line says when the last failure was; while the replacement
    // waits for its backoff, who serves meanwhile.
    const out = await waitFor('a replacement of slot 0 waiting for its backoff', async () => {
      const r = await d.cli(['status']);
      return /^slot 0: .*next try in/m.test(r.stdout) ? r.stdout : undefined;
    });
    const id = line.exec(out)?.[1];
    assert.ok(id, out);
    assert.match(out, new RegExp(`^0 +${id} +\\d+ +online `, 'm'), 'the table shows it online');
    assert.doesNotMatch(out, /no worker online/);
  });

  test('a standby that dies 100 ms after coming online is started again only after a growing backoff', async () => {
    const d = await start({ workers: 1, standby: 1, env: ['STANDBY_DIE_MS'] }, { STANDBY_DIE_MS: '100' });
    const backoffs = () => [...d.output.matchAll(/standbys: next start in (\d+) ms \((\d+) failures/g)];
    const seen = await waitFor('4 standby failures in a row', () => {
      const logged = starts(d, /started \d+ index=standby/g);
      const scheduled = backoffs();
      return scheduled.length >= 4 ? { logged, scheduled } : undefined;
    });
    // A standby starts once at first, then once per backoff: never without one.
    assert.ok(seen.logged <= seen.scheduled.length + 1, `${seen.logged} standby starts`);
    for (const [line, ms, failures] of seen.scheduled)
      assert.ok(Number(ms) >= leastDelay(Number(failures)), line);
    assert.deepEqual(
      seen.scheduled.map((m) => Number(m[2])),
      seen.scheduled.map((_, i) => i + 1),
      'the failures counted in a row',
    );
    assert.equal(starts(d, /started \d+ index=0/g), 1, 'the slot worker is left alone');
  });
});

describe('a stop reaches everything', () => {
  test("escalation signals the worker's process group: a restart leaves no helper behind", async () => {
    const d = await start(
      { workers: 1, env: ['STUBBORN_HELPER'], shutdownTimeout: 300, killTimeout: 300 },
      { STUBBORN_HELPER: '1' },
    );
    await d.waitOutput(/helper \d+/);
    const helper = Number(/helper (\d+)/.exec(d.output)![1]);
    strays.add(helper);
    assert.ok(isAlive(helper));
    const r = await d.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the old helper to be gone', () => !isAlive(helper));
  });
});

describe('publication failures', () => {
  test('a restart that cannot publish (a directory at app.1.sock) changes nothing and leaks no worker', async () => {
    const d = await start({ workers: 2 }, {}, 2);
    const before = await d.slotPids();
    fs.rmSync(app.published(1));
    fs.mkdirSync(app.published(1));
    const r = await d.cli(['restart']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /app\.1\.sock is a directory/);
    assert.deepEqual(await d.slotPids(), before);
    const s = await d.status();
    await waitFor('only the two serving workers left', async () => (await d.status()).workers.length === 2);
    assert.equal((await getJson<{ pid: number }>({ socketPath: app.published(0) })).pid, before[0]);
    assert.equal(s.slots.length, 2);
    fs.rmdirSync(app.published(1));
    const again = await d.cli(['restart']);
    assert.equal(again.code, 0, again.stderr);
  });
});

describe('tmpDir removed under a running daemon', () => {
  test('the daemon binds its control socket again, and a second daemon is refused', async () => {
    const d = await start({ workers: 1 }, {});
    const pid = (await d.status()).pid;
    fs.rmSync(app.tmpDir, { recursive: true, force: true });
    fs.mkdirSync(app.tmpDir);
    await waitFor('the control socket back', async () => (await d.status().catch(() => null))?.pid === pid);
    const second = new Daemon(['daemon', '-c', app.configFile], app.ipcFile);
    const exit = await second.exited;
    assert.notEqual(exit.code, 0);
    assert.match(second.output, new RegExp(`another nodesockd daemon \\(pid ${pid}\\) is already running`));
    const r = await d.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('tmpDir turned read-only under a running daemon', () => {
  test('SIGTERM still drains the workers and the daemon exits', async (t) => {
    app = makeApp({ workers: 2, shutdownTimeout: 3000, killTimeout: 1000 }, 'lib.js');
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0750', 'tmpfs', app.tmpDir]);
    if (mounted.status !== 0) {
      t.skip(`cannot mount a tmpfs here (${String(mounted.stderr).trim()})`);
      return;
    }
    try {
      const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
      const pids = await d.slotPids();
      for (const pid of pids) strays.add(pid);
      assert.equal(spawnSync('mount', ['-o', 'remount,ro', app.tmpDir]).status, 0);
      d.child.kill('SIGTERM');
      const exit = await d.exited;
      assert.equal(exit.code, 0, d.output);
      await waitFor('the workers to be gone', () => pids.every((pid) => !isAlive(pid)));
      assert.match(d.output, /while closing/);
    } finally {
      spawnSync('umount', ['-l', app.tmpDir]);
    }
  });
});

describe('a failure says why', () => {
  test("a crash's error line: in the daemon log, status (escaped), status --verbose and --json", async () => {
    const marker = path.join(makeTempDir('nsd-once-'), 'crashed');
    // A terminal escape in the message: status must not pass it to the terminal.
    const message = 'boom: simulated crash \x1b[2J';
    try {
      const d = await start(
        { workers: 2, env: ['CRASH_SLOT', 'CRASH_ONCE_FILE', 'CRASH_MESSAGE'] },
        { CRASH_SLOT: '1', CRASH_ONCE_FILE: marker, CRASH_MESSAGE: message },
        2,
      );
      const s = await waitFor('slot 1 replaced after its crash', async () => {
        const s = await d.status();
        const slot = s.slots[1]!;
        return slot.lastFailure && slot.workerId !== null && slot.nextRetryAt === null ? s : undefined;
      });
      const failure = s.slots[1]!.lastFailure!;
      // Its cause's stack comes after it: the error line is kept however far up it scrolled.
      assert.equal(failure.error, `Error: ${message}`);
      assert.match(failure.stderr.join('\n'), /\[cause\]: Error: inner/);
      assert.match(failure.stderr.at(-1) ?? '', /^Node\.js v\d+/);
      assert.equal(s.slots[0]!.lastFailure, null);
      assert.match(
        d.output,
        /slot 1: worker w[0-9a-f]{8} \(pid \d+\) exited with code 1: Error: boom: simulated crash .*; last stderr: /,
      );

      const plain = await d.cli(['status']);
      assert.equal(plain.code, 0, plain.stderr);
      assert.match(
        plain.stdout,
        /^slot 1: last failure \d+s ago: exited with code 1: Error: boom: simulated crash \\u001b\[2J$/m,
      );
      assert.ok(!plain.stdout.includes('\x1b'), 'no raw escape reaches the terminal');
      assert.doesNotMatch(plain.stdout, /^ {2}\| /m, 'the stderr lines only with --verbose');
      const verbose = await d.cli(['status', '--verbose']);
      assert.equal(verbose.code, 0, verbose.stderr);
      assert.match(verbose.stdout, /^ {2}\| {3}\[cause\]: Error: inner$/m);
      assert.match(verbose.stdout, /^ {2}\| Node\.js v\d+/m);
    } finally {
      fs.rmSync(path.dirname(marker), { recursive: true, force: true });
    }
  });

  test('an app listening on its own port: the daemon says so while the worker is still starting', async () => {
    const port = await freePort();
    app = makeApp({ workers: 1, onlineTimeout: 120_000, env: ['OWN_PORT'] }, 'own-port.js');
    daemon = new Daemon(['daemon', '-c', app.configFile], app.ipcFile, {
      env: { ...process.env, OWN_PORT: String(port) },
    });
    await daemon.waitOutput(
      new RegExp(
        `worker w[0-9a-f]{8}: listened on port ${port}, not on its socket \\(process\\.env\\.LISTEN_ON\\); ` +
          'nginx reaches a worker only there: call serve\\(server\\) from nodesockd, or listen on process\\.env\\.LISTEN_ON',
      ),
    );
    const s = await daemon.status();
    assert.deepEqual(
      s.workers.map((w) => [w.state, w.listenedElsewhere]),
      [['starting', [`port ${port}`]]],
      'said before the 120 s online timeout, in status too',
    );
    const plain = await daemon.cli(['status']);
    assert.match(
      plain.stdout,
      new RegExp(
        `^${s.workers[0]!.id} \\(starting\\): listened on port ${port}, not on its socket: call serve\\(server\\) from nodesockd`,
        'm',
      ),
    );
  });

  test('an app listening on its own port: the failure to come online says how to fix it, with its stdout', async () => {
    const port = await freePort();
    const taken = net.createServer().listen(port, '0.0.0.0');
    await once(taken, 'listening');
    try {
      app = makeApp({ workers: 1, env: ['OWN_PORT'] }, 'own-port.js');
      daemon = new Daemon(['daemon', '-c', app.configFile], app.ipcFile, {
        env: { ...process.env, OWN_PORT: String(port) },
      });
      const hint = `it listened on port ${port} instead of process.env.LISTEN_ON: call serve(server) from nodesockd`;
      const s = await waitFor('slot 0 to fail with the hint', async () => {
        const s = await daemon!.status().catch(() => undefined);
        return s?.slots[0]?.lastFailure ? s : undefined;
      });
      assert.equal(
        s.slots[0]!.lastFailure!.error?.startsWith(hint),
        true,
        s.slots[0]!.lastFailure!.error ?? '',
      );
      const status = await daemon.cli(['status']);
      assert.match(
        status.stdout,
        new RegExp(
          `^slot 0: no worker online \\(\\d+ restarts.*\\): worker w[0-9a-f]{8} exited with code 0 before reporting online: ${escapeRe(hint)}`,
          'm',
        ),
      );
      const r = await daemon.cli(['restart']);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.includes(hint), r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`its last stdout lines:\\n {2}starting on port ${port}\\n {2}listen failed: EADDRINUSE`),
      );
    } finally {
      taken.close();
    }
  });
});
