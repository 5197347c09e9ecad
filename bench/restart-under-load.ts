/**
 * Restart under load: nginx (upstream keepalive) in front of each contender, wrk at saturation
 * with GET and POST mixed, restarts spread over the run. Reports requests, failed requests
 * (non-2xx/3xx + socket errors), p99 latency and the restart time beyond the app's own boot
 * time, with ratios against a baseline without restarts measured in the same run.
 *
 *   npm run bench:restart                      # ~3 minutes
 *   npm run bench:restart -- --duration 10     # shorter; --help for every option
 *
 * See bench/README.md for how to read the results.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  type Backend,
  bootTime,
  type Env,
  pm2Bin,
  pm2Version,
  startNodesockd,
  startPm2,
  type Timing,
} from './lib/contenders';
import { NGINX_BIN, Nginx, probe } from './lib/nginx';
import { Aborted, Run, reapStaleRuns, sleep } from './lib/run';
import { failed, runWrk, socketErrors, WRK_BIN, type WrkResult } from './lib/wrk';

const ROOT = path.resolve(__dirname, '..');
const RESULTS = path.join(__dirname, 'results');

const USAGE = `Usage: npm run bench:restart -- [options]

  --duration <s>        seconds of measured load per contender (default 30)
  --restarts <n>        restarts spread over each measured run (default 5)
  --idle-restarts <n>   restarts (and CLI round trips) timed without load, per contender (default 5)
  --boot-samples <n>    boot-time samples per app (default 5)
  --warmup <s>          unmeasured load before each run (default 3)
  --connections <n>     wrk connections (default 64)
  --threads <n>         wrk threads (default 2)
  --timeout <s>         wrk request timeout (default 2)
  --keepalive <s>       nginx upstream keepalive_timeout = nodesockd upstreamKeepaliveTimeout, 2-10 (default 4)
  --upstream-keepalive <n>  nginx upstream keepalive connections (default 16)
  --nginx-workers <n>   nginx worker_processes (default 1)
  --only <list>         comma-separated subset of baseline,serve,plain,pm2 (default all)
  --no-build            do not rebuild dist/ even if src/ is newer
  --no-write            do not write bench/results/
  --verbose             print the daemon/pm2 logs of every contender
  -h, --help`;

type Key = 'baseline' | 'serve' | 'plain' | 'pm2';
const KEYS: Key[] = ['baseline', 'serve', 'plain', 'pm2'];

interface ContenderSpec {
  key: Key;
  label: string;
  app: 'serve-app.js' | 'plain-app.js';
  restarts: boolean;
  start(env: Env, dir: string, script: string): Promise<Backend>;
}

const SPECS: ContenderSpec[] = [
  {
    key: 'baseline',
    label: 'baseline (nodesockd + serve(), no restart)',
    app: 'serve-app.js',
    restarts: false,
    start: startNodesockd,
  },
  {
    key: 'serve',
    label: 'nodesockd + serve()',
    app: 'serve-app.js',
    restarts: true,
    start: startNodesockd,
  },
  {
    key: 'plain',
    label: 'nodesockd + plain app',
    app: 'plain-app.js',
    restarts: true,
    start: startNodesockd,
  },
  {
    key: 'pm2',
    label: 'pm2 cluster + plain app',
    app: 'plain-app.js',
    restarts: true,
    start: (env, dir, script) => startPm2(env, dir, script, ROOT),
  },
];

interface Options {
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

interface Result {
  key: Key;
  label: string;
  wrk: WrkResult;
  restartsUnderLoad: Timing[];
  restartsIdle: Timing[];
  /** CLI round trips without load (`status`, `pm2 ping`). */
  pings: Timing[];
  bootMs: number;
  nginxErrors: Array<[string, number]>;
  leftovers: string[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
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
      'no-build': { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, raw: string, min: number, max: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(`--${name} must be a whole number from ${min} to ${max}, got ${raw}`);
    }
    return n;
  };
  const only = values.only.split(',').map((s) => s.trim());
  for (const k of only) if (!KEYS.includes(k as Key)) throw new Error(`--only: unknown contender ${k}`);
  return {
    duration: int('duration', values.duration, 5, 600),
    restarts: int('restarts', values.restarts, 0, 100),
    idleRestarts: int('idle-restarts', values['idle-restarts'], 0, 20),
    bootSamples: int('boot-samples', values['boot-samples'], 1, 50),
    warmup: int('warmup', values.warmup, 0, 60),
    connections: int('connections', values.connections, 1, 2000),
    threads: int('threads', values.threads, 1, 64),
    timeout: int('timeout', values.timeout, 1, 60),
    keepalive: int('keepalive', values.keepalive, 2, 10),
    upstreamKeepalive: int('upstream-keepalive', values['upstream-keepalive'], 1, 10_000),
    nginxWorkers: int('nginx-workers', values['nginx-workers'], 1, 64),
    only: KEYS.filter((k) => only.includes(k)),
    build: !values['no-build'],
    write: !values['no-write'],
    verbose: values.verbose,
  };
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    newest = Math.max(newest, fs.statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/** Rebuilds dist/ when it is missing or older than src/. */
async function buildIfStale(build: boolean): Promise<void> {
  const bin = path.join(ROOT, 'dist/cli/bin.js');
  // Missing for a moment while a build elsewhere runs (it starts with rm -rf dist): let it finish.
  for (let waited = 0; !fs.existsSync(bin) && waited < 15_000; waited += 500) await sleep(500);
  const stale = !fs.existsSync(bin) || newestMtime(path.join(ROOT, 'src')) > fs.statSync(bin).mtimeMs;
  if (!stale) return;
  if (!build) {
    if (!fs.existsSync(bin)) throw new Error('dist/ is missing: run npm run build (or drop --no-build)');
    console.log('note: dist/ is older than src/ (--no-build given, using it as is)');
    return;
  }
  console.log('dist/ is missing or older than src/: npm run build');
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
}

/**
 * A private copy of the package for this run, so that a rebuild of dist/ (another terminal's
 * `npm test` starts with `rm -rf dist`) cannot break workers or CLI calls mid-run.
 */
async function snapshotPackage(run: Run): Promise<{ pkgDir: string; appsDir: string }> {
  const pkgDir = path.join(run.root, 'pkg');
  fs.mkdirSync(pkgDir);
  const needed = ['dist/cli/bin.js', 'dist/index.js'];
  const settled = (dir: string) =>
    needed.every((f) => {
      const stat = fs.statSync(path.join(dir, f), { throwIfNoEntry: false });
      return stat !== undefined && Date.now() - stat.mtimeMs > 1000;
    });
  // A build running elsewhere (rm -rf dist && tsup) leaves dist/ missing or half-written for a
  // moment: wait for it to settle, copy, check the copy.
  for (let waited = 0; ; waited += 500) {
    run.check();
    if (settled(ROOT)) {
      fs.rmSync(path.join(pkgDir, 'dist'), { recursive: true, force: true });
      try {
        fs.cpSync(path.join(ROOT, 'dist'), path.join(pkgDir, 'dist'), { recursive: true });
      } catch {
        // removed while copying: try again
      }
      if (needed.every((f) => fs.existsSync(path.join(pkgDir, f))) && settled(ROOT)) break;
    }
    if (waited >= 60_000) throw new Error('dist/ is missing or incomplete: run npm run build');
    await sleep(500);
  }
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(pkgDir, 'package.json'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkgDir, 'node_modules'));
  // The apps `require('nodesockd')`, resolved from <run>/node_modules/nodesockd.
  fs.mkdirSync(path.join(run.root, 'node_modules'));
  fs.symlinkSync(pkgDir, path.join(run.root, 'node_modules/nodesockd'));
  const appsDir = path.join(run.root, 'apps');
  fs.cpSync(path.join(__dirname, 'apps'), appsDir, { recursive: true });
  return { pkgDir, appsDir };
}

function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const fmtMs = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '—');
const ratio = (x: number, base: number) =>
  Number.isFinite(x) && Number.isFinite(base) && base > 0 ? `${(x / base).toFixed(2)}×` : '—';

async function runContender(env: Env, o: Options, spec: ContenderSpec, bootMs: number): Promise<Result> {
  const { run } = env;
  const dir = path.join(run.root, spec.key);
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o711);
  console.log(`\n▶ ${spec.label}`);
  const backend = await spec.start(env, dir, path.join(env.appsDir, spec.app));
  const nginx = await Nginx.start(run, path.join(dir, 'nginx'), {
    upstreams: backend.upstreams,
    keepaliveSeconds: o.keepalive,
    keepaliveConnections: o.upstreamKeepalive,
    workerProcesses: o.nginxWorkers,
  });
  const unhookNginx = run.onCleanup('nginx', () => nginx.stop());
  const statusGet = await probe(nginx.port);
  const statusPost = await probe(nginx.port, 'POST');
  if (statusGet !== 200 || statusPost !== 200) {
    throw new Error(`through nginx: GET ${statusGet}, POST ${statusPost}\n${nginx.errorLog()}`);
  }

  const restartsIdle: Timing[] = [];
  const pings: Timing[] = [];
  if (spec.restarts) {
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
  }
  const wrkOptions = {
    port: nginx.port,
    threads: o.threads,
    connections: o.connections,
    timeoutSeconds: o.timeout,
  };
  if (o.warmup > 0) await runWrk(run, { ...wrkOptions, seconds: o.warmup });
  // The warm-up's (and the idle restarts') error-log lines are not this run's.
  fs.truncateSync(path.join(nginx.dir, 'error.log'), 0);

  const restartsUnderLoad: Timing[] = [];
  const loadStart = Date.now();
  const load = runWrk(run, { ...wrkOptions, seconds: o.duration });
  // Awaited below; if a restart throws first, the rejection must not crash the process.
  load.catch(() => undefined);
  if (spec.restarts) {
    for (let i = 0; i < o.restarts; i++) {
      const at = loadStart + (o.duration * 1000 * (i + 1)) / (o.restarts + 1);
      await sleep(at - Date.now());
      run.check();
      const atMs = Date.now() - loadStart;
      const t = await backend.restart();
      run.check();
      restartsUnderLoad.push({ ...t, atMs });
      console.log(
        `  restart ${i + 1}/${o.restarts} at ${(atMs / 1000).toFixed(1)} s: ${fmtMs(t.ms)} ms${t.ok ? '' : ` FAILED: ${t.output}`}`,
      );
    }
  }
  const wrk = await load;
  run.check();
  const nginxErrors = [...nginx.errorSummary()].sort((a, b) => b[1] - a[1]);
  await nginx.stop();
  unhookNginx();
  const leftovers = await backend.stop();
  if (o.verbose) console.log(backend.log());
  const result: Result = {
    key: spec.key,
    label: spec.label,
    wrk,
    restartsUnderLoad,
    restartsIdle,
    pings,
    bootMs,
    nginxErrors,
    leftovers,
  };
  console.log(
    `  ${fmtInt(wrk.requests)} requests, ${fmtInt(failed(wrk))} failed ` +
      `(non-2xx ${wrk.status}: GET ${wrk.failedGet} / POST ${wrk.failedPost}; socket errors ${socketErrors(wrk)}), ` +
      `p99 ${fmtMs(wrk.p99Us / 1000, 2)} ms`,
  );
  for (const [message, count] of nginxErrors.slice(0, 3)) console.log(`  nginx: ${count}× ${message}`);
  if (leftovers.length > 0)
    console.log(`  !! killed ${leftovers.length} leftover process(es): ${leftovers.join('; ')}`);
  return result;
}

interface Row {
  cells: string[];
}

const HEADERS = [
  'contender',
  'requests',
  'req/s',
  '×base',
  'failed',
  'non-2xx GET/POST',
  'socket err',
  'p99 ms',
  '×base',
  'restart ms',
  'CLI ms',
  'boot ms',
  'beyond boot ms',
  'restart ms loaded med/max',
];

function rows(results: Result[]): Row[] {
  const base = results.find((r) => r.key === 'baseline');
  const rps = (r: Result) => r.wrk.requests / (r.wrk.durationUs / 1e6);
  return results.map((r) => {
    const idle = median(r.restartsIdle.map((t) => t.ms));
    const loaded = r.restartsUnderLoad.map((t) => t.ms);
    const failedRestarts = r.restartsUnderLoad.filter((t) => !t.ok).length;
    return {
      cells: [
        r.label,
        fmtInt(r.wrk.requests),
        fmtInt(rps(r)),
        base ? ratio(rps(r), rps(base)) : '—',
        fmtInt(failed(r.wrk)),
        `${r.wrk.failedGet}/${r.wrk.failedPost}`,
        String(socketErrors(r.wrk)),
        fmtMs(r.wrk.p99Us / 1000, 2),
        base ? ratio(r.wrk.p99Us, base.wrk.p99Us) : '—',
        r.restartsIdle.length ? fmtMs(idle) : '—',
        r.pings.length ? fmtMs(median(r.pings.map((t) => t.ms))) : '—',
        fmtMs(r.bootMs),
        r.restartsIdle.length ? fmtMs(idle - r.bootMs) : '—',
        loaded.length
          ? `${fmtMs(median(loaded))}/${fmtMs(Math.max(...loaded))}${failedRestarts ? ` (${failedRestarts} failed)` : ''}`
          : '—',
      ],
    };
  });
}

function textTable(results: Result[]): string {
  const all = [HEADERS, ...rows(results).map((r) => r.cells)];
  const widths = HEADERS.map((_, i) => Math.max(...all.map((cells) => cells[i]!.length)));
  return all
    .map((cells, n) => {
      const line = cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
      return n === 0 ? `${line}\n${'-'.repeat(line.length)}` : line;
    })
    .join('\n');
}

function markdownTable(results: Result[]): string {
  const lines = [
    `| ${HEADERS.join(' | ')} |`,
    `| ${HEADERS.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
  ];
  for (const r of rows(results)) lines.push(`| ${r.cells.join(' | ')} |`);
  return lines.join('\n');
}

function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0]!.trim();
}

/** Share of CPU time not idle over `ms`, from /proc/stat: is something else running? */
async function cpuBusy(ms: number): Promise<number> {
  const sample = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + (f[4] ?? 0);
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = sample();
  await sleep(ms);
  const b = sample();
  return b.total === a.total ? 0 : 1 - (b.idle - a.idle) / (b.total - a.total);
}

function loadavg(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

function machine() {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  const dirty = git('status', '--porcelain', '--', 'src').length > 0;
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    nginx: NGINX_BIN ? version(NGINX_BIN, ['-v']).replace(/^nginx version: /, '') : 'missing',
    wrk: WRK_BIN ? version(WRK_BIN, ['-v']).split(' [')[0]! : 'missing',
    pm2: pm2Version(ROOT),
    commit: `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' (src/ has uncommitted changes)' : ''}`,
    loadBefore: loadavg(),
    loadAfter: '',
    busyBefore: '',
  };
}

const GOAL_MS = 300;

/** One line per contender that restarts: restart time beyond boot against the goal. */
function goalLines(results: Result[]): string[] {
  return results
    .filter((r) => r.restartsIdle.length > 0)
    .map((r) => {
      const beyond = median(r.restartsIdle.map((t) => t.ms)) - r.bootMs;
      const cli = median(r.pings.map((t) => t.ms));
      return (
        `${r.label}: restart ${fmtMs(beyond)} ms beyond the app's boot ` +
        `(${beyond < GOAL_MS ? 'meets' : 'misses'} the ${GOAL_MS} ms goal), of which ~${fmtMs(cli)} ms is the CLI round trip`
      );
    });
}

const LEGEND = `Columns: **requests** and **req/s** over the measured run, **×base** against the baseline
(same load, no restart); **failed** = responses with status > 399 (**non-2xx GET/POST**, by the
method nginx echoes in X-Method) + wrk socket errors (connect, read, write, timeout); **p99**
latency as wrk reports it. Restart columns are medians without load: **restart ms** is the wall
time of the restart command (\`nodesockd restart\`, \`pm2 reload\`) from spawn to exit, **CLI ms**
the same manager's cheapest command (\`nodesockd status\`, \`pm2 ping\`), **boot ms** the app's
own boot (\`node app.js\` from spawn to its "listening" line), **beyond boot ms** = restart − boot
(goal < ${GOAL_MS} ms). **restart ms loaded** are the restarts during the measured run.`;

function markdownReport(o: Options, results: Result[], m: ReturnType<typeof machine>): string {
  const notes: string[] = [];
  for (const r of results) {
    notes.push(`- **${r.label}**`);
    const w = r.wrk;
    notes.push(
      `  - wrk: ${fmtInt(w.requests)} requests in ${(w.durationUs / 1e6).toFixed(1)} s; non-2xx ${w.status} ` +
        `(GET ${w.failedGet}, POST ${w.failedPost}); socket errors: connect ${w.connect}, read ${w.read}, ` +
        `write ${w.write}, timeout ${w.timeout}; latency p50 ${fmtMs(w.p50Us / 1000, 2)} ms, ` +
        `p99 ${fmtMs(w.p99Us / 1000, 2)} ms, max ${fmtMs(w.maxUs / 1000, 1)} ms`,
    );
    if (r.restartsUnderLoad.length) {
      const list = r.restartsUnderLoad
        .map((t) => `${fmtMs(t.ms)} ms at ${((t.atMs ?? 0) / 1000).toFixed(1)} s${t.ok ? '' : ' (failed)'}`)
        .join(', ');
      notes.push(`  - restarts under load: ${list}`);
    }
    if (r.restartsIdle.length) {
      notes.push(`  - restarts without load: ${r.restartsIdle.map((t) => fmtMs(t.ms)).join(', ')} ms`);
    }
    for (const [message, count] of r.nginxErrors.slice(0, 4))
      notes.push(`  - nginx error log: ${count}× ${message}`);
    if (r.leftovers.length) notes.push(`  - leftover processes killed by the sweep: ${r.leftovers.length}`);
  }
  return `# Restart under load

Generated by \`npm run bench:restart\` (bench/restart-under-load.ts); see bench/README.md for
what each column means. Numbers from one run on one machine: compare ratios within the table,
not absolute numbers across machines.

- date: ${m.date}
- machine: ${m.nproc} CPUs (nproc), ${m.cpu}, ${m.memGiB} GiB RAM, ${m.kernel}
- node ${m.node}, nginx ${m.nginx}, ${m.wrk}, pm2 ${m.pm2}, nodesockd ${m.commit}
- load: wrk -t${o.threads} -c${o.connections} --timeout ${o.timeout}s, GET and POST alternating, ${o.duration} s measured per contender after ${o.warmup} s of warm-up
- nginx: worker_processes ${o.nginxWorkers}, upstream keepalive ${o.upstreamKeepalive}, keepalive_timeout ${o.keepalive}s (= upstreamKeepaliveTimeout ${o.keepalive * 1000}), HTTP/1.1, Connection ""
- restarts: ${o.restarts} spread over each measured run; ${o.idleRestarts} timed without load; app boot: median of ${o.bootSamples}
- CPU busy in the second before the run: ${m.busyBefore}; load average (1/5/15 min) before: ${m.loadBefore}, after: ${m.loadAfter}

${markdownTable(results)}

${LEGEND}

${goalLines(results)
  .map((l) => `- ${l}`)
  .join('\n')}

Details:

${notes.join('\n')}
`;
}

async function main(run: Run, o: Options): Promise<void> {
  if (!NGINX_BIN) throw new Error('nginx is not installed (apt-get install nginx)');
  if (!WRK_BIN) throw new Error('wrk is not installed (apt-get install wrk)');
  if (o.only.includes('pm2') && !fs.existsSync(pm2Bin(ROOT))) {
    throw new Error('pm2 is not installed: run npm ci');
  }
  await buildIfStale(o.build);
  const m = machine();
  console.log(
    `restart under load: ${m.nproc} CPUs, node ${m.node}, nginx ${m.nginx}, pm2 ${m.pm2}, nodesockd ${m.commit}`,
  );
  console.log(
    `wrk -t${o.threads} -c${o.connections}, ${o.duration} s per contender, ${o.restarts} restarts, ` +
      `upstream keepalive ${o.upstreamKeepalive}, keepalive_timeout ${o.keepalive} s`,
  );
  const busy = await cpuBusy(1000);
  m.busyBefore = `${Math.round(busy * 100)}%`;
  if (busy > 0.15) {
    console.log(
      `note: the CPUs were ${m.busyBefore} busy before the run: something else is running; expect noise`,
    );
  }
  const { pkgDir, appsDir } = await snapshotPackage(run);
  const env: Env = { run, pkgDir, appsDir, keepaliveSeconds: o.keepalive };

  const boot = new Map<string, number>();
  for (const app of new Set(SPECS.filter((s) => o.only.includes(s.key)).map((s) => s.app))) {
    const samples: number[] = [];
    for (let i = 0; i < o.bootSamples; i++) samples.push(await bootTime(run, path.join(appsDir, app)));
    boot.set(app, median(samples));
    console.log(
      `app boot ${app}: ${samples.map((s) => fmtMs(s)).join(', ')} ms (median ${fmtMs(median(samples))})`,
    );
  }

  const results: Result[] = [];
  for (const spec of SPECS.filter((s) => o.only.includes(s.key))) {
    results.push(await runContender(env, o, spec, boot.get(spec.app)!));
  }

  m.loadAfter = loadavg();
  console.log(`\n${textTable(results)}\n`);
  for (const line of goalLines(results)) console.log(line);
  console.log(
    `CPU busy before: ${m.busyBefore}; load average before: ${m.loadBefore}, after: ${m.loadAfter} (${m.nproc} CPUs)`,
  );
  if (!o.only.includes('baseline')) console.log('(no baseline in this run: ratios are not shown)');
  if (o.write) {
    fs.mkdirSync(RESULTS, { recursive: true });
    const file = path.join(RESULTS, 'restart-under-load.md');
    fs.writeFileSync(file, markdownReport(o, results, m));
    fs.appendFileSync(
      path.join(RESULTS, 'restart-under-load.raw'),
      `${JSON.stringify({ ...m, options: o, results })}\n`,
    );
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
  }
}

async function entry(): Promise<void> {
  let o: Options;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  const reaped = reapStaleRuns();
  for (const dir of reaped) console.log(`removed the leftovers of an interrupted run: ${dir}`);
  const run = Run.create();
  let exitCode = 0;
  const finish = async (code: number): Promise<never> => {
    const killed = await run.cleanup();
    if (killed.length > 0) {
      console.error(`cleanup: killed ${killed.length} leftover process(es):\n  ${killed.join('\n  ')}`);
    }
    process.exit(code);
  };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      console.error(`${signal}: still cleaning up`);
      return;
    }
    interrupted = true;
    console.error(`\n${signal}: stopping and cleaning up…`);
    void finish(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.on('uncaughtException', (err) => {
    // Once interrupted, whatever was running fails as its processes go away: not news.
    if (interrupted || run.aborted) return;
    console.error(err);
    void finish(1);
  });
  try {
    await main(run, o);
  } catch (err) {
    if (err instanceof Aborted || interrupted) return; // the signal handler finishes
    console.error(`\nbench failed: ${(err as Error).stack ?? err}`);
    exitCode = 1;
  }
  if (!interrupted) await finish(exitCode);
}

void entry();
