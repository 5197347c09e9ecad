import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, test } from 'node:test';
import { MAX_LINE_BYTES } from '../src/daemon/output';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon, isAlive, killAll } from './helpers/daemon';
import { peakRss, RawDaemon } from './helpers/raw-daemon';
import { waitFor } from './helpers/wait';

const MiB = 1024 * 1024;
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  // Every cleanup runs, whatever an earlier one threw.
  for (const c of cleanups.reverse())
    await Promise.resolve()
      .then(c)
      .catch(() => {});
});

function app(config: Record<string, unknown>): AppDir {
  return makeApp({ shutdownTimeout: 3000, killTimeout: 1000, ...config }, 'output.js');
}

async function started(a: AppDir, online = 1): Promise<Daemon> {
  const d = await Daemon.start(['daemon', '-c', a.configFile], a.ipcFile, { online });
  cleanups.push(() => teardown(d, a));
  return d;
}

function raw(a: AppDir, stdio: 'closed stdout' | 'stalled stdout'): RawDaemon {
  const d = new RawDaemon(a.configFile, a.ipcFile, ['ignore', 'pipe', 'pipe']);
  cleanups.push(async () => {
    const pids = await d.workerPids();
    await d.kill();
    killAll(pids.filter(isAlive));
    fs.rmSync(a.dir, { recursive: true, force: true });
  });
  if (stdio === 'closed stdout') d.child.stdout?.destroy();
  else d.child.stdout?.pause();
  return d;
}

/** Bytes a process has written (all fds), from /proc/<pid>/io. */
function bytesWritten(pid: number): number {
  return Number(/^wchar: (\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? 0);
}

function get(socketPath: string, url: string): Promise<string> {
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

test('stdout without newlines is split at the line limit; daemon memory stays bounded', async () => {
  const flood = 96 * MiB;
  const a = app({ workers: 1, stdout: 'out.log', env: ['PATH', `FLOOD_BYTES=${flood}`] });
  const out = path.join(a.dir, 'out.log');
  const d = await started(a);
  const [worker] = await d.slotPids();
  assert.ok(worker);
  const baseline = peakRss(d.child.pid ?? -1);
  await waitFor('the flood to be written', () => bytesWritten(worker) >= flood, { timeoutMs: 60_000 });
  // Once the daemon has caught up, new lines get through again.
  await waitFor('a request line in out.log', async () => {
    await get(a.published(0), '/after-flood');
    return fs.readFileSync(out, 'utf8').includes('request /after-flood');
  });
  const grown = peakRss(d.child.pid ?? -1) - baseline;
  assert.ok(grown < flood / 2, `the daemon's peak RSS grew by ${(grown / MiB).toFixed(1)} MiB`);
  const text = fs.readFileSync(out, 'utf8');
  const lines = text.split('\n');
  const longest = Math.max(...lines.map((l) => Buffer.byteLength(l)));
  assert.ok(longest < MAX_LINE_BYTES + 200, `the longest line in out.log has ${longest} bytes`);
  assert.match(text, /x{1000} \[nodesockd: line longer than 16384 bytes, continued on the next line\]\n/);
  assert.doesNotMatch(d.output, /internal error|Invalid string length/);
});

test('a stdout nobody reads does not fill the daemon memory; the dropped bytes are reported', async () => {
  // What V8 keeps of the garbage of reading lines grows the peak RSS by 20-30 MiB whatever the
  // flood (measured on Node 24 at 48, 128 and 256 MiB); a daemon that kept what it cannot write
  // would grow by the whole flood. The flood is large enough to tell the two apart.
  const flood = 192 * MiB;
  const a = app({ workers: 1, env: ['PATH', `FLOOD_BYTES=${flood}`, 'FLOOD_NEWLINES=1'] });
  const d = raw(a, 'stalled stdout');
  let stderr = '';
  d.child.stderr?.on('data', (c) => (stderr += c));
  const [worker] = await d.online(1);
  assert.ok(worker);
  const baseline = peakRss(d.pid);
  await waitFor('the flood to be written', () => bytesWritten(worker) >= flood, { timeoutMs: 60_000 });
  // The daemon has read it all: the worker's stdout pipe is empty once a request line went out.
  await get(a.published(0), '/after-flood');
  const grown = peakRss(d.pid) - baseline;
  assert.ok(grown < flood / 3, `the daemon's peak RSS grew by ${(grown / MiB).toFixed(1)} MiB`);

  let stdout = '';
  d.child.stdout?.on('data', (c) => {
    stdout = (stdout + c).slice(-64 * 1024);
  });
  d.child.stdout?.resume();
  await waitFor('the drop notice', () => /nodesockd: \d+ bytes of output to stdout dropped/.test(stdout));
  assert.doesNotMatch(stderr, /internal error/);
});

test('a closed daemon stdout costs the worker lines, not a stack trace each', async () => {
  const a = app({ workers: 1, env: ['PATH'] });
  const d = raw(a, 'closed stdout');
  let stderr = '';
  d.child.stderr?.on('data', (c) => (stderr += c));
  await d.online(1);
  for (let i = 0; i < 50; i++) await get(a.published(0), `/r${i}`);
  d.child.kill('SIGUSR2');
  await waitFor('the SIGUSR2 line', () => stderr.includes('SIGUSR2: log files reopened'));
  assert.doesNotMatch(stderr, /EPIPE|internal error/);
  assert.equal((await d.status()).pid, d.pid);
});

test('log files are created with mode 0640 (umask 007)', async () => {
  const a = app({ workers: 1, stdout: 'out.log', stderr: 'err.log' });
  await started(a);
  for (const f of ['out.log', 'err.log']) {
    assert.equal((fs.statSync(path.join(a.dir, f)).mode & 0o777).toString(8), '640', f);
  }
});

test('after ENOSPC, output reaches the log file again once space is freed, without SIGUSR2', async (t) => {
  const a = app({ workers: 1, env: ['PATH'] });
  const mnt = path.join(a.dir, 'small');
  fs.mkdirSync(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    fs.rmSync(a.dir, { recursive: true, force: true });
    t.skip(`cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}): needs root`);
    return;
  }
  const log = path.join(mnt, 'app.log');
  fs.appendFileSync(a.configFile, `stdout: ${log}\n`);
  let d: Daemon;
  try {
    d = await started(a);
  } finally {
    // Runs before the daemon's teardown (cleanups run last first), which removes the app dir.
    cleanups.push(() => {
      execFileSync('umount', ['-l', mnt]);
    });
  }
  const filler = path.join(mnt, 'filler');
  try {
    fs.writeFileSync(filler, Buffer.alloc(1024 * 1024));
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  }
  for (let i = 0; i < 20; i++) await get(a.published(0), `/while-full-${i}`);
  await d.waitOutput(/cannot write .*app\.log: ENOSPC/);
  fs.rmSync(filler);
  let n = 0;
  await waitFor('a line written after the space was freed', async () => {
    await get(a.published(0), `/after-freed-${n++}`);
    return fs.readFileSync(log, 'utf8').includes('request /after-freed-');
  });
  const text = fs.readFileSync(log, 'utf8');
  assert.match(
    text,
    /nodesockd: \d+ bytes of output to .*app\.log dropped: it could not be written \(ENOSPC/,
  );
  await d.waitOutput(/app\.log can be written again/);
  assert.doesNotMatch(d.output, /SIGUSR2/);
});

test('one huge stderr line of a failing worker does not break restart or status', async () => {
  const a = app({ workers: 1, env: ['PATH', 'BIG_STDERR_IF_EXISTS=fail'] });
  const d = await started(a);
  fs.writeFileSync(path.join(a.dir, 'fail'), '');
  const r = await d.cli(['restart']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /exited with code 3 before reporting online; its last stderr lines:\n {2}e{500}/);
  assert.ok(r.stderr.length < 16 * 1024, `restart's error has ${r.stderr.length} bytes`);
  // A crash now: its replacement fails the same way, and the slot keeps its last exit.
  const [worker] = await d.slotPids();
  process.kill(worker ?? -1, 'SIGKILL');
  await waitFor('a failed replacement', async () => (await d.status()).slots.some((s) => s.lastExit));
  fs.rmSync(path.join(a.dir, 'fail'));
  await waitFor('the slot online again', async () => {
    const [pid] = await d.slotPids();
    return pid !== undefined && pid !== worker;
  });
  const s = await d.cli(['status']);
  assert.equal(s.code, 0, s.stderr);
});

test('a log file slower than the worker loses nothing of a 20 MB burst: the worker waits for it', async () => {
  const lines = 1_400_000;
  const a = app({ workers: 1, stdout: 'out.fifo', env: ['PATH', `BURST_LINES=${lines}`] });
  // The slowest file there is: a FIFO whose reader reads nothing until the test lets it. Opened
  // read-write, it never reports an end (the daemon may open and close it before it writes).
  const fifo = path.join(a.dir, 'out.fifo');
  execFileSync('mkfifo', [fifo]);
  const reader = spawn('sh', ['-c', 'exec cat <> "$0"', fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => {
    reader.kill('SIGKILL');
  });
  reader.stdout.pause();
  const d = await started(a);
  const [worker] = await d.slotPids();
  assert.ok(worker);
  let burstBytes = 0;
  for (let i = 0; i < lines; i++) burstBytes += `burst ${i}\n`.length;
  await waitFor(
    'the worker to wait for the file, or to have written the whole burst',
    () =>
      /out\.fifo is slower than the workers' output: they wait for it/.test(d.output) ||
      bytesWritten(worker) >= burstBytes,
    { timeoutMs: 60_000 },
  );

  let tail = '';
  let next = 0;
  let done = false;
  const unexpected: string[] = [];
  reader.stdout.on('data', (chunk: Buffer) => {
    const text = tail + chunk.toString();
    const cut = text.lastIndexOf('\n') + 1;
    tail = text.slice(cut);
    for (const line of text.slice(0, cut).split('\n')) {
      if (line === '') continue;
      if (line === `[0.0] burst ${next}`) next++;
      else if (line === '[0.0] burst done') done = true;
      else if (unexpected.length < 5) unexpected.push(`${line} (expected burst ${next})`);
    }
  });
  reader.stdout.resume();
  await waitFor('the whole burst in the file', () => done || unexpected.length > 0, {
    timeoutMs: 120_000,
  });
  assert.deepEqual(unexpected, [], 'every line, in order, nothing dropped');
  assert.equal(next, lines);
  assert.doesNotMatch(d.output, /dropped/);
});
