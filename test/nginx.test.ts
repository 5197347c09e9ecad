import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { Daemon, isAlive, ROOT } from './helpers/daemon';
import { httpRequest } from './helpers/http';
import { startLoad } from './helpers/load';
import { isRoot, KEEPALIVE_SECONDS, NGINX_BIN, Nginx, prepareSocketDir } from './helpers/nginx';
import { waitFor } from './helpers/wait';

const skip = NGINX_BIN ? false : 'nginx is not installed (npm test installs it when run as root on Debian)';

let daemon: Daemon | undefined;
let nginx: Nginx | undefined;
let app: AppDir;

afterEach(async () => {
  await nginx?.stop();
  nginx = undefined;
  await teardown(daemon, app);
  daemon = undefined;
});

async function pidsThroughNginx(n: number, requestPath = '/'): Promise<Set<number>> {
  const pids = new Set<number>();
  const agent = new http.Agent({ keepAlive: false });
  for (let i = 0; i < n; i++) {
    const res = await httpRequest({ port: nginx!.port }, { path: requestPath, agent });
    assert.equal(res.status, 200, `HTTP ${res.status}: ${res.body}\n${nginx!.errorLog()}`);
    pids.add((JSON.parse(res.body) as { pid: number }).pid);
  }
  return pids;
}

async function setUp(config: Record<string, unknown>, script: string) {
  app = makeApp({ workers: 2, upstreamKeepaliveTimeout: KEEPALIVE_SECONDS * 1000, ...config, script });
  prepareSocketDir(app.tmpDir);
  daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
  nginx = await Nginx.start(path.join(app.dir, 'nginx'), [app.published(0), app.published(1)]);
  return daemon;
}

describe('behind a real nginx', { skip }, () => {
  test('the README flow: the example Express app, 2 workers, restart without reloading nginx', async () => {
    const d = await setUp({}, path.join(ROOT, 'examples/express/app.js'));
    if (isRoot) assert.match(nginx!.errorLog(), /^$|warn/, 'nginx runs its workers as nobody');
    const before = await pidsThroughNginx(8);
    assert.equal(before.size, 2, 'both workers answer through nginx');
    const r = await d.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    const after = await d.slotPids();
    await waitFor('nginx to reach only the new workers', async () => {
      const seen = await pidsThroughNginx(4);
      return [...seen].every((pid) => after.includes(pid));
    });
    await waitFor('the old workers to exit', () => [...before].every((pid) => !isAlive(pid)));
  });

  test('a deploy under load through nginx fails no request (serve(), GET and POST)', async () => {
    const d = await setUp({}, path.join(ROOT, 'test/fixtures/apps/lib.js'));
    const load = startLoad(nginx!.port);
    await waitFor('some load', () => load.ok() > 20);
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) codes.push((await d.cli(['restart'])).code);
    const { ok, failed } = await load.stop();
    assert.deepEqual(codes, [0, 0, 0]);
    assert.deepEqual(failed, [], `${failed.length} failed of ${ok + failed.length}\n${nginx!.errorLog()}`);
    assert.ok(ok > 0);
  });

  test('restart --suspended holds requests through nginx until resume', async () => {
    const d = await setUp({}, path.join(ROOT, 'test/fixtures/apps/lib.js'));
    const r = await d.cli(['restart', '--suspended']);
    assert.equal(r.code, 0, r.stderr);
    const s = await d.status();
    assert.ok(s.workers.filter((w) => w.slot !== null).every((w) => w.state === 'suspended'));
    let resumeSent = false;
    const held = httpRequest({ port: nginx!.port }).then((res) => ({ res, resumeSent }));
    // Let the request reach a worker (it logs the connection) before releasing it.
    await d.waitOutput(/connection while suspended/);
    resumeSent = true;
    const resume = await d.cli(['resume']);
    assert.equal(resume.code, 0, resume.stderr);
    const { res, resumeSent: answeredAfterResume } = await held;
    assert.equal(res.status, 200);
    assert.equal(answeredAfterResume, true, 'the response came only after resume');
    assert.equal((JSON.parse(res.body) as { suspended: boolean }).suspended, false);
  });
});
