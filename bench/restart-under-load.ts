/**
 * Restart under load, in two parts, the same nginx (upstream keepalive) and wrk load (GET and
 * POST mixed) in front of every contender:
 *
 * 1. throughput without restarts: interleaved rounds over every contender (the order rotates),
 *    so background noise hits all of them alike; each app under both managers;
 * 2. restarts under load: per contender that restarts, a measured run with restarts spread
 *    over it: failed requests (non-2xx/3xx + socket errors) and restart times. Its req/s and
 *    p99 describe that run only and are compared with the contender's own rounds, never
 *    across contenders.
 *
 *   npm run bench:restart                      # ~4 minutes
 *   npm run bench:restart -- --duration 10 --rounds 1   # shorter; --help for every option
 *
 * See bench/README.md for how to read the results.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  type Backend,
  bootTime,
  type Env,
  startCluster,
  startNodesockd,
  startPm2,
  type Timing,
} from './lib/contenders';
import { HEADLINE_END, HEADLINE_START } from './lib/headline';
import { Nginx, probe } from './lib/nginx';
import { type Run, sleep } from './lib/run';
import {
  buildIfStale,
  COMMON_FLAGS,
  exitOnHelp,
  fmtInt,
  fmtMs,
  intOption,
  loadavg,
  type Machine,
  machine,
  machineLines,
  markdownTable,
  median,
  noteBusy,
  RESULTS,
  ROOT,
  ratio,
  requireTools,
  runBench,
  snapshotPackage,
  textTable,
  writeResult,
} from './lib/setup';
import { failed, runWrk, socketErrors, type WrkResult } from './lib/wrk';

const USAGE = `Usage: npm run bench:restart -- [options]

  --rounds <n>          interleaved throughput rounds without restarts (default 3)
  --round-seconds <s>   measured seconds per contender and round (default 8)
  --duration <s>        seconds of the measured run with restarts, per contender (default 30)
  --restarts <n>        restarts spread over that run (default 5)
  --idle-restarts <n>   restarts (and CLI round trips) timed without load, per contender (default 5)
  --boot-samples <n>    boot-time samples per app (default 5)
  --warmup <s>          unmeasured load before each contender's first round and before each restart run (default 3)
  --connections <n>     wrk connections (default 64)
  --threads <n>         wrk threads (default 2)
  --timeout <s>         wrk request timeout (default 2)
  --keepalive <s>       nginx upstream keepalive_timeout = nodesockd upstreamKeepaliveTimeout, 2-10 (default 4)
  --upstream-keepalive <n>  nginx upstream keepalive connections (default 16)
  --nginx-workers <n>   nginx worker_processes (default 1)
  --only <list>         comma-separated subset of serve,plain,plain-orig,pm2,pm2-serve,cluster (default all)
  --no-build            do not rebuild dist/ even if src/ is newer
  --no-write            do not write bench/results/
  --verbose             print the daemon/pm2 logs of every contender
  -h, --help`;

type Key = 'serve' | 'plain' | 'plain-orig' | 'pm2' | 'pm2-serve' | 'cluster';
const KEYS: Key[] = ['serve', 'plain', 'plain-orig', 'pm2', 'pm2-serve', 'cluster'];
type App = 'serve-app.js' | 'plain-app.js';

interface ContenderSpec {
  key: Key;
  label: string;
  manager: 'nodesockd' | 'pm2' | 'node:cluster';
  app: App;
  /**
   * Whether it takes part in the restart runs. pm2 stops an instance with SIGINT, which
   * serve() does not treat as a shutdown outside nodesockd: pm2 + serve() is for throughput.
   */
  restarts: boolean;
  /** nginx's upstream block as the original nodesockd documents it: no `max_fails=0`. */
  originalUpstream?: boolean;
  start(env: Env, dir: string, script: string): Promise<Backend>;
}

const SPECS: ContenderSpec[] = [
  {
    key: 'serve',
    label: 'nodesockd + serve()',
    manager: 'nodesockd',
    app: 'serve-app.js',
    restarts: true,
    start: (env, dir, script) => startNodesockd(env, dir, script),
  },
  {
    key: 'plain',
    label: 'nodesockd + plain app',
    manager: 'nodesockd',
    app: 'plain-app.js',
    restarts: true,
    start: (env, dir, script) => startNodesockd(env, dir, script),
  },
  {
    key: 'plain-orig',
    label: "nodesockd + plain app, original docs' upstream (no max_fails)",
    manager: 'nodesockd',
    app: 'plain-app.js',
    restarts: true,
    originalUpstream: true,
    start: (env, dir, script) => startNodesockd(env, dir, script),
  },
  {
    key: 'pm2',
    label: 'pm2 cluster + plain app',
    manager: 'pm2',
    app: 'plain-app.js',
    restarts: true,
    start: (env, dir, script) => startPm2(env, dir, script, ROOT),
  },
  {
    key: 'cluster',
    label: 'node:cluster worker swap + plain app',
    manager: 'node:cluster',
    app: 'plain-app.js',
    restarts: true,
    // Fork a new worker, wait for it to listen, disconnect the old one; killed 5 s later if its
    // kept-alive connections keep it (bench/apps/cluster-primary.js).
    start: (env, dir, script) => startCluster(env, dir, script, 2, 5000),
  },
  {
    key: 'pm2-serve',
    label: 'pm2 cluster + serve()',
    manager: 'pm2',
    app: 'serve-app.js',
    restarts: false,
    start: (env, dir, script) => startPm2(env, dir, script, ROOT),
  },
];

interface Options {
  rounds: number;
  roundSeconds: number;
  duration: number;
  restarts: number;
  idleRestarts: number;
  bootSamples: number;
  warmup: number;
  connections: number;
  threads: number;
  timeout: number;
  keepalive: number;
  upstreamKeepalive: number;
  nginxWorkers: number;
  only: Key[];
  build: boolean;
  write: boolean;
  verbose: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '3' },
      'round-seconds': { type: 'string', default: '8' },
      duration: { type: 'string', default: '30' },
      restarts: { type: 'string', default: '5' },
      'idle-restarts': { type: 'string', default: '5' },
      'boot-samples': { type: 'string', default: '5' },
      warmup: { type: 'string', default: '3' },
      connections: { type: 'string', default: '64' },
      threads: { type: 'string', default: '2' },
      timeout: { type: 'string', default: '2' },
      keepalive: { type: 'string', default: '4' },
      'upstream-keepalive': { type: 'string', default: '16' },
      'nginx-workers': { type: 'string', default: '1' },
      only: { type: 'string', default: KEYS.join(',') },
      ...COMMON_FLAGS,
      verbose: { type: 'boolean', default: false },
    },
  });
  exitOnHelp(values.help, USAGE);
  const only = values.only.split(',').map((s) => s.trim());
  for (const k of only) if (!KEYS.includes(k as Key)) throw new Error(`--only: unknown contender ${k}`);
  return {
    rounds: intOption('rounds', values.rounds, 0, 20),
    roundSeconds: intOption('round-seconds', values['round-seconds'], 2, 120),
    duration: intOption('duration', values.duration, 5, 600),
    restarts: intOption('restarts', values.restarts, 0, 100),
    idleRestarts: intOption('idle-restarts', values['idle-restarts'], 0, 20),
    bootSamples: intOption('boot-samples', values['boot-samples'], 1, 50),
    warmup: intOption('warmup', values.warmup, 0, 60),
    connections: intOption('connections', values.connections, 1, 2000),
    threads: intOption('threads', values.threads, 1, 64),
    timeout: intOption('timeout', values.timeout, 1, 60),
    keepalive: intOption('keepalive', values.keepalive, 2, 10),
    upstreamKeepalive: intOption('upstream-keepalive', values['upstream-keepalive'], 1, 10_000),
    nginxWorkers: intOption('nginx-workers', values['nginx-workers'], 1, 64),
    only: KEYS.filter((k) => only.includes(k)),
    build: !values['no-build'],
    write: !values['no-write'],
    verbose: values.verbose,
  };
}

interface Started {
  spec: ContenderSpec;
  backend: Backend;
  nginx: Nginx;
  /** Stops nginx and the backend; returns the leftover processes the sweep killed. */
  stop(): Promise<string[]>;
}

/** After each restart under load: was the deploy atomic? */
interface Atomicity {
  /** Sequential requests sent through nginx right after the restart command returned. */
  probes: number;
  /** Of those, answered by a worker of the release before the restart. */
  oldAnswers: number;
  /** How long the old workers lived after the restart command returned (null: past the bound). */
  oldLivedMs: number | null;
}

interface RestartRun {
  wrk: WrkResult;
  restartsUnderLoad: Timing[];
  atomicity: Atomicity[];
  restartsIdle: Timing[];
  /** CLI round trips without load (`status`, `pm2 ping`). */
  pings: Timing[];
  nginxErrors: Array<[string, number]>;
}

interface Result {
  spec: Started['spec'];
  rounds: WrkResult[];
  restart?: RestartRun;
  bootMs: number;
  leftovers: string[];
}

const rps = (w: WrkResult) => w.requests / (w.durationUs / 1e6);

/** Sequential requests on kept-alive connections through nginx; the pids that answered. */
async function pidsThrough(port: number, agent: http.Agent, count: number): Promise<number[]> {
  const pids: number[] = [];
  for (let i = 0; i < count; i++) {
    const pid = await new Promise<number | null>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, agent, path: '/' }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => {
          try {
            resolve((JSON.parse(body) as { pid: number }).pid);
          } catch {
            resolve(null);
          }
        });
      });
      req.setTimeout(5000, () => req.destroy());
      req.on('error', () => resolve(null));
    });
    if (pid !== null) pids.push(pid);
  }
  return pids;
}

/** A pid that is gone (or a zombie: it serves nothing). */
function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Milliseconds from `since` until every pid is gone; null past `boundMs`. Polled every 10 ms. */
async function livedAfter(pids: number[], since: number, boundMs: number): Promise<number | null> {
  while (performance.now() - since < boundMs) {
    if (pids.every(gone)) return performance.now() - since;
    await sleep(10);
  }
  return null;
}

/** The answers of the old release: probes before the restart, then after it returned. */
const PROBES_BEFORE = 40;
const PROBES_AFTER = 100;
const LIFETIME_BOUND_MS = 120_000;
const roundsRps = (r: Result) => median(r.rounds.map(rps));
const roundsP99 = (r: Result) => median(r.rounds.map((w) => w.p99Us / 1000));
const roundsFailed = (r: Result) => r.rounds.reduce((n, w) => n + failed(w), 0);

async function startContender(env: Env, o: Options, spec: ContenderSpec): Promise<Started> {
  const { run } = env;
  const dir = path.join(run.root, spec.key);
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o711);
  const backend = await spec.start(env, dir, path.join(env.appsDir, spec.app));
  const unhookBackend = run.onCleanup(spec.label, async () => {
    await backend.stop();
  });
  const nginx = await Nginx.start(run, path.join(dir, 'nginx'), {
    upstreams: backend.upstreams,
    keepaliveSeconds: o.keepalive,
    keepaliveConnections: o.upstreamKeepalive,
    workerProcesses: o.nginxWorkers,
    maxFails: spec.originalUpstream ? null : 0,
  });
  const unhookNginx = run.onCleanup('nginx', () => nginx.stop());
  const statusGet = await probe(nginx.port);
  const statusPost = await probe(nginx.port, 'POST');
  if (statusGet !== 200 || statusPost !== 200) {
    throw new Error(`${spec.label} through nginx: GET ${statusGet}, POST ${statusPost}\n${nginx.errorLog()}`);
  }
  return {
    spec,
    backend,
    nginx,
    stop: async () => {
      await nginx.stop();
      unhookNginx();
      const left = await backend.stop();
      unhookBackend();
      return left;
    },
  };
}

function wrkOptions(o: Options, port: number, seconds: number) {
  return { port, threads: o.threads, connections: o.connections, timeoutSeconds: o.timeout, seconds };
}

/** Interleaved rounds without restarts: every contender once per round, the order rotating. */
async function throughputRounds(run: Run, o: Options, all: Started[]): Promise<Map<Key, WrkResult[]>> {
  const out = new Map<Key, WrkResult[]>(all.map((s) => [s.spec.key, []]));
  if (o.rounds === 0) return out;
  console.log(`\n▶ throughput without restarts: ${o.rounds} interleaved rounds of ${o.roundSeconds} s`);
  for (const s of all) if (o.warmup > 0) await runWrk(run, wrkOptions(o, s.nginx.port, o.warmup));
  for (let round = 0; round < o.rounds; round++) {
    const line: string[] = [];
    for (let i = 0; i < all.length; i++) {
      run.check();
      const s = all[(i + round) % all.length]!;
      // A second of load first: the previous contender's connections are gone, this one's warm.
      await runWrk(run, wrkOptions(o, s.nginx.port, 1));
      const w = await runWrk(run, wrkOptions(o, s.nginx.port, o.roundSeconds));
      out.get(s.spec.key)!.push(w);
      line.push(`${s.spec.key} ${fmtInt(rps(w))} req/s p99 ${fmtMs(w.p99Us / 1000, 1)} ms`);
    }
    console.log(`  round ${round + 1}/${o.rounds}: ${line.join(' · ')}`);
  }
  return out;
}

async function restartRun(run: Run, o: Options, s: Started): Promise<RestartRun> {
  const { backend, nginx, spec } = s;
  console.log(`\n▶ restarts under load: ${spec.label}`);
  const restartsIdle: Timing[] = [];
  const pings: Timing[] = [];
  for (let i = 0; i < o.idleRestarts; i++) pings.push(await backend.ping());
  for (let i = 0; i < o.idleRestarts; i++) {
    run.check();
    const t = await backend.restart();
    if (!t.ok) throw new Error(`restart failed:\n${t.output}`);
    restartsIdle.push(t);
    await sleep(300);
  }
  if (o.idleRestarts > 0) {
    console.log(
      `  without load: restart ${restartsIdle.map((t) => fmtMs(t.ms)).join(', ')} ms; ` +
        `CLI round trip ${pings.map((t) => fmtMs(t.ms)).join(', ')} ms`,
    );
  }
  if (o.warmup > 0) await runWrk(run, wrkOptions(o, nginx.port, o.warmup));
  // The warm-up's (and the idle restarts') error-log lines are not this run's.
  fs.truncateSync(path.join(nginx.dir, 'error.log'), 0);
  const restartsUnderLoad: Timing[] = [];
  const atomicity: Atomicity[] = [];
  const probeAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const loadStart = Date.now();
  const load = runWrk(run, wrkOptions(o, nginx.port, o.duration));
  // Awaited below; if a restart throws first, the rejection must not crash the process.
  load.catch(() => undefined);
  for (let i = 0; i < o.restarts; i++) {
    const at = loadStart + (o.duration * 1000 * (i + 1)) / (o.restarts + 1);
    await sleep(at - Date.now());
    run.check();
    const old = new Set(await pidsThrough(nginx.port, probeAgent, PROBES_BEFORE));
    const atMs = Date.now() - loadStart;
    const t = await backend.restart();
    const returned = performance.now();
    const lived = livedAfter([...old], returned, LIFETIME_BOUND_MS);
    const after = await pidsThrough(nginx.port, probeAgent, PROBES_AFTER);
    const a: Atomicity = {
      probes: after.length,
      oldAnswers: after.filter((pid) => old.has(pid)).length,
      oldLivedMs: await lived,
    };
    atomicity.push(a);
    run.check();
    restartsUnderLoad.push({ ...t, atMs });
    console.log(
      `  restart ${i + 1}/${o.restarts} at ${(atMs / 1000).toFixed(1)} s: ${fmtMs(t.ms)} ms${t.ok ? '' : ` FAILED: ${t.output}`}; ` +
        `after it returned: ${a.oldAnswers} of ${a.probes} requests answered by the old release, old workers gone after ${a.oldLivedMs === null ? `> ${LIFETIME_BOUND_MS / 1000} s` : `${fmtMs(a.oldLivedMs)} ms`}`,
    );
  }
  probeAgent.destroy();
  const wrk = await load;
  run.check();
  const nginxErrors = [...nginx.errorSummary()].sort((a, b) => b[1] - a[1]);
  console.log(
    `  ${fmtInt(wrk.requests)} requests, ${fmtInt(failed(wrk))} failed ` +
      `(non-2xx ${wrk.status}: GET ${wrk.failedGet} / POST ${wrk.failedPost}; socket errors ${socketErrors(wrk)}), ` +
      `p99 ${fmtMs(wrk.p99Us / 1000, 2)} ms`,
  );
  for (const [message, count] of nginxErrors.slice(0, 3)) console.log(`  nginx: ${count}× ${message}`);
  return { wrk, restartsUnderLoad, atomicity, restartsIdle, pings, nginxErrors };
}

const THROUGHPUT_HEADERS = [
  'contender',
  'app',
  'req/s (median)',
  'req/s range',
  'p50 ms',
  'p99 ms',
  '×pm2 req/s (same app)',
  '×pm2 p99 (same app)',
  'failed',
];

function throughputRows(results: Result[]): string[][] {
  return results
    .filter((r) => r.rounds.length > 0)
    .map((r) => {
      const pm2 = results.find(
        (x) => x.spec.manager === 'pm2' && x.spec.app === r.spec.app && x.rounds.length > 0,
      );
      const all = r.rounds.map(rps);
      const versus = r.spec.manager === 'nodesockd' && pm2;
      return [
        r.spec.label,
        r.spec.app,
        fmtInt(roundsRps(r)),
        `${fmtInt(Math.min(...all))}–${fmtInt(Math.max(...all))}`,
        fmtMs(median(r.rounds.map((w) => w.p50Us / 1000)), 2),
        fmtMs(roundsP99(r), 2),
        versus ? ratio(roundsRps(r), roundsRps(pm2)) : '—',
        versus ? ratio(roundsP99(r), roundsP99(pm2)) : '—',
        fmtInt(roundsFailed(r)),
      ];
    });
}

const RESTART_HEADERS = [
  'contender',
  'requests',
  'failed',
  'non-2xx GET/POST',
  'socket err',
  'req/s ×own rounds',
  'p99 ms',
  'restart ms',
  'CLI ms',
  'boot ms',
  'beyond boot ms',
  'restart ms loaded med/max',
  'old-release answers after return',
  'old workers lived after return ms med/max',
];

function restartRows(results: Result[]): string[][] {
  return results.flatMap((r) => {
    const x = r.restart;
    if (!x) return [];
    const idle = median(x.restartsIdle.map((t) => t.ms));
    const loaded = x.restartsUnderLoad.map((t) => t.ms);
    const failedRestarts = x.restartsUnderLoad.filter((t) => !t.ok).length;
    return [
      [
        r.spec.label,
        fmtInt(x.wrk.requests),
        fmtInt(failed(x.wrk)),
        `${x.wrk.failedGet}/${x.wrk.failedPost}`,
        String(socketErrors(x.wrk)),
        r.rounds.length ? ratio(rps(x.wrk), roundsRps(r)) : '—',
        fmtMs(x.wrk.p99Us / 1000, 2),
        x.restartsIdle.length ? fmtMs(idle) : '—',
        x.pings.length ? fmtMs(median(x.pings.map((t) => t.ms))) : '—',
        fmtMs(r.bootMs),
        x.restartsIdle.length ? fmtMs(idle - r.bootMs) : '—',
        loaded.length
          ? `${fmtMs(median(loaded))}/${fmtMs(Math.max(...loaded))}${failedRestarts ? ` (${failedRestarts} failed)` : ''}`
          : '—',
        x.atomicity.length
          ? `${x.atomicity.reduce((n, a) => n + a.oldAnswers, 0)} of ${x.atomicity.reduce((n, a) => n + a.probes, 0)}`
          : '—',
        livedCell(x.atomicity),
      ],
    ];
  });
}

function livedCell(list: Atomicity[]): string {
  if (list.length === 0) return '—';
  const known = list.flatMap((a) => (a.oldLivedMs === null ? [] : [a.oldLivedMs]));
  const unbounded = list.length - known.length;
  const max = unbounded > 0 ? `> ${LIFETIME_BOUND_MS / 1000} s` : fmtMs(Math.max(...known));
  return `${known.length ? fmtMs(median(known)) : '—'}/${max}`;
}

const GOAL_MS = 300;

/** One line per contender that restarts: restart time beyond boot against the goal. */
function goalLines(results: Result[]): string[] {
  return results.flatMap((r) => {
    if (!r.restart || r.restart.restartsIdle.length === 0) return [];
    const beyond = median(r.restart.restartsIdle.map((t) => t.ms)) - r.bootMs;
    const cli = median(r.restart.pings.map((t) => t.ms));
    return [
      `${r.spec.label}: restart ${fmtMs(beyond)} ms beyond the app's boot ` +
        `(${beyond < GOAL_MS ? 'meets' : 'misses'} the ${GOAL_MS} ms goal), of which ~${fmtMs(cli)} ms is the CLI round trip`,
    ];
  });
}

const LEGEND = `**Throughput** comes from the interleaved rounds without any restart: req/s, p50 and p99
are medians over the rounds (range: slowest and fastest round), **×pm2** compares nodesockd
with pm2 running the same app. **Restarts under load**: **failed** = responses with status >
399 (**non-2xx GET/POST**, by the method nginx echoes in X-Method) + wrk socket errors
(connect, read, write, timeout), the number that must be 0; **req/s ×own rounds** = the run's
req/s against the same contender's rounds without restarts (what the restarts cost it);
**p99** of that run. Restart columns are medians without load: **restart ms** is the wall time
of the restart command (\`nodesockd restart\`, \`pm2 reload\`) from spawn to exit, **CLI ms** the
manager's cheapest command (\`nodesockd status\`, \`pm2 ping\`), **boot ms** the app's own boot
(\`node app.js\` from spawn to its "listening" line), **beyond boot ms** = restart − boot
(goal < ${GOAL_MS} ms). **restart ms loaded** are the restarts during the measured run.
**Is the deploy atomic?** Before each restart under load, ${PROBES_BEFORE} sequential requests on
kept-alive connections through nginx name the old release's pids; the moment the restart command
returns, ${PROBES_AFTER} more: **old-release answers after return** counts those an old pid answered
(0 means every request sent after the deploy returned ran the new code), **old workers lived after
return** how long until every old pid was gone (median/max over the restarts).`;

function markdownReport(o: Options, results: Result[], m: Machine): string {
  const notes: string[] = [];
  for (const r of results) {
    notes.push(`- **${r.spec.label}** (${r.spec.app})`);
    if (r.rounds.length) {
      notes.push(
        `  - rounds without restarts: ${r.rounds.map((w) => `${fmtInt(rps(w))} req/s p99 ${fmtMs(w.p99Us / 1000, 1)} ms`).join('; ')}`,
      );
    }
    const x = r.restart;
    if (x) {
      const w = x.wrk;
      notes.push(
        `  - run with restarts: ${fmtInt(w.requests)} requests in ${(w.durationUs / 1e6).toFixed(1)} s; non-2xx ${w.status} ` +
          `(GET ${w.failedGet}, POST ${w.failedPost}); socket errors: connect ${w.connect}, read ${w.read}, ` +
          `write ${w.write}, timeout ${w.timeout}; latency p50 ${fmtMs(w.p50Us / 1000, 2)} ms, ` +
          `p99 ${fmtMs(w.p99Us / 1000, 2)} ms, max ${fmtMs(w.maxUs / 1000, 1)} ms`,
      );
      const list = x.restartsUnderLoad
        .map((t) => `${fmtMs(t.ms)} ms at ${((t.atMs ?? 0) / 1000).toFixed(1)} s${t.ok ? '' : ' (failed)'}`)
        .join(', ');
      if (list) notes.push(`  - restarts under load: ${list}`);
      if (x.restartsIdle.length)
        notes.push(`  - restarts without load: ${x.restartsIdle.map((t) => fmtMs(t.ms)).join(', ')} ms`);
      for (const [message, count] of x.nginxErrors.slice(0, 4))
        notes.push(`  - nginx error log: ${count}× ${message}`);
    }
    if (r.leftovers.length) notes.push(`  - leftover processes killed by the sweep: ${r.leftovers.length}`);
  }
  return `# Restart under load

Generated by \`npm run bench:restart\` (bench/restart-under-load.ts); see bench/README.md for
what each column means. Numbers from one run on one machine: compare ratios within the table,
not absolute numbers across machines.

${machineLines(m)}
- load: wrk -t${o.threads} -c${o.connections} --timeout ${o.timeout}s, GET and POST alternating
- throughput: ${o.rounds} interleaved rounds of ${o.roundSeconds} s (after 1 s unmeasured) per contender, no restart; ${o.warmup} s warm-up each first
- restarts: ${o.duration} s measured per contender after ${o.warmup} s of warm-up, ${o.restarts} restarts spread over it; ${o.idleRestarts} timed without load; app boot: median of ${o.bootSamples}
- nginx: worker_processes ${o.nginxWorkers}, upstream keepalive ${o.upstreamKeepalive}, keepalive_timeout ${o.keepalive}s (= upstreamKeepaliveTimeout ${o.keepalive * 1000}), HTTP/1.1, Connection "", its own session (as a daemonized nginx)

## Throughput without restarts

${HEADLINE_START}
${markdownTable(THROUGHPUT_HEADERS, throughputRows(results))}

Failed requests while restarting ${o.restarts}× under load: ${results
    .filter((r) => r.restart)
    .map((r) => `${r.spec.label} **${fmtInt(failed(r.restart!.wrk))}**`)
    .join(', ')}.
${HEADLINE_END}

## Restarts under load

${markdownTable(RESTART_HEADERS, restartRows(results))}

${LEGEND}

${goalLines(results)
  .map((l) => `- ${l}`)
  .join('\n')}

Details:

${notes.join('\n')}
`;
}

async function main(run: Run, o: Options): Promise<void> {
  const specs = SPECS.filter((s) => o.only.includes(s.key));
  requireTools({ nginx: true, wrk: true, pm2: specs.some((s) => s.manager === 'pm2') });
  await buildIfStale(o.build);
  const m = machine();
  console.log(
    `restart under load: ${m.nproc} CPUs, node ${m.node}, nginx ${m.nginx}, pm2 ${m.pm2}, nodesockd ${m.commit}`,
  );
  console.log(
    `wrk -t${o.threads} -c${o.connections}; ${o.rounds} rounds of ${o.roundSeconds} s without restarts; ` +
      `${o.duration} s with ${o.restarts} restarts per contender; upstream keepalive ${o.upstreamKeepalive}, keepalive_timeout ${o.keepalive} s`,
  );
  await noteBusy(m);
  const { pkgDir, appsDir } = await snapshotPackage(run);
  const env: Env = { run, pkgDir, appsDir, keepaliveSeconds: o.keepalive };

  const boot = new Map<string, number>();
  for (const app of new Set(specs.map((s) => s.app))) {
    const samples: number[] = [];
    for (let i = 0; i < o.bootSamples; i++) samples.push(await bootTime(run, path.join(appsDir, app)));
    boot.set(app, median(samples));
    console.log(
      `app boot ${app}: ${samples.map((s) => fmtMs(s)).join(', ')} ms (median ${fmtMs(median(samples))})`,
    );
  }

  const all: Started[] = [];
  for (const spec of specs) all.push(await startContender(env, o, spec));
  const rounds = await throughputRounds(run, o, all);
  const results: Result[] = [];
  for (const s of all) {
    const restart = s.spec.restarts ? await restartRun(run, o, s) : undefined;
    results.push({
      spec: s.spec,
      rounds: rounds.get(s.spec.key)!,
      restart,
      bootMs: boot.get(s.spec.app)!,
      leftovers: [],
    });
  }
  for (const [i, s] of all.entries()) {
    results[i]!.leftovers = await s.stop();
    if (o.verbose) console.log(s.backend.log());
    if (results[i]!.leftovers.length > 0)
      console.log(`  !! ${s.spec.label}: killed ${results[i]!.leftovers.length} leftover process(es)`);
  }

  m.loadAfter = loadavg();
  console.log(`\n${textTable(THROUGHPUT_HEADERS, throughputRows(results))}\n`);
  console.log(`${textTable(RESTART_HEADERS, restartRows(results))}\n`);
  for (const line of goalLines(results)) console.log(line);
  console.log(`load average before: ${m.loadBefore}, after: ${m.loadAfter} (${m.nproc} CPUs)`);
  if (o.write) {
    writeResult('restart-under-load.md', markdownReport(o, results, m));
    fs.appendFileSync(
      path.join(RESULTS, 'restart-under-load.raw'),
      `${JSON.stringify({ ...m, options: o, results })}\n`,
    );
  }
}

void runBench(parseOptions, USAGE, main);
