/**
 * What the preload does for apps that never call serve(): their own server.close() drains
 * nginx-safely once the daemon asks them to stop, a SIGTERM they do not handle drains too, and
 * every worker reconnects to the next daemon so that adopted workers drain in moments.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { cli, Daemon, isAlive, killAll, makeTempDir } from './helpers/daemon';
import { getJson } from './helpers/http';
import { startLoad } from './helpers/load';
import { KEEPALIVE_SECONDS, NGINX_BIN, Nginx, prepareSocketDir } from './helpers/nginx';
import { waitFor } from './helpers/wait';

const skipNginx = NGINX_BIN
  ? false
  : 'nginx is not installed (npm test installs it when run as root on Debian)';

let daemons: Daemon[] = [];
let app: AppDir;
let nginx: Nginx | undefined;
const strays = new Set<number>();

afterEach(async () => {
  await nginx?.stop();
  nginx = undefined;
  const last = daemons.pop();
  for (const d of daemons) await d.kill();
  daemons = [];
  await teardown(last, app);
  killAll([...strays].filter(isAlive));
  strays.clear();
});

async function startDaemon(online: number, env?: NodeJS.ProcessEnv): Promise<Daemon> {
  const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, {
    online,
    ...(env ? { env: { ...process.env, ...env } } : {}),
  });
  daemons.push(d);
  return d;
}

/** One HTTP/1.1 exchange on an open connection; resolves with the response head and body. */
function exchange(socket: net.Socket, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const head = text.indexOf('\r\n\r\n');
      if (head < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, head))?.[1] ?? 0);
      if (text.length >= head + 4 + length) {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve(text);
      }
    };
    const onClose = () => reject(new Error(`connection closed before a response: ${JSON.stringify(text)}`));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(request);
  });
}

const GET = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';

describe('the nginx-safe drain of an app that does not use serve()', { skip: skipNginx }, () => {
  for (const maxFails of [0, null] as const) {
    const upstream = maxFails === null ? "the original docs' upstream block (no max_fails)" : 'max_fails=0';
    test(`the original README app, unmodified, fails no request across restarts under GET+POST load (${upstream})`, async () => {
      app = makeApp({ workers: 2, upstreamKeepaliveTimeout: KEEPALIVE_SECONDS * 1000 }, 'readme-app.js');
      prepareSocketDir(app.tmpDir);
      const d = await startDaemon(2);
      nginx = await Nginx.start(path.join(app.dir, 'nginx'), [app.published(0), app.published(1)], {
        maxFails,
      });
      const load = startLoad(nginx.port);
      await waitFor('some load', () => load.ok() > 20);
      const codes: number[] = [];
      for (let i = 0; i < 3; i++) {
        const before = await d.slotPids();
        codes.push((await d.cli(['restart'])).code);
        // The next restart only once these old workers are gone: each restart drains fully.
        await waitFor('the old workers to exit', () => before.every((pid) => !isAlive(pid)), {
          timeoutMs: 30_000,
        });
      }
      const { ok, failed } = await load.stop();
      assert.deepEqual(codes, [0, 0, 0]);
      assert.deepEqual(failed, [], `${failed.length} failed of ${ok + failed.length}\n${nginx.errorLog()}`);
      assert.ok(ok > 0);
    });
  }

  test('after a daemon SIGKILL, restart drains the adopted workers within moments and fails no request', async () => {
    app = makeApp({ workers: 2, upstreamKeepaliveTimeout: KEEPALIVE_SECONDS * 1000 }, 'readme-app.js');
    prepareSocketDir(app.tmpDir);
    const first = await startDaemon(2);
    const old = await first.slotPids();
    for (const pid of old) strays.add(pid);
    nginx = await Nginx.start(path.join(app.dir, 'nginx'), [app.published(0), app.published(1)]);
    const load = startLoad(nginx.port);
    await waitFor('some load', () => load.ok() > 20);
    await first.kill();
    const second = await startDaemon(2);
    await waitFor(
      'both adopted workers to reconnect',
      () => (second.output.match(/reconnected/g) ?? []).length >= 2,
    );
    const r = await second.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    // shutdownTimeout is 90 s: an adopted worker that did not get 'shutdown' would be there for that long.
    await waitFor('the adopted workers to exit', () => old.every((pid) => !isAlive(pid)), {
      timeoutMs: 30_000,
    });
    assert.doesNotMatch(second.output, /sending SIGTERM/);
    const { ok, failed } = await load.stop();
    assert.deepEqual(failed, [], `${failed.length} failed of ${ok + failed.length}\n${nginx.errorLog()}`);
  });
});

describe('the preload without nginx', () => {
  test('handover: false: a kept-alive connection gets its next request answered with Connection: close during the drain', async () => {
    app = makeApp(
      { workers: 1, upstreamKeepaliveTimeout: 30_000, handover: false, stopIdleTimeout: 30_000 },
      'readme-app.js',
    );
    const d = await startDaemon(1);
    const [pid] = await d.slotPids();
    const socket = net.connect(app.published(0));
    await new Promise((resolve) => socket.once('connect', resolve));
    assert.match(await exchange(socket, GET), /connection: keep-alive/i);
    assert.equal((await d.cli(['restart'])).code, 0);
    await waitFor('the old worker to drain', async () =>
      (await d.status()).workers.some((w) => w.pid === pid && w.state === 'draining'),
    );
    const answer = await exchange(socket, GET);
    assert.match(answer, /^HTTP\/1\.1 200/);
    assert.match(answer, /connection: close/i);
    assert.match(answer, new RegExp(`"pid":${pid}`));
    socket.destroy();
    await waitFor('the old worker to exit', () => !isAlive(pid!));
  });

  test('an app with no library and no shutdown handler, stopped by SIGTERM, finishes its in-flight request', async () => {
    const flags = makeTempDir();
    const hang = path.join(flags, 'hang');
    fs.writeFileSync(hang, '');
    app = makeApp({ workers: 1, readiness: 'connect', env: ['HANG_IF_EXISTS'] }, 'plain.js');
    const d = await startDaemon(1, { HANG_IF_EXISTS: hang });
    const [pid] = await d.slotPids();
    const slow = getJson<{ pid: number; slow: boolean }>(
      { socketPath: fs.realpathSync(app.published(0)) },
      '/slow?ms=1500',
    );
    await d.waitOutput(new RegExp(`slow request started on ${pid}`));
    assert.equal((await d.cli(['restart'])).code, 0);
    const reply = await slow;
    assert.deepEqual(reply, { pid, slow: true });
    await waitFor('the old worker to exit', () => !isAlive(pid!));
    assert.doesNotMatch(d.output, /sending SIGKILL/);
    fs.rmSync(flags, { recursive: true, force: true });
  });

  test("before any shutdown, the app's own server.close() is Node's: idle connections close at once", async () => {
    app = makeApp({ workers: 1, upstreamKeepaliveTimeout: 30_000 }, 'readme-app.js');
    const d = await startDaemon(1);
    const idle = net.connect(app.published(0));
    await new Promise((resolve) => idle.once('connect', resolve));
    await exchange(idle, GET);
    const closed = new Promise((resolve) => idle.once('close', resolve));
    const other = net.connect(app.published(0));
    await new Promise((resolve) => other.once('connect', resolve));
    await exchange(other, 'GET /close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await closed;
    await d.waitOutput(/closed by the app/);
  });
});

describe('with the drain turned off (preload: { drain: false })', () => {
  test("close() after 'shutdown' is Node's: an idle kept-alive connection is closed at once", async () => {
    app = makeApp(
      { workers: 1, upstreamKeepaliveTimeout: 60_000, preload: { drain: false } },
      'readme-app.js',
    );
    const d = await startDaemon(1);
    const [pid] = await d.slotPids();
    const socket = net.connect(app.published(0));
    await new Promise((resolve) => socket.once('connect', resolve));
    await exchange(socket, GET);
    let closed = false;
    socket.once('close', () => {
      closed = true;
    });
    assert.equal((await d.cli(['restart'])).code, 0);
    // With the drain, this idle connection would keep the old worker for up to 61 s (nginx's to close).
    await waitFor('the old worker to exit', () => !isAlive(pid!));
    await waitFor('the idle connection to be closed by the worker', () => closed);
  });
});

describe('the preload key', () => {
  test('a bad preload value is one line naming the key', async () => {
    app = makeApp({ workers: 1, preload: { drian: false } }, 'readme-app.js');
    const r = await cli(['config', '--local', '-c', app.configFile]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /preload/);
  });
});
