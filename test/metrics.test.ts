/**
 * Prometheus metrics through the real daemon: the exposition text checked by promtool, and a
 * real Prometheus scraping it (both from Debian's prometheus package, installed by the test
 * setup like nginx).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { type AppDir, makeApp, teardown } from './helpers/app';
import { cli, Daemon } from './helpers/daemon';
import { httpRequest } from './helpers/http';
import { freePort } from './helpers/nginx';
import { waitFor } from './helpers/wait';

const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => fs.existsSync(p));
const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => fs.existsSync(p));
const skip =
  PROMETHEUS && PROMTOOL
    ? false
    : 'prometheus/promtool not installed (npm test installs them as root on Debian)';

let daemon: Daemon | undefined;
let app: AppDir;
let prometheus: ChildProcess | undefined;

afterEach(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((resolve) => prometheus!.once('exit', resolve));
    prometheus.kill('SIGTERM');
    await exited;
  }
  prometheus = undefined;
  await teardown(daemon, app);
  daemon = undefined;
});

async function scrape(target: { port: number } | { socketPath: string }): Promise<string> {
  const res = await httpRequest(target, { path: '/metrics' });
  assert.equal(res.status, 200, res.body);
  return res.body;
}

function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.split(' ').pop());
  }
  return undefined;
}

function getJson(port: number, pathname: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: pathname }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => {
          try {
            resolve(JSON.parse(body) as unknown);
          } catch {
            reject(new Error(`not JSON (HTTP ${res.statusCode}): ${body.slice(0, 80)}`));
          }
        });
      })
      .on('error', reject);
  });
}

describe('metrics', { skip }, () => {
  test('GET /metrics: every documented metric, valid for promtool, and the restart histogram counts', async () => {
    const port = await freePort();
    app = makeApp({ workers: 2, standby: 1, metrics: `127.0.0.1:${port}` }, 'lib.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    await waitFor('the standby', async () =>
      (await daemon!.status()).workers.some((w) => w.role === 'standby'),
    );
    // A kept-alive connection to slot 0 moves to the new worker at the restart.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await httpRequest({ socketPath: app.published(0) }, { agent });
    const r = await daemon.cli(['restart']);
    assert.equal(r.code, 0, r.stderr);
    agent.destroy();
    const text = await scrape({ port });
    for (const name of [
      'nodesockd_workers',
      'nodesockd_worker_restarts_total',
      'nodesockd_worker_resident_memory_bytes',
      'nodesockd_worker_cpu_seconds_total',
      'nodesockd_worker_inflight_requests',
      'nodesockd_worker_event_loop_delay_seconds',
      'nodesockd_restart_duration_seconds',
      'nodesockd_connections_handed_over_total',
      'process_resident_memory_bytes',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exposed`);
    }
    assert.equal(sample(text, 'nodesockd_workers', { role: 'serving' }), 2);
    assert.equal(sample(text, 'nodesockd_restart_duration_seconds_count', { outcome: 'ok' }), 1);
    assert.equal(sample(text, 'nodesockd_connections_handed_over_total', { outcome: 'moved' }), 1);
    assert.equal(sample(text, 'nodesockd_connections_handed_over_total', { outcome: 'failed' }), 0);
    const s = await daemon.status();
    const w0 = s.workers.find((w) => w.slot === 0)!;
    assert.ok(
      (sample(text, 'nodesockd_worker_resident_memory_bytes', { slot: '0', worker: w0.id }) ?? 0) > 0,
    );
    const check = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  });

  test('series whose labels are known exist from the start at 0: in-flight per worker, both restart outcomes', async () => {
    const port = await freePort();
    app = makeApp({ workers: 2, metrics: `127.0.0.1:${port}` }, 'plain.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    // No request and no restart yet.
    const text = await scrape({ port });
    for (const w of (await daemon.status()).workers) {
      assert.equal(
        sample(text, 'nodesockd_worker_inflight_requests', { slot: String(w.slot), worker: w.id }),
        0,
        `in-flight of ${w.id}`,
      );
    }
    for (const outcome of ['ok', 'failed']) {
      assert.equal(sample(text, 'nodesockd_restart_duration_seconds_count', { outcome }), 0, outcome);
      assert.equal(sample(text, 'nodesockd_restart_duration_seconds_bucket', { outcome, le: '+Inf' }), 0);
    }
    const check = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  });

  test('a real Prometheus scrapes the daemon: workers by role, and event loop delay reported by the workers', async () => {
    const port = await freePort();
    app = makeApp({ workers: 2, metrics: `127.0.0.1:${port}` }, 'plain.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile, { online: 2 });
    const promPort = await freePort();
    const dir = path.join(app.dir, 'prometheus');
    fs.mkdirSync(dir);
    const conf = path.join(dir, 'prometheus.yml');
    fs.writeFileSync(
      conf,
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: nodesockd\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n`,
    );
    prometheus = spawn(
      PROMETHEUS!,
      [
        `--config.file=${conf}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: 'ignore' },
    );
    type Vector = { data?: { result?: { metric: Record<string, string>; value: [number, string] }[] } };
    const query = async (q: string) =>
      ((await getJson(promPort, `/api/v1/query?query=${encodeURIComponent(q)}`).catch(() => ({}))) as Vector)
        .data?.result ?? [];
    const serving = await waitFor(
      'Prometheus to have scraped the workers',
      async () => {
        const result = await query('nodesockd_workers{role="serving"}');
        return result[0]?.value[1] === '2' ? result : undefined;
      },
      { timeoutMs: 60_000 },
    );
    assert.equal(serving[0]?.metric.job, 'nodesockd');
    // The preload reports it every 5 s for every worker, library or not.
    const delays = await waitFor(
      'event loop delay of both workers',
      async () => {
        const result = await query('nodesockd_worker_event_loop_delay_seconds');
        return result.length === 2 ? result : undefined;
      },
      { timeoutMs: 60_000 },
    );
    assert.ok(delays.every((d) => Number(d.value[1]) >= 0));
    assert.equal((await query('up{job="nodesockd"}'))[0]?.value[1], '1');
  });

  test('metrics on a UNIX socket path (relative to tmpDir)', async () => {
    app = makeApp({ workers: 1, metrics: 'metrics.sock' }, 'lib.js');
    daemon = await Daemon.start(['daemon', '-c', app.configFile], app.ipcFile);
    const text = await scrape({ socketPath: path.join(app.tmpDir, 'metrics.sock') });
    assert.equal(sample(text, 'nodesockd_workers', { role: 'serving' }), 1);
  });

  test('a bad metrics value is one line naming the key', async () => {
    app = makeApp({ workers: 1, metrics: true }, 'lib.js');
    const r = await cli(['config', '--local', '-c', app.configFile]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /metrics/);
  });
});
