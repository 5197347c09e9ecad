import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { cli, Daemon, FIXTURES, isAlive } from './helpers/daemon';
import { getJson } from './helpers/http';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

const writeConfig = (config: Record<string, unknown>) =>
  fs.writeFileSync(
    app.configFile,
    stringify({ script: path.join(FIXTURES, 'plain.js'), tmpDir: 'run', ...config }),
  );

const links = () =>
  fs
    .readdirSync(app.tmpDir)
    .filter((n) => /^app\.\d+\.sock$/.test(n))
    .sort();

describe('reload and scaling', () => {
  test('SIGHUP scales 2 -> 3 -> 1 and leaves no published path of a removed slot', async () => {
    app = makeApp({ workers: 2 });
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    daemon = d;
    const [first, second] = await d.slotPids();
    writeConfig({ workers: 3 });
    d.child.kill('SIGHUP');
    await waitFor('3 workers', async () => (await d.slotPids()).length === 3);
    assert.deepEqual(links(), ['app.0.sock', 'app.1.sock', 'app.2.sock']);
    await getJson({ socketPath: app.published(2) });
    const [, , third] = await d.slotPids();
    assert.deepEqual((await d.slotPids()).slice(0, 2), [first, second], 'existing workers untouched');
    writeConfig({ workers: 1 });
    d.child.kill('SIGHUP');
    await waitFor('1 worker', async () => (await d.slotPids()).length === 1);
    assert.deepEqual(links(), ['app.0.sock']);
    await waitFor('removed workers to exit', () => !isAlive(second!) && !isAlive(third!));
    assert.deepEqual(await d.slotPids(), [first]);
    assert.match(d.output, /reloaded .*workers 3 -> 1/);
  });

  test('an invalid config keeps the old one, keeps serving and says why', async () => {
    app = makeApp({ workers: 2 });
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    daemon = d;
    const before = await d.slotPids();
    fs.writeFileSync(
      app.configFile,
      `script: ${path.join(FIXTURES, 'plain.js')}\ntmpDir: run\nworkers: 0\nbogus: 1\n`,
    );
    const r = await d.cli(['reload']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nodesockd\.yaml: workers: .*at least 1/);
    assert.match(r.stderr, /unknown key "bogus"/);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
    d.child.kill('SIGHUP');
    await d.waitOutput(/SIGHUP: reload failed, keeping the current config/);
    assert.deepEqual(await d.slotPids(), before);
    for (const slot of [0, 1]) await getJson({ socketPath: app.published(slot) });
    fs.writeFileSync(
      app.configFile,
      stringify({ script: path.join(FIXTURES, 'plain.js'), tmpDir: 'elsewhere' }),
    );
    const moved = await d.cli(['reload']);
    assert.equal(moved.code, 1);
    assert.match(moved.stderr, /cannot change tmpDir, ipcFile while the daemon runs; restart the daemon/);
  });

  test('a change of what the workers run restarts them with zero downtime', async () => {
    app = makeApp({ workers: 2, env: ['NSD_VERSION=1'] });
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    daemon = d;
    const before = await d.slotPids();
    writeConfig({ workers: 2, env: ['NSD_VERSION=2'], name: 'renamed' });
    const r = await d.cli(['reload']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /renamed app -> renamed/);
    assert.match(r.stdout, /restarted the workers \(changed: env\)/);
    const after = await d.slotPids();
    assert.ok(after.every((pid) => !before.includes(pid)));
    const body = await getJson<{ env: Record<string, string> }>({ socketPath: app.published(1) });
    assert.equal(body.env.NSD_VERSION, '2');
    const unchanged = await d.cli(['reload']);
    assert.match(unchanged.stdout, /no change/);
    assert.deepEqual(await d.slotPids(), after);
  });

  test('a reload whose new workers fail keeps the old workers and the old config', async () => {
    app = makeApp({ workers: 1 });
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1 });
    daemon = d;
    const before = await d.slotPids();
    // New workers that exit at once (plain.js exits when FAIL_IF_EXISTS names an existing file).
    writeConfig({ workers: 1, env: [`FAIL_IF_EXISTS=${app.configFile}`] });
    const r = await d.cli(['reload']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /restart failed, the previous workers keep serving/);
    assert.deepEqual(await d.slotPids(), before);
    const config = JSON.parse((await d.cli(['config', '--json'])).stdout) as { config: { env: string[] } };
    assert.ok(!config.config.env.some((e) => e.startsWith('FAIL_IF_EXISTS')), 'the old config is kept');
  });

  test('set-workers and set-standby scale at run time and validate their argument', async () => {
    app = makeApp({ workers: 1 });
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1 });
    daemon = d;
    assert.equal((await d.cli(['set-workers', '2'])).code, 0);
    assert.equal((await d.slotPids()).length, 2);
    assert.deepEqual(links(), ['app.0.sock', 'app.1.sock']);
    const standby = await d.cli(['set-standby', '1']);
    assert.equal(standby.code, 0, standby.stderr);
    await waitFor('a standby', async () => (await d.status()).workers.some((w) => w.role === 'standby'));
    for (const bad of [
      ['set-workers', '0'],
      ['set-workers', 'abc'],
      ['set-standby', '-1'],
      ['set-workers', '999'],
    ]) {
      const r = await d.cli(bad);
      assert.notEqual(r.code, 0, `${bad.join(' ')} must fail`);
      assert.match(r.stderr, /count|must be|argument|number/i);
      assert.doesNotMatch(r.stderr, /^\s+at /m);
    }
    assert.equal((await d.cli(['set-workers', '1'])).code, 0);
    assert.deepEqual(links(), ['app.0.sock']);
    const config = await d.cli(['config', '--json']);
    assert.equal(JSON.parse(config.stdout).config.workers, 1);
  });

  test('set-workers and a reload that scales say which upstream lines nginx needs; nginx prints the new block', async () => {
    app = makeApp({ workers: 1, name: 'shop' });
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1 });
    daemon = d;
    const line = (slot: number) => `server unix:${app.published(slot)} max_fails=0;`;
    const up = await d.cli(['set-workers', '3']);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(
      up.stdout,
      [
        'workers: 3',
        'nginx: upstream shop must change (new slots get no traffic until it lists them; removed ones fill its error log):',
        `  add:    ${line(1)}`,
        `  add:    ${line(2)}`,
        'then reload nginx: nginx -s reload (`nodesockd nginx` prints the whole block)',
        '',
      ].join('\n'),
    );
    // The block nginx needs now: the running daemon's 3 slots, not the file's 1.
    const block = await cli(['nginx', '-c', app.configFile]);
    assert.equal(block.code, 0, block.stderr);
    assert.deepEqual(
      block.stdout
        .split('\n')
        .filter((l) => l.includes('server unix:'))
        .map((l) => l.trim()),
      [line(0), line(1), line(2)],
    );
    assert.match(block.stdout, /workers: 3 in the running daemon; the config file says 1/);
    const down = await d.cli(['set-workers', '2']);
    assert.match(
      down.stdout,
      new RegExp(`^  remove: ${line(2).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'),
    );
    assert.doesNotMatch(down.stdout, /add:/);
    assert.match(
      d.output,
      /nginx's upstream shop must change, then reload nginx \(nginx -s reload\): remove \S+app\.2\.sock/,
    );
    // A reload back to the file's 1 worker: a line to remove; one with no change: no nginx lines.
    const reload = await d.cli(['reload']);
    assert.equal(reload.code, 0, reload.stderr);
    assert.match(reload.stdout, /^reloaded: workers 2 -> 1$/m);
    assert.deepEqual(
      reload.stdout.split('\n').filter((l) => l.startsWith('  ')),
      [`  remove: ${line(1)}`],
    );
    const again = await d.cli(['reload']);
    assert.equal(again.stdout, 'reloaded: no change\n');
    assert.equal((await d.cli(['set-workers', '1'])).stdout, 'workers: 1\n');
  });

  test('terminate drains the workers and stops the daemon', async () => {
    app = makeApp({ workers: 2 });
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    daemon = d;
    const pids = await d.slotPids();
    const r = await d.cli(['terminate']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /daemon \d+ stopped/);
    const exit = await d.exited;
    assert.equal(exit.code, 0);
    assert.ok(pids.every((pid) => !isAlive(pid)));
    assert.deepEqual(fs.readdirSync(app.tmpDir), []);
  });
});
