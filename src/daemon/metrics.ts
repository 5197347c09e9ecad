/**
 * The daemon's Prometheus endpoint (`metrics` in the config; docs/operations.md#metrics):
 * `GET /metrics` in the text exposition format, written by prom-client, and the probes `/healthz`
 * and `/readyz`. Worker metrics are read from the pool at scrape time, so a scrape always shows
 * the workers that exist now; the daemon's own process metrics are prom-client's defaults.
 */
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { ConnectionCap } from '../connection-guard';
import type { SlotStatus, WorkerRole, WorkerStatus } from '../ipc/protocol';
import { limits } from '../listener-limits';
import { errorMessage, type Logger } from '../log';

export interface PoolView {
  status(): { slots: SlotStatus[]; workers: WorkerStatus[]; handovers?: { moved: number; failed: number } };
  /** `/readyz`: as `nodesockd health` (daemon/health.ts). */
  health(): Promise<{ healthy: boolean; reason: string | null }>;
  /** Event loop delay the worker last reported (seconds), by worker id. */
  eventLoopDelay(workerId: string): { p99: number; mean: number } | null;
}

const ROLES: readonly WorkerRole[] = ['serving', 'standby', 'starting', 'draining'];

/** `"host:port"`, `"[::1]:port"` or a bare port (127.0.0.1): TCP; anything else: a UNIX socket path. */
export function metricsAddress(
  value: string,
  tmpDir: string,
): { host: string; port: number } | { path: string } {
  const tcp = /^(?:(\[[^\]]+\]|[^:/[\]]+):)?(\d{1,5})$/.exec(value);
  if (tcp) {
    const port = Number(tcp[2]);
    if (port < 1 || port > 65535) throw new Error(`metrics: port ${port} is out of range (1-65535)`);
    return { host: (tcp[1] ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1'), port };
  }
  return { path: path.resolve(tmpDir, value) };
}

export class Metrics {
  readonly registry = new Registry();
  private readonly restartDuration: Histogram;
  private server: http.Server | null = null;
  private socketPath: string | null = null;

  constructor(
    private readonly pool: PoolView,
    private readonly log: Logger,
  ) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    // prom-client names these gauges *_total, which Prometheus reserves for counters (promtool
    // rejects them): the same counts remain as nodejs_active_handles and friends.
    for (const name of [
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
    ]) {
      r.removeSingleMetric(name);
    }
    const view = () => this.pool.status();
    new Gauge({
      name: 'nodesockd_workers',
      help: 'Live workers by role',
      labelNames: ['role'],
      registers: [r],
      collect() {
        this.reset();
        const { workers } = view();
        for (const role of ROLES) this.set({ role }, workers.filter((w) => w.role === role).length);
      },
    });
    new Counter({
      name: 'nodesockd_worker_restarts_total',
      help: 'Replacements of the worker of each slot (crashes, broken reports, promotions)',
      labelNames: ['slot'],
      registers: [r],
      collect() {
        this.reset();
        for (const slot of view().slots) this.inc({ slot: String(slot.index) }, slot.restarts);
      },
    });
    new Counter({
      name: 'nodesockd_connections_handed_over_total',
      help: 'Kept-alive connections of replaced workers by outcome: moved to the successor, or failed (closed the old way)',
      labelNames: ['outcome'],
      registers: [r],
      collect() {
        this.reset();
        const totals = view().handovers ?? { moved: 0, failed: 0 };
        this.inc({ outcome: 'moved' }, totals.moved);
        this.inc({ outcome: 'failed' }, totals.failed);
      },
    });
    const perWorker = (w: WorkerStatus) => ({
      slot: w.slot === null ? w.role : String(w.slot),
      worker: w.id,
    });
    // One series per live worker, read at scrape time; a worker with no value yet (null) is left out.
    const workerSeries: Array<
      [typeof Gauge | typeof Counter, string, string, (w: WorkerStatus) => number | null]
    > = [
      [
        Gauge,
        'nodesockd_worker_resident_memory_bytes',
        'Resident memory of each worker process',
        (w) => w.rssBytes,
      ],
      [
        Counter,
        'nodesockd_worker_cpu_seconds_total',
        'User and system CPU time of each worker process',
        (w) => w.cpuSeconds,
      ],
      // 0 until its server first reports: every live worker has the series from its start.
      [
        Gauge,
        'nodesockd_worker_inflight_requests',
        'Requests in flight in each worker, as its server reports them',
        (w) => w.inflight ?? 0,
      ],
      [
        Gauge,
        'nodesockd_worker_event_loop_delay_seconds',
        "99th percentile of each worker's event loop delay over its last report (every 5 s)",
        (w) => this.pool.eventLoopDelay(w.id)?.p99 ?? null,
      ],
    ];
    for (const [Metric, name, help, value] of workerSeries)
      new Metric({
        name,
        help,
        labelNames: ['slot', 'worker'],
        registers: [r],
        collect(this: Gauge | Counter) {
          this.reset();
          for (const w of view().workers) {
            const v = value(w);
            if (v === null) continue;
            if (this instanceof Gauge) this.set(perWorker(w), v);
            else this.inc(perWorker(w), v);
          }
        },
      });
    this.restartDuration = new Histogram({
      name: 'nodesockd_restart_duration_seconds',
      help: 'Time from the start of a restart to the new generation serving (or failing)',
      labelNames: ['outcome'],
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers: [r],
    });
    // Both outcomes from the start (count 0), so a rate or an alert has a series before the first restart.
    for (const outcome of ['ok', 'failed']) this.restartDuration.zero({ outcome });
  }

  /** Counts one restart. */
  observeRestart(ms: number, ok: boolean): void {
    this.restartDuration.observe({ outcome: ok ? 'ok' : 'failed' }, ms / 1000);
  }

  /**
   * `/healthz` (liveness): 200 whenever the daemon answers. `/readyz` (readiness): 200 when
   * every slot serves, as `nodesockd health` says; 503 with its one-line reason otherwise.
   */
  #scraping: Promise<string> | null = null;

  /** One exposition at a time, shared by the scrapes that arrive meanwhile (a pipelined flood included). */
  private scrape(): Promise<string> {
    if (this.#scraping) return this.#scraping;
    const text = this.registry.metrics();
    this.#scraping = text;
    const clear = () => {
      this.#scraping = null;
    };
    text.then(clear, clear);
    return text;
  }

  private probe(url: '/healthz' | '/readyz', res: http.ServerResponse): void {
    const reply = (status: number, body: string) =>
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(`${body}\n`);
    if (url === '/healthz') return void reply(200, 'ok');
    this.pool.health().then(
      (h) => reply(h.healthy ? 200 : 503, h.healthy ? 'ready' : `not ready: ${h.reason}`),
      (err: unknown) => reply(500, errorMessage(err)),
    );
  }

  /** Serves `GET /metrics` (and the probes) on the address; a failure to listen is reported, never fatal. */
  async listen(address: { host: string; port: number } | { path: string }): Promise<string> {
    // Any local user can connect to the TCP form: an idle connection is closed after a few
    // seconds (one that never sends a byte too), and at the cap the oldest idle one makes room.
    const { metricsIdleMs: idleMs, metricsConnections, warnIntervalMs } = limits();
    const cap = new ConnectionCap(metricsConnections, 'metrics', this.log, warnIntervalMs);
    const server = http.createServer({ headersTimeout: idleMs, requestTimeout: idleMs }, (req, res) => {
      cap.busy(req.socket, true);
      res.once('close', () => cap.busy(req.socket, false));
      const url = (req.url ?? '').split('?')[0];
      if (req.method === 'GET' && (url === '/healthz' || url === '/readyz')) {
        this.probe(url, res);
        return;
      }
      if (req.method !== 'GET' || url !== '/metrics') {
        res
          .writeHead(404, { 'content-type': 'text/plain' })
          .end('not found: try GET /metrics, /healthz or /readyz\n');
        return;
      }
      this.scrape().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(err)}\n`),
      );
    });
    // Requests pipelined on one connection beyond this get 503 at once (Node's own bound).
    server.maxRequestsPerSocket = 100;
    server.on('clientError', (_err, socket) => socket.destroy());
    server.on('connection', (socket: net.Socket) => cap.admit(socket));
    server.setTimeout(idleMs);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if ('path' in address) {
        fs.rmSync(address.path, { force: true });
        server.listen(address.path, resolve);
      } else {
        server.listen(address.port, address.host, resolve);
      }
    });
    server.on('error', (err) => this.log.error(`metrics: ${errorMessage(err)}`));
    this.server = server;
    if ('path' in address) this.socketPath = address.path;
    return 'path' in address
      ? `unix:${address.path}`
      : `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}/metrics`;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (this.socketPath) fs.rmSync(this.socketPath, { force: true });
  }
}
