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

  test('without log files it says why, in one line', async () => {
    app = makeApp({ workers: 1 }, 'plain.js');
    const r = await cli(['logs', '-c', app.configFile]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^nodesockd: no log files are configured/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});
