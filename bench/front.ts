/**
 * `npm run bench:front`: the daemon's own TCP front (`listen`, SPEC §6) against node:cluster
 * and pm2 cluster mode, with no nginx: wrk straight at each one's loopback port, 2 workers of
 * the same trivial app (bench/apps/plain-app.js), GET and POST mixed. For each contender and
 * each connection mode (wrk's kept-alive connections; `Connection: close`, a new connection
 * per request), a steady window and a window with 3 restarts during the load (nodesockd
 * `restart`, a node:cluster worker swap, `pm2 reload`). Prints req/s, p99, failed requests
 * (wrk's socket errors + non-2xx) and the ratios to node:cluster; writes
 * bench/results/front.md and bench/results/front.svg.
 * `nodesockd-workers` is the same front with `listen: { …, accept: workers }` (the workers accept).
 *
 *   npm run bench:front                                  # ~3 minutes
 *   npm run bench:front -- --seconds 5 --only nodesockd,cluster --no-write
 *
 * See bench/README.md for how to read the results.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  type Backend,
  type Env,
  startCluster,
  startNodesockd,
  startPm2,
  type Timing,
} from './lib/contenders';
import { HEADLINE_END, HEADLINE_START } from './lib/headline';
import { freePort, probe, waitFor } from './lib/nginx';
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
import { failed, runWrk, socketErrors, type WrkResult } from './lib/wrk';

const USAGE = `Usage: npm run bench:front -- [options]

  --seconds <s>       measured seconds of each window, steady and with restarts (default 10)
  --warmup <s>        unmeasured load before each contender's first window of each mode (default 2)
  --restarts <n>      restarts spread over each restart window (default 3)
  --connections <n>   wrk connections (default 64)
  --threads <n>       wrk threads (default 2)
  --timeout <s>       wrk request timeout (default 2)
  --modes <list>      keepalive,close (default both)
  --only <list>       comma-separated subset of nodesockd,nodesockd-workers,cluster,pm2 (default all)
  --no-build          do not rebuild dist/ even if src/ is newer
  --no-write          do not write bench/results/
  -h, --help`;

/** `nodesockd-workers`: the same front with `accept: workers` (the workers accept themselves). */
type Key = 'nodesockd' | 'nodesockd-workers' | 'cluster' | 'pm2';
const KEYS: Key[] = ['nodesockd', 'nodesockd-workers', 'cluster', 'pm2'];
type Mode = 'keepalive' | 'close';
const MODES: Mode[] = ['keepalive', 'close'];
const MODE_LABEL: Record<Mode, string> = {
  keepalive: 'kept-alive connections',
  close: 'Connection: close (a new connection per request)',
};
const WORKERS = 2;
/** What a node:cluster worker swap allows an old worker to finish in (pm2's kill_timeout is 1.6 s). */
const SWAP_GRACE_MS = 5000;

interface Options {
  seconds: number;
  warmup: number;
  restarts: number;
  connections: number;
  threads: number;
  timeout: number;
  modes: Mode[];
  only: Key[];
  build: boolean;
  write: boolean;
}

function listOption<T extends string>(name: string, raw: string | undefined, all: T[]): T[] {
  if (raw === undefined) return all;
  const list = raw.split(',').map((s) => s.trim());
  for (const k of list) {
    if (!all.includes(k as T)) throw new Error(`--${name}: unknown "${k}" (one of ${all.join(', ')})`);
  }
  return list as T[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      restarts: { type: 'string', default: '3' },
      connections: { type: 'string', default: '64' },
      threads: { type: 'string', default: '2' },
      timeout: { type: 'string', default: '2' },
      modes: { type: 'string' },
      only: { type: 'string' },
      ...COMMON_FLAGS,
    },
  });
  exitOnHelp(values.help, USAGE);
  return {
    seconds: intOption('seconds', values.seconds, 2, 600),
    warmup: intOption('warmup', values.warmup, 0, 60),
    restarts: intOption('restarts', values.restarts, 1, 20),
    connections: intOption('connections', values.connections, 1, 1024),
    threads: intOption('threads', values.threads, 1, 16),
    timeout: intOption('timeout', values.timeout, 1, 60),
    modes: listOption('modes', values.modes, MODES),
    only: listOption('only', values.only, KEYS),
    build: !values['no-build'],
    write: !values['no-write'],
  };
}

interface Contender {
  key: Key;
  label: string;
  port: number;
  backend: Backend;
}

async function startContender(env: Env, key: Key, script: string): Promise<Contender> {
  const dir = path.join(env.run.root, key);
  if (key === 'nodesockd' || key === 'nodesockd-workers') {
    const port = await freePort();
    const workers = key === 'nodesockd-workers';
    const backend = await startNodesockd(env, dir, script, WORKERS, {
      config: { listen: workers ? { host: '127.0.0.1', port, accept: 'workers' } : `127.0.0.1:${port}` },
    });
    await waitFor('nodesockd: the front to answer', async () => (await probe(port)) === 200);
    return { key, label: `nodesockd's listen front${workers ? ', accept: workers' : ''}`, port, backend };
  }
  if (key === 'cluster') {
    const backend = await startCluster(env, dir, script, WORKERS, SWAP_GRACE_MS);
    return { key, label: 'node:cluster (worker swap)', port: backend.port, backend };
  }
  const backend = await startPm2(env, dir, script, ROOT, WORKERS);
  const port = Number(/:(\d+)$/.exec(backend.upstreams[0] ?? '')?.[1]);
  return { key, label: 'pm2 cluster mode (pm2 reload)', port, backend };
}

interface Window {
  wrk: WrkResult;
  restarts: Timing[];
}

interface Result {
  key: Key;
  label: string;
  mode: Mode;
  steady: Window;
  restarting: Window;
}

async function measure(run: Run, o: Options, c: Contender, mode: Mode, restarts: number): Promise<Window> {
  const wrkOptions = {
    port: c.port,
    threads: o.threads,
    connections: o.connections,
    seconds: o.seconds,
    timeoutSeconds: o.timeout,
    close: mode === 'close',
  };
  const start = Date.now();
  const load = runWrk(run, wrkOptions);
  // Awaited below; if a restart throws first, the rejection must not crash the process.
  load.catch(() => undefined);
  const done: Timing[] = [];
  for (let i = 0; i < restarts; i++) {
    await sleep(start + (o.seconds * 1000 * (i + 1)) / (restarts + 1) - Date.now());
    run.check();
    const atMs = Date.now() - start;
    const t = await c.backend.restart();
    done.push({ ...t, atMs });
    if (!t.ok) console.log(`  restart ${i + 1} FAILED: ${t.output}`);
  }
  const wrk = await load;
  run.check();
  return { wrk, restarts: done };
}

const rps = (w: WrkResult) => (w.requests * 1e6) / w.durationUs;
const p99 = (w: WrkResult) => w.p99Us / 1000;

function describe(w: Window): string {
  const restarts = w.restarts.length
    ? `; restarts ${w.restarts.map((t) => `${fmtMs(t.ms)} ms${t.ok ? '' : ' (failed)'}`).join(', ')}`
    : '';
  return (
    `${fmtInt(rps(w.wrk))} req/s, p99 ${fmtMs(p99(w.wrk), 2)} ms, ${fmtInt(failed(w.wrk))} failed ` +
    `(non-2xx ${w.wrk.status}, socket errors ${socketErrors(w.wrk)})${restarts}`
  );
}

const HEADERS = [
  'contender',
  'connections',
  'req/s steady',
  '× cluster',
  'p99 ms',
  '× cluster',
  'failed steady',
  'req/s, 3 restarts',
  '× cluster',
  'p99 ms',
  'failed across restarts',
];

function rows(results: Result[]): string[][] {
  return results.map((r) => {
    const base = results.find((b) => b.key === 'cluster' && b.mode === r.mode);
    const bs = base?.steady.wrk;
    const br = base?.restarting.wrk;
    return [
      r.label,
      r.mode === 'keepalive' ? 'kept alive' : 'close',
      fmtInt(rps(r.steady.wrk)),
      bs ? ratio(rps(r.steady.wrk), rps(bs)) : '—',
      fmtMs(p99(r.steady.wrk), 2),
      bs ? ratio(p99(r.steady.wrk), p99(bs)) : '—',
      fmtInt(failed(r.steady.wrk)),
      fmtInt(rps(r.restarting.wrk)),
      br ? ratio(rps(r.restarting.wrk), rps(br)) : '—',
      fmtMs(p99(r.restarting.wrk), 2),
      fmtInt(failed(r.restarting.wrk)),
    ];
  });
}

function goalLines(results: Result[]): string[] {
  const lines: string[] = [];
  for (const r of results.filter((x) => x.key === 'nodesockd')) {
    const base = results.find((b) => b.key === 'cluster' && b.mode === r.mode);
    const x = base ? rps(r.steady.wrk) / rps(base.steady.wrk) : Number.NaN;
    const f = failed(r.restarting.wrk);
    lines.push(
      `- ${MODE_LABEL[r.mode]}: req/s ${Number.isFinite(x) ? `${x.toFixed(2)}× node:cluster's` : '(no node:cluster run)'} ` +
        `(goal ≥ 0.95×: ${Number.isFinite(x) ? (x >= 0.95 ? 'met' : '**missed**') : '—'}); ` +
        `${fmtInt(f)} failed across ${r.restarting.restarts.length} restarts (goal 0: ${f === 0 ? 'met' : '**missed**'})` +
        results
          .filter((o) => (o.key === 'cluster' || o.key === 'pm2') && o.mode === r.mode)
          .map(
            (o) =>
              `; ${o.key === 'cluster' ? 'node:cluster' : 'pm2'} ${fmtInt(failed(o.restarting.wrk))} failed`,
          )
          .join(''),
    );
  }
  return lines;
}

function chart(results: Result[]): string {
  const keys = KEYS.filter((k) => results.some((r) => r.key === k));
  const series = keys.map((k) => results.find((r) => r.key === k)!.label);
  const modes = MODES.filter((m) => results.some((r) => r.mode === m));
  const groups = (value: (w: Window) => number) =>
    modes.flatMap((mode) =>
      (['steady', 'restarting'] as const).map((window) => ({
        label: `${mode === 'keepalive' ? 'kept alive' : 'close'}, ${window === 'steady' ? 'steady' : '3 restarts'}`,
        values: keys.map((k) => {
          const r = results.find((x) => x.key === k && x.mode === mode);
          return r ? value(r[window]) : Number.NaN;
        }),
      })),
    );
  return groupedBarChart(series, [
    { title: 'Throughput (higher is better)', unit: 'req/s', groups: groups((w) => rps(w.wrk)) },
    { title: 'p99 latency (lower is better)', unit: 'ms', groups: groups((w) => p99(w.wrk)) },
    { title: 'Failed requests (lower is better)', unit: 'requests', groups: groups((w) => failed(w.wrk)) },
  ]);
}

function markdownReport(o: Options, results: Result[], m: Machine): string {
  const restartLines = results.map(
    (r) =>
      `- ${r.label}, ${r.mode === 'keepalive' ? 'kept alive' : 'close'}: ` +
      r.restarting.restarts
        .map((t) => `${fmtMs(t.ms)} ms at ${((t.atMs ?? 0) / 1000).toFixed(1)} s${t.ok ? '' : ' (failed)'}`)
        .join(', '),
  );
  return `# The listen front without nginx: nodesockd, node:cluster and pm2

${machineLines(m)}
- \`npm run bench:front -- --seconds ${o.seconds} --restarts ${o.restarts} --connections ${o.connections} --threads ${o.threads}\`:
  wrk -t${o.threads} -c${o.connections} --timeout ${o.timeout}s straight at each contender's
  loopback port, GET and POST alternating; ${WORKERS} workers of bench/apps/plain-app.js each;
  ${o.seconds} s steady, then ${o.seconds} s with ${o.restarts} restarts, per contender and mode
  (${o.warmup} s of unmeasured load first)

${HEADLINE_START}
${markdownTable(HEADERS, rows(results))}

${goalLines(results).join('\n')}
${HEADLINE_END}

![req/s, p99 and failed requests per contender](front.svg)

Restarts under load (time from the command to its return):

${restartLines.join('\n')}

Failed = wrk's socket errors (connect, read, write, timeout) + responses with a status above
399. A restart is \`nodesockd restart\`, a node:cluster worker swap (fork a new worker, wait for
its 'listening', disconnect the old one, SIGKILL it if still there ${SWAP_GRACE_MS / 1000} s later),
\`pm2 reload\`. See [bench/README.md](../README.md#front) for what runs and how to read it.
`;
}

async function main(run: Run, o: Options): Promise<void> {
  requireTools({ wrk: true, pm2: o.only.includes('pm2') });
  await buildIfStale(o.build);
  const m = machine();
  console.log(`bench:front: ${m.nproc} CPUs, node ${m.node}, pm2 ${m.pm2}, nodesockd ${m.commit}`);
  console.log(
    `wrk -t${o.threads} -c${o.connections}; per contender and mode ${o.seconds} s steady and ${o.seconds} s with ${o.restarts} restarts`,
  );
  await noteBusy(m);
  const { pkgDir, appsDir } = await snapshotPackage(run);
  // No nginx here; keepaliveSeconds only sets nodesockd's upstreamKeepaliveTimeout (how long
  // a draining worker leaves an idle connection to its client).
  const env: Env = { run, pkgDir, appsDir, keepaliveSeconds: 4 };
  const script = path.join(appsDir, 'plain-app.js');
  const contenders: Contender[] = [];
  for (const key of o.only) {
    contenders.push(await startContender(env, key, script));
    console.log(`started ${key} on 127.0.0.1:${contenders.at(-1)!.port}`);
  }
  const results: Result[] = [];
  for (const mode of o.modes) {
    console.log(`\n▶ ${MODE_LABEL[mode]}`);
    for (const c of contenders) {
      if (o.warmup > 0) {
        await runWrk(run, {
          port: c.port,
          threads: o.threads,
          connections: o.connections,
          seconds: o.warmup,
          timeoutSeconds: o.timeout,
          close: mode === 'close',
        });
      }
      const steady = await measure(run, o, c, mode, 0);
      console.log(`  ${c.label}, steady: ${describe(steady)}`);
      const restarting = await measure(run, o, c, mode, o.restarts);
      console.log(`  ${c.label}, ${o.restarts} restarts: ${describe(restarting)}`);
      results.push({ key: c.key, label: c.label, mode, steady, restarting });
    }
  }
  for (const c of contenders) {
    const left = await c.backend.stop();
    if (left.length > 0) console.log(`  !! ${c.label}: killed ${left.length} leftover process(es)`);
  }
  m.loadAfter = loadavg();
  console.log(`\n${textTable(HEADERS, rows(results))}\n`);
  for (const line of goalLines(results)) console.log(line);
  if (o.write) {
    writeResult('front.md', markdownReport(o, results, m));
    writeResult('front.svg', chart(results));
    fs.appendFileSync(path.join(RESULTS, 'front.raw'), `${JSON.stringify({ ...m, options: o, results })}\n`);
  }
}

void runBench(parseOptions, USAGE, main);
