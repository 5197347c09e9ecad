/**
 * What a person at a terminal sees: `status --watch` redrawn in place and a progress line
 * during `restart`, on a real pseudo-terminal (util-linux `script`); never on a pipe.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { BIN, Daemon } from './helpers/daemon';
import { waitFor } from './helpers/wait';

const SCRIPT = spawnSync('sh', ['-c', 'command -v script']).stdout.toString().trim();
const skip = SCRIPT ? false : 'util-linux script is not installed';

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

/** Runs the CLI on a pseudo-terminal; resolves with everything it drew. */
function onTerminal(args: string[], until: (out: string) => boolean): Promise<string> {
  const command = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
  const child = spawn(SCRIPT, ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  return waitFor('the terminal output', () => until(out), { timeoutMs: 30_000 }).then(
    () => {
      child.kill('SIGTERM');
      return out;
    },
    (err: unknown) => {
      child.kill('SIGKILL');
      throw new Error(`${String(err)}\n--- output ---\n${out}`);
    },
  );
}

describe('on a terminal', { skip }, () => {
  test('status --watch redraws in place on the alternate screen', async () => {
    app = makeApp({ workers: 2 }, 'plain.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    const out = await onTerminal(
      ['status', '--watch', '-i', app.ipcFile],
      (o) => o.split('\x1b[H').length - 1 >= 2,
    );
    assert.ok(out.includes('\x1b[?1049h'), 'the alternate screen');
    assert.match(out, /SLOT\s+ID\s+PID/);
  });

  test('restart shows its progress on the terminal, and nothing of it on a pipe', async () => {
    app = makeApp({ workers: 2 }, 'plain.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    const out = await onTerminal(['restart', '-i', app.ipcFile], (o) => /generation \d+ serving/.test(o));
    assert.match(out, /restart: \d+\/\d+ workers online…/);
    const piped = await daemon.cli(['restart']);
    assert.equal(piped.code, 0);
    assert.doesNotMatch(piped.stdout + piped.stderr, /workers online…/);
  });

  test('status --watch on a pipe fails in one line', async () => {
    app = makeApp({ workers: 1 }, 'plain.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    const r = await daemon.cli(['status', '--watch']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^nodesockd: status --watch needs a terminal/);
  });
});
