/**
 * The relay sockets of a pool (red team 2026-12-06, finding 11): in a private directory of the
 * front process (mode 0700 under any umask), so another user cannot connect to one and claim a
 * client address; the directory is gone after the front ends by SIGTERM or Ctrl-C (SIGINT)
 * with no handler of its own, and after the app's own shutdown.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ensureBuilt, FIXTURES } from './fixtures/pool/harness.js';
import { waitFor } from './helpers/wait.js';

before(() => ensureBuilt());

const fronts: ChildProcess[] = [];
after(() => {
  for (const f of fronts) if (f.exitCode === null && f.signalCode === null) f.kill('SIGKILL');
});

const asRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;

async function startFront(
  workerType: string,
  mode: 'default' | 'shutdown',
): Promise<{ front: ChildProcess; hops: string[] }> {
  const front = spawn(process.execPath, [path.join(FIXTURES, 'front.js'), workerType, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  fronts.push(front);
  let out = '';
  front.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const line = await waitFor('the front to be ready', () =>
    out.split('\n').find((l) => l.includes('"hops"')),
  );
  return { front, hops: (JSON.parse(line) as { hops: string[] }).hops };
}

/** What connecting to `socketPath` as nobody gives: 'connected' or the error code. */
function connectAsNobody(socketPath: string): string {
  const uid = execFileSync('id', ['-u', 'nobody']).toString().trim();
  const gid = execFileSync('id', ['-g', 'nobody']).toString().trim();
  const script =
    "const s = require('net').connect(process.argv[1]); s.on('connect', () => { console.log('connected'); s.destroy(); }); s.on('error', (e) => console.log(e.code));";
  const r = spawnSync(
    'setpriv',
    [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', process.execPath, '-e', script, socketPath],
    { cwd: '/' },
  );
  return r.stdout.toString().trim() || r.stderr.toString().trim();
}

for (const [workerType, signal] of [
  ['thread', 'SIGTERM'],
  ['process', 'SIGINT'],
] as const) {
  test(`${workerType} workers: relay sockets in a private directory under umask 000, gone after ${signal}`, async (t) => {
    const { front, hops } = await startFront(workerType, 'default');
    assert.equal(hops.length, 2);
    const dir = path.dirname(hops[0]);
    assert.equal(path.dirname(hops[1]), dir, 'one directory for the process');
    assert.equal(path.dirname(dir), os.tmpdir());
    assert.match(path.basename(dir), /^nsd-pool-/);
    const st = fs.statSync(dir);
    assert.equal(st.mode & 0o777, 0o700, `mode ${(st.mode & 0o777).toString(8)}`);
    assert.equal(st.uid, process.getuid?.());
    if (asRoot && hasSetpriv) assert.equal(connectAsNobody(hops[0]), 'EACCES');
    else t.diagnostic('connecting as another user skipped: needs root and setpriv');
    const exited = once(front, 'exit');
    front.kill(signal);
    const [code, sig] = (await exited) as [number | null, NodeJS.Signals | null];
    // The signal's default action: the front ends by it, as it would without the pool.
    assert.deepEqual([code, sig], [null, signal]);
    assert.equal(fs.existsSync(dir), false, `${dir} is left behind`);
  });
}

test("the app's own SIGTERM handler (shutdown, then exit) also leaves no relay directory", async () => {
  const { front, hops } = await startFront('thread', 'shutdown');
  const dir = path.dirname(hops[0]);
  assert.ok(fs.existsSync(dir));
  const exited = once(front, 'exit');
  front.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0);
  assert.equal(fs.existsSync(dir), false, `${dir} is left behind`);
});
