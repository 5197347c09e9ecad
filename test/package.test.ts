/**
 * The published package as an app gets it: `npm pack`, installed into a fresh app, loaded with
 * `require` and with `import`, and type-checked from both module systems.
 */
import assert from 'node:assert/strict';
import { execFileSync, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { newestMtime } from './helpers/files';

const ROOT = path.resolve(__dirname, '..');
const DEADLINE_MS = 60_000;

let tmp = '';
let app = '';

function run(command: string, args: string[], cwd: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * `npm test` builds first (pretest); building here too would race other test files reading
 * `dist/`, so only a missing or stale library build is rebuilt, for a run of this file alone.
 */
function ensureBuilt(): void {
  const built = path.join(ROOT, 'dist', 'index.js');
  const stale =
    !fs.existsSync(built) ||
    !fs.existsSync(path.join(ROOT, 'dist', 'index.mjs')) ||
    newestMtime(path.join(ROOT, 'src')) > fs.statSync(built).mtimeMs;
  if (stale) run('npm', ['run', 'build'], ROOT);
}

before(() => {
  ensureBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nodesockd-pack-'));
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tmp], ROOT)) as Array<{
    filename: string;
  }>;
  const tarball = path.join(tmp, path.basename(packed[0].filename));
  app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', private: true }, null, 2),
  );
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], app);
});

after(() => {
  if (tmp !== '') fs.rmSync(tmp, { recursive: true, force: true });
});

test('require() gets the CommonJS build with every export', () => {
  const script = `
    const lib = require('nodesockd');
    process.stdout.write(JSON.stringify({
      file: require.resolve('nodesockd'),
      serve: typeof lib.serve,
      suspend: typeof lib.suspend,
      express: typeof lib.suspend.express,
      koa: typeof lib.suspend.koa,
      fastify: typeof lib.suspend.fastify,
      nodesockd: typeof lib.nodesockd.on,
      defaultIsNodesockd: lib.default === lib.nodesockd,
      managed: lib.nodesockd.managed,
    }));`;
  const result = JSON.parse(run(process.execPath, ['-e', script], app));
  assert.equal(path.basename(result.file), 'index.js');
  assert.deepEqual(
    { ...result, file: undefined },
    {
      file: undefined,
      serve: 'function',
      suspend: 'function',
      express: 'function',
      koa: 'function',
      fastify: 'function',
      nodesockd: 'function',
      defaultIsNodesockd: true,
      managed: false,
    },
  );
});

test('import and require in one process load two builds that share one worker', async () => {
  const script = path.join(app, 'dual.mjs');
  fs.writeFileSync(
    script,
    `
import http from 'node:http';
import { createRequire } from 'node:module';
import defaultExport, { nodesockd, serve, suspend } from 'nodesockd';

const cjs = createRequire(import.meta.url)('nodesockd');
const result = {
  twoBuilds: cjs.serve !== serve,
  sameWorker: cjs.nodesockd === nodesockd && defaultExport === nodesockd,
  managed: nodesockd.managed,
  suspendResolves: await Promise.race([suspend().then(() => true), new Promise((r) => setImmediate(() => r(false)))]),
};
const info = await serve(http.createServer());
result.served = info.managed;
try {
  await cjs.serve(http.createServer());
  result.secondServe = 'ok';
} catch (err) {
  result.secondServe = err.message;
}
cjs.nodesockd.reportOnline();
nodesockd.reportOnline();
process.send({ result });
`,
  );
  const sock = path.join(tmp, 'dual.sock');
  const child = fork(script, [], {
    cwd: app,
    env: {
      ...process.env,
      NODESOCKD_SOCKET_PATH: sock,
      NODESOCKD_WORKER_ID: 'abc123',
      NODESOCKD_WORKER_INDEX: '0',
    },
    // Not the test runner's `--import tsx`: the app runs the built package with plain Node.
    execArgv: [],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const messages: unknown[] = [];
  let timer: NodeJS.Timeout | undefined;
  const code = await new Promise<number | null>((resolve, reject) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the dual-load app did not finish; stderr:\n${stderr}`));
    }, DEADLINE_MS);
    child.on('message', (message) => {
      messages.push(message);
      if (typeof message === 'object' && message !== null && 'result' in message) child.send('shutdown');
    });
    child.once('close', (exitCode) => resolve(exitCode));
  }).finally(() => clearTimeout(timer));
  assert.equal(code, 0, stderr);
  const report = messages.find((m) => typeof m === 'object' && m !== null && 'result' in m) as {
    result: Record<string, unknown>;
  };
  assert.ok(report, `no result; stderr:\n${stderr}`);
  assert.deepEqual(report.result, {
    twoBuilds: true,
    sameWorker: true,
    managed: true,
    suspendResolves: true,
    served: true,
    secondServe: 'nodesockd: serve() was already called in this process; a worker serves one server',
  });
  assert.equal(messages.filter((m) => m === 'online').length, 1, "'online' is sent once");
});

test('nodesockd/client loads with require and import; a failed connection is IpcConnectionError', () => {
  const snippet = (load: string) => `
    ${load}
    const client = new NodesockdClient('./no-daemon.ipc');
    client.run().then(
      () => process.stdout.write('connected?!'),
      (err) => process.stdout.write(JSON.stringify({ name: err.name, isError: err instanceof IpcConnectionError, same: IpcConnectError === IpcConnectionError })),
    );`;
  const cjs = run(
    process.execPath,
    [
      '-e',
      snippet(
        "const { NodesockdClient, IpcConnectionError, IpcConnectError } = require('nodesockd/client');",
      ),
    ],
    app,
  );
  fs.writeFileSync(
    path.join(app, 'client.mjs'),
    snippet("import { NodesockdClient, IpcConnectionError, IpcConnectError } from 'nodesockd/client';"),
  );
  const esm = run(process.execPath, ['client.mjs'], app);
  for (const out of [cjs, esm]) {
    assert.deepEqual(JSON.parse(out), { name: 'IpcConnectionError', isError: true, same: true });
  }
});

test('the types resolve from both module systems', () => {
  fs.writeFileSync(
    path.join(app, 'consumer.mts'),
    `
import http from 'node:http';
import nodesockd, { type NodesockdWorker, type ServeInfo, serve, suspend } from 'nodesockd';
const worker: NodesockdWorker = nodesockd;
const info: Promise<ServeInfo> = serve(http.createServer(), { port: 0, exitOnClose: false });
const id: string | undefined = nodesockd.id;
const gate: Promise<void> = suspend();
nodesockd.on('message', (message: unknown) => message);
const online: Promise<void> = nodesockd.reportOnline();
nodesockd.setRequestHandler('stream', async function* () {
  yield 1;
});
export { gate, id, info, online, worker };
`,
  );
  fs.writeFileSync(
    path.join(app, 'consumer.cts'),
    `
import lib = require('nodesockd');
import clientLib = require('nodesockd/client');
const client = new clientLib.NodesockdClient('/x.ipc');
const status: Promise<clientLib.DaemonStatus> = client.getStatus();
const suspended: boolean = lib.isSuspended();
const index: number | undefined = lib.nodesockd.index;
const middleware: (req: unknown, res: unknown, next: () => void) => void = lib.suspend.express;
export { index, middleware, status, suspended };
`,
  );
  fs.writeFileSync(
    path.join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        strict: true,
        noEmit: true,
        types: ['node'],
        typeRoots: [path.join(ROOT, 'node_modules', '@types')],
      },
      files: ['consumer.mts', 'consumer.cts'],
    }),
  );
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    run(process.execPath, [tsc, '-p', app], app);
  } catch (err) {
    assert.fail(`tsc failed:\n${(err as { stdout?: string }).stdout ?? err}`);
  }
});
