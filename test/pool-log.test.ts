/**
 * The pool's log as a Socketnaut program uses it: the README's recipe for logging to a file
 * (streams-logger's RotatingFileHandler wired in with `formatter.connect`), unchanged but for
 * the import; and a closed stdout that must not take the front down (EPIPE).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { collectOutput, ensureBuilt, FIXTURES, ROOT, request } from './fixtures/pool/harness.js';
import { waitFor } from './helpers/wait.js';

before(() => ensureBuilt());

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsd-pool-log-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

function start(
  script: string,
  args: string[] = [],
): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(process.execPath, [path.join(FIXTURES, script), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return { child, ...collectOutput(child) };
}

test('Socketnaut’s README recipe: formatter.disconnect(consoleHandler); formatter.connect(new RotatingFileHandler(…))', async () => {
  const file = path.join(tmp, 'pool.log');
  const { child, out, err } = start('log-to-file.mjs', [file]);
  const { port } = await waitFor(`the front to listen (${err()})`, () => {
    const line = out().split('\n')[0];
    return line.startsWith('{') ? (JSON.parse(line) as { port: number }) : null;
  });
  assert.equal((await request(port)).status, 200);
  // The app's own record, the front's, and its worker's, as Socketnaut's formatter writes them.
  const logged = await waitFor('the records in the file', () => {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    return /fixture worker/.test(text) && /the app says hello/.test(text) ? text : null;
  });
  assert.match(logged, /^<INFO> \S+ \S+ \d+ - the app says hello$/m);
  assert.match(logged, /^<INFO> \S+ \S+ \d+ - Service Proxy listening on \{/m);
  assert.match(logged, /^<WARN> \S+ \S+ \d+ thread \d+ - fixture worker/m);
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  assert.deepEqual(await exited, [0, null]);
  // Nothing went to the console.
  assert.equal(out().trim().split('\n').length, 1, out());
  assert.equal(err(), '');
});

test('a front whose stdout is closed logs on without crashing (EPIPE) and serves on', async () => {
  const { child, err } = start('log-epipe.js');
  const { port } = await waitFor(`the front to listen (${err()})`, () => {
    const line = err().split('\n')[0];
    return line.startsWith('{') ? (JSON.parse(line) as { port: number }) : null;
  });
  child.stdout?.destroy(); // the reader is gone: the next writes fail with EPIPE
  await waitFor(`200 lines logged (${err()})`, () => (/alive 200/.test(err()) ? true : null));
  assert.equal(child.exitCode, null);
  assert.equal((await request(port)).status, 200);
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
});
