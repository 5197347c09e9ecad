/**
 * The data path: what the process manager costs a request behind nginx. One run, interleaved
 * rounds, the same app on every side ([apps/plain-app.js](apps/plain-app.js)):
 *
 *   nodesockd   nginx → nodesockd's workers over UNIX sockets (the built daemon)
 *   tcp         nginx → the app on loopback TCP, no manager (one port per process)
 *   unix        nginx → the app on UNIX sockets, no manager: the limit
 *   pm2         nginx → pm2 cluster mode (one loopback port, pm2's master accepts)
 *   unix-setsid the app alone on UNIX sockets, each process in its own session as nodesockd
 *               starts its workers: what that costs or gains under autogroup scheduling
 *
 * for 1 and 2 workers, without upstream keepalive and with `keepalive 16` and `64`, under
 * wrk -c64. Prints req/s, p50, p99 and ratios; writes bench/results/datapath.md and .svg.
 * Also reports the daemon's RSS with 8 workers.
 *
 *   npm run bench:datapath                      # ~10 minutes
 *   npm run bench:datapath -- --rounds 1 --seconds 3 --workers 2   # quick look
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readProcStats } from '../src/daemon/proc';
import { type Backend, type Env, rssKiB, startNodesockd, startPm2, startStandalone } from './lib/contenders';
import { HEADLINE_END, HEADLINE_START } from './lib/headline';
import { Nginx, probe } from './lib/nginx';
import type { Run } from './lib/run';
import { sleep } from './lib/run';
import {
  buildIfStale,
  COMMON_FLAGS,
  exitOnHelp,
  fmtInt,
  fmtMs,
  intListOption,
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
import { groupedBarChart } from './lib/svg';
import { failed, runWrk, type WrkResult } from './lib/wrk';

const USAGE = `Usage: npm run bench:datapath -- [options]

  --rounds <n>              interleaved rounds per cell (default 3)
  --seconds <s>             measured seconds per cell and round (default 5)
  --settle <s>              unmeasured load right before each measurement (default 1)
  --warmup <s>              unmeasured load per cell before the first round (default 2)
  --workers <list>          worker counts (default 1,2)
  --upstream-keepalive <list>  nginx upstream keepalive connections, 0 = none (default 0,16,64)
  --connections <n>         wrk connections (default 64)
  --threads <n>             wrk threads (default 2)
  --keepalive <s>           nginx upstream keepalive_timeout = upstreamKeepaliveTimeout (default 4)
  --rss-workers <n>         workers of the daemon whose RSS is reported, 0 = skip (default 8)
  --only <list>             subset of nodesockd,tcp,unix,pm2,unix-setsid (default all);
                            unix-setsid: the app alone on UNIX sockets, each process in its
                            own session as nodesockd starts its workers (see bench/README.md)
  --no-build                do not rebuild dist/ even if src/ is newer
  --no-write                do not write bench/results/
  -h, --help`;

const APP = 'plain-app.js';

type Key = 'nodesockd' | 'tcp' | 'unix' | 'pm2' | 'unix-setsid';
const KEYS: Key[] = ['nodesockd', 'tcp', 'unix', 'pm2', 'unix-setsid'];
const LABELS: Record<Key, string> = {
  nodesockd: 'nodesockd (UNIX)',
  tcp: 'no manager, TCP',
  unix: 'no manager, UNIX',
  pm2: 'pm2 cluster (TCP)',
  'unix-setsid': 'no manager, UNIX, setsid',
};

interface Options {
  rounds: number;
  seconds: number;
  settle: number;
  warmup: number;
  workers: number[];
  upstreamKeepalive: number[];
  connections: number;
  threads: number;
  keepalive: number;
  rssWorkers: number;
  only: Key[];
  build: boolean;
  write: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '5' },
      settle: { type: 'string', default: '1' },
      warmup: { type: 'string', default: '2' },
      workers: { type: 'string', default: '1,2' },
      'upstream-keepalive': { type: 'string', default: '0,16,64' },
      connections: { type: 'string', default: '64' },
      threads: { type: 'string', default: '2' },
      keepalive: { type: 'string', default: '4' },
      'rss-workers': { type: 'string', default: '8' },
      only: { type: 'string', default: KEYS.join(',') },
      ...COMMON_FLAGS,
    },
  });
  exitOnHelp(values.help, USAGE);
  const only = values.only.split(',').map((s) => s.trim());
  for (const k of only) if (!KEYS.includes(k as Key)) throw new Error(`--only: unknown contender ${k}`);
  return {
    rounds: intOption('rounds', values.rounds, 1, 20),
    seconds: intOption('seconds', values.seconds, 1, 120),
    settle: intOption('settle', values.settle, 0, 30),
    warmup: intOption('warmup', values.warmup, 0, 60),
    workers: intListOption('workers', values.workers, 1, 16),
    upstreamKeepalive: intListOption('upstream-keepalive', values['upstream-keepalive'], 0, 10_000),
    connections: intOption('connections', values.connections, 1, 2000),
    threads: intOption('threads', values.threads, 1, 64),
    keepalive: intOption('keepalive', values.keepalive, 2, 10),
    rssWorkers: intOption('rss-workers', values['rss-workers'], 0, 64),
    only: KEYS.filter((k) => only.includes(k)),
    build: !values['no-build'],
    write: !values['no-write'],
  };
}

/** One measurement of one cell in one round. */
interface Sample {
  wrk: WrkResult;
  /** CPU seconds the manager's own process used per measured second (NaN: no manager). */
  managerCpu: number;
}

interface Cell {
  workers: number;
  upstreamKeepalive: number;
  key: Key;
  samples: Sample[];
}

const rps = (w: WrkResult) => w.requests / (w.durationUs / 1e6);

interface Summary {
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
  managerCpu: number;
}

function summarize(c: Cell): Summary {
  const r = c.samples.map((s) => rps(s.wrk));
  return {
    rps: median(r),
    rpsMin: Math.min(...r),
    rpsMax: Math.max(...r),
    p50Ms: median(c.samples.map((s) => s.wrk.p50Us / 1000)),
    p99Ms: median(c.samples.map((s) => s.wrk.p99Us / 1000)),
    failed: c.samples.reduce((n, s) => n + failed(s.wrk), 0),
    managerCpu: median(c.samples.map((s) => s.managerCpu)),
  };
}

const kaLabel = (k: number) => (k === 0 ? 'no keepalive' : `keepalive ${k}`);

async function startBackend(env: Env, key: Key, dir: string, workers: number): Promise<Backend> {
  const script = path.join(env.appsDir, APP);
  switch (key) {
    case 'nodesockd':
      return startNodesockd(env, dir, script, workers);
    case 'tcp':
      return startStandalone(env, dir, script, workers, 'tcp');
    case 'unix':
      return startStandalone(env, dir, script, workers, 'unix');
    case 'pm2':
      return startPm2(env, dir, script, ROOT, workers);
    case 'unix-setsid':
      return startStandalone(env, dir, script, workers, 'unix', true);
  }
}

function cpuSeconds(pid: number | undefined): number {
  return pid === undefined ? Number.NaN : (readProcStats(pid)?.cpuSeconds ?? Number.NaN);
}

/** Starts every contender with `workers` workers and one nginx per upstream keepalive setting. */
async function startGroup(env: Env, o: Options, workers: number) {
  const { run } = env;
  const started: Array<{ key: Key; backend: Backend; nginx: Map<number, Nginx>; stop: () => Promise<void> }> =
    [];
  for (const key of o.only) {
    const dir = path.join(run.root, `w${workers}-${key}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.chmodSync(dir, 0o711);
    const backend = await startBackend(env, key, dir, workers);
    const unhooks = [
      run.onCleanup(`${key} (${workers} workers)`, async () => {
        await backend.stop();
      }),
    ];
    const nginx = new Map<number, Nginx>();
    for (const k of o.upstreamKeepalive) {
      const n = await Nginx.start(run, path.join(dir, `nginx-ka${k}`), {
        upstreams: backend.upstreams,
        keepaliveSeconds: o.keepalive,
        keepaliveConnections: k,
        workerProcesses: 1,
      });
      unhooks.push(run.onCleanup('nginx', () => n.stop()));
      const get = await probe(n.port);
      const post = await probe(n.port, 'POST');
      if (get !== 200 || post !== 200) {
        throw new Error(`${key} through nginx: GET ${get}, POST ${post}\n${n.errorLog()}`);
      }
      nginx.set(k, n);
    }
    const stop = async () => {
      for (const n of nginx.values()) await n.stop();
      await backend.stop();
      for (const unhook of unhooks) unhook();
    };
    started.push({ key, backend, nginx, stop });
  }
  return started;
}

async function measureGroup(env: Env, o: Options, workers: number, cells: Cell[]): Promise<number> {
  const { run } = env;
  console.log(`\n▶ ${workers} worker${workers === 1 ? '' : 's'}: starting ${o.only.join(', ')}`);
  const group = await startGroup(env, o, workers);
  const wrkOptions = { threads: o.threads, connections: o.connections, timeoutSeconds: 2 };
  if (o.warmup > 0) {
    for (const g of group)
      for (const n of g.nginx.values()) await runWrk(run, { ...wrkOptions, port: n.port, seconds: o.warmup });
  }
  const cellOf = (key: Key, k: number) => {
    let c = cells.find((x) => x.workers === workers && x.upstreamKeepalive === k && x.key === key);
    if (!c) {
      c = { workers, upstreamKeepalive: k, key, samples: [] };
      cells.push(c);
    }
    return c;
  };
  for (let round = 0; round < o.rounds; round++) {
    for (const k of o.upstreamKeepalive) {
      // A different contender goes first in each round, so none always follows the same one.
      const order = group.map((_, i) => group[(i + round) % group.length]!);
      const line: string[] = [];
      for (const g of order) {
        run.check();
        const port = g.nginx.get(k)!.port;
        if (o.settle > 0) await runWrk(run, { ...wrkOptions, port, seconds: o.settle });
        const pid = g.backend.managerPid;
        const cpuBefore = cpuSeconds(pid);
        const wrk = await runWrk(run, { ...wrkOptions, port, seconds: o.seconds });
        const managerCpu = (cpuSeconds(pid) - cpuBefore) / (wrk.durationUs / 1e6);
        cellOf(g.key, k).samples.push({ wrk, managerCpu });
        line.push(`${g.key} ${fmtInt(rps(wrk))} req/s p99 ${fmtMs(wrk.p99Us / 1000, 1)} ms`);
      }
      console.log(`  round ${round + 1}/${o.rounds}, ${kaLabel(k)}: ${line.join(' · ')}`);
    }
  }
  const daemon = group.find((g) => g.key === 'nodesockd')?.backend.managerPid;
  const rssAfter = daemon === undefined ? Number.NaN : rssKiB(daemon);
  for (const g of group) await g.stop();
  return rssAfter;
}

/** The daemon's VmRSS once `workers` workers are online and it is idle: median of 5 readings. */
async function daemonRss(env: Env, workers: number): Promise<{ medianKiB: number; samples: number[] }> {
  const dir = path.join(env.run.root, `rss-w${workers}`);
  const backend = await startNodesockd(env, dir, path.join(env.appsDir, APP), workers);
  const unhook = env.run.onCleanup(`nodesockd (${workers} workers)`, async () => {
    await backend.stop();
  });
  const samples: number[] = [];
  await sleep(1000);
  for (let i = 0; i < 5; i++) {
    samples.push(rssKiB(backend.managerPid!));
    await sleep(400);
  }
  await backend.stop();
  unhook();
  return { medianKiB: median(samples), samples };
}

const HEADERS = [
  'workers',
  'upstream',
  'contender',
  'req/s (median)',
  'req/s range',
  'p50 ms',
  'p99 ms',
  '×pm2 req/s',
  '×pm2 p99',
  '×unix req/s',
  'failed',
  'manager CPU',
];

function rows(o: Options, cells: Cell[]): string[][] {
  const out: string[][] = [];
  for (const w of o.workers) {
    for (const k of o.upstreamKeepalive) {
      const find = (key: Key) =>
        cells.find((c) => c.workers === w && c.upstreamKeepalive === k && c.key === key);
      const pm2 = find('pm2');
      const unix = find('unix');
      const pm2s = pm2 && summarize(pm2);
      const unixs = unix && summarize(unix);
      for (const key of o.only) {
        const c = find(key);
        if (!c) continue;
        const s = summarize(c);
        out.push([
          String(w),
          kaLabel(k),
          LABELS[key],
          fmtInt(s.rps),
          `${fmtInt(s.rpsMin)}–${fmtInt(s.rpsMax)}`,
          fmtMs(s.p50Ms, 2),
          fmtMs(s.p99Ms, 2),
          pm2s ? ratio(s.rps, pm2s.rps) : '—',
          pm2s ? ratio(s.p99Ms, pm2s.p99Ms) : '—',
          unixs ? ratio(s.rps, unixs.rps) : '—',
          fmtInt(s.failed),
          Number.isFinite(s.managerCpu) ? `${Math.round(s.managerCpu * 100)}%` : '—',
        ]);
      }
    }
  }
  return out;
}

interface Goal {
  cell: string;
  vsPm2Rps: number;
  vsPm2P99: number;
  vsUnixRps: number;
}

function goals(o: Options, cells: Cell[]): Goal[] {
  const out: Goal[] = [];
  for (const w of o.workers) {
    for (const k of o.upstreamKeepalive) {
      const s = (key: Key) => {
        const c = cells.find((x) => x.workers === w && x.upstreamKeepalive === k && x.key === key);
        return c ? summarize(c) : undefined;
      };
      const n = s('nodesockd');
      if (!n) continue;
      const pm2 = s('pm2');
      const unix = s('unix');
      out.push({
        cell: `${w} worker${w === 1 ? '' : 's'}, ${kaLabel(k)}`,
        vsPm2Rps: pm2 ? n.rps / pm2.rps : Number.NaN,
        vsPm2P99: pm2 ? n.p99Ms / pm2.p99Ms : Number.NaN,
        vsUnixRps: unix ? n.rps / unix.rps : Number.NaN,
      });
    }
  }
  return out;
}

const RSS_GOAL_MB = 60;

function goalRows(gs: Goal[]): string[][] {
  const mark = (ok: boolean) => (ok ? 'yes' : '**no**');
  const f = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
  return gs.map((g) => [
    g.cell,
    `${f(g.vsPm2Rps)} ${Number.isFinite(g.vsPm2Rps) ? mark(g.vsPm2Rps >= 1) : ''}`,
    `${f(g.vsPm2P99)} ${Number.isFinite(g.vsPm2P99) ? mark(g.vsPm2P99 <= 1) : ''}`,
    `${f(g.vsUnixRps)} ${Number.isFinite(g.vsUnixRps) ? mark(g.vsUnixRps >= 0.97) : ''}`,
  ]);
}
const GOAL_HEADERS = ['cell', 'req/s ≥ pm2', 'p99 ≤ pm2', 'req/s ≥ 0.97× unix'];

function chart(o: Options, cells: Cell[]): string {
  const groups = o.workers.flatMap((w) => o.upstreamKeepalive.map((k) => ({ w, k })));
  const value = (w: number, k: number, key: Key, f: (s: Summary) => number) => {
    const c = cells.find((x) => x.workers === w && x.upstreamKeepalive === k && x.key === key);
    return c ? f(summarize(c)) : Number.NaN;
  };
  const label = (w: number, k: number) => `${w}w, ${k === 0 ? 'no ka' : `ka ${k}`}`;
  return groupedBarChart(
    o.only.map((k) => LABELS[k]),
    [
      {
        title: `Throughput behind nginx (median of ${o.rounds} rounds, wrk -c${o.connections}; higher is better)`,
        unit: 'req/s',
        groups: groups.map(({ w, k }) => ({
          label: label(w, k),
          values: o.only.map((key) => value(w, k, key, (s) => s.rps)),
        })),
      },
      {
        title: 'p99 latency (median of the rounds; lower is better)',
        unit: 'ms',
        groups: groups.map(({ w, k }) => ({
          label: label(w, k),
          values: o.only.map((key) => value(w, k, key, (s) => s.p99Ms)),
        })),
      },
    ],
  );
}

function report(
  o: Options,
  cells: Cell[],
  m: Machine,
  rss: { medianKiB: number; samples: number[] } | undefined,
  rssAfterLoad: Map<number, number>,
): string {
  const rssLine = rss
    ? `Daemon RSS with ${o.rssWorkers} workers (idle, VmRSS of the daemon process alone, median of 5): ` +
      `**${(rss.medianKiB / 1024).toFixed(1)} MB** (goal ≤ ${RSS_GOAL_MB} MB: ${rss.medianKiB / 1024 <= RSS_GOAL_MB ? 'met' : '**missed**'}; ` +
      `readings ${rss.samples.map((s) => (s / 1024).toFixed(1)).join(', ')} MB).`
    : 'Daemon RSS: not measured (--rss-workers 0).';
  const after = [...rssAfterLoad]
    .filter(([, kib]) => Number.isFinite(kib))
    .map(([w, kib]) => `${(kib / 1024).toFixed(1)} MB with ${w} worker${w === 1 ? '' : 's'}`)
    .join(', ');
  return `# Data path: nginx → the app, with and without a manager

Generated by \`npm run bench:datapath\` (bench/datapath.ts); see bench/README.md. One run,
interleaved rounds; compare the ratios within this table, not numbers across machines.

${machineLines(m)}
- app: [\`apps/${APP}\`](../apps/${APP}) on every side (plain \`node:http\`, same handler, no library)
- load: wrk -t${o.threads} -c${o.connections}, GET and POST alternating; per cell and round ${o.settle} s unmeasured + ${o.seconds} s measured; ${o.rounds} interleaved rounds (the order of the contenders rotates), ${o.warmup} s warm-up per cell first
- nginx: worker_processes 1, HTTP/1.1, \`Connection ""\`, upstream \`keepalive\` none / ${o.upstreamKeepalive.filter((k) => k > 0).join(' / ')}, keepalive_timeout ${o.keepalive}s (= upstreamKeepaliveTimeout)

${markdownTable(HEADERS, rows(o, cells))}

req/s, p50 and p99 are the medians over the rounds (req/s range: slowest and fastest round).
**×pm2** and **×unix** compare with pm2 and with the app alone on UNIX sockets in the same
cell. **manager CPU**: CPU time of the manager's own process (nodesockd's daemon, pm2's
daemon, which is also the cluster master that accepts connections) per second of load.

![data path chart](datapath.svg)

## Goals (issue 13)

${HEADLINE_START}
nodesockd against pm2 and against the app alone on UNIX sockets, per cell (medians of ${o.rounds} interleaved rounds, wrk -c${o.connections}):

${markdownTable(GOAL_HEADERS, goalRows(goals(o, cells)))}

${rssLine}
${HEADLINE_END}
${after ? `\nDaemon RSS after the measured rounds: ${after}.\n` : ''}`;
}

async function main(run: Run, o: Options): Promise<void> {
  requireTools({ nginx: true, wrk: true, pm2: o.only.includes('pm2') });
  await buildIfStale(o.build);
  const m = machine();
  const cellsCount = o.workers.length * o.upstreamKeepalive.length * o.only.length;
  const estimate = cellsCount * (o.warmup + o.rounds * (o.settle + o.seconds));
  console.log(
    `data path: ${m.nproc} CPUs, node ${m.node}, nginx ${m.nginx}, pm2 ${m.pm2}, nodesockd ${m.commit}; ` +
      `${cellsCount} cells × ${o.rounds} rounds, ~${Math.ceil(estimate / 60)} min of load`,
  );
  await noteBusy(m);
  const { pkgDir, appsDir } = await snapshotPackage(run);
  const env: Env = { run, pkgDir, appsDir, keepaliveSeconds: o.keepalive };
  const cells: Cell[] = [];
  const rssAfterLoad = new Map<number, number>();
  for (const w of o.workers) rssAfterLoad.set(w, await measureGroup(env, o, w, cells));
  let rss: { medianKiB: number; samples: number[] } | undefined;
  if (o.rssWorkers > 0) {
    rss = await daemonRss(env, o.rssWorkers);
    console.log(
      `\ndaemon RSS with ${o.rssWorkers} workers: ${(rss.medianKiB / 1024).toFixed(1)} MB (goal ≤ ${RSS_GOAL_MB} MB)`,
    );
  }
  m.loadAfter = loadavg();
  console.log(`\n${textTable(HEADERS, rows(o, cells))}\n`);
  console.log(
    textTable(
      GOAL_HEADERS,
      goalRows(goals(o, cells)).map((r) => r.map((c) => c.replaceAll('*', ''))),
    ),
  );
  console.log(`load average before: ${m.loadBefore}, after: ${m.loadAfter} (${m.nproc} CPUs)`);
  if (o.write) {
    writeResult('datapath.md', report(o, cells, m, rss, rssAfterLoad));
    writeResult('datapath.svg', chart(o, cells));
    fs.appendFileSync(
      path.join(RESULTS, 'datapath.raw'),
      `${JSON.stringify({ ...m, options: o, cells, rss: rss ?? null })}\n`,
    );
  }
}

void runBench(parseOptions, USAGE, main);
