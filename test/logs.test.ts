import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { BIN, cli, Daemon } from './helpers/daemon';
import { getJson } from './helpers/http';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

describe('nodesockd logs', () => {
  test('prints the log file, filtered by slot', async () => {
    app = makeApp({ workers: 2, stdout: 'out.log' }, 'plain.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    const [pid0, pid1] = await daemon.slotPids();
    await getJson({ socketPath: app.published(0) }, '/?log=1');
    await getJson({ socketPath: app.published(1) }, '/?log=1');
    const all = await waitFor('both lines in logs', async () => {
      const r = await cli(['logs', '-c', app.configFile]);
      return r.stdout.includes(`from ${pid0}`) && r.stdout.includes(`from ${pid1}`) ? r : undefined;
    });
    assert.equal(all.code, 0, all.stderr);
    const slot1 = await cli(['logs', '-c', app.configFile, '--slot', '1']);
    assert.match(slot1.stdout, new RegExp(`^\\[1\\.0\\] request log line from ${pid1}$`, 'm'));
    assert.doesNotMatch(slot1.stdout, new RegExp(`from ${pid0}`));
  });

  test('-f follows the file across a logrotate move and SIGUSR2 reopen', async () => {
    app = makeApp({ workers: 1, stdout: 'out.log' }, 'plain.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    const follower = spawn(process.execPath, [BIN, 'logs', '-f', '-n', '1000', '-c', app.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let seen = '';
    let errors = '';
    follower.stderr.on('data', (c: Buffer) => {
      errors += c.toString();
    });
    follower.stdout.on('data', (c: Buffer) => {
      seen += c.toString();
    });
    try {
      const [pid] = await daemon.slotPids();
      await getJson({ socketPath: app.published(0) }, '/?log=before');
      await waitFor('the line before the rotation', () => {
        assert.equal(errors, '');
        return seen.includes(`request log line from ${pid}`);
      });
      const before = seen.length;
      fs.renameSync(path.join(app.dir, 'out.log'), path.join(app.dir, 'out.log.1'));
      daemon.child.kill('SIGUSR2');
      await daemon.waitOutput(/log files reopened/);
      await waitFor('the reopened file', () => fs.existsSync(path.join(app.dir, 'out.log')));
      await getJson({ socketPath: app.published(0) }, '/?log=after');
      await waitFor('the line after the rotation', () =>
        seen.slice(before).includes(`request log line from ${pid}`),
      );
    } finally {
      follower.kill('SIGTERM');
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

  test('without log files it says why, in one line', async () => {
    app = makeApp({ workers: 1 }, 'plain.js');
    const r = await cli(['logs', '-c', app.configFile]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^nodesockd: no log files are configured/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});
