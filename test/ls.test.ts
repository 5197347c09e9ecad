import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import type { ListedDaemon } from '../src/cli/ls';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { cli, Daemon, makeTempDir } from './helpers/daemon';

/** A private registry for each test: the daemons and `ls` of other tests (and people) stay out. */
function registryEnv(): { env: NodeJS.ProcessEnv; dir: string } {
  const runtime = makeTempDir('nsd-xdg-');
  fs.chmodSync(runtime, 0o700);
  return {
    env: { ...process.env, XDG_RUNTIME_DIR: runtime },
    dir: path.join(runtime, 'nodesockd', 'daemons'),
  };
}

const running: { daemon: Daemon; app: AppDir }[] = [];

afterEach(async () => {
  for (const { daemon, app } of running.splice(0)) await teardown(daemon, app);
});

async function startApp(name: string, env: NodeJS.ProcessEnv, workers = 1): Promise<Daemon> {
  const app = makeApp({ workers, name });
  const daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { env, online: workers });
  running.push({ daemon, app });
  return daemon;
}

async function ls(env: NodeJS.ProcessEnv): Promise<ListedDaemon[]> {
  const r = await cli(['ls', '--json'], { env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ListedDaemon[];
}

describe('nodesockd ls', () => {
  test('ls --help says what it lists; nodesockd --help lists it', async () => {
    const r = await cli(['ls', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^Usage: nodesockd ls \[options\]\n\nlist this user's nodesockd daemons on this host/,
    );
    assert.match((await cli(['--help'])).stdout, /^\s+ls \[options\]\s+list this user's/m);
  });

  test("lists every daemon of this user with its workers; a daemon's entry goes when it exits", async () => {
    const { env, dir } = registryEnv();
    const shop = await startApp('shop', env, 2);
    const blog = await startApp('blog', env);
    const [shopApp, blogApp] = running.map((r) => r.app);

    const table = await cli(['ls'], { env });
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^NAME\s+PID\s+UPTIME\s+WORKERS\s+CONFIG$/);
    assert.match(
      lines[1]!,
      new RegExp(`^shop\\s+${shop.child.pid}\\s+\\S+\\s+2/2 serving\\s+${shopApp!.configFile}$`),
    );
    assert.match(
      lines[2]!,
      new RegExp(`^blog\\s+${blog.child.pid}\\s+\\S+\\s+1/1 serving\\s+${blogApp!.configFile}$`),
    );

    const listed = await ls(env);
    assert.deepEqual(
      listed.map((d) => [d.name, d.pid, d.ipcFile, d.serving, d.slots]),
      [
        ['shop', shop.child.pid, shopApp!.ipcFile, 2, 2],
        ['blog', blog.child.pid, blogApp!.ipcFile, 1, 1],
      ],
    );
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);

    assert.equal((await shop.cli(['stop'])).code, 0);
    assert.deepEqual(
      (await ls(env)).map((d) => [d.name, d.running]),
      [
        ['shop', false],
        ['blog', true],
      ],
    );
    assert.match((await cli(['ls'], { env })).stdout, /^shop\s+\d+\s+\S+\s+stopped\s/m);

    assert.equal((await shop.cli(['terminate'])).code, 0);
    await shop.exited;
    assert.deepEqual(
      (await ls(env)).map((d) => d.name),
      ['blog'],
    );
    assert.deepEqual(fs.readdirSync(dir), [`${blog.child.pid}.json`]);
  });

  test('entries of daemons that are gone (a dead pid, a pid reused by another process) are skipped and removed', async () => {
    const { env, dir } = registryEnv();
    const blog = await startApp('blog', env);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    const entry = (pid: number, startTicks: string | null) =>
      JSON.stringify({
        pid,
        startTicks,
        name: `gone-${pid}`,
        version: '0.1.0',
        ipcFile: '/nonexistent/x.ipc',
        configFiles: [],
        cwd: '/',
        startedAt: 1,
      });
    fs.writeFileSync(path.join(dir, `${dead}.json`), entry(dead, null));
    // This test's own pid, alive, but not started when the entry says: a reused pid.
    fs.writeFileSync(path.join(dir, `${process.pid}.json`), entry(process.pid, '1'));
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not an entry');

    assert.deepEqual(
      (await ls(env)).map((d) => d.name),
      ['blog'],
    );
    assert.deepEqual(fs.readdirSync(dir).sort(), [`${blog.child.pid}.json`, 'notes.txt']);
  });

  test('a daemon that does not answer is listed as such; none at all is one line', async () => {
    const { env, dir } = registryEnv();
    const r0 = await cli(['ls'], { env });
    assert.equal(r0.code, 0, r0.stderr);
    assert.equal(r0.stdout, 'no nodesockd daemon of this user is running\n');
    // A live process (this test) registered with a control socket nobody serves.
    const ticks = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[19]!;
    fs.writeFileSync(
      path.join(dir, `${process.pid}.json`),
      JSON.stringify({
        pid: process.pid,
        startTicks: ticks,
        name: 'mute',
        version: '0.1.0',
        ipcFile: path.join(dir, 'none.ipc'),
        configFiles: [],
        cwd: '/',
        startedAt: Date.now(),
      }),
    );
    const r = await cli(['ls'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `^mute\\s+${process.pid}\\s+\\S+\\s+not answering \\(no daemon is running at .*none\\.ipc`,
        'm',
      ),
    );
  });

  test('without XDG_RUNTIME_DIR the registry is a 0700 directory in the temp folder; one others can write is refused', async () => {
    const tmp = makeTempDir('nsd-tmp-');
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
    delete env.XDG_RUNTIME_DIR;
    const daemon = await startApp('shop', env);
    const dir = path.join(tmp, `nodesockd-${process.getuid!()}`, 'daemons');
    assert.deepEqual(fs.readdirSync(dir), [`${daemon.child.pid}.json`]);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(
      (await ls(env)).map((d) => d.name),
      ['shop'],
    );

    fs.chmodSync(dir, 0o777);
    const r = await cli(['ls'], { env });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `nodesockd: the daemon registry ${dir} is not a directory of this user that only it can enter; remove it\n`,
    );
    // A daemon started meanwhile says why `ls` will not list it, and serves.
    const blog = await startApp('blog', env);
    assert.match(blog.output, /`nodesockd ls` will not list this daemon: the daemon registry .* remove it/);
  });
});
