/**
 * The pool's public contract, as a Socketnaut 1.6 program sees it: the exports (CJS and ESM),
 * the option errors, the members, 'ready' and shutdown(), the log levels, and the types (a
 * Socketnaut-style TypeScript program compiled by tsc with only the import changed).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import * as pool from '../src/index.js';
import { createServiceProxy, type LogRecord, log, SyslogLevel, WorkerAgent } from '../src/index.js';
import { ensureBuilt, HTTP_WORKER, json, portOf, ROOT } from './fixtures/pool/harness.js';

before(() => ensureBuilt());

const EXPORTS = [
  'createServiceProxy',
  'ServiceProxy',
  'createServiceAgent',
  'ServiceAgent',
  'WorkerAgent',
  'Level',
  'SyslogLevel',
  'log',
  'logger',
];

test('the package root exports the pool, from require() and import, and prints nothing on import', () => {
  const cjs = spawnSync(
    process.execPath,
    [
      '-e',
      `const m = require('nodesockd'); process.stdout.write(JSON.stringify(${JSON.stringify(EXPORTS)}.map((k) => typeof m[k])) + ' ' + (m.Level === m.SyslogLevel) + ' ' + (m.log === m.logger) + ' ' + JSON.stringify(m.Level))`,
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  assert.equal(cjs.stderr, '');
  const [types, same, sameLog, levels] = cjs.stdout.split(' ');
  assert.deepEqual(JSON.parse(types), [
    'function',
    'function',
    'function',
    'function',
    'function',
    'object',
    'object',
    'object',
    'object',
  ]);
  assert.equal(same, 'true');
  assert.equal(sameLog, 'true');
  const level = JSON.parse(levels) as Record<string, number>;
  assert.deepEqual(
    ['EMERG', 'ALERT', 'CRIT', 'ERROR', 'WARN', 'NOTICE', 'INFO', 'DEBUG'].map((k) => level[k]),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  const esm = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { createServiceProxy, createServiceAgent, Level, SyslogLevel, WorkerAgent } from 'nodesockd'; process.stdout.write([typeof createServiceProxy, typeof createServiceAgent, Level.DEBUG, SyslogLevel.EMERG, typeof WorkerAgent].join(','))`,
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  assert.equal(esm.stderr, '');
  assert.equal(esm.stdout, 'function,function,7,0,function');
});

test('ESM: the default import stays the worker runtime (docs/migrating.md); named and namespace imports give the pool, formatter and consoleHandler included', () => {
  const esm = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import nodesockd, * as sn from 'nodesockd'; import { formatter, consoleHandler } from 'nodesockd'; process.stdout.write([nodesockd === sn.nodesockd, typeof nodesockd.createServiceProxy, typeof sn.createServiceProxy, typeof formatter.connect, typeof consoleHandler.setLevel].join(','))`,
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  assert.equal(esm.stderr, '');
  assert.equal(esm.stdout, 'true,undefined,function,function,function');
});

test('the options are validated with Socketnaut’s errors, thrown at once', () => {
  const server = net.createServer();
  const base = { server, workerURL: HTTP_WORKER };
  assert.throws(() => createServiceProxy({ ...base, workerCount: 0 }), {
    message: 'workerCount must be at least 1',
  });
  assert.throws(() => createServiceProxy({ ...base, maxWorkers: 0 }), {
    message: 'maxWorkers must be at least 1 or undefined for unbounded scaling',
  });
  assert.throws(() => createServiceProxy({ ...base, minWorkers: -1 }), {
    message: 'minWorkers must be non-negative',
  });
  assert.throws(() => createServiceProxy({ ...base, minWorkers: 3, maxWorkers: 2 }), {
    message: 'minWorkers cannot exceed maxWorkers',
  });
  // Ours, for what Socketnaut accepted and then failed on later.
  assert.throws(() => createServiceProxy({ workerURL: HTTP_WORKER } as unknown as pool.ServiceProxyOptions), {
    message: /server must be a net\.Server/,
  });
  assert.throws(() => createServiceProxy({ ...base, workerType: 'fiber' as pool.WorkerType }), {
    message: /workerType must be 'thread' or 'process', got fiber/,
  });
  assert.throws(() => createServiceProxy({ ...base, proxyProtocol: 'v3' as pool.ProxyProtocolVersion }), {
    message: /proxyProtocol must be 'v1' or 'v2', got v3/,
  });
  assert.throws(() => createServiceProxy({ ...base, workersCheckingInterval: -5 }), {
    message: /workersCheckingInterval must be a non-negative number, got -5/,
  });
});

test('createServiceAgent throws in the main thread and when called twice in a worker', async () => {
  assert.throws(() => pool.createServiceAgent({ server: net.createServer() }), {
    message: /not in a pool worker/,
  });
  const worker = new Worker(
    `const net = require('node:net'); const { parentPort } = require('node:worker_threads');
     const { createServiceAgent } = require(${JSON.stringify(ROOT)});
     createServiceAgent({ server: net.createServer() });
     try { createServiceAgent({ server: net.createServer() }); parentPort.postMessage('no error'); }
     catch (err) { parentPort.postMessage(err.message); }
     process.exit(0);`,
    { eval: true },
  );
  const [message] = (await once(worker, 'message')) as [string];
  assert.match(message, /A ServiceAgent has already been instantiated for Worker thread \d+/);
});

let tmp = '';
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('a proxy has Socketnaut’s members, emits ready with its agents, and shuts down with the exit codes', async () => {
  const records: LogRecord[] = [];
  const previous = log.handler;
  log.setHandler((r) => records.push(r));
  try {
    const server = net.createServer();
    const workerOptions = { workerData: {} };
    const proxy = createServiceProxy({ server, workerCount: 2, workerURL: HTTP_WORKER, workerOptions });
    server.listen(0, '127.0.0.1');
    const agents = (await once(proxy, 'ready')) as WorkerAgent[];
    assert.equal(agents.length, 2);
    assert.equal(proxy.server, server);
    assert.equal(proxy.workerCount, 2);
    assert.equal(proxy.minWorkers, 2);
    assert.equal(proxy.maxWorkers, 2);
    assert.equal(proxy.workerURL, HTTP_WORKER);
    assert.equal(proxy.workerOptions, workerOptions);
    assert.equal(proxy.workersCheckingInterval, undefined);
    assert.equal(proxy.log, log);
    assert.equal(proxy.agents.length, 2);
    for (const a of proxy.agents) {
      assert.ok(a instanceof WorkerAgent);
      assert.ok(a.worker instanceof Worker);
      assert.equal(a.connections, 0);
      assert.deepEqual(Object.keys((await a.socketConnectOpts) ?? {}).sort(), ['host', 'port']);
    }
    const reply = await json<{ threadId: number }>(portOf(server));
    assert.ok(proxy.agents.some((a) => a.worker.threadId === reply.threadId));
    // A worker's records reach the front's handler, with the worker's thread.
    assert.ok(
      records.some((r) => r.levelName === 'WARN' && r.threadId > 0 && /fixture worker/.test(r.message)),
    );
    // setLevel(undefined) keeps the level (Socketnaut's `setLevel(SyslogLevel[arg])` with no arg).
    proxy.log.setLevel(SyslogLevel.DEBUG);
    proxy.log.setLevel(undefined);
    assert.equal(proxy.log.level, SyslogLevel.DEBUG);
    proxy.log.setLevel(SyslogLevel.INFO);
    const results = await proxy.shutdown();
    assert.deepEqual(results, [
      { status: 'fulfilled', value: 0 },
      { status: 'fulfilled', value: 0 },
    ]);
    assert.equal(server.listening, false);
  } finally {
    log.setHandler(previous);
  }
});

test('shutdown() rejects, after stopping the workers, when the server never listened', async () => {
  const proxy = createServiceProxy({ server: net.createServer(), workerCount: 1, workerURL: HTTP_WORKER });
  await once(proxy, 'ready');
  await assert.rejects(proxy.shutdown(), { code: 'ERR_SERVER_NOT_RUNNING' });
  assert.equal(proxy.stats().workers, 0);
});

const PROGRAM = `
import * as net from 'node:net';
import * as http from 'node:http';
import { once } from 'node:events';
import {
  createServiceProxy, createServiceAgent, ServiceProxy, ServiceProxyOptions, ServiceAgent,
  ServiceAgentOptions, ProxySocketAddressInfo, WorkerAgent, Level, SyslogLevel,
} from 'nodesockd';

type LevelName = 'EMERG' | 'ALERT' | 'CRIT' | 'ERROR' | 'WARN' | 'NOTICE' | 'INFO' | 'DEBUG';
const LEVEL = process.argv[2] as unknown as LevelName;

export async function main(): Promise<void> {
  const options: ServiceProxyOptions = {
    server: net.createServer(),
    minWorkers: 1e1,
    maxWorkers: 1e2,
    workersCheckingInterval: 1e2,
    workerURL: new URL('file:///srv/https_service.js'),
    workerOptions: { argv: process.argv.slice(2) },
  };
  const proxy: ServiceProxy = createServiceProxy(options);
  proxy.server.listen({ port: 3443, host: '127.0.0.1' });
  proxy.log.setLevel(SyslogLevel[LEVEL]);
  proxy.log.setLevel(Level.DEBUG);
  await once(proxy, 'ready');
  proxy.on('ready', (...agents: WorkerAgent[]) => agents.map((a) => a.worker.threadId));
  const counts: number[] = proxy.agents.map<number>((value: WorkerAgent) => value.connections);
  proxy.log.info(\`agents: \${proxy.agents.length.toString()} max: \${proxy.maxWorkers?.toString() ?? ''} min: \${proxy.minWorkers.toString()} \${JSON.stringify(counts)}\`);
  const more = createServiceProxy({ server: net.createServer(), workerCount: 2, workerURL: './http_service.js' });
  const n: number | undefined = more.workerCount;
  const url: string | URL = more.workerURL;
  const interval: number | undefined = more.workersCheckingInterval;
  void [n, url, interval, more.workerOptions];
  const results: PromiseSettledResult<unknown>[] = await proxy.shutdown();
  void results;
}

export function worker(): void {
  const server = http.createServer();
  const agentOptions: ServiceAgentOptions = { server };
  const agent: ServiceAgent = createServiceAgent(agentOptions);
  agent.log.setLevel(SyslogLevel[LEVEL]);
  server.on('request', async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const info: ProxySocketAddressInfo = await agent.requestProxySocketAddressInfo(req.socket);
    agent.log.debug(JSON.stringify(info));
    const port: number = info.remote.port;
    const address: string = info.local.address;
    res.end(String(port) + address);
  });
  server.listen({ port: 0, host: '127.0.0.1' });
}
`;

test('a Socketnaut 1.6 TypeScript program type-checks with the import changed to nodesockd (ESM and CJS)', () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nodesockd-pool-types-'));
  fs.mkdirSync(path.join(tmp, 'node_modules', '@types'), { recursive: true });
  fs.symlinkSync(ROOT, path.join(tmp, 'node_modules', 'nodesockd'));
  fs.symlinkSync(
    path.join(ROOT, 'node_modules', '@types', 'node'),
    path.join(tmp, 'node_modules', '@types', 'node'),
  );
  fs.writeFileSync(path.join(tmp, 'esm.mts'), PROGRAM);
  fs.writeFileSync(path.join(tmp, 'cjs.cts'), PROGRAM);
  fs.writeFileSync(
    path.join(tmp, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        types: ['node'],
      },
      files: ['esm.mts', 'cjs.cts'],
    }),
  );
  const tsc = path.join(ROOT, 'node_modules', '.bin', 'tsc');
  try {
    execFileSync(tsc, ['-p', tmp], { encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    assert.fail(`tsc failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
});
