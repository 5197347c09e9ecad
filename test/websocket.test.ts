// WebSockets across a restart (docs/lifecycle.md#websockets): an unmodified `ws` app's clients
// get a clean close with 1012 (Service Restart) and reconnect to the new release.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import WebSocket from 'ws';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon, isAlive } from './helpers/daemon';
import { waitFor } from './helpers/wait';

let daemon: Daemon | undefined;
let app: AppDir;

afterEach(async () => {
  await teardown(daemon, app);
  daemon = undefined;
});

function connect(socketPath: string): Promise<{ ws: WebSocket; pid: number; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws+unix://${socketPath}:/`);
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
  const clients = await Promise.all([1, 2, 3].map(() => connect(app.published(0))));
  const old = clients[0]!.pid;
  const r = await daemon.cli(['restart']);
  assert.equal(r.code, 0, r.stderr);
  const codes = await Promise.all(clients.map((c) => c.closed));
  assert.deepEqual(codes, [1012, 1012, 1012]);
  const [fresh] = await daemon.slotPids();
  const again = await connect(app.published(0));
  assert.equal(again.pid, fresh, 'reconnected to the new release');
  again.ws.close();
  await waitFor('the old worker to exit', () => !isAlive(old));
});
