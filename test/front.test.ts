import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { cli, Daemon } from './helpers/daemon';
import { startLoad } from './helpers/load';
import { makeCert } from './helpers/tls';
import { waitFor } from './helpers/wait';

interface Seen {
  id: string;
  remoteAddress: string;
  remotePort: number;
}

/** One request on a fresh connection; also returns the port the client used. */
function requestOnce(port: number): Promise<{ seen: Seen; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ seen: JSON.parse(body) as Seen, localPort }));
    });
    let localPort = 0;
    req.on('socket', (s: net.Socket) => s.on('connect', () => (localPort = s.localPort ?? 0)));
    req.on('error', reject);
    req.end();
  });
}

function frontPort(address: string | undefined): number {
  const port = Number(/:(\d+)$/.exec(address ?? '')?.[1]);
  assert.ok(port > 0, `front address ${address}`);
  return port;
}

describe('listen: the daemon hands TCP connections to the workers', () => {
  let app: AppDir;
  let daemon: Daemon;
  let port: number;

  before(async () => {
    app = makeApp({ workers: 2, listen: '127.0.0.1:0', shutdownTimeout: 5000 }, 'front.js');
    daemon = await Daemon.start(['--config', app.configFile], app.ipcFile, { online: 2 });
    const status = await daemon.status();
    port = frontPort(status.front?.addresses[0]);
  });
  after(() => teardown(daemon, app));

  test('200 new connections split evenly over 2 workers, each seeing its own client port', async () => {
    const results = [];
    for (let i = 0; i < 200; i++) results.push(await requestOnce(port));
    const byWorker = new Map<string, number>();
    for (const { seen, localPort } of results) {
      assert.equal(seen.remoteAddress, '127.0.0.1');
      assert.equal(seen.remotePort, localPort, 'the app sees the client port the client used');
      byWorker.set(seen.id, (byWorker.get(seen.id) ?? 0) + 1);
    }
    assert.equal(byWorker.size, 2, `served by ${[...byWorker.keys()].join(', ')}`);
    for (const [id, n] of byWorker) assert.ok(n >= 75 && n <= 125, `worker ${id} got ${n} of 200`);
    const status = await daemon.status();
    const handed = Object.values(status.front?.handedOut ?? {}).reduce((a, b) => a + b, 0);
    assert.ok(handed >= 200, `status counts ${handed} connections handed out`);
  });

  test('GET+POST load straight at the port across restarts: 0 failed', async (t) => {
    const load = startLoad(port);
    for (let i = 0; i < 3; i++) {
      const before = load.ok();
      await waitFor('requests flowing', () => load.ok() > before + 20);
      const r = await daemon.cli(['restart'], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
    }
    const before = load.ok();
    await waitFor('requests after the last restart', () => load.ok() > before + 20);
    const { ok, failed } = await load.stop();
    assert.deepEqual(failed, [], `${failed.length} failed of ${ok + failed.length}`);
    t.diagnostic(`${ok} requests across 3 restarts, 0 failed`);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add((await requestOnce(port)).seen.id);
    const slots = (await daemon.status()).workers.filter((w) => w.role === 'serving').map((w) => w.id);
    for (const id of seen) assert.ok(slots.includes(id), `${id} is a serving worker`);
  });
});

describe('listen: an app that ends TLS itself (an https server on LISTEN_ON)', () => {
  let app: AppDir;
  let daemon: Daemon;

  before(async () => {
    app = makeApp(
      { workers: 2, listen: '127.0.0.1:0', shutdownTimeout: 5000, env: ['TLS_KEY', 'TLS_CERT'] },
      'front-https.js',
    );
    const { key, cert } = makeCert(app.dir, 'front', 'localhost');
    daemon = await Daemon.start(['--config', app.configFile], app.ipcFile, {
      online: 2,
      env: { ...process.env, TLS_KEY: key, TLS_CERT: cert },
    });
  });
  after(() => teardown(daemon, app));

  test('TLS connections are served end to end by both workers, with the client port', async () => {
    const port = frontPort((await daemon.status()).front?.addresses[0]);
    const ids = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const { seen, localPort } = await new Promise<{ seen: Seen; localPort: number }>((resolve, reject) => {
        const req = https.request(
          { host: '127.0.0.1', port, agent: false, rejectUnauthorized: false },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => {
              body += c;
            });
            res.on('end', () =>
              resolve({ seen: JSON.parse(body) as Seen, localPort: req.socket?.localPort ?? 0 }),
            );
          },
        );
        req.on('error', reject);
        req.end();
      });
      assert.equal(seen.remotePort, localPort);
      ids.add(seen.id);
    }
    assert.equal(ids.size, 2);
  });
});

describe('listen: validation', () => {
  test('a bad address is one line naming it', async () => {
    const app = makeApp({ listen: ['127.0.0.1:99999', 'nope'] }, 'front.js');
    try {
      const r = await cli(['check', '--config', app.configFile]);
      assert.match(r.stdout + r.stderr, /listen\[0\] port 99999 must be a whole number from 0 to 65535/);
      assert.match(r.stdout + r.stderr, /listen\[1\] "nope" must be a port/);
    } finally {
      await teardown(undefined, app);
    }
  });
});
