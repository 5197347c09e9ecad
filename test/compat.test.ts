/**
 * The original nodesockd's apps under this daemon (docs/migrating.md): its v2 example with its
 * own nodesockd.yml, and its v1 example with a JSON config and v1 flags, through the built CLI
 * and real workers; the documented NodesockdClient snippet.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import type { WorkerResult } from '../src/ipc/protocol';
import type { AppDir } from './helpers/app';
import { teardown } from './helpers/app';
import { cli, Daemon, FIXTURES, makeTempDir } from './helpers/daemon';
import { httpRequest } from './helpers/http';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir | undefined;

afterEach(async () => {
  if (app) await teardown(daemon, app);
  daemon = undefined;
  app = undefined;
});

/** An app dir holding the original v2 example's nodesockd.yml (options: block, debug, free name). */
function v2App(workers = 2, standby = 1): AppDir {
  const dir = makeTempDir('nsd-compat-');
  fs.mkdirSync(path.join(dir, 'tmp'));
  const configFile = path.join(dir, 'nodesockd.yml');
  fs.writeFileSync(
    configFile,
    [
      'name: nodesockd example',
      `script: ${path.join(FIXTURES, 'original-v2-server.js')}`,
      'tmpDir: tmp',
      `workers: ${workers}`,
      `standby: ${standby}`,
      'debug: true',
      'options:',
      '  stdout: app.log',
      '',
    ].join('\n'),
  );
  const tmpDir = path.join(dir, 'tmp');
  return {
    dir,
    tmpDir,
    configFile,
    ipcFile: path.join(tmpDir, 'nodesockd.ipc'),
    published: (slot) => path.join(tmpDir, `app.${slot}.sock`),
  };
}

/** The v2 example under a daemon, started in its directory; with standbys, until one is up. */
async function startV2(workers: number, standby = 0): Promise<Daemon> {
  app = v2App(workers, standby);
  const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, {
    online: workers,
    cwd: app.dir,
  });
  daemon = d;
  if (standby > 0) {
    await waitFor('the standby', async () =>
      (await d.status()).workers.some((w) => w.role === 'standby' && w.state === 'suspended'),
    );
  }
  return d;
}

async function sendReq(d: Daemon, args: string[]): Promise<WorkerResult[]> {
  const r = await d.cli(['send-req', ...args, '--json']);
  assert.ok(r.stdout !== '', `send-req ${args.join(' ')}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { results: WorkerResult[] }).results;
}

describe('the original v2 example', () => {
  test('status with options first, restart -s, a held request, resume, send-msg, terminate', async () => {
    app = v2App(2, 0);
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2, cwd: app.dir });
    const d = daemon;

    // v2 global options before the command, and --ipc.
    const status = await cli(['--ipc', app.ipcFile, 'status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /w[0-9a-f]{8}/);
    const byConfig = await cli(['-c', app.configFile, 'status', '--json'], { cwd: app.dir });
    assert.equal(byConfig.code, 0, byConfig.stderr);

    const restart = await d.cli(['restart', '-s']);
    assert.equal(restart.code, 0, restart.stderr);
    assert.match(restart.stdout, /suspended/);
    let answered = false;
    const held = httpRequest({ socketPath: app.published(0) }).then((res) => {
      answered = true;
      return res;
    });
    // The request reached the suspended worker and waits there: the daemon says it is suspended.
    const s = await d.status();
    assert.ok(s.workers.filter((w) => w.slot !== null).every((w) => w.state === 'suspended'));
    assert.equal(answered, false);
    const resume = await d.cli(['resume']);
    assert.equal(resume.code, 0, resume.stderr);
    const res = await held;
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.body) as { suspended: boolean }).suspended, false);

    const msg = await d.cli(['send-msg', 'hello', '{"k":"v"}']);
    assert.equal(msg.code, 0, msg.stderr);
    const got = await sendReq(d, ['messages']);
    for (const r of got) assert.deepEqual(r.ok && r.data, [{ message: 'hello', data: { k: 'v' } }]);

    // The worker titles come from the free-form name.
    for (const r of await sendReq(d, ['title'])) {
      assert.ok(r.ok);
      assert.equal(r.data, `nodesockd example worker '${r.id}'`);
    }
    // The options: block's stdout file got the workers' output.
    await waitFor('app.log output', () =>
      fs.readFileSync(path.join(app!.dir, 'app.log'), 'utf8').includes('reported online'),
    );

    const pid = d.child.pid;
    const term = await d.cli(['terminate']);
    assert.equal(term.code, 0, term.stderr);
    assert.deepEqual(await d.exited, { code: 0, signal: null });
    assert.ok(pid);
  });

  test('streamed replies: one line per item per worker; an error ends a stream with what came', async () => {
    app = v2App(2, 0);
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2, cwd: app.dir });
    const results = await sendReq(daemon, ['stream3', '{"q":1}']);
    assert.equal(results.length, 2);
    for (const r of results) {
      assert.ok(r.ok);
      assert.deepEqual(
        r.items,
        [1, 2, 3].map((reply) => ({ reply, pid: r.pid, data: { q: 1 } })),
      );
    }
    const human = await daemon.cli(['send-req', 'stream3']);
    assert.equal(human.code, 0, human.stderr);
    assert.equal(human.stdout.trimEnd().split('\n').length, 6, human.stdout);
    const failed = await sendReq(daemon, ['stream-fail', '-w', '0']);
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.ok, false);
    assert.deepEqual(failed[0]!.items, ['first']);
    assert.match(!failed[0]!.ok ? failed[0]!.error : '', /stream broke/);
    // One deadline for a worker's whole answer: a stream that never ends is an error with its items.
    const [hung] = await sendReq(daemon!, ['stream-hang', '-w', '1', '--timeout', '300']);
    assert.ok(hung && !hung.ok);
    assert.deepEqual(hung.items, ['before the hang']);
    assert.match(hung.error, /the streamed reply did not end within 300 ms/);
  });

  test("a worker's messages and requests to '!self' reach every other worker, the standby too", async () => {
    const d = await startV2(2, 1);
    const all = (await d.status()).workers.map((w) => w.pid!);
    const [sent] = await sendReq(d, ['tell-others', '{"n":1}', '-w', '0']);
    assert.ok(sent?.ok);
    const others = all.filter((p) => p !== sent.pid).sort();
    assert.deepEqual([...(sent.data as number[])].sort(), others);
    const seen = await sendReq(d, ['messages', '-w', 'every']);
    for (const r of seen) {
      assert.ok(r.ok);
      const expect: unknown[] =
        r.pid === sent.pid ? [] : [{ message: 'from-worker', data: { from: sent.pid, n: 1 } }];
      assert.deepEqual(r.data, expect, `worker ${r.pid}`);
    }
    const [asked] = await sendReq(d, ['ask-others', '-w', '1']);
    assert.ok(asked?.ok);
    const pidsAnswered = (asked.data as { pid: number }[]).map((x) => x.pid).sort();
    assert.deepEqual(pidsAnswered, all.filter((p) => p !== asked.pid).sort());
    // self from the CLI is a clear error.
    const self = await d.cli(['send-msg', 'x', '-w', 'self']);
    assert.equal(self.code, 1);
    assert.match(self.stderr, /self is the sending worker; only a worker can use it/);
  });

  test('each selector form from the CLI', async () => {
    const d = await startV2(3, 1);
    const st = await d.status();
    const slot = (n: number) => st.workers.find((w) => w.slot === n && w.role === 'serving')!;
    const standby = st.workers.find((w) => w.role === 'standby')!;
    const reached = async (sel: string) =>
      (await sendReq(d, ['echo', '-w', sel])).map((r) => r.pid).sort((a, b) => a! - b!);
    const pidsOf = (...ws: { pid: number | null }[]) => ws.map((w) => w.pid).sort((a, b) => a! - b!);
    assert.deepEqual(await reached('-1'), pidsOf(slot(0), slot(1)));
    assert.deepEqual(await reached('1-'), pidsOf(slot(1), slot(2)));
    assert.deepEqual(await reached('!0'), pidsOf(slot(1), slot(2)));
    assert.deepEqual(await reached(`$${standby.pid}`), pidsOf(standby));
    assert.deepEqual(await reached(`!$${standby.pid}`), pidsOf(slot(0), slot(1), slot(2)));
    assert.deepEqual(await reached(slot(2).id), pidsOf(slot(2)));
    assert.deepEqual(await reached('0,2'), pidsOf(slot(0), slot(2)));
  });

  test('restart --upgrade with nothing to upgrade re-reads the config, then restarts', async () => {
    app = v2App(1, 0);
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1, cwd: app.dir });
    fs.writeFileSync(
      app.configFile,
      fs.readFileSync(app.configFile, 'utf8').replace('workers: 1', 'workers: 2'),
    );
    const r = await daemon.cli(['restart', '--upgrade']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no upgrade needed/);
    assert.match(r.stdout, /reloaded:/);
    assert.equal((await daemon.status()).workers.filter((w) => w.role === 'serving').length, 2);
  });
});

describe('the original v1 example', () => {
  test('JSON config and v1 flags; isSuspended, getWorkerId, send <msg>, restart() and process.send("restart")', async () => {
    const dir = makeTempDir('nsd-v1-');
    fs.mkdirSync(path.join(dir, 'tmp'));
    const configFile = path.join(dir, 'server.config.json');
    fs.writeFileSync(configFile, JSON.stringify({ script: path.join(FIXTURES, 'original-v1-server.js') }));
    const ipcFile = path.join(dir, 'tmp', 'ctl.ipc');
    app = {
      dir,
      tmpDir: path.join(dir, 'tmp'),
      configFile,
      ipcFile,
      published: (n) => path.join(dir, 'tmp', `my.${n}.sock`),
    };
    daemon = await Daemon.start(
      ['daemon', '-c', configFile, '-t', 'tmp', '-w', '2', '-o', 'my.{worker}.sock', '-i', 'ctl.ipc'],
      ipcFile,
      { online: 2, cwd: dir },
    );
    const d = daemon;
    const get = async (slot: number) =>
      JSON.parse((await httpRequest({ socketPath: app!.published(slot) })).body) as {
        pid: number;
        worker: number;
        suspended: boolean;
        raw: string[];
      };
    assert.equal((await get(0)).worker, 0);
    assert.equal((await get(1)).worker, 1);
    assert.equal((await get(0)).suspended, false);

    const sent = await d.cli(['send', 'hello']);
    assert.equal(sent.code, 0, sent.stderr);
    await waitFor(
      'raw message',
      async () => (await get(0)).raw.includes('hello') && (await get(1)).raw.includes('hello'),
    );
    const reserved = await d.cli(['send', 'shutdown']);
    assert.equal(reserved.code, 1);
    assert.match(reserved.stderr, /the daemon's own word/);

    // restart -s (v2 meaning), isSuspended() in the new workers.
    const r = await d.cli(['restart', '-s']);
    assert.equal(r.code, 0, r.stderr);
    const states = (await d.status()).workers.filter((w) => w.role === 'serving').map((w) => w.state);
    assert.deepEqual(states, ['suspended', 'suspended']);
    const held = get(0);
    assert.equal((await d.cli(['resume'])).code, 0);
    assert.equal((await held).suspended, false);

    for (const route of ['/restart', '/restart-raw']) {
      const before = await d.slotPids();
      await httpRequest({ socketPath: app.published(0) }, { path: route });
      await waitFor(`a restart after ${route}`, async () => {
        const after = await d.slotPids();
        return after.length === 2 && after.every((p) => !before.includes(p));
      });
    }
  });
});

describe('nodesockd/client', () => {
  test('the documented snippet: run, getStatus, sendAppRequest, terminate; a failed connection', async () => {
    const { NodesockdClient, IpcConnectionError } = await import('../src/client/index.js');
    app = v2App(2, 0);
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2, cwd: app.dir });
    const client = new NodesockdClient(app.ipcFile);
    await client.run();
    const status = await client.getStatus();
    assert.equal(status.workers.filter((w: { role: string }) => w.role === 'serving').length, 2);
    const replies = [];
    for await (const reply of client.sendAppRequest('stream3', { q: 2 })) replies.push(reply);
    assert.equal(replies.length, 6);
    assert.ok(replies.every((r) => r.ok));
    const sent = await client.sendAppMessage('hi', { a: 1 }, '1');
    assert.equal(sent.sent.length, 1);
    assert.equal((await client.setWorkerCount(3)).workers, 3);
    await client.stopWorkers();
    await client.startWorkers(true);
    assert.ok((await client.resumeWorkers()).resumed >= 1);
    const restarted = await client.restartWorkers();
    assert.equal(restarted.workers.length, 3);
    assert.equal((await client.setStandbyCount(1)).standby, 1);
    // reloadConfig and restartWorkers(…, upgrade) re-read the file: workers: 2 again.
    assert.ok((await client.reloadConfig()).actions.length > 0);
    fs.writeFileSync(
      app.configFile,
      fs.readFileSync(app.configFile, 'utf8').replace('workers: 2', 'workers: 1'),
    );
    const upgraded = await client.restartWorkers(false, undefined, true);
    assert.equal(upgraded.workers.length, 1);
    assert.ok((await client.getConfig()).files.length >= 1);
    const pid = await client.terminateDaemon();
    assert.equal(pid, daemon.child.pid);
    await daemon.exited;
    await client.terminate();

    const gone = new NodesockdClient(path.join(app.tmpDir, 'nothing.ipc'));
    await assert.rejects(gone.run(), IpcConnectionError);
  });
});
