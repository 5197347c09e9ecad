/**
 * App messaging (docs/cli.md#send-msg-and-send-req) end to end: the real CLI, a real daemon and real workers running the
 * built library (`test/fixtures/apps/messaging.js`), or a plain app without it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { afterEach, describe, test } from 'node:test';
import type { SendMessageReply, SendRequestReply, WorkerResult } from '../src/ipc/protocol';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { type CliResult, Daemon, isAlive, killAll, ROOT } from './helpers/daemon';
import { getJson } from './helpers/http';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;
/** Workers of a daemon the test killed: the next daemon adopts them, or they are killed here. */
const orphans = new Set<number>();

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
  killAll([...orphans].filter(isAlive));
  orphans.clear();
});

async function start(config: Record<string, unknown>, fixture = 'messaging.js'): Promise<Daemon> {
  app = makeApp(config, fixture);
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, {
    online: config.workers as number,
  });
  return daemon;
}

/** Runs `send-req … --json`; returns the exit code and the results. */
async function sendReq(d: Daemon, args: string[]): Promise<{ r: CliResult; results: WorkerResult[] }> {
  const r = await d.cli(['send-req', ...args, '--json']);
  assert.ok(r.stdout !== '', `send-req ${args.join(' ')} printed nothing: ${r.stderr}`);
  return { r, results: (JSON.parse(r.stdout) as SendRequestReply).results };
}

/** The one error line a failed command prints, with no stack trace. */
function errorLine(r: CliResult): string {
  assert.equal(r.code, 1, `expected a failure, got ${r.code}: ${r.stdout}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  return lines[0]!;
}

/** One request frame written to the control socket as it is; resolves with the first reply. */
function rawRequest(ipcFile: string, frame: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let got = '';
    const socket = net.connect(ipcFile, () => socket.write(`${frame}\n`));
    socket.on('data', (chunk: Buffer) => {
      got += chunk.toString();
      if (got.includes('\n')) {
        socket.destroy();
        resolve(JSON.parse(got.slice(0, got.indexOf('\n'))));
      }
    });
    socket.on('error', reject);
  });
}

const byRole = async (d: Daemon, role: string) => (await d.status()).workers.filter((w) => w.role === role);

describe('app messaging', () => {
  test('send-msg reaches every serving worker; send-req answers per worker with slot and pid', async () => {
    const d = await start({ workers: 2, standby: 1 });
    const [standby] = await waitFor('a standby online', async () => {
      const s = await byRole(d, 'standby');
      return s.length === 1 && s[0]!.state === 'suspended' ? s : undefined;
    });
    const pids = await d.slotPids();

    const sent = await d.cli(['send-msg', 'hello', '{"n":1,"list":["a",null]}']);
    assert.equal(sent.code, 0, sent.stderr);
    assert.match(sent.stdout, /^sent to 2 worker\(s\):\n {2}slot 0 {2}w[0-9a-f]{8} {2}\d+\n {2}slot 1 /);
    const second = await d.cli(['send-msg', 'second', '--json']);
    assert.equal(second.code, 0, second.stderr);
    const reply = JSON.parse(second.stdout) as SendMessageReply;
    assert.deepEqual(
      reply.sent.map((w) => [w.slot, w.pid, w.role]),
      [
        [0, pids[0], 'serving'],
        [1, pids[1], 'serving'],
      ],
    );
    assert.deepEqual(reply.failed, []);

    // IPC keeps order per worker: the messages are handled before this request.
    const { r, results } = await sendReq(d, ['messages']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      results.map((x) => [x.slot, x.pid, x.ok]),
      [
        [0, pids[0], true],
        [1, pids[1], true],
      ],
    );
    for (const x of results) {
      assert.deepEqual(x.ok && x.data, [
        { name: 'hello', data: { n: 1, list: ['a', null] } },
        { name: 'second' },
      ]);
    }
    // The standby got none of it (`all` is the serving workers).
    const spare = await sendReq(d, ['messages', '-w', 'standby']);
    assert.equal(spare.r.code, 0, spare.r.stderr);
    assert.deepEqual(spare.results, [
      { id: standby!.id, slot: null, pid: standby!.pid, role: 'standby', ok: true, data: [] },
    ]);

    // The human form: one line per worker with the reply's JSON.
    const human = await d.cli(['send-req', 'whoami']);
    assert.equal(human.code, 0, human.stderr);
    const lines = human.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    for (const [slot, line] of lines.entries()) {
      const m = /^slot (\d) {2}(w[0-9a-f]{8}) {2}(\d+) {2}ok (.*)$/.exec(line);
      assert.ok(m, line);
      assert.equal(Number(m[1]), slot);
      assert.equal(Number(m[3]), pids[slot]);
      assert.deepEqual(JSON.parse(m[4]!), { pid: pids[slot], id: m[2] });
    }
    const every = await sendReq(d, ['whoami', '-w', 'every']);
    assert.deepEqual(
      every.results.map((x) => x.role),
      ['serving', 'serving', 'standby'],
    );
  });

  test('selectors pick workers; an invalid or empty selection is one clear error', async () => {
    const d = await start({ workers: 3 });
    const s = await d.status();
    const slotWorker = (slot: number) => s.workers.find((w) => w.slot === slot)!;
    const pick = async (selector: string) => {
      const { r, results } = await sendReq(d, ['whoami', '-w', selector]);
      assert.equal(r.code, 0, r.stderr);
      return results.map((x) => x.slot);
    };
    assert.deepEqual(await pick('1'), [1]);
    assert.deepEqual(await pick('0,2'), [0, 2]);
    assert.deepEqual(await pick('1-2'), [1, 2]);
    assert.deepEqual(await pick(' 2 , 0-1 ,1'), [0, 1, 2]);
    assert.deepEqual(await pick(`id:${slotWorker(2).id}`), [2]);
    assert.deepEqual(await pick(`pid:${slotWorker(1).pid}`), [1]);
    assert.deepEqual(await pick('ALL'), [0, 1, 2]);
    const one = await sendReq(d, ['whoami', '-w', '1']);
    assert.equal(one.results[0]!.pid, slotWorker(1).pid);
    assert.deepEqual(one.results[0]!.ok && one.results[0]!.data, {
      pid: slotWorker(1).pid,
      id: slotWorker(1).id,
    });

    const fails = async (args: string[], pattern: RegExp) => {
      const r = await d.cli(args);
      assert.match(errorLine(r), pattern);
    };
    await fails(
      ['send-req', 'whoami', '-w', '0,x'],
      /^nodesockd: invalid worker selector "0,x": "x" is not a part; use all .*, a pid \(\$4242 or pid:4242\)/,
    );
    await fails(['send-msg', 'hi', '-w', '2-1'], /"2-1" is a range from high to low; write 1-2/);
    await fails(['send-msg', 'hi', '-w', '0,,1'], /an empty part/);
    await fails(['send-msg', 'hi', '-w', ''], /invalid worker selector "": it is empty/);
    await fails(['send-msg', 'hi', '-w', '!'], /! needs a part after it/);
    await fails(['send-msg', 'hi', '-w', 'pid:abc'], /"pid:abc": expected pid:<process id>/);
    await fails(
      ['send-req', 'whoami', '-w', '0,7'],
      /^nodesockd: worker selector in "0,7": 7 matches no worker \(serving slots: 0, 1, 2\)$/,
    );
    await fails(['send-req', 'whoami', '-w', 'standby'], /standby matches no worker/);
    await fails(['send-req', 'whoami', '-w', 'pid:1'], /pid:1 matches no worker/);
    // The data argument must be JSON (any JSON value).
    await fails(
      ['send-msg', 'hi', '{bad'],
      /^nodesockd: the json argument is not valid JSON \(.*\); a string must be quoted/,
    );
    await fails(['send-req', 'hi', 'text'], /the json argument is not valid JSON/);
    const timeout = await d.cli(['send-req', 'hi', '--timeout', '0']);
    assert.equal(timeout.code, 1);
    assert.match(timeout.stderr, /--timeout <ms>.*must be a whole number of milliseconds from 1 to 300000/);
    for (const json of ['"text"', '42', 'null', '[1,{"a":true}]']) {
      const { r, results } = await sendReq(d, ['echo', json, '-w', '0']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(results[0]!.ok && results[0]!.data, JSON.parse(json));
    }
    // Nothing above was sent anywhere, and nothing disturbed the daemon.
    const { results } = await sendReq(d, ['messages']);
    assert.deepEqual(
      results.map((x) => x.ok && x.data),
      [[], [], []],
    );
    assert.deepEqual(
      await d.slotPids(),
      [0, 1, 2].map((i) => slotWorker(i).pid),
    );
  });

  test('data nested too deeply to send: one error saying so, not a closed channel per worker', async () => {
    const d = await start({ workers: 2 });
    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    assert.match(
      errorLine(await d.cli(['send-msg', 'hi', deep])),
      /^nodesockd: the json argument cannot be sent \(Maximum call stack size exceeded\): it is nested too deeply$/,
    );
    // Another client of the control socket gets the daemon's word for it, for both commands.
    for (const type of ['send-msg', 'send-req']) {
      const reply = await rawRequest(
        app.ipcFile,
        `{"id":1,"type":"${type}","data":{"name":"hi","data":${deep}}}`,
      );
      assert.deepEqual(reply, {
        id: 1,
        ok: false,
        error:
          'the data cannot be sent to a worker: Maximum call stack size exceeded (it is nested too deeply)',
      });
    }
    // Nothing arrived, and the channels are fine: the next message reaches both workers.
    assert.deepEqual(
      (await sendReq(d, ['messages'])).results.map((x) => x.ok && x.data),
      [[], []],
    );
    const sent = await d.cli(['send-msg', 'hi', '{"a":1}', '--json']);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal((JSON.parse(sent.stdout) as SendMessageReply).sent.length, 2);
  });

  test('handler errors are per worker and make the exit code 1', async () => {
    const d = await start({ workers: 2 });
    const pids = await d.slotPids();

    const thrown = await d.cli(['send-req', 'throw', JSON.stringify({ pid: pids[1] })]);
    assert.equal(thrown.code, 1);
    assert.match(thrown.stdout, /^slot 0 {2}w[0-9a-f]{8} {2}\d+ {2}ok "fine"\n/);
    assert.match(
      thrown.stdout,
      new RegExp(`\\nslot 1 {2}w[0-9a-f]{8} {2}${pids[1]} {2}error: boom in ${pids[1]}\\n$`),
    );
    assert.equal(thrown.stderr, 'nodesockd: 1 of 2 worker(s) failed\n');

    const json = await sendReq(d, ['throw', JSON.stringify({ pid: pids[0] })]);
    assert.equal(json.r.code, 1);
    assert.deepEqual(
      json.results.map((x) => (x.ok ? x.data : x.error)),
      [`boom in ${pids[0]}`, 'fine'],
    );

    const outcome = async (name: string) =>
      (await sendReq(d, [name])).results.map((x) => (x.ok ? x.data : x.error));
    assert.deepEqual(await outcome('reject'), ['a plain string', 'a plain string']);
    const bigint = await outcome('bigint');
    for (const e of bigint) assert.match(String(e), /^the reply is not JSON-serialisable: /);
    assert.deepEqual(await outcome('nope'), ['unknown request nope', 'unknown request nope']);
    assert.deepEqual(await outcome('async'), [{}, {}]);
    // Malformed replies, replies to unknown requests and foreign messages are dropped.
    assert.deepEqual(await outcome('junk'), ['right', 'right']);

    const nothing = await d.cli(['send-req', 'nothing', '-w', '0']);
    assert.equal(nothing.code, 0, nothing.stderr);
    assert.match(nothing.stdout, /^slot 0 {2}w[0-9a-f]{8} {2}\d+ {2}ok\n$/);
    const nothingJson = await sendReq(d, ['nothing', '-w', '0']);
    assert.equal('data' in nothingJson.results[0]!, false);

    const unset = await sendReq(d, ['unset-handler', '-w', '0']);
    assert.equal(unset.r.code, 0, unset.r.stderr);
    assert.deepEqual(await outcome('whoami'), [
      'no request handler',
      { pid: pids[1], id: (await d.status()).workers.find((w) => w.slot === 1)!.id },
    ]);
    assert.deepEqual(await d.slotPids(), pids, 'no worker was replaced');
  });

  test('a worker that never answers times out alone; the daemon stays up and serves', async () => {
    const d = await start({ workers: 2 });
    const pids = await d.slotPids();
    const hung = await d.cli(['send-req', 'hang', JSON.stringify({ pid: pids[1] }), '--timeout', '500']);
    assert.equal(hung.code, 1);
    assert.match(hung.stdout, /^slot 0 {2}w[0-9a-f]{8} {2}\d+ {2}ok "answered"\n/);
    assert.match(hung.stdout, /\nslot 1 {2}w[0-9a-f]{8} {2}\d+ {2}error: no reply within 500 ms\n$/);
    assert.equal(hung.stderr, 'nodesockd: 1 of 2 worker(s) failed\n');

    assert.equal(d.child.exitCode, null);
    assert.deepEqual(await d.slotPids(), pids);
    for (const slot of [0, 1]) {
      const body = await getJson<{ pid: number }>({ socketPath: app.published(slot) });
      assert.equal(body.pid, pids[slot]);
    }
    const { r, results } = await sendReq(d, ['whoami']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      results.map((x) => x.ok),
      [true, true],
    );
  });

  test('a plain app without the library answers at once that it has no request handler, and keeps serving', async () => {
    const d = await start({ workers: 1 }, 'plain.js');
    const [pid] = await d.slotPids();
    const sent = await d.cli(['send-msg', 'hello', '{"x":1}']);
    assert.equal(sent.code, 0, sent.stderr);
    assert.match(sent.stdout, /^sent to 1 worker\(s\):/);
    const { r, results } = await sendReq(d, ['ping', '--timeout', '500']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'nodesockd: 1 of 1 worker(s) failed\n');
    assert.deepEqual(results, [
      {
        id: results[0]!.id,
        slot: 0,
        pid,
        role: 'serving',
        ok: false,
        // The preload gives every worker the library's side of the protocol.
        error: 'no request handler',
      },
    ]);
    assert.equal((await getJson<{ pid: number }>({ socketPath: app.published(0) })).pid, pid);
    assert.deepEqual(await d.slotPids(), [pid]);
  });

  test("a worker that exits during a request fails with 'worker exited'; the others answer", async () => {
    const d = await start({ workers: 2 });
    const pids = await d.slotPids();
    const { r, results } = await sendReq(d, ['exit', JSON.stringify({ pid: pids[0] })]);
    assert.equal(r.code, 1);
    assert.deepEqual(
      results.map((x) => [x.pid, x.ok ? x.data : x.error]),
      [
        [pids[0], 'worker exited with code 3'],
        [pids[1], 'still here'],
      ],
    );
    await waitFor('the worker to be gone', () => !isAlive(pids[0]!));
    // The crashed slot is replaced as usual, and the new worker answers.
    await waitFor('a replacement in slot 0', async () => {
      const now = await d.slotPids();
      return now.length === 2 && now[0] !== pids[0];
    });
    await waitFor('both workers to answer', async () => {
      const again = await sendReq(d, ['whoami']);
      return again.r.code === 0 && again.results.length === 2;
    });
  });

  test('workers adopted after a daemon crash get messages and answer requests over their new channel', async () => {
    const first = await start({ workers: 2 });
    const pids = await first.slotPids();
    for (const pid of pids) orphans.add(pid);
    await first.kill();
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    const d = daemon;
    assert.deepEqual((await d.slotPids()).sort(), [...pids].sort(), 'the same workers, adopted');
    // The library finds the new daemon on the control socket: the channel is that connection.
    await waitFor('both workers to reconnect', () => (d.output.match(/reconnected/g) ?? []).length === 2);

    const sent = await d.cli(['send-msg', 'after-adoption', '{"n":2}', '--json']);
    assert.equal(sent.code, 0, sent.stderr);
    assert.deepEqual(
      (JSON.parse(sent.stdout) as SendMessageReply).sent.map((w) => w.pid).sort(),
      [...pids].sort(),
    );
    const { r, results } = await sendReq(d, ['messages']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      results.map((x) => [x.pid, x.ok ? x.data : x.error]),
      pids.map((pid) => [pid, [{ name: 'after-adoption', data: { n: 2 } }]]),
    );

    // A request in flight to an adopted worker that dies settles when its death is noticed.
    const died = await sendReq(d, ['exit', JSON.stringify({ pid: pids[0] })]);
    assert.equal(died.r.code, 1);
    assert.deepEqual(
      died.results.map((x) => [x.pid, x.ok ? x.data : x.error]),
      [
        [pids[0], 'worker exited (status unknown)'],
        [pids[1], 'still here'],
      ],
    );
  });

  test('standalone, the messaging API is a harmless no-op', async () => {
    const script = [
      "const { nodesockd } = require('nodesockd');",
      "nodesockd.on('message', () => { throw new Error('never'); });",
      'nodesockd.setRequestHandler(() => 1);',
      'nodesockd.setRequestHandler(null);',
      "let threw = false; try { nodesockd.setRequestHandler('x'); } catch (e) { threw = e instanceof TypeError; }",
      'console.log(JSON.stringify({ managed: nodesockd.managed, threw }));',
    ].join('\n');
    const r = await new Promise<CliResult>((resolve) => {
      execFile(process.execPath, ['-e', script], { cwd: ROOT }, (err, stdout, stderr) =>
        resolve({ code: err ? 1 : 0, stdout, stderr }),
      );
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { managed: false, threw: true });
  });
});
