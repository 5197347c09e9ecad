/**
 * What every benchmark does around its measurements: build dist/ if stale, run a private copy
 * of the package, describe the machine, and the entry point that always cleans up (success,
 * failure, Ctrl-C, SIGTERM).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pm2Version } from './contenders';
import { NGINX_BIN } from './nginx';
import { Aborted, Run, reapStaleRuns, sleep } from './run';
import { WRK_BIN } from './wrk';

export const ROOT = path.resolve(__dirname, '../..');
export const RESULTS = path.resolve(__dirname, '../results');
export const APPS = path.resolve(__dirname, '../apps');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    newest = Math.max(newest, fs.statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/** Rebuilds dist/ when it is missing or older than src/. */
export async function buildIfStale(build: boolean): Promise<void> {
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
export async function snapshotPackage(run: Run): Promise<{ pkgDir: string; appsDir: string }> {
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
  fs.cpSync(APPS, appsDir, { recursive: true });
  return { pkgDir, appsDir };
}

/** Throws a clear error when nginx, wrk or (if `pm2`) pm2 is missing. */
export function requireTools(tools: { nginx?: boolean; wrk?: boolean; pm2?: boolean }): void {
  if (tools.nginx && !NGINX_BIN) throw new Error('nginx is not installed (apt-get install nginx)');
  if (tools.wrk && !WRK_BIN) throw new Error('wrk is not installed (apt-get install wrk)');
  if (tools.pm2 && !fs.existsSync(path.join(ROOT, 'node_modules/pm2/bin/pm2'))) {
    throw new Error('pm2 is not installed: run npm ci');
  }
}

export function median(xs: number[]): number {
  return quantile(xs, 0.5);
}

/** Linear-interpolated quantile (0..1) of `xs`; NaN when empty. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return s[lo]! + (s[hi]! - s[lo]!) * (at - lo);
}

export const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
export const fmtMs = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '—');
export const ratio = (x: number, base: number) =>
  Number.isFinite(x) && Number.isFinite(base) && base > 0 ? `${(x / base).toFixed(2)}×` : '—';

/** A plain-text table: first column left-aligned, the others right-aligned. */
export function textTable(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, i) => Math.max(...all.map((cells) => (cells[i] ?? '').length)));
  return all
    .map((cells, n) => {
      const line = cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
      return n === 0 ? `${line}\n${'-'.repeat(line.length)}` : line;
    })
    .join('\n');
}

export function markdownTable(headers: string[], rows: string[][]): string {
  return [
    `| ${headers.join(' | ')} |`,
    `| ${headers.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((cells) => `| ${cells.join(' | ')} |`),
  ].join('\n');
}

function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0]!.trim();
}

/** Share of CPU time not idle over `ms`, from /proc/stat: is something else running? */
export async function cpuBusy(ms: number): Promise<number> {
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

export function loadavg(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

export interface Machine {
  date: string;
  nproc: number;
  cpu: string;
  memGiB: string;
  kernel: string;
  node: string;
  nginx: string;
  wrk: string;
  pm2: string;
  commit: string;
  loadBefore: string;
  loadAfter: string;
  busyBefore: string;
}

export function machine(): Machine {
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

/** Measures how busy the CPUs are before a run, records it in `m`, and warns when they are. */
export async function noteBusy(m: Machine): Promise<void> {
  const busy = await cpuBusy(1000);
  m.busyBefore = `${Math.round(busy * 100)}%`;
  if (busy > 0.15) {
    console.log(
      `note: the CPUs were ${m.busyBefore} busy before the run: something else is running; expect noise`,
    );
  }
}

/** The Markdown lines every result file starts with: date, machine, versions, load. */
export function machineLines(m: Machine): string {
  return `- date: ${m.date}
- machine: ${m.nproc} CPUs (nproc), ${m.cpu}, ${m.memGiB} GiB RAM, ${m.kernel}
- node ${m.node}, nginx ${m.nginx}, ${m.wrk}, pm2 ${m.pm2}, nodesockd ${m.commit}
- CPU busy in the second before the run: ${m.busyBefore}; load average (1/5/15 min) before: ${m.loadBefore}, after: ${m.loadAfter}`;
}

/** Writes a result file in bench/results/ and says so. */
export function writeResult(name: string, text: string): void {
  fs.mkdirSync(RESULTS, { recursive: true });
  const file = path.join(RESULTS, name);
  fs.writeFileSync(file, text);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

/**
 * Runs `main` in a fresh Run and always cleans up: on success, on failure, on Ctrl-C, SIGTERM
 * or SIGHUP. Leftovers of runs killed with SIGKILL are removed first.
 */
export async function runBench<O>(
  parse: (argv: string[]) => O,
  usage: string,
  main: (run: Run, o: O) => Promise<void>,
) {
  let o: O;
  try {
    o = parse(process.argv.slice(2));
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${usage}`);
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

/** The flags every benchmark takes: spread into its parseArgs `options`. */
export const COMMON_FLAGS = {
  'no-build': { type: 'boolean', default: false },
  'no-write': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** `--help`: prints the usage and exits. */
export function exitOnHelp(help: boolean, usage: string): void {
  if (!help) return;
  console.log(usage);
  process.exit(0);
}

/** A whole-number option from `min` to `max`, or a one-line error naming it. */
export function intOption(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`--${name} must be a whole number from ${min} to ${max}, got ${raw}`);
  }
  return n;
}

/** A comma-separated list of whole numbers, each from `min` to `max`. */
export function intListOption(name: string, raw: string, min: number, max: number): number[] {
  const out = raw.split(',').map((s) => intOption(name, s.trim(), min, max));
  if (out.length === 0) throw new Error(`--${name} needs at least one value`);
  return out;
}

/** `node --version` of a Node.js binary (its path when it does not answer). */
export function nodeVersion(node: string): string {
  return spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim() || node;
}
