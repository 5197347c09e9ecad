import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { before, test } from 'node:test';
import { type AppDir, cleanupsAfterAll, makeApp, teardown } from './helpers/app';
import { cli, Daemon, isAlive, killAll, makeTempDir } from './helpers/daemon';
import { getJson } from './helpers/http';
import { buildNextVersion, install, NEXT_VERSION } from './helpers/next-version';
import { waitFor } from './helpers/wait';
import { daemonUnderNonReapingParent, isZombie } from './helpers/zombie';

// The one-daemon lock (src/daemon/instance-lock.ts), attacked as in the red team's
// 01-instance-lock-squat.sh and 02-instance-lock-fd-exhaustion.sh, and the zombie daemon of
// `terminate` and `restart --upgrade`.

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const NEEDS_ROOT = 'needs root, to run the attacker as another user (nobody)';
const cleanups = cleanupsAfterAll();

const lockOf = (a: AppDir) => `${a.ipcFile}.lock.sock`;
const fdCount = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;
const inode = (file: string) => fs.lstatSync(file).ino;

/** An app whose directories any user can traverse (not write): what nobody can do is up to the lock. */
function openApp(config: Record<string, unknown> = {}, fixture?: string): AppDir {
  const a = makeApp({ workers: 1, shutdownTimeout: 3000, killTimeout: 1000, ...config }, fixture);
  fs.chmodSync(a.dir, 0o755);
  fs.chmodSync(a.tmpDir, 0o755);
  return a;
}

async function started(a: AppDir, options: { bin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Daemon> {
  const d = await Daemon.start(['daemon', '-c', a.configFile], a.ipcFile, options);
  cleanups.push(() => teardown(d, a));
  return d;
}

/**
 * The attacker, as nobody: holds the abstract name the lock used to have, then tries to bind
 * next to the lock and `connects` times to it (kept open), and prints what each attempt got.
 */
const ATTACKER = `
const net = require('node:net');
const [abstractName, lock, connects] = process.argv.slice(1);
const results = { squat: '', bind: '', connect: {} };
const count = (code) => (results.connect[code] = (results.connect[code] || 0) + 1);
const squatter = net.createServer((s) => s.end('4242\\n'));
const attack = async () => {
  await new Promise((r) => { const b = net.createServer(); b.on('error', (e) => { results.bind = e.code; r(); }); b.listen(lock + '.squat', () => { results.bind = 'bound'; r(); }); });
  for (let i = 0; i < Number(connects); i++) {
    await new Promise((r) => { const c = net.connect(lock); c.on('connect', () => { count('connected'); r(); }); c.on('error', (e) => { count(e.code); r(); }); });
  }
  console.log(JSON.stringify(results));
};
squatter.on('error', (e) => { results.squat = e.code; attack(); });
squatter.listen('\\0' + abstractName, () => { results.squat = 'holding'; attack(); });
`;

/** Starts the attacker as nobody and resolves with its report; it keeps holding the name until killed. */
function attacker(
  a: AppDir,
  connects: number,
): { child: ChildProcess; report: Promise<Record<string, unknown>> } {
  const abstractName = `nodesockd:${createHash('sha256').update(a.ipcFile).digest('hex').slice(0, 32)}`;
  const child = spawn(process.execPath, ['-e', ATTACKER, abstractName, lockOf(a), String(connects)], {
    uid: NOBODY,
    gid: NOBODY,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  const report = waitFor('the attacker to report', () => out.includes('\n') && JSON.parse(out));
  return { child, report };
}

test('another user cannot keep the daemon from starting, take its lock or make it hold descriptors', {
  skip: asRoot ? false : NEEDS_ROOT,
}, async () => {
  const a = openApp();
  // Before the daemon starts, nobody binds the abstract name the lock used to be (finding 1a).
  const early = attacker(a, 0);
  assert.equal((await early.report).squat, 'holding');
  const d = await started(a);
  const pid = d.child.pid ?? -1;
  assert.ok(fs.lstatSync(lockOf(a)).isSocket());
  assert.equal(fs.lstatSync(lockOf(a)).mode & 0o777, 0o600);
  assert.equal(fs.readFileSync(`${a.ipcFile}.lock`, 'utf8').split('\n')[0], String(pid));

  // 500 connections from nobody (finding 2 opened 5,000): none gets through, none is held.
  const before = fdCount(pid);
  const later = attacker(a, 500);
  const report = await later.report;
  assert.deepEqual(report.connect, { EACCES: 500 });
  assert.equal(report.bind, 'EACCES', 'nobody cannot bind a socket next to the lock');
  assert.equal(fdCount(pid), before);
  assert.equal((await d.status()).pid, pid, 'the daemon answers');
  await getJson({ socketPath: a.published(0) });
});

test('a connection to the lock is closed at once, unanswered, even one the app user keeps open', async () => {
  const a = openApp();
  const d = await started(a);
  const pid = d.child.pid ?? -1;
  const before = fdCount(pid);
  const clients = Array.from({ length: 300 }, () => {
    const c = net.connect(lockOf(a));
    let got = 0;
    c.on('data', (chunk: Buffer) => (got += chunk.length));
    return new Promise<number>((resolve, reject) => {
      c.on('error', reject);
      // This side never ends or destroys the connection: only the daemon can close it.
      c.on('close', () => resolve(got));
    });
  });
  assert.deepEqual(new Set(await Promise.all(clients)), new Set([0]), 'no byte is answered');
  await waitFor('the daemon to hold no descriptor for them', () => fdCount(pid) <= before);
});

test('a daemon SIGKILLed leaves a dead lock, which the next daemon takes over', async () => {
  const a = openApp({}, 'lib.js');
  const first = new Daemon(['daemon', '-c', a.configFile], a.ipcFile);
  await waitFor('the first daemon', () => first.status().catch(() => undefined));
  const workers = (await first.status()).workers.map((w) => w.pid ?? -1);
  cleanups.push(() => killAll(workers.filter(isAlive)));
  await first.kill();
  assert.ok(fs.lstatSync(lockOf(a)).isSocket(), 'the lock file stays behind');
  const next = await started(a);
  await next.waitOutput(/adopted 1 worker/);
  assert.notEqual(inode(lockOf(a)), null);
});

test('tmpDir removed and re-created: the daemon takes its lock again, and a second daemon refuses', async () => {
  const a = openApp();
  const d = await started(a);
  const pid = d.child.pid ?? -1;
  const old = inode(lockOf(a));
  fs.rmSync(a.tmpDir, { recursive: true, maxRetries: 20 });
  fs.mkdirSync(a.tmpDir, { mode: 0o750 });
  await d.waitOutput(/was gone or replaced; took the daemon lock again/);
  assert.notEqual(inode(lockOf(a)), old);
  assert.equal(fs.readFileSync(`${a.ipcFile}.lock`, 'utf8').split('\n')[0], String(pid), 'the pid file too');
  // The control socket comes back too (the lock file is written again by a new daemon only).
  await waitFor('the control socket', () => fs.existsSync(a.ipcFile));
  const second = await cli(['daemon', '-c', a.configFile]);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /another nodesockd daemon .*is already running on/);
  assert.equal((await d.status()).pid, pid);
});

test('a daemon started before the first has its lock file back refuses: the lock does not go with tmpDir', async () => {
  const a = openApp();
  const d = await started(a);
  const pid = d.child.pid ?? -1;
  // The race at its worst: the first daemon cannot take its lock file again before the second
  // looks for it, for it is stopped (it takes it within a second when it runs).
  process.kill(pid, 'SIGSTOP');
  cleanups.push(() => {
    if (isAlive(pid)) process.kill(pid, 'SIGCONT');
  });
  let second: Daemon | undefined;
  try {
    fs.rmSync(a.tmpDir, { recursive: true, maxRetries: 20 });
    fs.mkdirSync(a.tmpDir, { mode: 0o755 });
    const other = new Daemon(['daemon', '-c', a.configFile], a.ipcFile);
    second = other;
    cleanups.push(async () => {
      const workers = await other.status().then(
        (s) => s.workers.map((w) => w.pid ?? -1),
        () => [],
      );
      await other.kill();
      killAll(workers.filter(isAlive));
    });
    await waitFor('the second daemon to refuse and exit', () => other.child.exitCode !== null);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  assert.equal(second.child.exitCode, 1, second.output);
  assert.match(
    second.output,
    new RegExp(`another nodesockd daemon \\(pid ${pid}\\) is already running on .*whose file .* was removed`),
  );
  await d.waitOutput(/was gone or replaced; took the daemon lock again/);
  const s = await waitFor('the control socket back', () => d.status().catch(() => undefined));
  assert.equal(s.pid, pid);
});

let work = '';
let nextDist = '';
before(() => {
  work = makeTempDir('nsd-lock-upgrade-');
  fs.chmodSync(work, 0o755);
  cleanups.push(() => fs.rmSync(work, { recursive: true, force: true, maxRetries: 5 }));
});

test('restart --upgrade passes the lock to the successor with no gap, from a zombie daemon, while nobody squats', async () => {
  nextDist = buildNextVersion(path.join(work, 'next'));
  const installed = path.join(work, 'installed');
  fs.mkdirSync(installed);
  const bin = install(installed);
  const a = openApp({ workers: 2 }, 'lib.js');
  cleanups.push(() => fs.rmSync(a.dir, { recursive: true, force: true, maxRetries: 5 }));
  const env = { ...process.env };
  delete env.NODESOCKD_SUPERVISED; // no supervisor: the old daemon starts its successor itself
  const { pid: oldPid, parent } = await daemonUnderNonReapingParent(a, { bin, env });
  cleanups.push(parent.kill);
  const lockIno = inode(lockOf(a));
  const squat = asRoot ? attacker(a, 10) : null;
  if (squat) assert.equal((await squat.report).squat, 'holding');

  // Meanwhile the app user probes the lock again and again: it must never be free.
  let probing = true;
  const outcomes: Record<string, number> = {};
  const prober = (async () => {
    while (probing) {
      const outcome = await new Promise<string>((resolve) => {
        const c = net.connect(lockOf(a));
        c.on('connect', () => {
          c.destroy();
          resolve('held');
        });
        // EAGAIN: the backlog is full, which a socket nobody listens on has not.
        c.on('error', (e: NodeJS.ErrnoException) =>
          resolve(e.code === 'EAGAIN' ? 'held' : (e.code ?? 'error')),
        );
      });
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      // Paced, not synchronising: a connection every few ms is enough to find a gap of any use.
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();

  fs.rmSync(path.join(installed, 'dist'), { recursive: true });
  fs.cpSync(nextDist, path.join(installed, 'dist'), { recursive: true });
  const r = await cli(['restart', '--upgrade', '--ipc-file', a.ipcFile], { env, bin });
  probing = false;
  await prober;
  const s = JSON.parse((await cli(['status', '--json', '--ipc-file', a.ipcFile])).stdout) as {
    pid: number;
    version: string;
    workers: { pid: number }[];
  };
  cleanups.push(() => killAll([s.pid, ...s.workers.map((w) => w.pid)].filter(isAlive)));
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, new RegExp(`runs nodesockd ${NEXT_VERSION} and serves with 2 adopted worker`));
  assert.equal(s.version, NEXT_VERSION);
  assert.ok(isZombie(oldPid), 'the old daemon is a zombie (exited, not reaped)');
  assert.equal(inode(lockOf(a)), lockIno, 'the same lock, never let go and taken anew');
  assert.deepEqual(
    Object.keys(outcomes),
    ['held'],
    `the lock was free at times: ${JSON.stringify(outcomes)}`,
  );
  const log = fs.readFileSync(path.join(a.dir, 'daemon.log'), 'utf8');
  assert.doesNotMatch(log, /taking the lock anew|already running/);

  // The lock's socket went to the new daemon alone, not to the workers it started: once it is
  // killed, nobody holds the lock, and the next daemon can take it.
  process.kill(s.pid, 'SIGKILL');
  await waitFor('the new daemon to be gone', () => !isAlive(s.pid));
  const probe = await new Promise<string>((resolve) => {
    const c = net.connect(lockOf(a));
    c.on('connect', () => resolve('held'));
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  assert.equal(probe, 'ECONNREFUSED');
});
