/**
 * The daemon's memory (issue 13: daemon RSS with 8 workers ≤ 60 MB): VmRSS of the daemon
 * process alone (not its workers) with `--workers` (8) workers of apps/plain-app.js, without
 * and with `metrics`. Once the workers are online: `--requests` (10) `status` calls (and as many
 * scrapes of GET /metrics when it is on), then a reading every 500 ms for `--idle` (15) s: V8
 * gives memory back once the process has been idle for a while, so the table shows the RSS
 * right after the requests, 5 s later, at the end, and the largest reading. A
 * second daemon of each kind runs with NODE_DEBUG=module to list the packages it loaded (that
 * run's RSS is not used: the debug output costs memory of its own).
 *
 *   npm run bench:rss                 # ~1 minute
 *   npm run bench:rss -- --node /path/to/node24/bin/node   # also on another Node.js
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Backend, type Env, rssKiB, startNodesockd } from './lib/contenders';
import { HEADLINE_END, HEADLINE_START } from './lib/headline';
import { type Run, sleep } from './lib/run';
import {
  buildIfStale,
  COMMON_FLAGS,
  exitOnHelp,
  intOption,
  loadavg,
  type Machine,
  machine,
  machineLines,
  markdownTable,
  nodeVersion,
  noteBusy,
  RESULTS,
  runBench,
  snapshotPackage,
  textTable,
  writeResult,
} from './lib/setup';

const USAGE = `Usage: npm run bench:rss -- [options]

  --workers <n>   workers of the daemon (default 8)
  --requests <n>  status calls (and metrics scrapes) once they are online (default 10)
  --idle <s>      seconds of readings after them, one every 500 ms (default 15)
  --node <path>   also measure the daemon without metrics on this node binary (repeatable)
  --no-build      do not rebuild dist/ even if src/ is newer
  --no-write      do not write bench/results/
  -h, --help`;

interface Options {
  workers: number;
  requests: number;
  idle: number;
  nodes: string[];
  build: boolean;
  write: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      workers: { type: 'string', default: '8' },
      requests: { type: 'string', default: '10' },
      idle: { type: 'string', default: '15' },
      node: { type: 'string', multiple: true, default: [] },
      ...COMMON_FLAGS,
    },
  });
  exitOnHelp(values.help, USAGE);
  return {
    workers: intOption('workers', values.workers, 1, 64),
    requests: intOption('requests', values.requests, 0, 1000),
    idle: intOption('idle', values.idle, 5, 120),
    nodes: values.node,
    build: !values['no-build'],
    write: !values['no-write'],
  };
}

const GOAL_MB = 60;
const METRICS_SOCKET = 'metrics.sock';

interface Variant {
  label: string;
  config: Record<string, unknown>;
  /** The daemon's node binary; this process's when unset. */
  node?: string;
  /** kB: the first reading (right after the requests), then one every 500 ms. */
  readings: number[];
  packages: string[];
}

function scrape(socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: '/metrics' }, (res) => {
      res.resume();
      res.on('end', () =>
        res.statusCode === 200 ? resolve() : reject(new Error(`metrics: ${res.statusCode}`)),
      );
    });
    req.on('error', reject);
  });
}

async function requests(o: Options, backend: Backend, variant: Variant, tmpDir: string): Promise<void> {
  for (let i = 0; i < o.requests; i++) {
    const t = await backend.ping();
    if (!t.ok) throw new Error(`status failed: ${t.output}`);
    if (variant.config.metrics !== undefined) await scrape(path.join(tmpDir, METRICS_SOCKET));
  }
}

/** The packages in node_modules a process loaded, from its NODE_DEBUG=module lines. */
function loadedPackages(debugOutput: string): string[] {
  const names = new Map<string, number>();
  for (const m of debugOutput.matchAll(
    /load "[^"]*\/node_modules\/((?:@[^/"]+\/)?[^/"]+)\/[^"]*" for module/g,
  )) {
    names.set(m[1]!, (names.get(m[1]!) ?? 0) + 1);
  }
  return [...names].sort(([a], [b]) => a.localeCompare(b)).map(([n, files]) => `${n} (${files} files)`);
}

async function measure(env: Env, o: Options, variant: Variant, i: number): Promise<void> {
  const app = path.join(env.appsDir, 'plain-app.js');
  const dir = path.join(env.run.root, `rss-${i}`);
  const backend = await startNodesockd(env, dir, app, o.workers, {
    config: variant.config,
    node: variant.node,
  });
  const unhook = env.run.onCleanup(`nodesockd (${variant.label})`, async () => {
    await backend.stop();
  });
  await requests(o, backend, variant, path.join(dir, 'run'));
  for (let t = 0; t <= o.idle * 2; t++) {
    if (t > 0) await sleep(500);
    variant.readings.push(rssKiB(backend.managerPid!));
  }
  await backend.stop();
  unhook();

  // What it loads: the same daemon, with the module loader's debug output in its log.
  const debugDir = path.join(env.run.root, `rss-${i}-modules`);
  const debug = await startNodesockd(env, debugDir, app, o.workers, {
    config: variant.config,
    node: variant.node,
    env: { ...process.env, NODE_DEBUG: 'module' },
  });
  const unhookDebug = env.run.onCleanup(`nodesockd (${variant.label}, NODE_DEBUG)`, async () => {
    await debug.stop();
  });
  await requests(o, debug, variant, path.join(debugDir, 'run'));
  variant.packages = loadedPackages(debug.log());
  await debug.stop();
  unhookDebug();
}

const headers = (o: Options) => [
  'daemon',
  'after the requests MB',
  '5 s later MB',
  `${o.idle} s later MB`,
  'max MB',
  'packages it loads',
];
const mb = (kib: number) => (kib / 1024).toFixed(1);

function rows(variants: Variant[]): string[][] {
  return variants.map((v) => [
    v.label,
    mb(v.readings[0]!),
    mb(v.readings[10]!),
    mb(v.readings[v.readings.length - 1]!),
    mb(Math.max(...v.readings)),
    v.packages.join(', '),
  ]);
}

function report(o: Options, variants: Variant[], m: Machine): string {
  const plain = Math.max(...variants[0]!.readings) / 1024;
  return `# Daemon memory

Generated by \`npm run bench:rss\` (bench/rss.ts); see bench/README.md. VmRSS of the daemon
process alone (/proc/<pid>/status; its workers are processes of their own) with ${o.workers} workers of
apps/plain-app.js and a JSON config: once they are online, ${o.requests} \`status\` calls (and as many
scrapes of GET /metrics when \`metrics\` is on), then a reading every 500 ms for ${o.idle} s (V8 gives
memory back after a while idle). The packages are those a second daemon of the same kind loaded
(NODE_DEBUG=module), with their file counts.

${machineLines(m)}

${HEADLINE_START}
${markdownTable(headers(o), rows(variants))}

Goal (issue 13): daemon RSS with ${o.workers} workers ≤ ${GOAL_MB} MB: largest reading ${plain.toFixed(1)} MB without metrics (node ${process.version}), ${plain <= GOAL_MB ? 'met' : '**missed**'}.${variants
    .filter((v) => v.node !== undefined)
    .map((v) => {
      const max = Math.max(...v.readings) / 1024;
      return ` ${v.label.split(', ').at(-1)}: ${max.toFixed(1)} MB, ${max <= GOAL_MB ? 'met' : '**missed**'}.`;
    })
    .join('')}
${HEADLINE_END}
`;
}

async function main(run: Run, o: Options): Promise<void> {
  await buildIfStale(o.build);
  const m = machine();
  await noteBusy(m);
  const { pkgDir, appsDir } = await snapshotPackage(run);
  const env: Env = { run, pkgDir, appsDir, keepaliveSeconds: 4 };
  const variants: Variant[] = [
    { label: `${o.workers} workers`, config: {}, readings: [], packages: [] },
    {
      label: `${o.workers} workers, metrics on`,
      config: { metrics: METRICS_SOCKET },
      readings: [],
      packages: [],
    },
    ...o.nodes.map((node) => ({
      label: `${o.workers} workers, ${nodeVersion(node)}`,
      config: {},
      node,
      readings: [],
      packages: [],
    })),
  ];
  for (const [i, v] of variants.entries()) {
    run.check();
    console.log(`rss: ${v.label}`);
    await measure(env, o, v, i);
  }
  m.loadAfter = loadavg();
  console.log(`\n${textTable(headers(o), rows(variants))}\n`);
  if (o.write) {
    writeResult('rss.md', report(o, variants, m));
    fs.appendFileSync(path.join(RESULTS, 'rss.raw'), `${JSON.stringify({ ...m, options: o, variants })}\n`);
  }
}

void runBench(parseOptions, USAGE, main);
