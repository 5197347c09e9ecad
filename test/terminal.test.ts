/**
 * What a person at a terminal sees: `status --watch` redrawn in place and a progress line
 * during `restart`, on a real pseudo-terminal (util-linux `script`); never on a pipe. And no
 * text of a worker reaches the terminal raw: its escape sequences are printed escaped.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import type { DaemonStatus } from '../src/ipc/protocol';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { BIN, Daemon, FIXTURES } from './helpers/daemon';
import { freePort } from './helpers/nginx';
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

/** A control character other than the newline and the tab: a raw escape sequence, a carriage return. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are the point
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
/** How the CLI shows the fixture's escapes (output.js, ESCAPES_IF_EXISTS): each one as \uXXXX. */
const SHOWN =
  /bad path \/\\u001b\[2J\\u001b\[H\\u001b\]0;owned\\u0007\\u001b\]52;c;ZWNobyBvd25lZAo=\\u0007\\u001b\[31mFAKE: all healthy\\u001b\[0m\\u009b2J/;

/**
 * A daemon whose worker, once `fail` exists, writes terminal escapes to stdout and stderr and
 * exits before coming online; `restart` fails with them, a crash leaves them in `status`.
 */
async function escapingWorker(): Promise<{ daemon: Daemon; restart: { code: number; stderr: string } }> {
  app = makeApp(
    { workers: 1, stdout: 'out.log', shutdownTimeout: 2000, env: ['PATH', 'ESCAPES_IF_EXISTS=fail'] },
    'output.js',
  );
  const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
  daemon = d;
  fs.writeFileSync(path.join(app.dir, 'fail'), '');
  const restart = await d.cli(['restart']);
  // A crash now: its replacement fails the same way, and the slot keeps that last exit.
  const [worker] = await d.slotPids();
  process.kill(worker ?? -1, 'SIGKILL');
  await waitFor('the failed replacement in status', async () =>
    (await d.status()).slots.some((slot) => slot.lastExit?.includes('bad path')),
  );
  return { daemon: d, restart };
}

describe("a worker's text is printed escaped", () => {
  test('restart, status and logs: every control character shown as \\uXXXX', async () => {
    const { daemon: d, restart } = await escapingWorker();
    assert.equal(restart.code, 1, restart.stderr);
    assert.match(restart.stderr, SHOWN);
    assert.doesNotMatch(restart.stderr, RAW_CONTROL);

    const status = await d.cli(['status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^slot 0: no worker online \(.*bad path/m);
    assert.match(status.stdout, SHOWN);
    assert.doesNotMatch(status.stdout, RAW_CONTROL);

    // JSON escapes the C0 controls itself; DEL and C1 are escaped too, and it is the same JSON.
    const json = await d.cli(['status', '--json']);
    assert.doesNotMatch(json.stdout, RAW_CONTROL);
    const lastExit = (JSON.parse(json.stdout) as DaemonStatus).slots[0]?.lastExit ?? '';
    assert.ok(
      lastExit.includes('\x1b]52;c;ZWNobyBvd25lZAo=\x07\x1b[31mFAKE: all healthy\x1b[0m\x9b2J'),
      lastExit,
    );

    const logs = await d.cli(['logs']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, SHOWN);
    assert.doesNotMatch(logs.stdout, RAW_CONTROL);
  });
});

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
    assert.match(out, /restart: \d+\/\d+ workers online/);
    const piped = await daemon.cli(['restart']);
    assert.equal(piped.code, 0);
    assert.doesNotMatch(piped.stdout + piped.stderr, /workers online/);
  });

  test('a restart (or set-workers) whose worker does not come online says which slot waits, and for how long; nothing of it on a pipe', async () => {
    // The workers run in the app's directory: `hang` is the file there.
    app = makeApp({ workers: 1, onlineTimeout: 4000, env: ['PATH', 'HANG_IF_EXISTS=hang'] }, 'plain.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    fs.writeFileSync(path.join(app.dir, 'hang'), '');
    // Drawn in place, counting up while the new worker stays silent, until the restart fails.
    const out = await onTerminal(['restart', '-i', app.ipcFile], (o) => o.includes('restart failed'));
    assert.ok(out.includes('\r\x1b[Krestart: 0/1 workers online; slot 0: waiting for online, 0 s of 4'), out);
    assert.match(out, /restart: 0\/1 workers online; slot 0: waiting for online, [1-9] s of 4/);
    const piped = await daemon.cli(['restart']);
    assert.equal(piped.code, 1);
    assert.match(piped.stderr, /^nodesockd: restart failed/);
    assert.doesNotMatch(piped.stdout + piped.stderr, /waiting for online/);
    assert.ok(!(piped.stdout + piped.stderr).includes('\x1b'));
    // A new slot waits the same way.
    const scaled = await onTerminal(['set-workers', '2', '-i', app.ipcFile], (o) =>
      o.includes('failed to start'),
    );
    assert.match(scaled, /set-workers: 0\/1 workers online; slot 1: waiting for online, \d s of 4/);
  });

  test('a reload whose new worker listened on its own port says so at once, on its own line; nothing of it on a pipe', async () => {
    const port = await freePort();
    app = makeApp({ workers: 1, onlineTimeout: 4000, env: ['OWN_PORT'] }, 'plain.js');
    const env = { ...process.env, OWN_PORT: String(port) };
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { env });
    const config = fs.readFileSync(app.configFile, 'utf8');
    fs.writeFileSync(
      app.configFile,
      config.replace(/^script: .*$/m, `script: ${path.join(FIXTURES, 'own-port.js')}`),
    );
    const out = await onTerminal(['reload', '-i', app.ipcFile], (o) => o.includes('restart failed'));
    assert.match(
      out,
      new RegExp(
        `\\r\\x1b\\[Kslot 0: w[0-9a-f]{8} listened on port ${port}, not on its socket: call serve\\(server\\) from nodesockd \\(docs/worker-library\\.md#the-contract\\)\\r?\\n`,
      ),
    );
    assert.match(out, /reload: 0\/1 workers online; slot 0: waiting for online, \d s of 4/);
    const piped = await daemon.cli(['reload']);
    assert.equal(piped.code, 1);
    assert.doesNotMatch(piped.stdout + piped.stderr, /waiting for online|not on its socket: call/);
  });

  test("status --watch shows a worker's escape sequences escaped", async () => {
    await escapingWorker();
    const out = await onTerminal(['status', '--watch', '-i', app.ipcFile], (o) => o.includes('bad path'));
    assert.match(out, SHOWN);
    for (const raw of ['\x1b[2J', '\x1b]', '\x1b[31m', '\x9b'])
      assert.ok(!out.includes(raw), JSON.stringify(raw));
  });

  test('status --watch on a pipe fails in one line', async () => {
    app = makeApp({ workers: 1 }, 'plain.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    const r = await daemon.cli(['status', '--watch']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^nodesockd: status --watch needs a terminal/);
  });
});
