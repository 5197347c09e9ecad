import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ListedDaemon as LsEntry } from '../src/cli/ls';
import { type AppDir, makeApp } from './helpers/app';
import { cli, Daemon, isAlive, killAll, makeTempDir, ROOT } from './helpers/daemon';
import { getJson, getOn } from './helpers/http';
import { type Load, startLoad } from './helpers/load';
import { buildNextVersion, install, NEXT_VERSION } from './helpers/next-version';
import { KEEPALIVE_SECONDS, NGINX_BIN, Nginx, prepareSocketDir } from './helpers/nginx';
import { makeCert } from './helpers/tls';
import { waitFor } from './helpers/wait';

describe('daemon upgrade (restart --upgrade)', () => {
  let work: string;
  let nextDist: string;
  let app: AppDir;
  let nginx: Nginx | undefined;
  const pids = new Set<number>();

  before(() => {
    work = makeTempDir('nsd-upgrade-');
    nextDist = buildNextVersion(path.join(work, 'next'));
    makeCert(work, 'a', 'a.test');
    makeCert(work, 'b', 'b.test');
  });

  after(async () => {
    await nginx?.stop();
    const status = app ? await cli(['status', '--json', '--ipc-file', app.ipcFile]) : { code: 1, stdout: '' };
    if (status.code === 0) {
      const s = JSON.parse(status.stdout) as { pid: number; workers: { pid: number }[] };
      for (const w of s.workers) pids.add(w.pid);
      process.kill(s.pid, 'SIGTERM');
      await waitFor('the upgraded daemon to exit', () => !isAlive(s.pid));
    }
    killAll([...pids].filter(isAlive));
    fs.rmSync(work, { recursive: true, force: true, maxRetries: 5 });
    if (app) fs.rmSync(app.dir, { recursive: true, force: true, maxRetries: 5 });
  });

  test('the new version takes over the workers and replaces them, failing no request', async () => {
    const installed = path.join(work, 'installed');
    fs.mkdirSync(installed);
    const bin = install(installed);
    app = makeApp({ workers: 2, upstreamKeepaliveTimeout: KEEPALIVE_SECONDS * 1000 }, 'lib.js');
    prepareSocketDir(app.tmpDir);
    const env = { ...process.env };
    delete env.NODESOCKD_SUPERVISED; // no supervisor: the old daemon starts its successor itself
    const old = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2, bin, env });
    const oldStatus = await old.status();
    for (const w of oldStatus.workers) pids.add(w.pid!);
    const oldPids = await old.slotPids();

    let load: Load | undefined;
    if (NGINX_BIN) {
      nginx = await Nginx.start(path.join(app.dir, 'nginx'), [app.published(0), app.published(1)]);
      const started = startLoad(nginx.port);
      load = started;
      await waitFor('some load', () => started.ok() > 50);
    }

    // `npm install` of the new version replaces the files under the running daemon.
    fs.rmSync(path.join(installed, 'dist'), { recursive: true });
    fs.cpSync(nextDist, path.join(installed, 'dist'), { recursive: true });
    // The CLI of the installed (new) version asks for the upgrade.
    const r = await cli(['restart', '--upgrade', '--ipc-file', app.ipcFile], { env, bin });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`handing its workers over to ${NEXT_VERSION}`));
    assert.match(r.stdout, new RegExp(`runs nodesockd ${NEXT_VERSION} and serves with 2 adopted worker`));
    assert.match(r.stdout, /generation \d+ serving/);

    const { ok, failed } = (await load?.stop()) ?? { ok: 0, failed: [] };
    const s = JSON.parse((await cli(['status', '--json', '--ipc-file', app.ipcFile])).stdout) as {
      version: string;
      pid: number;
      workers: { pid: number; slot: number | null }[];
    };
    assert.equal(s.version, NEXT_VERSION);
    assert.notEqual(s.pid, oldStatus.pid);
    for (const w of s.workers) pids.add(w.pid);
    await old.exited;
    const now = s.workers.filter((w) => w.slot !== null).map((w) => w.pid);
    assert.equal(now.length, 2);
    assert.ok(
      now.every((pid) => !oldPids.includes(pid)),
      'the adopted workers were replaced',
    );
    await waitFor('the old workers to exit', () => oldPids.every((pid) => !isAlive(pid)));
    for (const slot of [0, 1]) await getJson({ socketPath: app.published(slot) });
    assert.deepEqual(failed, [], `${failed.length} failed of ${ok + failed.length}`);
    // `nodesockd ls` lists the app once: the new daemon.
    const listed = JSON.parse((await cli(['ls', '--json'], { env, bin })).stdout) as LsEntry[];
    assert.deepEqual(
      listed.filter((d) => d.ipcFile === app.ipcFile).map((d) => [d.pid, d.version]),
      [[s.pid, NEXT_VERSION]],
    );
  });

  test('under a supervisor like the systemd unit, the daemon exits and its restart adopts the workers', async () => {
    const installed = path.join(work, 'supervised');
    fs.mkdirSync(installed);
    const bin = install(installed);
    const unitApp = makeApp({ workers: 2 }, 'lib.js');
    const supervisor = spawn(
      process.execPath,
      [
        path.join(ROOT, 'test/fixtures/apps/restart-always.js'),
        process.execPath,
        bin,
        'daemon',
        '-c',
        unitApp.configFile,
      ],
      { stdio: 'ignore' },
    );
    const seen = new Set<number>();
    const status = async () => {
      const r = await cli(['status', '--json', '--ipc-file', unitApp.ipcFile]);
      if (r.code !== 0) return undefined;
      const s = JSON.parse(r.stdout) as {
        version: string;
        pid: number;
        workers: { pid: number; slot: number | null }[];
      };
      for (const w of s.workers) seen.add(w.pid);
      return s;
    };
    try {
      const before = await waitFor('the supervised daemon', async () => {
        const s = await status();
        return s && s.workers.filter((w) => w.slot !== null).length === 2 ? s : undefined;
      });
      fs.rmSync(path.join(installed, 'dist'), { recursive: true });
      fs.cpSync(nextDist, path.join(installed, 'dist'), { recursive: true });
      const r = await cli(['restart', '--upgrade', '--ipc-file', unitApp.ipcFile], { bin });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /serves with 2 adopted worker/);
      const after = await status();
      assert.equal(after?.version, NEXT_VERSION);
      assert.notEqual(after?.pid, before.pid);
      assert.equal(supervisor.exitCode, null, 'the supervisor restarted the daemon, it did not give up');
      const oldPids = before.workers.map((w) => w.pid);
      const serving = after!.workers.filter((w) => w.slot !== null);
      assert.equal(serving.length, 2);
      assert.ok(
        serving.every((w) => !oldPids.includes(w.pid)),
        'the adopted workers were replaced',
      );
    } finally {
      const exited = new Promise((resolve) => supervisor.once('exit', resolve));
      if (supervisor.exitCode === null) supervisor.kill('SIGTERM');
      await exited;
      killAll([...seen].filter(isAlive));
      fs.rmSync(unitApp.dir, { recursive: true, force: true, maxRetries: 5 });
    }
  });
  test("a kept-alive connection to an adopted worker closes the old way at the upgrade's restart, and the next one reaches the new release", async () => {
    const installed = path.join(work, 'keepalive');
    fs.mkdirSync(installed);
    const bin = install(installed);
    const kept = makeApp({ workers: 1, upstreamKeepaliveTimeout: 60_000 }, 'lib.js');
    const env = { ...process.env };
    delete env.NODESOCKD_SUPERVISED;
    const old = await Daemon.start(['daemon', '-c', kept.configFile], kept.ipcFile, { online: 1, bin, env });
    const seen = new Set<number>();
    let upgraded: number | undefined;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    /** One request on the agent's one connection: who answered, its Connection header, which connection. */
    const ask = async () => {
      const a = await getOn<{ pid: number }>(http.request, agent, kept.published(0));
      return { pid: a.body.pid, connection: a.headers.connection, socket: a.socket };
    };
    try {
      const first = await ask();
      seen.add(first.pid);
      fs.rmSync(path.join(installed, 'dist'), { recursive: true });
      fs.cpSync(nextDist, path.join(installed, 'dist'), { recursive: true });
      const r = await cli(['restart', '--upgrade', '--ipc-file', kept.ipcFile], { env, bin });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /serves with 1 adopted worker/);
      assert.doesNotMatch(r.stdout, /[1-9]\d* moved to the new workers/, 'nothing moved');
      const s = JSON.parse((await cli(['status', '--json', '--ipc-file', kept.ipcFile])).stdout) as {
        pid: number;
        workers: { pid: number; slot: number | null }[];
      };
      upgraded = s.pid;
      for (const w of s.workers) seen.add(w.pid);
      const fresh = s.workers.find((w) => w.slot === 0)?.pid;
      assert.notEqual(fresh, first.pid);
      const next = await ask();
      assert.equal(next.socket, first.socket, 'the same connection');
      assert.equal(next.pid, first.pid, 'answered by the adopted worker');
      assert.equal(next.connection, 'close', 'which closes it');
      const after = await ask();
      assert.notEqual(after.socket, first.socket, 'a new connection');
      assert.equal(after.pid, fresh, 'reaches the new release');
      await waitFor('the adopted worker to exit', () => !isAlive(first.pid));
      await old.exited;
    } finally {
      agent.destroy();
      if (upgraded !== undefined) {
        process.kill(upgraded, 'SIGTERM');
        await waitFor('the upgraded daemon to exit', () => !isAlive(upgraded as number));
      } else await old.stop();
      killAll([...seen].filter(isAlive));
      fs.rmSync(kept.dir, { recursive: true, force: true, maxRetries: 5 });
    }
  });

  /** Starts a daemon of the installed version, installs the next one, spoils the start with `spoil`: the upgrade must be refused. */
  const refusedUpgrade = async (
    name: string,
    config: Record<string, unknown>,
    spoil: (app: AppDir) => void,
    why: RegExp,
  ) => {
    const installed = path.join(work, name);
    fs.mkdirSync(installed);
    const bin = install(installed);
    const badApp = makeApp(config, 'lib.js');
    const d = await Daemon.start(['daemon', '-c', badApp.configFile], badApp.ipcFile, { bin });
    const seen = new Set<number>();
    try {
      const before = await d.status();
      for (const w of before.workers) seen.add(w.pid!);
      fs.rmSync(path.join(installed, 'dist'), { recursive: true });
      fs.cpSync(nextDist, path.join(installed, 'dist'), { recursive: true });
      spoil(badApp);
      const r = await cli(['restart', '--upgrade', '--ipc-file', badApp.ipcFile], { bin });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, why);
      const after = await d.status();
      assert.equal(after.pid, before.pid, 'the same daemon');
      assert.deepEqual(
        await d.slotPids(),
        before.workers.filter((w) => w.slot !== null).map((w) => w.pid),
      );
    } finally {
      await d.stop();
      killAll([...seen].filter(isAlive));
      fs.rmSync(badApp.dir, { recursive: true, force: true, maxRetries: 5 });
    }
  };

  test('with a config the new version cannot load, the upgrade is refused and the old daemon keeps its workers', () =>
    refusedUpgrade(
      'badconfig',
      { workers: 1 },
      (a) => fs.appendFileSync(a.configFile, 'workerz: 3\n'),
      /cannot start with this daemon's config.*workerz/,
    ));

  test('with a TLS key that does not match its certificate, the upgrade is refused and the old daemon keeps its workers', () =>
    refusedUpgrade(
      'badkey',
      {
        workers: 1,
        listen: [
          {
            host: '127.0.0.1',
            port: 0,
            tls: { key: path.join(work, 'a.key'), cert: path.join(work, 'a.crt') },
          },
        ],
      },
      () => fs.copyFileSync(path.join(work, 'b.key'), path.join(work, 'a.key')),
      /cannot start with this daemon's config.*does not match/,
    ));
});
