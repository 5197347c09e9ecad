/**
 * The `listen` front when the daemon itself goes away: SIGKILL (established connections keep
 * working; the next daemon binds at once and relays to the adopted workers), systemd socket
 * activation (connections made while no daemon runs wait in the accept queue), `restart
 * --upgrade` (the listening sockets go to the successor: no connection refused), and sticky
 * routing across restarts.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { matchEntries, takeInheritedSockets } from '../src/fronts/inherited-sockets';
import type { DaemonStatus } from '../src/ipc/protocol';
import { stickySlot } from '../src/net/routing';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { BIN, cli, Daemon, isAlive, killAll, makeTempDir, ROOT } from './helpers/daemon';
import { buildNextVersion, install, NEXT_VERSION } from './helpers/next-version';
import { waitFor } from './helpers/wait';

interface Seen {
  id: string;
  remoteAddress?: string;
  remotePort?: number;
}

interface Answer {
  seen: Seen;
  localPort: number;
}

/** One request on a fresh connection (or on `agent`'s); also returns the client's port. */
function request(
  port: number,
  opts: { agent?: http.Agent; localAddress?: string; method?: string; onConnect?: () => void } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        agent: opts.agent ?? false,
        method: opts.method ?? 'GET',
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${body}`));
          else resolve({ seen: JSON.parse(body) as Seen, localPort: req.socket?.localPort ?? 0 });
        });
      },
    );
    req.on('error', reject);
    const { onConnect } = opts;
    if (onConnect) req.on('socket', (socket: net.Socket) => socket.once('connect', onConnect));
    req.end(opts.method === 'POST' ? 'payload' : undefined);
  });
}

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Clients that each open a new connection for every request (GET and POST), until stopped. */
function connectLoop(port: number, concurrency = 4) {
  let stopped = false;
  let ok = 0;
  const failed: string[] = [];
  const clients = Promise.all(
    Array.from({ length: concurrency }, async (_, n) => {
      for (let i = 0; !stopped; i++) {
        const method = (i + n) % 2 === 0 ? 'POST' : 'GET';
        try {
          await request(port, { method });
          ok++;
        } catch (err) {
          failed.push(`${method} ${(err as Error).message}`);
        }
      }
    }),
  );
  return {
    ok: () => ok,
    async stop() {
      stopped = true;
      await clients;
      return { ok, failed };
    },
  };
}

async function statusOf(ipcFile: string): Promise<DaemonStatus | undefined> {
  const r = await cli(['status', '--json', '--ipc-file', ipcFile]);
  return r.code === 0 ? (JSON.parse(r.stdout) as DaemonStatus) : undefined;
}

function servingIds(s: DaemonStatus): string[] {
  return s.workers.filter((w) => w.slot !== null).map((w) => w.id);
}

function sum(counts: Record<string, number> | undefined): number {
  return Object.values(counts ?? {}).reduce((a, b) => a + b, 0);
}

describe('listen: after a daemon SIGKILL', () => {
  let app: AppDir;
  let daemon: Daemon | undefined;
  const pids = new Set<number>();

  after(async () => {
    if (app) await teardown(daemon, app);
    killAll([...pids].filter(isAlive));
  });

  test('an open keep-alive connection still answers; the next daemon binds the port at once and relays to the adopted workers; restart hands connections again', async (t) => {
    const port = await freePort();
    app = makeApp({ workers: 2, listen: `127.0.0.1:${port}`, shutdownTimeout: 5000 }, 'front.js');
    const first = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
    daemon = first;
    const before = await first.status();
    for (const w of before.workers) pids.add(w.pid!);
    const adoptedIds = servingIds(before);

    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const opened = await request(port, { agent });
    await first.kill();
    const still = await request(port, { agent });
    agent.destroy();
    assert.equal(still.localPort, opened.localPort, 'the same connection');
    assert.equal(still.seen.id, opened.seen.id, 'answered by the same worker, with no daemon');

    const second = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
    daemon = second;
    assert.doesNotMatch(second.output, /EADDRINUSE|cannot listen/);
    const adopted = await second.status();
    assert.deepEqual(adopted.front?.addresses, [`127.0.0.1:${port}`]);
    assert.deepEqual(servingIds(adopted).sort(), [...adoptedIds].sort(), 'the workers were adopted');

    for (let i = 0; i < 20; i++) {
      const { seen } = await request(port, { method: i % 2 ? 'POST' : 'GET' });
      assert.ok(adoptedIds.includes(seen.id), `${seen.id} is an adopted worker`);
      assert.equal(seen.remoteAddress, undefined, 'relayed over the worker socket');
    }
    const relayed = await second.status();
    assert.equal(sum(relayed.front?.relayed), 20);
    assert.equal(sum(relayed.front?.handedOut), 0);
    assert.equal(second.output.match(/relaying connections to adopted worker/g)?.length, 1, second.output);
    const human = await second.cli(['status']);
    assert.match(human.stdout, /relayed to adopted workers: w[0-9a-f]{8} \d+, w[0-9a-f]{8} \d+/);

    const r = await second.cli(['restart'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const restarted = await second.status();
    for (const w of restarted.workers) pids.add(w.pid!);
    for (let i = 0; i < 10; i++) {
      const { seen, localPort } = await request(port);
      assert.ok(!adoptedIds.includes(seen.id), 'served by a worker of the new daemon');
      assert.equal(seen.remotePort, localPort, 'handed over: the app sees the client port');
    }
    assert.equal(sum((await second.status()).front?.handedOut), 10);
    t.diagnostic('20 connections relayed to adopted workers, then 10 handed over after restart');
  });
});

/**
 * Sends `size` bytes on a raw connection, ends its side, and reads until the other side ends:
 * the worker's id (the echo app's first line) and a hash of what came back.
 */
function echo(
  port: number,
  size: number,
): Promise<{ id: string; sent: string; received: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const data = crypto.randomBytes(size);
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(10);
      const body = all.subarray(nl + 1);
      resolve({
        id: all.subarray(0, nl).toString(),
        sent: crypto.createHash('sha256').update(data).digest('hex'),
        received: crypto.createHash('sha256').update(body).digest('hex'),
        bytes: body.length,
      });
    });
    socket.on('connect', () => {
      socket.end(data);
    });
  });
}

describe('listen: relayed bytes after a daemon SIGKILL', () => {
  let app: AppDir | undefined;
  let daemon: Daemon | undefined;
  const pids = new Set<number>();

  after(async () => {
    if (app) await teardown(daemon, app);
    killAll([...pids].filter(isAlive));
  });

  test('16 MiB each way through the relay, intact, with the client ending first (half-close)', async () => {
    const port = await freePort();
    const a = makeApp({ workers: 2, listen: `127.0.0.1:${port}`, shutdownTimeout: 5000 }, 'front-echo.js');
    app = a;
    const first = await Daemon.start(['--config', a.configFile], a.ipcFile, { online: 2 });
    daemon = first;
    for (const w of (await first.status()).workers) pids.add(w.pid!);
    const handed = await echo(port, 1 << 20);
    assert.equal(handed.received, handed.sent, 'handed over: the bytes came back');
    await first.kill();
    const second = await Daemon.start(['--config', a.configFile], a.ipcFile, { online: 2 });
    daemon = second;
    const ids = servingIds(await second.status());
    const results = await Promise.all([echo(port, 16 << 20), echo(port, 16 << 20), echo(port, 1)]);
    for (const r of results) {
      assert.ok(ids.includes(r.id), `${r.id} is an adopted worker`);
      assert.equal(r.received, r.sent, `${r.bytes} bytes came back intact`);
    }
    assert.equal(sum((await second.status()).front?.relayed), 3);
  });
});

describe('listen: sticky routing', () => {
  let app: AppDir;
  let daemon: Daemon;

  before(async () => {
    app = makeApp({ workers: 2, listen: '127.0.0.1:0', sticky: true, shutdownTimeout: 5000 }, 'front.js');
    daemon = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
  });
  after(() => teardown(daemon, app));

  async function slotsSeen(port: number, localAddress: string): Promise<Set<number>> {
    const status = await daemon.status();
    const slotOf = new Map(status.workers.map((w) => [w.id, w.slot]));
    const slots = new Set<number>();
    const ports = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const { seen, localPort } = await request(port, { localAddress });
      ports.add(localPort);
      const slot = slotOf.get(seen.id);
      assert.equal(typeof slot, 'number', `${seen.id} is a slot worker`);
      slots.add(slot as number);
    }
    // The kernel may give a closed connection's port to a later one: what matters is that
    // connections from several ports of one address all land on its slot.
    assert.ok(ports.size > 1, `connections from several client ports (${ports.size})`);
    return slots;
  }

  test('20 connections from one client address land on its slot, before and after a restart', async () => {
    const port = Number(/:(\d+)$/.exec((await daemon.status()).front?.addresses[0] ?? '')?.[1]);
    const expected = stickySlot('127.0.0.1', 2);
    assert.deepEqual([...(await slotsSeen(port, '127.0.0.1'))], [expected]);
    const r = await daemon.cli(['restart'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...(await slotsSeen(port, '127.0.0.1'))], [expected], 'the same slot after restart');
    const other = await slotsSeen(port, '127.0.0.2');
    assert.deepEqual([...other], [stickySlot('127.0.0.2', 2)], 'another address: its own slot, also one');

    // A reload turns it off for new connections: round robin again.
    fs.writeFileSync(
      app.configFile,
      fs.readFileSync(app.configFile, 'utf8').replace('sticky: true', 'sticky: false'),
    );
    const reload = await daemon.cli(['reload']);
    assert.equal(reload.code, 0, reload.stderr);
    assert.deepEqual([...(await slotsSeen(port, '127.0.0.1'))].sort(), [0, 1]);
  });
});

/**
 * test/fixtures/socket-launcher.js around a daemon: it binds `port` and passes it as systemd
 * does; `again()` starts the daemon once more after it died, `stop()` ends it all.
 */
class Launcher {
  readonly child: ChildProcess;
  readonly fifo: string;
  readonly pids = new Set<number>();
  output = '';

  constructor(
    readonly app: AppDir,
    port: number,
    options: { bin?: string; env?: NodeJS.ProcessEnv } = {},
  ) {
    this.fifo = path.join(app.dir, 'launcher.fifo');
    execFileSync('mkfifo', [this.fifo]);
    this.child = spawn(
      process.execPath,
      [
        path.join(ROOT, 'test/fixtures/socket-launcher.js'),
        '127.0.0.1',
        String(port),
        this.fifo,
        process.execPath,
        options.bin ?? BIN,
        'daemon',
        '--config',
        app.configFile,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env },
    );
    const collect = (c: Buffer) => {
      this.output += c.toString();
      if (process.env.NSD_TEST_VERBOSE) process.stderr.write(c);
    };
    this.child.stdout?.on('data', collect);
    this.child.stderr?.on('data', collect);
  }

  /** The daemon's status once both slots are online. */
  async online(): Promise<DaemonStatus | undefined> {
    if (this.child.exitCode !== null) throw new Error(`the launcher exited: ${this.output}`);
    const s = await statusOf(this.app.ipcFile);
    if (s?.workers.filter((w) => w.slot !== null && w.state === 'online').length !== 2) return undefined;
    for (const w of s.workers) if (w.pid) this.pids.add(w.pid);
    return s;
  }

  again(): Promise<void> {
    return fs.promises.writeFile(this.fifo, 'again\n');
  }

  async stop(): Promise<void> {
    const s = await statusOf(this.app.ipcFile);
    if (s) {
      for (const w of s.workers) if (w.pid) this.pids.add(w.pid);
      process.kill(s.pid, 'SIGTERM');
      await waitFor('the daemon to exit', () => !isAlive(s.pid));
    }
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      await fs.promises.writeFile(this.fifo, 'stop\n');
      await exited;
    }
    killAll([...this.pids].filter(isAlive));
    fs.rmSync(this.app.dir, { recursive: true, force: true, maxRetries: 5 });
  }
}

describe('listen: systemd socket activation (LISTEN_FDS)', () => {
  let launcher: Launcher | undefined;

  after(() => launcher?.stop());

  test('the daemon serves the passed socket; connections made while it is killed wait and are served by the next one', async (t) => {
    const port = await freePort();
    const app = makeApp({ workers: 2, listen: `127.0.0.1:${port}`, shutdownTimeout: 5000 }, 'front.js');
    const launcherRef = new Launcher(app, port);
    launcher = launcherRef;
    const first = await waitFor('the socket-activated daemon', () => launcherRef.online());
    for (const w of first.workers) launcherRef.pids.add(w.pid!);
    assert.match(
      launcherRef.output,
      new RegExp(
        `listening on 127\\.0\\.0\\.1:${port} \\(the socket systemd passed as fd 3 \\(launcher\\)\\)`,
      ),
    );
    assert.doesNotMatch(launcherRef.output, /matches no listen entry/);
    const { seen, localPort } = await request(port);
    assert.equal(seen.remotePort, localPort);
    // The workers do not inherit systemd's variables.
    const env = fs.readFileSync(`/proc/${first.workers[0]!.pid}/environ`, 'utf8').split('\0');
    assert.ok(
      !env.some((e) => e.startsWith('LISTEN_FDS=') || e.startsWith('LISTEN_PID=')),
      'no LISTEN_* in workers',
    );

    process.kill(first.pid, 'SIGKILL');
    await waitFor('the daemon to die', () => !isAlive(first.pid));
    // No daemon now: the socket is still open (the launcher holds it), so these wait.
    let connected = 0;
    const waiting = Array.from({ length: 5 }, (_, i) =>
      request(port, { method: i % 2 ? 'POST' : 'GET', onConnect: () => connected++ }),
    );
    const settled: string[] = [];
    for (const p of waiting)
      p.then(
        () => settled.push('ok'),
        (err: Error) => settled.push(err.message),
      );
    // Accepted by the kernel into the queue (not refused) while no daemon runs.
    await waitFor('5 connections established with no daemon', () => connected === 5);
    assert.deepEqual(settled, [], 'none answered or failed before the next daemon');
    await launcherRef.again();
    const answers = await Promise.all(waiting);
    assert.equal(answers.length, 5);
    const ids = servingIds(first);
    for (const a of answers) assert.ok(ids.includes(a.seen.id), 'served by an adopted worker');
    const second = await waitFor('the next daemon', () => launcherRef.online());
    assert.notEqual(second.pid, first.pid);
    assert.ok(sum(second.front?.relayed) >= 5, 'relayed to the adopted workers');
    t.diagnostic(`5 connections made with no daemon running, all served: ${settled.join(', ')}`);
  });

  test('a passed socket that matches no listen entry: one warning, and the entry is bound by the daemon', async () => {
    await launcher?.stop();
    const [passed, configured] = [await freePort(), await freePort()];
    const app = makeApp({ workers: 2, listen: `127.0.0.1:${configured}`, shutdownTimeout: 5000 }, 'front.js');
    const l = new Launcher(app, passed);
    launcher = l;
    const s = await waitFor('the daemon', () => l.online());
    assert.deepEqual(s.front?.addresses, [`127.0.0.1:${configured}`]);
    const warnings = l.output.match(/matches no listen entry/g) ?? [];
    assert.equal(warnings.length, 1, l.output);
    assert.match(
      l.output,
      new RegExp(
        `the socket systemd passed as fd 3 \\(launcher\\) for 127\\.0\\.0\\.1:${passed} matches no listen entry \\(127\\.0\\.0\\.1:${configured}\\); closing it`,
      ),
    );
    const { seen, localPort } = await request(configured);
    assert.equal(seen.remotePort, localPort);
  });
});

describe('listen: a daemon that stops with connections not yet taken', () => {
  let app: AppDir | undefined;
  let daemon: Daemon | undefined;
  after(async () => {
    if (app) await teardown(daemon, app);
  });

  test('SIGTERM: connections accepted for a busy worker are answered, not reset', async () => {
    const port = await freePort();
    app = makeApp({ workers: 1, listen: `127.0.0.1:${port}`, shutdownTimeout: 10_000 }, 'front.js');
    const d = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1 });
    daemon = d;
    const release = path.join(app.dir, 'release');
    // The only worker answers, then its event loop blocks until `release` exists.
    const blocked = await fetch(`http://127.0.0.1:${port}/block?until=${encodeURIComponent(release)}`);
    assert.equal(await blocked.text(), 'blocked');
    // Accepted by the daemon, which cannot hand them over yet: the first is in the IPC channel,
    // unread; the second waits in the daemon until the worker acknowledges the first handle.
    const answers = [request(port), request(port)];
    for (const a of answers) a.catch(() => undefined);
    await waitFor('connections waiting for the worker', async () => (await d.status()).front?.waiting === 2);
    const formatted = await cli(['status', '--ipc-file', app.ipcFile]);
    assert.match(formatted.stdout, /; 2 waiting for a worker/);
    d.child.kill('SIGTERM');
    // The daemon is closing its front now; then the worker takes the connection.
    await waitFor('the daemon to start its drain', () => d.output.includes('SIGTERM: draining'));
    fs.writeFileSync(release, '');
    for (const { seen } of await Promise.all(answers)) assert.ok(seen.id, 'answered by the worker');
    const exit = await d.exited;
    assert.equal(exit.code, 0, d.output);
    assert.doesNotMatch(d.output, /no worker took/);
  });
});

describe('listen: restart --upgrade hands the listening sockets to the new daemon', () => {
  let work: string;
  let app: AppDir | undefined;
  const pids = new Set<number>();

  before(() => {
    work = makeTempDir('nsd-front-upgrade-');
  });
  after(async () => {
    const s = app ? await statusOf(app.ipcFile) : undefined;
    if (s) {
      for (const w of s.workers) if (w.pid) pids.add(w.pid);
      process.kill(s.pid, 'SIGTERM');
      await waitFor('the upgraded daemon to exit', () => !isAlive(s.pid));
    }
    killAll([...pids].filter(isAlive));
    fs.rmSync(work, { recursive: true, force: true, maxRetries: 5 });
    if (app) fs.rmSync(app.dir, { recursive: true, force: true, maxRetries: 5 });
  });

  test('new connections straight at the port during the upgrade: none refused or failed; a removed entry is closed, a new one bound', async (t) => {
    const nextDist = buildNextVersion(path.join(work, 'next'));
    const installed = path.join(work, 'installed');
    fs.mkdirSync(installed);
    const bin = install(installed);
    const [kept, dropped, added] = [await freePort(), await freePort(), await freePort()];
    app = makeApp(
      { workers: 2, listen: [`127.0.0.1:${kept}`, `127.0.0.1:${dropped}`], shutdownTimeout: 5000 },
      'front.js',
    );
    const env = { ...process.env };
    delete env.NODESOCKD_SUPERVISED;
    const old = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2, bin, env });
    const before = await old.status();
    for (const w of before.workers) pids.add(w.pid!);
    await request(dropped);

    const load = connectLoop(kept);
    await waitFor('requests flowing', () => load.ok() > 50);
    fs.rmSync(path.join(installed, 'dist'), { recursive: true });
    fs.cpSync(nextDist, path.join(installed, 'dist'), { recursive: true });
    fs.writeFileSync(
      app.configFile,
      fs.readFileSync(app.configFile, 'utf8').replace(`127.0.0.1:${dropped}`, `127.0.0.1:${added}`),
    );
    const r = await cli(['restart', '--upgrade', '--ipc-file', app.ipcFile], { env, bin });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`runs nodesockd ${NEXT_VERSION} and serves with 2 adopted worker`));
    const atUpgrade = load.ok();
    await waitFor('requests after the upgrade', () => load.ok() > atUpgrade + 50);
    const { ok, failed } = await load.stop();
    assert.deepEqual(failed, [], `${failed.length} failed of ${ok + failed.length}`);
    t.diagnostic(`${ok} new connections across restart --upgrade, 0 failed`);

    const after = await statusOf(app.ipcFile);
    assert.equal(after?.version, NEXT_VERSION);
    for (const w of after?.workers ?? []) if (w.pid) pids.add(w.pid);
    assert.deepEqual(after?.front?.addresses, [`127.0.0.1:${kept}`, `127.0.0.1:${added}`]);
    await old.exited;
    assert.match(old.output, /started the new daemon \(pid \d+\) with 2 listening socket\(s\)/);
    assert.match(
      old.output,
      new RegExp(`listening on 127\\.0\\.0\\.1:${kept} \\(the socket the previous daemon passed as fd 3\\)`),
    );
    assert.match(old.output, new RegExp(`127\\.0\\.0\\.1:${dropped} is no longer in the config; closing it`));
    const { seen, localPort } = await request(added);
    assert.equal(seen.remotePort, localPort, 'the new entry is served, handed over');
    await assert.rejects(request(dropped), /ECONNREFUSED/);
  });
});

describe('listen: restart --upgrade under a supervisor with socket activation', () => {
  let work: string | undefined;
  let launcher: Launcher | undefined;

  after(async () => {
    await launcher?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true, maxRetries: 5 });
  });

  test('the daemon just exits; connections made until the supervisor starts the new version wait and are served', async (t) => {
    const dir = makeTempDir('nsd-front-supervised-');
    work = dir;
    const nextDist = buildNextVersion(path.join(dir, 'next'));
    const installed = path.join(dir, 'installed');
    fs.mkdirSync(installed);
    const bin = install(installed);
    const port = await freePort();
    const app = makeApp({ workers: 2, listen: `127.0.0.1:${port}`, shutdownTimeout: 5000 }, 'front.js');
    const env = { ...process.env, NODESOCKD_SUPERVISED: '1' };
    const l = new Launcher(app, port, { bin, env });
    launcher = l;
    const first = await waitFor('the supervised daemon', () => l.online());
    await request(port);

    fs.rmSync(path.join(installed, 'dist'), { recursive: true });
    fs.cpSync(nextDist, path.join(installed, 'dist'), { recursive: true });
    const upgrade = cli(['restart', '--upgrade', '--ipc-file', app.ipcFile], { env, bin });
    await waitFor('the old daemon to exit', () => !isAlive(first.pid));
    let connected = 0;
    const waiting = Array.from({ length: 5 }, (_, i) =>
      request(port, { method: i % 2 ? 'POST' : 'GET', onConnect: () => connected++ }),
    );
    await waitFor('5 connections established with no daemon', () => connected === 5);
    // The supervisor (the launcher, as systemd with Restart=always) starts the new version.
    await l.again();
    const answers = await Promise.all(waiting);
    assert.equal(answers.length, 5);
    const r = await upgrade;
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /serves with 2 adopted worker/);
    const after = await waitFor('the new daemon', () => l.online());
    assert.equal(after.version, NEXT_VERSION);
    assert.match(l.output, /exiting; the supervisor starts the new daemon/);
    const { seen, localPort } = await request(port);
    assert.equal(seen.remotePort, localPort, 'handed over by the new daemon after its restart');
    t.diagnostic('5 connections made while no daemon ran, all served by the new version');
  });
});

describe('nodesockd systemd with listen', () => {
  test('prints the .socket unit beside the .service, which requires it', async (t) => {
    const app = makeApp(
      { name: 'shop', listen: ['127.0.0.1:8080', '[::1]:8081', 9000, '127.0.0.1:0'] },
      'front.js',
    );
    try {
      const both = await cli(['systemd', '-c', app.configFile]);
      assert.equal(both.code, 0, both.stderr);
      const lines = both.stdout.split('\n');
      assert.ok(lines.includes('# ---- /etc/systemd/system/shop.service ----'));
      assert.ok(lines.includes('# ---- /etc/systemd/system/shop.socket ----'));
      assert.ok(lines.includes('Requires=shop.socket'));
      assert.ok(lines.includes('After=network.target shop.socket'));

      const socket = await cli(['systemd', '--socket', '-c', app.configFile]);
      assert.equal(socket.code, 0, socket.stderr);
      const listen = socket.stdout.split('\n').filter((l) => l.startsWith('ListenStream='));
      assert.deepEqual(listen, [
        'ListenStream=127.0.0.1:8080',
        'ListenStream=[::1]:8081',
        'ListenStream=0.0.0.0:9000',
      ]);
      assert.match(socket.stdout, /^# 127\.0\.0\.1:0: port 0 .* the daemon binds it$/m);
      assert.match(socket.stdout, /^FileDescriptorName=shop$/m);
      assert.match(socket.stdout, /^Service=shop\.service$/m);
      assert.doesNotMatch(socket.stdout, /ExecStart=/);

      const service = await cli(['systemd', '--service', '-c', app.configFile]);
      assert.equal(service.code, 0, service.stderr);
      assert.match(service.stdout, /^Requires=shop\.socket$/m);
      assert.doesNotMatch(service.stdout, /ListenStream=/);

      // systemd's own parser, where installed: it prints a line for any key or value it rejects.
      if (spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0) {
        const dir = path.join(app.dir, 'units');
        fs.mkdirSync(dir);
        fs.writeFileSync(path.join(dir, 'shop.service'), service.stdout);
        fs.writeFileSync(path.join(dir, 'shop.socket'), socket.stdout);
        const verify = spawnSync(
          'systemd-analyze',
          ['verify', path.join(dir, 'shop.socket'), path.join(dir, 'shop.service')],
          {
            encoding: 'utf8',
          },
        );
        assert.equal(verify.status, 0, verify.stderr);
        assert.equal(verify.stderr.trim(), '', 'systemd-analyze verify finds nothing to say');
      } else {
        t.diagnostic('systemd-analyze is not installed: the units were not checked by systemd');
      }
    } finally {
      await teardown(undefined, app);
    }
  });

  test('without listen: the service alone, and --socket says why there is none', async () => {
    const app = makeApp({ name: 'plain' });
    try {
      const unit = await cli(['systemd', '-c', app.configFile]);
      assert.equal(unit.code, 0, unit.stderr);
      assert.doesNotMatch(unit.stdout, /Requires=|\.socket/);
      const socket = await cli(['systemd', '--socket', '-c', app.configFile]);
      assert.notEqual(socket.code, 0);
      assert.match(socket.stderr, /--socket: the config has no `listen` addresses/);
    } finally {
      await teardown(undefined, app);
    }
  });
});

describe('takeInheritedSockets', () => {
  test("systemd's sockets only when LISTEN_PID is this process; the variables are removed either way", () => {
    const env: NodeJS.ProcessEnv = {
      LISTEN_FDS: '2',
      LISTEN_PID: '42',
      LISTEN_FDNAMES: 'web:admin',
      KEEP: '1',
    };
    assert.deepEqual(takeInheritedSockets(env, 42), {
      sockets: [
        { fd: 3, from: 'systemd', name: 'web' },
        { fd: 4, from: 'systemd', name: 'admin' },
      ],
      problems: [],
    });
    assert.deepEqual(env, { KEEP: '1' });
    const other: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '41' };
    assert.deepEqual(takeInheritedSockets(other, 42), { sockets: [], problems: [] });
    assert.deepEqual(other, {});
  });

  test("a predecessor's fds, and one line for each bad value", () => {
    const env: NodeJS.ProcessEnv = { NODESOCKD_LISTEN_FDS: '3,4,x,1', LISTEN_FDS: 'many', LISTEN_PID: '7' };
    const { sockets, problems } = takeInheritedSockets(env, 7);
    assert.deepEqual(sockets, [
      { fd: 3, from: 'handover' },
      { fd: 4, from: 'handover' },
    ]);
    assert.deepEqual(problems, [
      'LISTEN_FDS="many" is not a count of sockets; ignoring it',
      'NODESOCKD_LISTEN_FDS: "x" is not a file descriptor; ignoring it',
      'NODESOCKD_LISTEN_FDS: "1" is not a file descriptor; ignoring it',
    ]);
    assert.deepEqual(env, {});
  });
});

describe('matchEntries', () => {
  const at = (host: string, port: number) => ({ host, port });

  test('exact addresses first, then a port-0 entry takes a socket on its host; each once', () => {
    const entries = [at('127.0.0.1', 0), at('127.0.0.1', 8080), at('::1', 8443)];
    const bound = [at('127.0.0.1', 8080), at('127.0.0.1', 40123), at('::1', 8443), at('127.0.0.1', 40124)];
    assert.deepEqual(
      [...matchEntries(entries, bound)].sort(([a], [b]) => a - b),
      [
        [0, 1],
        [1, 0],
        [2, 2],
      ],
    );
  });

  test('an IPv4-mapped address is its IPv4 host; another host or port matches nothing', () => {
    assert.deepEqual([...matchEntries([at('10.0.0.1', 80)], [at('::ffff:10.0.0.1', 80)])], [[0, 0]]);
    assert.deepEqual([...matchEntries([at('10.0.0.1', 80)], [at('10.0.0.2', 80), at('10.0.0.1', 81)])], []);
  });
});
