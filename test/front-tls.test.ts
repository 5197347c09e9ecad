import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { readTlsEntry } from '../src/fronts/tls-material';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { cli, Daemon, isAlive, killAll } from './helpers/daemon';
import { freePort } from './helpers/nginx';
import { makeCert } from './helpers/tls';

interface Seen {
  id: string;
  remoteAddress: string;
  remotePort: number;
  httpVersion?: string;
}

function frontPort(address: string | undefined): number {
  const port = Number(/:(\d+)$/.exec(address ?? '')?.[1]);
  assert.ok(port > 0, `front address ${address}`);
  return port;
}

interface TlsAnswer {
  seen: Seen;
  status: number;
  localPort: number;
  alpn: string | false | null;
  cn: string | undefined;
}

/** One https request; with `agent`, on its (kept-alive) connection. */
function httpsGet(port: number, agent: https.Agent | false = false): Promise<TlsAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      // An https client offers http/1.1 by ALPN (Node's own does not unless asked).
      {
        host: '127.0.0.1',
        port,
        agent,
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'],
      } as https.RequestOptions & tls.ConnectionOptions,
      (res) => {
        // Read now: a kept-alive socket goes back to its agent before 'end'.
        const socket = res.socket as tls.TLSSocket;
        const facts = {
          status: res.statusCode ?? 0,
          localPort: socket.localPort ?? 0,
          alpn: socket.alpnProtocol ?? null,
          cn: subjectCn(socket),
        };
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => {
          try {
            resolve({ seen: JSON.parse(body) as Seen, ...facts });
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function subjectCn(socket: tls.TLSSocket): string | undefined {
  const cn = socket.getPeerCertificate().subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}

/** The certificate a new TLS connection is shown (no HTTP), and the ALPN protocol agreed. */
function handshake(
  port: number,
  ALPNProtocols?: string[],
): Promise<{ cn: string | undefined; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols }, () => {
      const answer = { cn: subjectCn(socket), alpn: socket.alpnProtocol ?? false };
      socket.end();
      resolve(answer);
    });
    socket.on('error', reject);
  });
}

function copyCert(from: { key: string; cert: string }, to: { key: string; cert: string }): void {
  fs.copyFileSync(from.key, to.key);
  fs.copyFileSync(from.cert, to.cert);
}

describe('listen tls: the workers end TLS for an unchanged plain-HTTP app', () => {
  let app: AppDir;
  let daemon: Daemon;
  let port: number;
  let a: { key: string; cert: string };
  let b: { key: string; cert: string };
  let live: { key: string; cert: string };

  before(async () => {
    // Relative paths: they resolve against the config file's directory.
    app = makeApp(
      {
        workers: 2,
        shutdownTimeout: 5000,
        env: ['KEEPALIVE_MS=120000'],
        listen: [{ host: '127.0.0.1', port: 0, tls: { key: 'tls/live.key', cert: 'tls/live.crt' } }],
      },
      'front.js',
    );
    const dir = path.join(app.dir, 'tls');
    fs.mkdirSync(dir);
    a = makeCert(dir, 'a', 'a.test');
    b = makeCert(dir, 'b', 'b.test');
    live = { key: path.join(dir, 'live.key'), cert: path.join(dir, 'live.crt') };
    copyCert(a, live);
    daemon = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
    port = frontPort((await daemon.status()).front?.addresses[0]);
  });
  after(() => teardown(daemon, app));

  test('HTTPS end to end on both workers, with the client port, ALPN http/1.1, and status says TLS', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const r = await httpsGet(port);
      assert.equal(r.status, 200);
      assert.equal(r.seen.remoteAddress, '127.0.0.1');
      assert.equal(r.seen.remotePort, r.localPort, 'the app sees the client port the client used');
      assert.equal(r.cn, 'a.test');
      assert.equal(r.alpn, 'http/1.1');
      ids.add(r.seen.id);
    }
    assert.equal(ids.size, 2, `served by ${[...ids].join(', ')}`);
    // A client that offers h2 first still gets http/1.1 from an HTTP/1 app.
    assert.equal((await handshake(port, ['h2', 'http/1.1'])).alpn, 'http/1.1');
    const status = await daemon.status();
    assert.equal(status.front?.tls?.[0]?.subject, 'CN=a.test');
    const text = await daemon.cli(['status']);
    assert.match(text.stdout, /listen 127\.0\.0\.1:\d+ \(TLS: CN=a\.test, until \d{4}-\d\d-\d\d\)/);
  });

  test('a failed handshake (plain HTTP on the TLS port) does not hurt the worker', async () => {
    const pids = await daemon.slotPids();
    for (let i = 0; i < 4; i++) {
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () =>
          socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
        );
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
        socket.on('timeout', () => reject(new Error('the TLS port kept a plain HTTP request open')));
        socket.setTimeout(15_000);
        socket.resume();
      });
    }
    assert.equal((await httpsGet(port)).status, 200);
    assert.deepEqual(await daemon.slotPids(), pids, 'the same workers serve');
    const restarts = (await daemon.status()).workers.map((w) => w.restarts);
    assert.ok(
      restarts.every((n) => n === 0),
      `restarts ${restarts.join(', ')}`,
    );
  });

  test('reload swaps the certificate for new connections; a kept-alive connection keeps answering', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await httpsGet(port, agent);
      assert.equal(first.cn, 'a.test');
      copyCert(b, live);
      const r = await daemon.cli(['reload']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /TLS certificates re-read \(127\.0\.0\.1:0\)/);
      for (let i = 0; i < 6; i++) assert.equal((await handshake(port)).cn, 'b.test', `new connection ${i}`);
      const again = await httpsGet(port, agent);
      assert.equal(again.status, 200);
      assert.equal(again.localPort, first.localPort, 'the same connection as before the reload');
      assert.equal(again.cn, 'a.test', 'the kept-alive connection keeps its handshake');
      assert.equal((await daemon.status()).front?.tls?.[0]?.subject, 'CN=b.test');
    } finally {
      agent.destroy();
    }
  });

  test('a reload with a key that is not the certificate fails in one line; the old certificate stays, also for new workers', async () => {
    fs.copyFileSync(a.key, live.key); // b's certificate, a's key
    const r = await daemon.cli(['reload']);
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      /listen 127\.0\.0\.1:0: tls\.key \S+live\.key does not match the certificate in tls\.cert \S+live\.crt; nothing reloaded/,
    );
    for (let i = 0; i < 4; i++) assert.equal((await handshake(port)).cn, 'b.test');
    // New workers get the material the daemon holds (b), not the files on disk.
    const before = await daemon.slotPids();
    const restart = await daemon.cli(['restart'], { timeoutMs: 60_000 });
    assert.equal(restart.code, 0, restart.stderr);
    const after = await daemon.slotPids();
    assert.ok(
      after.every((pid) => !before.includes(pid)),
      `new workers ${after.join(', ')}`,
    );
    const ids = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const answer = await httpsGet(port);
      assert.equal(answer.cn, 'b.test');
      ids.add(answer.seen.id);
    }
    assert.equal(ids.size, 2);
  });
});

/** One h2 request on a new session; also returns the protocol ALPN agreed. */
async function h2Get(port: number): Promise<{ seen: Seen; alpn: string | undefined; localPort: number }> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
  try {
    const seen = await new Promise<Seen>((resolve, reject) => {
      session.on('error', reject);
      const req = session.request({ ':path': '/' });
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        body += c;
      });
      req.on('end', () => resolve(JSON.parse(body) as Seen));
      req.on('error', reject);
      req.end();
    });
    return { seen, alpn: session.alpnProtocol, localPort: session.socket.localPort ?? 0 };
  } finally {
    session.close();
  }
}

describe('listen tls: h2 via ALPN for a plain http2.createServer app', () => {
  let app: AppDir;
  let daemon: Daemon;
  let port: number;

  before(async () => {
    app = makeApp(
      {
        workers: 2,
        shutdownTimeout: 5000,
        listen: [{ host: '127.0.0.1', port: 0, tls: { key: 'h2.key', cert: 'h2.crt' } }],
      },
      'front-h2.js',
    );
    makeCert(app.dir, 'h2', 'h2.test');
    daemon = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
    port = frontPort((await daemon.status()).front?.addresses[0]);
  });
  after(() => teardown(daemon, app));

  test('http2.connect gets h2 from both workers; an HTTP/1.1-only client is not served and hurts no worker', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const { seen, alpn, localPort } = await h2Get(port);
      assert.equal(alpn, 'h2');
      assert.equal(seen.httpVersion, '2.0');
      assert.equal(seen.remotePort, localPort);
      ids.add(seen.id);
    }
    assert.equal(ids.size, 2);
    const pids = await daemon.slotPids();
    // The server offers h2 alone: no HTTP/1.1 over TLS (the handshake or the connection fails).
    await assert.rejects(httpsGet(port));
    assert.equal((await h2Get(port)).alpn, 'h2');
    assert.deepEqual(await daemon.slotPids(), pids, 'the same workers serve');
  });
});

describe('listen tls: h2 and http/1.1 via ALPN for a createSecureServer app with allowHTTP1', () => {
  let app: AppDir;
  let daemon: Daemon;
  let port: number;

  before(async () => {
    app = makeApp(
      {
        workers: 1,
        shutdownTimeout: 5000,
        env: ['H2_SECURE=1', 'H2_ALLOW_HTTP1=1', 'TLS_KEY', 'TLS_CERT'],
        listen: [{ host: '127.0.0.1', port: 0, tls: { key: 'front.key', cert: 'front.crt' } }],
      },
      'front-h2.js',
    );
    makeCert(app.dir, 'front', 'front.test');
    const own = makeCert(app.dir, 'own', 'own.test');
    daemon = await Daemon.start(['--config', app.configFile], app.ipcFile, {
      env: { ...process.env, TLS_KEY: own.key, TLS_CERT: own.cert },
    });
    port = frontPort((await daemon.status()).front?.addresses[0]);
  });
  after(() => teardown(daemon, app));

  test("h2 for http2.connect, http/1.1 for an https client, both with the front's certificate", async () => {
    const h2 = await h2Get(port);
    assert.equal(h2.alpn, 'h2');
    assert.equal(h2.seen.httpVersion, '2.0');
    const h1 = await httpsGet(port);
    assert.equal(h1.status, 200);
    assert.equal(h1.alpn, 'http/1.1');
    assert.equal(h1.seen.httpVersion, '1.1');
    assert.equal(h1.cn, 'front.test');
  });
});

describe("listen tls: an app's own https server behind a TLS entry", () => {
  let app: AppDir;
  let daemon: Daemon;

  before(async () => {
    app = makeApp(
      {
        workers: 1,
        shutdownTimeout: 5000,
        env: ['TLS_KEY', 'TLS_CERT'],
        listen: [{ host: '127.0.0.1', port: 0, tls: { key: 'front.key', cert: 'front.crt' } }],
      },
      'front-https.js',
    );
    makeCert(app.dir, 'front', 'front.test');
    const own = makeCert(app.dir, 'own', 'own.test');
    daemon = await Daemon.start(['--config', app.configFile], app.ipcFile, {
      env: { ...process.env, TLS_KEY: own.key, TLS_CERT: own.cert },
    });
  });
  after(() => teardown(daemon, app));

  test("gets the decrypted connection as 'secureConnection': the front's certificate is the one shown", async () => {
    const port = frontPort((await daemon.status()).front?.addresses[0]);
    const r = await httpsGet(port);
    assert.equal(r.status, 200);
    assert.equal(r.cn, 'front.test');
    assert.equal(r.alpn, 'http/1.1');
    assert.equal(r.seen.remotePort, r.localPort);
  });
});

describe('listen tls: check', () => {
  test('one line for a missing file, a key that is not the certificate, a ca without certificates, a host that is not local', async () => {
    const app = makeApp(
      {
        listen: [
          { host: '127.0.0.1', port: 0, tls: { key: 'a.key', cert: 'missing.crt' } },
          { host: '127.0.0.2', port: 0, tls: { key: 'b.key', cert: 'a.crt' } },
          { host: '192.0.2.1', port: 8443 },
          { host: '127.0.0.3', port: 0, tls: { key: 'a.key', cert: 'a.crt', ca: 'b.crt' } },
          { host: '127.0.0.4', port: 0, tls: { key: 'a.key', cert: 'a.crt', ca: 'b.key' } },
        ],
      },
      'front.js',
    );
    try {
      makeCert(app.dir, 'a', 'a.test');
      makeCert(app.dir, 'b', 'b.test');
      const r = await cli(['check', '--config', app.configFile]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const lines = r.stdout.split('\n');
      const about = (entry: string) => lines.filter((l) => l.includes(entry));
      assert.deepEqual(about('listen 127.0.0.1:0'), [
        `error: listen 127.0.0.1:0: cannot read tls.cert ${path.join(app.dir, 'missing.crt')}: it does not exist`,
      ]);
      assert.deepEqual(about('listen 127.0.0.2:0'), [
        `error: listen 127.0.0.2:0: tls.key ${path.join(app.dir, 'b.key')} does not match the certificate in tls.cert ${path.join(app.dir, 'a.crt')}`,
      ]);
      assert.deepEqual(about('listen 192.0.2.1:8443'), [
        'error: listen 192.0.2.1:8443: 192.0.2.1 is not an address of this host',
      ]);
      assert.deepEqual(about('listen 127.0.0.3:0'), [], 'a good entry has no finding');
      assert.deepEqual(about('listen 127.0.0.4:0'), [
        `error: listen 127.0.0.4:0: tls.ca ${path.join(app.dir, 'b.key')} holds no PEM certificate`,
      ]);
    } finally {
      await teardown(undefined, app);
    }
  });

  test('a key other users can read: an error (every user) or a warning (its group), with the chmod; the daemon warns', async () => {
    const app = makeApp(
      {
        listen: [{ host: '127.0.0.1', port: 0, tls: { key: 'a.key', cert: 'a.crt' } }],
        shutdownTimeout: 5000,
      },
      'front.js',
    );
    let daemon: Daemon | undefined;
    try {
      const { key } = makeCert(app.dir, 'a', 'a.test');
      const keyLines = async (mode: number) => {
        fs.chmodSync(key, mode);
        const r = await cli(['check', '--config', app.configFile]);
        return { code: r.code, lines: r.stdout.split('\n').filter((l) => l.includes('tls.key')) };
      };
      const where = `listen 127.0.0.1:0: tls.key ${key}`;
      assert.deepEqual(await keyLines(0o644), {
        code: 1,
        lines: [`error: ${where} is readable by every user (mode 0644): chmod o-rwx ${key}`],
      });
      assert.deepEqual((await keyLines(0o640)).lines, [
        `warning: ${where} is readable by its group (mode 0640); unless that group is meant to read it: chmod 600 ${key}`,
      ]);
      assert.deepEqual((await keyLines(0o600)).lines, []);
      fs.chmodSync(key, 0o644);
      daemon = await Daemon.start(['--config', app.configFile], app.ipcFile);
      await daemon.waitOutput(/tls\.key \S+a\.key is readable by every user \(mode 0644\)/);
    } finally {
      await teardown(daemon, app);
    }
  });

  test('a bad tls value is one problem line naming the entry', async () => {
    const app = makeApp(
      {
        listen: [
          { port: 8443, tls: { key: 'k.pem' } },
          { port: 8444, tls: 'x' },
        ],
      },
      'front.js',
    );
    try {
      const r = await cli(['check', '--config', app.configFile]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /listen\[0\] tls\.cert must be the path of a PEM file/);
      assert.match(r.stderr, /listen\[1\] tls must be \{ key, cert \}/);
    } finally {
      await teardown(undefined, app);
    }
  });

  test('a daemon whose certificate file is missing does not start, and says why in one line', async () => {
    const app = makeApp(
      { listen: [{ host: '127.0.0.1', port: 0, tls: { key: 'a.key', cert: 'gone.crt' } }] },
      'front.js',
    );
    try {
      makeCert(app.dir, 'a', 'a.test');
      const r = await cli(['daemon', '--config', app.configFile], { timeoutMs: 30_000 });
      assert.notEqual(r.code, 0);
      const lines = (r.stdout + r.stderr).split('\n').filter((l) => l.includes('gone.crt'));
      assert.equal(lines.length, 1, r.stdout + r.stderr);
      assert.match(lines[0]!, /listen 127\.0\.0\.1:0: cannot read tls\.cert \S+gone\.crt: it does not exist/);
    } finally {
      await teardown(undefined, app);
    }
  });

  test('a port in use by another process is a warning', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as net.AddressInfo;
    const app = makeApp({ listen: `127.0.0.1:${port}` }, 'front.js');
    try {
      const r = await cli(['check', '--config', app.configFile]);
      assert.match(
        r.stdout,
        new RegExp(`warning: listen 127\\.0\\.0\\.1:${port}: port ${port} is in use by another process`),
      );
      assert.doesNotMatch(r.stdout, /^error: listen/m);
    } finally {
      holder.close();
      await teardown(undefined, app);
    }
  });

  test("the port of this app's running daemon is no warning", async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const app = makeApp({ listen: `127.0.0.1:${port}`, shutdownTimeout: 5000 }, 'front.js');
    let daemon: Daemon | undefined;
    try {
      daemon = await Daemon.start(['--config', app.configFile], app.ipcFile);
      const r = await cli(['check', '--config', app.configFile]);
      assert.doesNotMatch(r.stdout, /listen 127\.0\.0\.1/, r.stdout);
      // The daemon does hold it (the test before this one shows a port held by another process is a warning).
      assert.equal((await daemon.status()).front?.addresses[0], `127.0.0.1:${port}`);
    } finally {
      await teardown(daemon, app);
    }
  });

  test('an expired certificate is a warning with its date', () => {
    const app = makeApp({}, 'front.js');
    try {
      const { key, cert } = makeCert(app.dir, 'a', 'a.test');
      const validTo = new Date(new crypto.X509Certificate(fs.readFileSync(cert)).validTo);
      const later = validTo.getTime() + 24 * 3600_000;
      const reading = readTlsEntry({ host: '127.0.0.1', port: 8443, tls: { key, cert } }, later);
      assert.deepEqual(reading.errors, []);
      assert.deepEqual(reading.warnings, [
        `listen 127.0.0.1:8443: the certificate in tls.cert ${cert} expired on ${validTo.toISOString().replace('.000Z', 'Z')}`,
      ]);
      assert.ok(reading.material, 'an expired certificate is still served');
    } finally {
      fs.rmSync(app.dir, { recursive: true, force: true });
    }
  });
});

describe('listen tls: after a daemon SIGKILL', () => {
  let app: AppDir;
  let daemon: Daemon | undefined;
  const pids = new Set<number>();
  after(async () => {
    if (app) await teardown(daemon, app);
    killAll([...pids].filter(isAlive));
  });

  test('the next daemon ends TLS for the connections it relays to the adopted workers; after restart the workers do again', async () => {
    const fixed = await freePort();
    app = makeApp(
      {
        workers: 2,
        shutdownTimeout: 5000,
        listen: [{ host: '127.0.0.1', port: fixed, tls: { key: 'tls/a.key', cert: 'tls/a.crt' } }],
      },
      'front.js',
    );
    const dir = path.join(app.dir, 'tls');
    fs.mkdirSync(dir);
    makeCert(dir, 'a', 'a.test');
    const first = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
    daemon = first;
    const before = await first.status();
    for (const w of before.workers) pids.add(w.pid!);
    const port = frontPort(before.front?.addresses[0]);
    const adoptedIds = before.workers.map((w) => w.id);
    assert.equal((await httpsGet(port)).cn, 'a.test');
    assert.equal(port, fixed);
    await first.kill();
    const second = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
    daemon = second;
    for (let i = 0; i < 6; i++) {
      const r = await httpsGet(port);
      assert.equal(r.status, 200);
      assert.equal(r.cn, 'a.test');
      assert.ok(adoptedIds.includes(r.seen.id), `${r.seen.id} is an adopted worker`);
    }
    const relayed = await second.status();
    assert.equal(
      Object.values(relayed.front?.relayed ?? {}).reduce((x, y) => x + y, 0),
      6,
    );

    const restart = await second.cli(['restart'], { timeoutMs: 60_000 });
    assert.equal(restart.code, 0, restart.stderr);
    for (const w of (await second.status()).workers) pids.add(w.pid!);
    const handed = await httpsGet(port);
    assert.equal(handed.cn, 'a.test');
    assert.ok(!adoptedIds.includes(handed.seen.id), 'served by a worker of the new daemon');
    assert.equal(handed.seen.remotePort, handed.localPort, 'handed over: the app sees the client port');
  });
});
