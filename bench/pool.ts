/**
 * `npm run bench:pool`: our thread pool and process pool against node:cluster and a relay in
 * Socketnaut's pattern (and one plain process), 2 workers each, the same app, a trivial and a
 * 5 ms CPU-bound handler, wrk over loopback keep-alive connections. Prints req/s, p99 and the
 * ratios; writes bench/results/pool.md and bench/results/pool.svg.
 *
 * Every contender runs all the time; the rounds interleave them (each round measures every
 * contender once), and each number is the median of the rounds, so that a burst of load from
 * something else on the machine lands on one round of every contender rather than on one
 * contender.
 *
 *   npm run bench:pool -- --seconds 3 --rounds 3 --connections 32 --only thread,cluster --no-write
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { reusePortSupported } from '../src/socketnaut/reuse-port.js';

const ROOT = path.resolve(__dirname, '..');
const DIR = path.join(__dirname, 'pool');
const RESULTS = path.join(__dirname, 'results');

interface Contender {
  key: string;
  label: string;
  args: string[];
}

const CONTENDERS: Contender[] = [
  { key: 'thread', label: 'nodesockd thread pool', args: [path.join(DIR, 'pool-front.js'), 'thread'] },
  {
    key: 'thread-reuseport',
    label: reusePortSupported() ? 'thread pool, reusePort' : 'thread pool, reusePort (n/a: relay)',
    args: [path.join(DIR, 'pool-front.js'), 'thread', 'reuseport'],
  },
  { key: 'process', label: 'nodesockd process pool', args: [path.join(DIR, 'pool-front.js'), 'process'] },
  { key: 'cluster', label: 'node:cluster', args: [path.join(DIR, 'cluster.js')] },
  { key: 'relay', label: 'relay (Socketnaut pattern)', args: [path.join(DIR, 'relay.js')] },
  { key: 'single', label: 'one process, no pool', args: [path.join(DIR, 'single.js')] },
];
const HANDLERS = [
  { key: 'trivial', path: '/' },
  { key: 'cpu5ms', path: '/cpu' },
] as const;

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : (process.argv[i + 1] ?? fallback);
}
const SECONDS = Number(option('seconds', '3'));
const ROUNDS = Math.max(1, Number(option('rounds', '3')));
const CONNECTIONS = Number(option('connections', '32'));
const ONLY = option('only', '').split(',').filter(Boolean);
const WRITE = !process.argv.includes('--no-write');

const WRK = ['/usr/bin/wrk', '/usr/local/bin/wrk'].find((p) => fs.existsSync(p));

interface Result {
  rps: number;
  p99Ms: number;
  errors: number;
}

function toMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

function wrk(port: number, urlPath: string, seconds: number): Result {
  if (!WRK) throw new Error('wrk is not installed (apt-get install wrk)');
  const r = spawnSync(
    WRK,
    ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}${urlPath}`],
    { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
  );
  const out = r.stdout ?? '';
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
  const p99 = toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = (errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + non2xx;
  if (!Number.isFinite(rps)) throw new Error(`wrk gave no result:\n${out}${r.stderr}`);
  return { rps, p99Ms: p99, errors };
}

function start(c: Contender): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, c.args, {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${c.label} did not start`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.once('exit', (code) => reject(new Error(`${c.label} exited (${code})`)));
  });
}

/** SIGTERM first (our pools drain and clean up), then SIGKILL to its process group: the workers too. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
  }
  try {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function ensureBuilt(): void {
  const built = path.join(ROOT, 'dist', 'index.js');
  if (!fs.existsSync(built)) spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
}

function svg(results: Map<string, Map<string, Result>>, contenders: Contender[]): string {
  const W = 760;
  const rowH = 22;
  const left = 210;
  const barMax = W - left - 90;
  const parts: string[] = [];
  let y = 40;
  for (const h of HANDLERS) {
    const values = contenders.map((c) => results.get(c.key)?.get(h.key)?.rps ?? 0);
    const max = Math.max(...values, 1);
    parts.push(
      `<text x="10" y="${y}" font-weight="bold">${h.key === 'trivial' ? 'trivial handler' : '5 ms CPU-bound handler'} (req/s)</text>`,
    );
    y += 10;
    contenders.forEach((c, i) => {
      const v = values[i];
      const w = Math.round((v / max) * barMax);
      const yy = y + i * rowH;
      parts.push(`<text x="10" y="${yy + 15}">${c.label}</text>`);
      parts.push(
        `<rect x="${left}" y="${yy + 3}" width="${w}" height="${rowH - 6}" fill="${c.key.startsWith('thread') || c.key.startsWith('process') ? '#2b6cb0' : '#a0aec0'}"/>`,
      );
      parts.push(`<text x="${left + w + 6}" y="${yy + 15}">${Math.round(v)}</text>`);
    });
    y += contenders.length * rowH + 30;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" font-family="sans-serif" font-size="13">\n<rect width="100%" height="100%" fill="white"/>\n<text x="10" y="20" font-size="15" font-weight="bold">bench:pool — 2 workers, wrk -c${CONNECTIONS}, median of ${ROUNDS} × ${SECONDS} s, loopback</text>\n${parts.join('\n')}\n</svg>\n`;
}

async function main(): Promise<void> {
  ensureBuilt();
  const contenders = CONTENDERS.filter((c) => ONLY.length === 0 || ONLY.includes(c.key));
  const running: { c: Contender; child: ChildProcess; port: number }[] = [];
  const samples = new Map<string, Result[]>();
  try {
    for (const c of contenders) running.push({ c, ...(await start(c)) });
    for (let round = 1; round <= ROUNDS; round++) {
      for (const { c, port } of running) {
        for (const h of HANDLERS) {
          wrk(port, h.path, 1); // warm-up
          const r = wrk(port, h.path, SECONDS);
          const key = `${c.key}/${h.key}`;
          samples.set(key, [...(samples.get(key) ?? []), r]);
          process.stdout.write(
            `round ${round}  ${c.label.padEnd(28)} ${h.key.padEnd(8)} ${Math.round(r.rps).toString().padStart(7)} req/s  p99 ${r.p99Ms.toFixed(2)} ms  errors ${r.errors}\n`,
          );
        }
      }
    }
  } finally {
    for (const { child } of running) await stop(child);
  }
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)];
  };
  const results = new Map<string, Map<string, Result>>();
  for (const c of contenders) {
    const byHandler = new Map<string, Result>();
    for (const h of HANDLERS) {
      const rs = samples.get(`${c.key}/${h.key}`) ?? [];
      byHandler.set(h.key, {
        rps: median(rs.map((r) => r.rps)),
        p99Ms: median(rs.map((r) => r.p99Ms)),
        errors: rs.reduce((a, r) => a + r.errors, 0),
      });
    }
    results.set(c.key, byHandler);
  }
  const get = (k: string, h: string): number => results.get(k)?.get(h)?.rps ?? Number.NaN;
  const ratio = (a: string, b: string, h: string): string => (get(a, h) / get(b, h)).toFixed(2);
  const lines = [
    '| contender | trivial req/s | trivial p99 ms | 5 ms CPU req/s | 5 ms CPU p99 ms | errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...contenders.map((c) => {
      const t = results.get(c.key)?.get('trivial');
      const p = results.get(c.key)?.get('cpu5ms');
      return `| ${c.label} | ${Math.round(t?.rps ?? 0)} | ${t?.p99Ms.toFixed(2)} | ${Math.round(p?.rps ?? 0)} | ${p?.p99Ms.toFixed(2)} | ${(t?.errors ?? 0) + (p?.errors ?? 0)} |`;
    }),
    '',
    '| ratio | trivial | 5 ms CPU | goal |',
    '| --- | ---: | ---: | --- |',
    `| thread pool / relay | ${ratio('thread', 'relay', 'trivial')} | ${ratio('thread', 'relay', 'cpu5ms')} | ≥ 1.3 (trivial) |`,
    `| thread pool, reusePort / relay | ${ratio('thread-reuseport', 'relay', 'trivial')} | ${ratio('thread-reuseport', 'relay', 'cpu5ms')} | ≥ 1.3 (trivial) |`,
    `| thread pool, reusePort / node:cluster | ${ratio('thread-reuseport', 'cluster', 'trivial')} | ${ratio('thread-reuseport', 'cluster', 'cpu5ms')} | how close |`,
    `| thread pool / node:cluster | ${ratio('thread', 'cluster', 'trivial')} | ${ratio('thread', 'cluster', 'cpu5ms')} | how close |`,
    `| process pool / node:cluster | ${ratio('process', 'cluster', 'trivial')} | ${ratio('process', 'cluster', 'cpu5ms')} | ≥ 0.95 (trivial) |`,
    `| relay / node:cluster | ${ratio('relay', 'cluster', 'trivial')} | ${ratio('relay', 'cluster', 'cpu5ms')} | (issue: 0.45) |`,
    `| thread pool / one process | ${ratio('thread', 'single', 'trivial')} | ${ratio('thread', 'single', 'cpu5ms')} | > 1 (CPU: scales over cores) |`,
    `| thread pool, reusePort / one process | ${ratio('thread-reuseport', 'single', 'trivial')} | ${ratio('thread-reuseport', 'single', 'cpu5ms')} | > 1 (CPU: scales over cores) |`,
    `| process pool / one process | ${ratio('process', 'single', 'trivial')} | ${ratio('process', 'single', 'cpu5ms')} | > 1 (CPU: scales over cores) |`,
  ];
  const table = lines.join('\n');
  process.stdout.write(`\n${table}\n`);
  if (!WRITE) return;
  const cpus = os.cpus();
  const md = [
    '# bench:pool — the latest run',
    '',
    `Run ${new Date().toISOString()} on ${cpus.length} × ${cpus[0]?.model ?? 'CPU'}, Node ${process.version}, ${os.platform()} ${os.release()}.`,
    `2 workers each; wrk -t1 -c${CONNECTIONS}, keep-alive, ${SECONDS} s after a 1 s warm-up, over loopback; the median of ${ROUNDS} interleaved rounds (errors: the sum). wrk, the front and the workers share the machine's cores, and other jobs may run on it too.`,
    '',
    table,
    '',
    '![req/s](pool.svg)',
    '',
  ].join('\n');
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, 'pool.md'), md);
  fs.writeFileSync(path.join(RESULTS, 'pool.svg'), svg(results, contenders));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:pool: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
