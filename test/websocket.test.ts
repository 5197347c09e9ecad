// WebSockets across a restart (docs/lifecycle.md#websockets): an unmodified `ws` app's clients
// get a clean close with 1012 (Service Restart) and reconnect to the new release.
import assert from 'node:assert/strict';
import path from 'node:path';
import { afterEach, test } from 'node:test';
import WebSocket from 'ws';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon, isAlive } from './helpers/daemon';
import { NGINX_BIN, Nginx, prepareSocketDir } from './helpers/nginx';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let nginx: Nginx | undefined;
let app: AppDir;

afterEach(async () => {
  await nginx?.stop();
  nginx = undefined;
  await teardown(daemon, app);
  daemon = undefined;
});

function connect(url: string): Promise<{ ws: WebSocket; pid: number; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.once('error', reject);
    ws.once('message', (data) =>
      resolve({ ws, pid: (JSON.parse(String(data)) as { pid: number }).pid, closed }),
    );
  });
}

test('an unmodified ws app: its clients get close code 1012 at a restart and reconnect to the new release', async () => {
  app = makeApp({ workers: 1, upstreamKeepaliveTimeout: 60_000, websocketCloseGrace: 200 }, 'ws-app.js');
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 1 });
  const url = `ws+unix://${app.published(0)}:/`;
  const clients = await Promise.all([1, 2, 3].map(() => connect(url)));
  const old = clients[0]!.pid;
  const r = await daemon.cli(['restart']);
  assert.equal(r.code, 0, r.stderr);
  const codes = await Promise.all(clients.map((c) => c.closed));
  assert.deepEqual(codes, [1012, 1012, 1012]);
  const [fresh] = await daemon.slotPids();
  const again = await connect(url);
  assert.equal(again.pid, fresh, 'reconnected to the new release');
  again.ws.close();
  await waitFor('the old worker to exit', () => !isAlive(old));
});

test('behind a real nginx: every client of an unmodified ws app gets 1012 at a restart and reconnects to the new release', {
  skip: NGINX_BIN ? false : 'nginx is not installed',
}, async () => {
  app = makeApp({ workers: 2, upstreamKeepaliveTimeout: 60_000, websocketCloseGrace: 200 }, 'ws-app.js');
  prepareSocketDir(app.tmpDir);
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
  nginx = await Nginx.start(path.join(app.dir, 'nginx'), [app.published(0), app.published(1)], {
    keepaliveSeconds: 60,
    serverExtra: `location /ws {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
    }`,
  });
  const url = `ws://127.0.0.1:${nginx.port}/ws`;
  const clients = await Promise.all(Array.from({ length: 6 }, () => connect(url)));
  const old = new Set(clients.map((c) => c.pid));
  const r = await daemon.cli(['restart']);
  assert.equal(r.code, 0, r.stderr);
  const codes = await Promise.all(clients.map((c) => c.closed));
  assert.deepEqual(
    codes,
    codes.map(() => 1012),
    'a clean close with Service Restart, not 1006',
  );
  const fresh = await daemon.slotPids();
  const again = await Promise.all(Array.from({ length: 4 }, () => connect(url)));
  for (const c of again) {
    assert.ok(fresh.includes(c.pid) && !old.has(c.pid), 'reconnected to the new release');
    c.ws.close();
  }
});
