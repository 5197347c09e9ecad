/**
 * `npm run bench:cold-start`: how long a big pool makes its first client wait. Our thread pool
 * (one worker first, then `maxSpawning` at a time) against Socketnaut's initial spawn (one thread
 * at a time, connections served from the first online one; bench/pool/cold-front.js writes its
 * pattern) and node:cluster (every worker forked at once), 32 workers each by default, the same
 * app. For each: ms from spawning the front's process to the first answer, and to all workers up.
 * Writes bench/results/cold-start.md and .svg.
 *
 *   npm run bench:cold-start -- --workers 32 --rounds 5 --no-write
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { HEADLINE_END, HEADLINE_START } from './lib/headline';
import { groupedBarChart } from './lib/svg';

const ROOT = path.resolve(__dirname, '..');
const FRONT = path.join(__dirname, 'pool', 'cold-front.js');
const RESULTS = path.join(__dirname, 'results');
const DEADLINE_MS = 60_000;

const CONTENDERS = [
  { key: 'ours', label: 'nodesockd thread pool' },
  { key: 'socketnaut', label: 'Socketnaut pattern (threads, one at a time)' },
  { key: 'cluster', label: 'node:cluster (processes, all at once)' },
] as const;

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : (process.argv[i + 1] ?? fallback);
}
const WORKERS = Number(option('workers', '32'));
const ROUNDS = Math.max(1, Number(option('rounds', '5')));
const WRITE = !process.argv.includes('--no-write');

interface Sample {
  firstMs: number;
  readyMs: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

/** One GET; resolves with its status, or null when the port does not answer (yet). */
function get(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: '/', agent: false, timeout: DEADLINE_MS },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? null));
      },
    );
    req.once('error', () => resolve(null));
    req.once('timeout', () => req.destroy());
  });
}

async function stop(child: ChildProcess): Promise<void> {
  try {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
}

async function measure(kind: string): Promise<Sample> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, [FRONT, kind, String(WORKERS), String(port)], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const ready = new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (/^ready$/m.test(out)) resolve(performance.now() - t0);
    });
    child.once('exit', (code) => reject(new Error(`${kind} exited (${code}) before it was ready`)));
  });
  ready.catch(() => undefined);
  try {
    let firstMs = Number.NaN;
    while (performance.now() - t0 < DEADLINE_MS) {
      if ((await get(port)) === 200) {
        firstMs = performance.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    if (!Number.isFinite(firstMs)) throw new Error(`${kind}: no answer within ${DEADLINE_MS} ms`);
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${kind}: not ready within ${DEADLINE_MS} ms`)), DEADLINE_MS).unref(),
    );
    return { firstMs, readyMs: await Promise.race([ready, timeout]) };
  } finally {
    await stop(child);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'index.js')))
    spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  const samples = new Map<string, Sample[]>();
  for (let round = 1; round <= ROUNDS; round++)
    for (const c of CONTENDERS) {
      const s = await measure(c.key);
      samples.set(c.key, [...(samples.get(c.key) ?? []), s]);
      process.stdout.write(
        `round ${round}  ${c.label.padEnd(44)} first answer ${s.firstMs.toFixed(0).padStart(6)} ms  all up ${s.readyMs.toFixed(0).padStart(6)} ms\n`,
      );
    }
  const first = (k: string) => median((samples.get(k) ?? []).map((s) => s.firstMs));
  const up = (k: string) => median((samples.get(k) ?? []).map((s) => s.readyMs));
  const ratio = first('ours') / first('socketnaut');
  const table = [
    '| contender | first answer ms | all workers up ms |',
    '| --- | ---: | ---: |',
    ...CONTENDERS.map((c) => `| ${c.label} | ${first(c.key).toFixed(0)} | ${up(c.key).toFixed(0)} |`),
    '',
    '| ratio | value | goal |',
    '| --- | ---: | --- |',
    `| first answer: nodesockd / Socketnaut pattern | ${ratio.toFixed(2)} | ≤ 1.5 |`,
    `| first answer: nodesockd / node:cluster | ${(first('ours') / first('cluster')).toFixed(2)} | how close |`,
  ].join('\n');
  process.stdout.write(`\n${table}\n`);
  if (!WRITE) return;
  const cpus = os.cpus();
  const md = [
    '# bench:cold-start — the latest run',
    '',
    `Run ${new Date().toISOString()} on ${cpus.length} × ${cpus[0]?.model ?? 'CPU'}, Node ${process.version}, ${os.platform()} ${os.release()}.`,
    `${WORKERS} workers each; from spawning the front's process to the first 200 (a client polls every 2 ms) and to all workers up; the median of ${ROUNDS} interleaved rounds. The workers share the machine's cores with each other, and other jobs may run on it too.`,
    '',
    HEADLINE_START,
    table,
    HEADLINE_END,
    '',
    '![ms](cold-start.svg)',
    '',
  ].join('\n');
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, 'cold-start.md'), md);
  fs.writeFileSync(
    path.join(RESULTS, 'cold-start.svg'),
    groupedBarChart(
      CONTENDERS.map((c) => c.label),
      [
        {
          title: `Cold start of ${WORKERS} workers (ms, lower is better; median of ${ROUNDS})`,
          unit: 'ms',
          groups: [
            { label: 'first answer', values: CONTENDERS.map((c) => first(c.key)) },
            { label: 'all workers up', values: CONTENDERS.map((c) => up(c.key)) },
          ],
        },
      ],
    ),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:cold-start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
