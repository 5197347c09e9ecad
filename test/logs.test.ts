import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import type { LogLine } from '../src/ipc/protocol';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { BIN, cli, Daemon } from './helpers/daemon';
import { getJson, httpRequest } from './helpers/http';
import { waitFor } from './helpers/wait';

/** A command left running, its output collected. */
function running(command: string, args: string[]) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const r = { child, out: '', err: '', exited: undefined as { code: number | null } | undefined };
  child.stdout.on('data', (c: Buffer) => {
    r.out += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    r.err += c.toString();
  });
  child.on('exit', (code) => {
    r.exited = { code };
  });
  return r;
}

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

describe('nodesockd logs --files (the configured log files)', () => {
  test('prints the log file, filtered by slot', async () => {
    app = makeApp({ workers: 2, stdout: 'out.log' }, 'plain.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    const [pid0, pid1] = await daemon.slotPids();
    await getJson({ socketPath: app.published(0) }, '/?log=1');
    await getJson({ socketPath: app.published(1) }, '/?log=1');
    const all = await waitFor('both lines in logs', async () => {
      const r = await cli(['logs', '--files', '-c', app.configFile]);
      return r.stdout.includes(`from ${pid0}`) && r.stdout.includes(`from ${pid1}`) ? r : undefined;
    });
    assert.equal(all.code, 0, all.stderr);
    const slot1 = await cli(['logs', '--files', '-c', app.configFile, '--slot', '1']);
    assert.match(slot1.stdout, new RegExp(`^\\[1\\.0\\] request log line from ${pid1}$`, 'm'));
    assert.doesNotMatch(slot1.stdout, new RegExp(`from ${pid0}`));
  });

  test('-f follows the file across a logrotate move and SIGUSR2 reopen', async () => {
    app = makeApp({ workers: 1, stdout: 'out.log' }, 'plain.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    const follower = running(process.execPath, [
      BIN,
      'logs',
      '--files',
      '-f',
      '-n',
      '1000',
      '-c',
      app.configFile,
    ]);
    try {
      const [pid] = await daemon.slotPids();
      await getJson({ socketPath: app.published(0) }, '/?log=before');
      await waitFor('the line before the rotation', () => {
        assert.equal(follower.err, '');
        return follower.out.includes(`request log line from ${pid}`);
      });
      const before = follower.out.length;
      fs.renameSync(path.join(app.dir, 'out.log'), path.join(app.dir, 'out.log.1'));
      daemon.child.kill('SIGUSR2');
      await daemon.waitOutput(/log files reopened/);
      await waitFor('the reopened file', () => fs.existsSync(path.join(app.dir, 'out.log')));
      await getJson({ socketPath: app.published(0) }, '/?log=after');
      await waitFor('the line after the rotation', () =>
        follower.out.slice(before).includes(`request log line from ${pid}`),
      );
    } finally {
      follower.child.kill('SIGTERM');
    }
  });

  test('--slot N -n K prints the last K lines of slot N, whatever the other slots wrote after them', async () => {
    app = makeApp({ workers: 2, stdout: 'out.log' }, 'plain.js');
    const slot0 = Array.from({ length: 20 }, (_, i) => `[0.0] slot0-${i}`);
    const slot1 = Array.from({ length: 20 }, (_, i) => `[1.0] slot1-${i}`);
    fs.writeFileSync(path.join(app.dir, 'out.log'), `${[...slot0, ...slot1].join('\n')}\n`);
    const lines = async (args: string[]) => {
      const r = await cli(['logs', '-c', app.configFile, ...args]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.split('\n').slice(0, -1);
    };
    assert.deepEqual(await lines(['--slot', '0', '-n', '10']), slot0.slice(-10));
    assert.deepEqual(await lines(['--slot', '1', '-n', '10']), slot1.slice(-10));
    assert.deepEqual(await lines(['--slot', '0', '-n', '100']), slot0);
    assert.deepEqual(await lines(['--slot', '2', '-n', '10']), []);
  });

  test('-n reads back from the end once: lines across chunk boundaries, 200 MB of history', async () => {
    app = makeApp({ workers: 1, stdout: 'out.log' }, 'plain.js');
    const file = path.join(app.dir, 'out.log');
    // Lines longer than the 64 KiB read chunk, two-byte characters on its boundaries, no final newline.
    const odd = ['é'.repeat(70_000), '', 'x'.repeat(65_535), `${'ü'.repeat(40_000)}end`];
    fs.writeFileSync(file, `first\n${odd.join('\n')}`);
    const r = await cli(['logs', '-c', app.configFile, '-n', '4']);
    assert.deepEqual(r.stdout.split('\n').slice(0, -1), odd);
    // 200 MB: 200,000 lines of slot 1, one of slot 0 in every thousand. `--slot 0 -n 200000` looks at
    // every line. Read back once, that is under a second; the reader that re-split everything read
    // so far after each 64 KiB chunk took minutes (and 800 MB), far past cli()'s 60 s guard.
    const pad = 'x'.repeat(990);
    const fd = fs.openSync(file, 'w');
    for (let i = 0; i < 200_000; i += 1000) {
      const block = Array.from({ length: 1000 }, (_, k) => (k === 999 ? `[0.0] ${i + k}` : `[1.0] ${pad}`));
      fs.writeSync(fd, `${block.join('\n')}\n`);
    }
    fs.closeSync(fd);
    const big = await cli(['logs', '-c', app.configFile, '--slot', '0', '-n', '200000']);
    assert.equal(big.code, 0, big.stderr);
    assert.deepEqual(
      big.stdout.split('\n').slice(0, -1),
      Array.from({ length: 200 }, (_, i) => `[0.0] ${i * 1000 + 999}`),
    );
  });

  test('without a daemon and without log files it says why, in one line', async () => {
    app = makeApp({ workers: 1 }, 'plain.js');
    const r = await cli(['logs', '-c', app.configFile]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /^nodesockd: no daemon is running at .*, and no log files \(stdout\/stderr\) are configured/,
    );
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const files = await cli(['logs', '--files', '-c', app.configFile]);
    assert.match(files.stderr, /^nodesockd: no log files are configured/);
  });
});

/** `logs --json` of a daemon: one object per line. */
async function jsonLines(d: Daemon, args: string[]): Promise<LogLine[]> {
  const r = await d.cli(['logs', '--json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as LogLine);
}

describe("nodesockd logs (the daemon's memory, no setup)", () => {
  test('stdout and stderr in the order the daemon got them, each line tagged; -n counts after --slot', async () => {
    app = makeApp({ workers: 2 }, 'output.js');
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    daemon = d;
    const [id0, id1] = (await d.status()).workers
      .sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0))
      .map((w) => w.id);
    // Each line reaches the daemon before the next is written: the order is known.
    const steps: [number, string][] = [
      [0, '/a'],
      [0, '/stderr'],
      [1, '/b'],
      [0, '/c'],
      [1, '/stderr'],
      [1, '/d'],
    ];
    for (const [slot, url] of steps) {
      await httpRequest({ socketPath: app.published(slot) }, { path: url });
      await waitFor(`request ${url} of slot ${slot} in logs`, async () =>
        (await d.cli(['logs', '--slot', String(slot), '-n', '1'])).stdout.includes(`request ${url}`),
      );
    }
    const r = await d.cli(['logs']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.stdout.split('\n').filter((l) => l.includes('request ')),
      [
        `slot 0  ${id0} out | request /a`,
        `slot 0  ${id0} err | request /stderr`,
        `slot 1  ${id1} out | request /b`,
        `slot 0  ${id0} out | request /c`,
        `slot 1  ${id1} err | request /stderr`,
        `slot 1  ${id1} out | request /d`,
      ],
    );
    // -n after --slot: slot 0's last two, though slot 1 wrote two lines after them.
    const slot0 = (await d.cli(['logs', '--slot', '0', '-n', '2'])).stdout;
    assert.equal(slot0, `slot 0  ${id0} err | request /stderr\nslot 0  ${id0} out | request /c\n`);
    assert.equal((await d.cli(['logs', '--slot', '5'])).stdout, '');
    const json = await jsonLines(d, ['-n', '2']);
    assert.deepEqual(
      json.map(({ slot, id, stream, text }) => ({ slot, id, stream, text })),
      [
        { slot: 1, id: id1, stream: 'err', text: 'request /stderr' },
        { slot: 1, id: id1, stream: 'out', text: 'request /d' },
      ],
    );
    assert.ok((json[0]?.seq ?? 0) < (json[1]?.seq ?? 0));
    const stamped = (await d.cli(['logs', '-t', '-n', '1'])).stdout;
    assert.match(
      stamped,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z slot 1 {2}w[0-9a-f]{8} out \| request \/d\n$/,
    );
  });

  test('each slot keeps at most 256 KiB, all of them 2 MiB, shared fairly; the history comes in pages', async () => {
    // 9 workers × 400 KB of 99-byte lines: more than 256 KiB each, more than 2 MiB in all, and
    // more than one control reply holds.
    app = makeApp({ workers: 9, env: ['PATH', 'FLOOD_BYTES=400000', 'FLOOD_NEWLINES=1'] }, 'output.js');
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 9 });
    daemon = d;
    const lines = await waitFor('every flood done', async () => {
      const all = await jsonLines(d, ['-n', '1000000']);
      return all.filter((l) => l.text === 'flood done').length === 9 ? all : undefined;
    });
    const total = lines.reduce((n, l) => n + Buffer.byteLength(l.text), 0);
    assert.ok(total <= 2 * 1024 * 1024, `${total} bytes in all`);
    const seqs = lines.map((l) => l.seq);
    assert.deepEqual(
      seqs,
      [...new Set(seqs)].sort((a, b) => a - b),
      'in order, each line once',
    );
    for (let slot = 0; slot < 9; slot += 1) {
      const kept = lines.filter((l) => l.slot === slot);
      // Its share (a ninth of 2 MiB, at most 256 KiB) with each line's header: more than half is text.
      const bytes = kept.reduce((n, l) => n + Buffer.byteLength(l.text), 0);
      assert.ok(bytes <= 256 * 1024, `slot ${slot} keeps ${bytes} bytes`);
      assert.ok(bytes > 128 * 1024, `slot ${slot} keeps ${bytes} bytes`);
      assert.equal(kept.at(-1)?.text, 'flood done');
    }
    // --slot pages back too, and counts only that slot's lines.
    const slot1 = await jsonLines(d, ['--slot', '1', '-n', '1000000']);
    assert.deepEqual(
      slot1,
      lines.filter((l) => l.slot === 1),
    );
  });

  test('-f prints new lines as they come; `logs -f | head -1` ends quietly', async () => {
    app = makeApp({ workers: 1 }, 'output.js');
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    daemon = d;
    await httpRequest({ socketPath: app.published(0) }, { path: '/before' });
    const follower = running(process.execPath, [BIN, 'logs', '-f', '-n', '1', '-i', app.ipcFile]);
    try {
      await waitFor('the history', () => follower.out.includes('request /before'));
      await httpRequest({ socketPath: app.published(0) }, { path: '/stderr' });
      await httpRequest({ socketPath: app.published(0) }, { path: '/after' });
      await waitFor('the new lines', () =>
        /err \| request \/stderr\n.* out \| request \/after\n/.test(follower.out),
      );
    } finally {
      follower.child.kill('SIGTERM');
    }
    // head exits after one line; the next line logs -f writes finds the pipe closed.
    const piped = running('bash', [
      '-c',
      `set -o pipefail; '${process.execPath}' '${BIN}' logs -f -i '${app.ipcFile}' | head -1`,
    ]);
    await waitFor('head got its line', () => piped.out.includes('\n'));
    let n = 0;
    const exit = await waitFor('logs -f to end', async () => {
      await httpRequest({ socketPath: app.published(0) }, { path: `/more${n++}` });
      return piped.exited;
    });
    assert.equal(exit.code, 0, piped.err);
    assert.equal(piped.err, '');
  });

  test('reload turns the log files on (and checks them first), with no daemon restart', async () => {
    app = makeApp({ workers: 1 }, 'output.js');
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    daemon = d;
    const config = fs.readFileSync(app.configFile, 'utf8');
    fs.writeFileSync(app.configFile, `${config}stdout: missing/out.log\n`);
    const refused = await d.cli(['reload']);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^nodesockd: stdout: cannot open \S+missing\/out\.log \(ENOENT\); nothing reloaded\n$/,
    );
    fs.writeFileSync(app.configFile, `${config}stdout: out.log\n`);
    const [pid] = await d.slotPids();
    const r = await d.cli(['reload']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /reloaded: updated stdout, stderr/);
    await httpRequest({ socketPath: app.published(0) }, { path: '/into-the-file' });
    await waitFor('the line in out.log', () =>
      fs.readFileSync(path.join(app.dir, 'out.log'), 'utf8').includes('[0.0] request /into-the-file'),
    );
    assert.deepEqual(await d.slotPids(), [pid], 'the worker kept running');
  });
});
