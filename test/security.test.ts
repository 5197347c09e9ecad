import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, test } from 'node:test';
import { processStartTicks } from '../src/daemon/proc';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { cli, Daemon } from './helpers/daemon';
import { listeningTcpPorts } from './helpers/raw-daemon';
import { waitFor } from './helpers/wait';

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  // Every cleanup runs, whatever an earlier one threw.
  for (const c of cleanups.reverse())
    await Promise.resolve()
      .then(c)
      .catch(() => {});
});

function app(config: Record<string, unknown>, fixture?: string): AppDir {
  const a = makeApp({ shutdownTimeout: 3000, killTimeout: 1000, ...config }, fixture);
  return a;
}

async function started(a: AppDir, online = 1): Promise<Daemon> {
  const d = await Daemon.start(['daemon', '-c', a.configFile], a.ipcFile, { online });
  cleanups.push(() => teardown(d, a));
  return d;
}

/** A long-running process the test owns (`sleep`), with argv[0] and uid chosen by the test. */
function bystander(argv0: string, uid?: number): ChildProcess {
  const child = spawn('sleep', ['300'], {
    argv0,
    stdio: 'ignore',
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  return child;
}

test('SIGUSR1 never opens the inspector, in the daemon or in a worker', async () => {
  const a = app({ workers: 1, env: ['PATH'] }, 'output.js');
  const d = await started(a);
  const [worker] = await d.slotPids();
  assert.ok(worker);
  const daemonPid = d.child.pid ?? -1;

  d.child.kill('SIGUSR1');
  await d.waitOutput(/SIGUSR1: log files reopened/);
  // To the worker: SIGUSR1, then SIGUSR2, which it logs; pending signals are delivered lowest
  // first, so once that line is out the SIGUSR1 has been handled; a request then runs its loop.
  process.kill(worker, 'SIGUSR1');
  process.kill(worker, 'SIGUSR2');
  await d.waitOutput(new RegExp(`got SIGUSR2 in ${worker}`));
  const r = await httpGet(a.published(0), '/after-usr1');
  assert.match(r, /^ok /);

  assert.deepEqual(listeningTcpPorts(daemonPid), [], 'the daemon listens on no TCP port');
  assert.deepEqual(listeningTcpPorts(worker), [], 'the worker listens on no TCP port');
  assert.doesNotMatch(d.output, /Debugger listening/);
  assert.equal((await d.status()).pid, daemonPid, 'the daemon still answers');
  assert.deepEqual(await d.slotPids(), [worker], 'and the worker still serves');
});

test('a worker whose nodeArgs ask for the inspector keeps SIGUSR1 for it', async () => {
  const a = app({ workers: 1, env: ['PATH'], nodeArgs: ['--inspect-port=127.0.0.1:0'] }, 'output.js');
  const d = await started(a);
  const [worker] = await d.slotPids();
  assert.ok(worker);
  process.kill(worker, 'SIGUSR1');
  await d.waitOutput(/Debugger listening on ws:\/\/127\.0\.0\.1:\d+/);
  await waitFor('the inspector port', () => listeningTcpPorts(worker).length === 1);
});

test('check and the daemon refuse a group-writable tmpDir with one line naming it', async () => {
  const a = app({ workers: 1 });
  cleanups.push(() => fs.rmSync(a.dir, { recursive: true, force: true }));
  fs.chmodSync(a.tmpDir, 0o2770);
  const c = await cli(['check', '-c', a.configFile]);
  assert.equal(c.code, 1, c.stdout);
  const line = `tmpDir ${a.tmpDir} is writable by its group (mode 2770)`;
  assert.match(c.stdout, new RegExp(`^error: ${escapeRe(line)}.*run: chmod g-w ${escapeRe(a.tmpDir)}$`, 'm'));

  const d = new Daemon(['daemon', '-c', a.configFile], a.ipcFile);
  const { code } = await d.exited;
  assert.equal(code, 1);
  assert.equal(d.output.trim().split('\n').length, 1, d.output);
  assert.match(d.output, new RegExp(`^nodesockd: ${escapeRe(line)}`));
  assert.ok(!fs.existsSync(a.ipcFile), 'nothing was created in it');

  fs.chmodSync(a.tmpDir, 0o1777);
  const sticky = await cli(['check', '-c', a.configFile]);
  assert.equal(sticky.code, 1);
  assert.match(
    sticky.stdout,
    /writable by its group and everyone \(mode 1777\).*sticky bit does not prevent/,
  );

  fs.chmodSync(a.tmpDir, 0o2750);
  const ok = await cli(['check', '-c', a.configFile, '--nginx-user', String(process.getuid?.())]);
  assert.equal(ok.code, 0, ok.stdout);
});

test('check refuses an ipcFile in a directory others can write (its lock and state file live there)', async () => {
  const a = app({ workers: 1, ipcFile: '/tmp/nodesockd-security-test.ipc' });
  cleanups.push(() => fs.rmSync(a.dir, { recursive: true, force: true }));
  const c = await cli(['check', '-c', a.configFile]);
  assert.equal(c.code, 1);
  assert.match(
    c.stdout,
    /^error: the directory of ipcFile \/tmp\/nodesockd-security-test\.ipc is writable by/m,
  );
});

/**
 * A state file as a crashed daemon leaves it, but naming a process of the test's (a victim)
 * whose socket answers: the daemon must adopt nothing from a file it cannot trust.
 */
async function plantedState(a: AppDir): Promise<{ victim: ChildProcess; statePath: string; json: string }> {
  const victim = bystander('victim');
  await waitFor('the victim to run', () => processStartTicks(victim.pid ?? -1));
  const id = 'w11111111';
  const socketPath = path.join(a.tmpDir, `app.${id}.sock`);
  const server = http.createServer((_req, res) => res.end('attacker\n'));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const state = {
    version: 1,
    daemonPid: 999999,
    running: true,
    suspended: false,
    generation: 1,
    workers: [
      {
        id,
        pid: victim.pid,
        socketPath,
        slot: 0,
        role: 'serving',
        suspended: false,
        startedAt: Date.now(),
        generation: 1,
        startTicks: processStartTicks(victim.pid ?? -1),
      },
    ],
  };
  return { victim, statePath: `${a.ipcFile}.state`, json: JSON.stringify(state) };
}

for (const how of ['owned by another user', 'writable by its group', 'a symlink'] as const) {
  test(`a state file that is ${how} is not trusted: nothing is adopted`, {
    skip: !asRoot && how === 'owned by another user' ? 'needs root to chown' : false,
  }, async () => {
    const a = app({ workers: 1 });
    const { victim, statePath, json } = await plantedState(a);
    if (how === 'a symlink') {
      const real = path.join(a.dir, 'state.json');
      fs.writeFileSync(real, json, { mode: 0o600 });
      fs.symlinkSync(real, statePath);
    } else {
      fs.writeFileSync(statePath, json, { mode: 0o600 });
      if (how === 'owned by another user') fs.chownSync(statePath, NOBODY, NOBODY);
      else fs.chmodSync(statePath, 0o620);
    }
    const d = await started(a);
    const why = {
      'owned by another user': `belongs to uid ${NOBODY}`,
      'writable by its group': 'is writable by group or others (mode 0620)',
      'a symlink': 'is a symlink',
    }[how];
    await d.waitOutput(new RegExp(`${escapeRe(statePath)} ${escapeRe(why)}[^\n]*; ignoring it`));
    const [serving] = await d.slotPids();
    assert.notEqual(serving, victim.pid, 'the planted process was not adopted');
    assert.doesNotMatch(await httpGet(a.published(0), '/'), /attacker/);
    const restart = await d.cli(['restart']);
    assert.equal(restart.code, 0, restart.stderr);
    assert.equal(victim.exitCode, null, 'the victim was never signalled');
    assert.equal(victim.signalCode, null);
  });
}

test('the state file is written under a random temporary name, never through a planted symlink', async () => {
  const a = app({ workers: 1 });
  const d = await started(a);
  const pid = d.child.pid ?? -1;
  const target = path.join(a.dir, 'victim');
  fs.writeFileSync(target, 'secret\n', { mode: 0o600 });
  // The name the state file's temporary copy had before (predictable from the pid).
  fs.symlinkSync(target, `${a.ipcFile}.state.${pid}.tmp`);
  const r = await d.cli(['restart']);
  assert.equal(r.code, 0, r.stderr);
  await waitFor('the state file to name the new worker', async () => {
    const [w] = await d.slotPids();
    return fs.readFileSync(`${a.ipcFile}.state`, 'utf8').includes(`"pid": ${w}`);
  });
  assert.equal(fs.readFileSync(target, 'utf8'), 'secret\n');
  const temps = fs.readdirSync(a.tmpDir).filter((f) => f.endsWith('.tmp') && !f.includes(`.${pid}.`));
  assert.deepEqual(temps, [], 'no temporary file is left');
});

for (const lock of [
  'a live process of another user whose argv says nodesockd',
  'a live process of ours started after the lock was written',
  '`tail -f nodesockd.log` (a lock of the old format: no start time)',
] as const) {
  test(`a lock naming ${lock} is taken over`, {
    skip: !asRoot && lock.includes('another user') ? 'needs root' : false,
  }, async () => {
    const a = app({ workers: 1 });
    const other = lock.includes('another user');
    const p = bystander(
      lock.includes('tail') ? 'tail -f nodesockd.log' : 'x nodesockd daemon',
      other ? NOBODY : undefined,
    );
    const pid = p.pid ?? -1;
    const ticks = await waitFor('the process to run', () => processStartTicks(pid));
    const content = lock.includes('old format')
      ? `${pid}\n`
      : `${pid}\nstart-ticks=${other ? ticks : String(Number(ticks) - 100)}\n`;
    fs.writeFileSync(`${a.ipcFile}.lock`, content, { mode: 0o600 });
    const d = await started(a);
    const written = fs.readFileSync(`${a.ipcFile}.lock`, 'utf8');
    assert.equal(written, `${d.child.pid}\nstart-ticks=${processStartTicks(d.child.pid ?? -1)}\n`);
    assert.equal(p.exitCode, null, 'the process named in the lock is left alone');
  });
}

test('a lock of a live daemon is respected', async () => {
  const a = app({ workers: 1 });
  const d = await started(a);
  const second = new Daemon(['daemon', '-c', a.configFile], a.ipcFile);
  assert.equal((await second.exited).code, 1);
  assert.match(
    second.output,
    new RegExp(`another nodesockd daemon \\(pid ${d.child.pid}\\) is already running`),
  );
});

function httpGet(socketPath: string, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: url }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
