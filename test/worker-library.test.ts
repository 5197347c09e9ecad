/**
 * The app-side library against real worker processes: the test plays the daemon over the same
 * IPC channel and talks HTTP to the worker's real UNIX socket.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

const FIXTURES = path.join(__dirname, 'fixtures', 'worker');
/** Only a guard so that a broken build fails instead of hanging; never a behaviour threshold. */
const DEADLINE_MS = 15_000;

const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodesockd-worker-'));
const started: ChildProcess[] = [];
after(() => {
  for (const child of started)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  fs.rmSync(tmpDir, { recursive: true, force: true });
});

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), DEADLINE_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

interface FixtureEvent {
  fixture: true;
  event: string;
  [key: string]: unknown;
}

function isEvent(message: unknown, event: string): message is FixtureEvent {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { fixture?: unknown }).fixture === true &&
    (message as { event?: unknown }).event === event
  );
}

interface Worker {
  child: ChildProcess;
  sock: string;
  /** Every IPC message received from the worker, in order. */
  messages: unknown[];
  stderr: () => string;
  stdoutLine: () => Promise<string>;
  waitFor(predicate: (message: unknown) => boolean, what: string): Promise<unknown>;
  /** Settles on 'close': after the exit and after the last IPC message was read. */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let sockets = 0;

function track(child: ChildProcess, sock: string): Worker {
  started.push(child);
  const messages: unknown[] = [];
  let stderr = '';
  let stdout = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.on('message', (message) => messages.push(message));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const waitFor = (predicate: (message: unknown) => boolean, what: string): Promise<unknown> => {
    const found = messages.find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return withDeadline(
      new Promise((resolve, reject) => {
        const onMessage = (message: unknown): void => {
          if (!predicate(message)) return;
          child.off('message', onMessage);
          resolve(message);
        };
        child.on('message', onMessage);
        closed.then(({ code, signal }) => {
          child.off('message', onMessage);
          reject(new Error(`worker ended (${code ?? signal}) before ${what}; stderr:\n${stderr}`));
        });
      }),
      what,
    );
  };
  const stdoutLine = (): Promise<string> =>
    withDeadline(
      new Promise((resolve, reject) => {
        const check = (): void => {
          const end = stdout.indexOf('\n');
          if (end < 0) return;
          child.stdout?.off('data', check);
          resolve(stdout.slice(0, end));
        };
        child.stdout?.on('data', check);
        check();
        closed.then(() => reject(new Error(`worker ended without output; stderr:\n${stderr}`)));
      }),
      'a line on stdout',
    );
  return { child, sock, messages, stderr: () => stderr, stdoutLine, waitFor, closed };
}

/** Starts a fixture the way the daemon starts a worker. */
function startManaged(fixture: string, options: { suspended?: boolean } = {}): Worker {
  sockets++;
  const sock = path.join(tmpDir, `app.${sockets}.sock`);
  const child = fork(path.join(FIXTURES, fixture), [], {
    env: {
      ...process.env,
      NODESOCKD_SOCKET_PATH: sock,
      LISTEN_ON: sock,
      NODESOCKD_WORKER_ID: 'abc123',
      NODESOCKD_WORKER_INDEX: '0',
      NODESOCKD_SUSPENDED: options.suspended ? '1' : '',
      NODESOCKD_APP_NAME: 'test',
    },
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  return track(child, sock);
}

/** Starts a fixture without IPC, as `node app.js` would; daemon variables are set but unusable. */
function startStandalone(fixture: string): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(FIXTURES, fixture)], {
    env: {
      ...process.env,
      PORT: '0',
      NODESOCKD_SOCKET_PATH: path.join(tmpDir, 'unused.sock'),
      NODESOCKD_SUSPENDED: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return track(child, '');
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  socket: unknown;
}

function request(
  target: { socketPath: string } | { port: number },
  urlPath: string,
  agent?: http.Agent | false,
) {
  let settled = false;
  const response = new Promise<Response>((resolve, reject) => {
    const req = http.request({ ...target, host: '127.0.0.1', path: urlPath, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => {
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, socket: req.socket });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  return { response: withDeadline(response, `the response to ${urlPath}`), done: () => settled };
}

function sendTo(worker: Worker, message: unknown): void {
  worker.child.send(message as never);
}

async function stopAndExpectCleanExit(worker: Worker): Promise<void> {
  sendTo(worker, 'shutdown');
  const { code, signal } = await withDeadline(worker.closed, 'the worker to exit');
  assert.equal(signal, null, worker.stderr());
  assert.equal(code, 0, worker.stderr());
}

const inflight = (count: number) => (m: unknown) =>
  typeof m === 'object' &&
  m !== null &&
  (m as { type?: unknown }).type === 'nodesockd:inflight' &&
  (m as { count?: unknown }).count === count;

test('reports online once, and only once listening', async () => {
  const worker = startManaged('http-app.ts');
  let socketAtOnline: boolean | undefined;
  worker.child.on('message', (message) => {
    if (message === 'online' && socketAtOnline === undefined) {
      socketAtOnline = fs.statSync(worker.sock, { throwIfNoEntry: false })?.isSocket() ?? false;
    }
  });
  await worker.waitFor((m) => m === 'online', "'online'");
  assert.equal(socketAtOnline, true, 'the socket exists when online arrives');
  const { response } = request({ socketPath: worker.sock }, '/hello', false);
  const res = await response;
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { managed: true, suspendedAtHandler: false, resumeSeen: false });

  sendTo(worker, { cmd: 'info' });
  const info = await worker.waitFor((m) => isEvent(m, 'info'), 'info');
  assert.deepEqual(info, {
    fixture: true,
    event: 'info',
    managed: true,
    socketPath: worker.sock,
    id: 'abc123',
    index: 0,
    suspended: false,
  });

  await stopAndExpectCleanExit(worker);
  assert.equal(worker.messages.filter((m) => m === 'online').length, 1);
});

test('a suspended worker holds a request until resume, without running the handler', async () => {
  const worker = startManaged('http-app.ts', { suspended: true });
  await worker.waitFor((m) => m === 'online', "'online' while suspended");
  const { response, done } = request({ socketPath: worker.sock }, '/hello', false);

  const arrived = await worker.waitFor(
    (m) => isEvent(m, 'request-arrived'),
    'the request to reach the worker',
  );
  assert.equal((arrived as FixtureEvent).suspended, true);
  // The request round trip that follows proves ordering, not timing: the app saw the request
  // while suspended, and the message below is handled by the worker after the request.
  sendTo(worker, { cmd: 'info' });
  const info = await worker.waitFor((m) => isEvent(m, 'info'), 'info');
  assert.equal((info as FixtureEvent).suspended, true);
  assert.equal(done(), false, 'no response before resume');
  assert.equal(
    worker.messages.some((m) => isEvent(m, 'handler-ran') || isEvent(m, 'suspend-resolved')),
    false,
    'no gated app code ran before resume',
  );

  sendTo(worker, 'resume');
  const res = await response;
  assert.equal(res.status, 200);
  // Decided inside the worker: its handler ran after it had processed 'resume'.
  assert.deepEqual(JSON.parse(res.body), { managed: true, suspendedAtHandler: false, resumeSeen: true });
  await worker.waitFor((m) => isEvent(m, 'suspend-resolved'), 'suspend() to resolve');
  await stopAndExpectCleanExit(worker);
});

test('shutdown drains: in-flight requests finish, kept-alive connections are closed', async () => {
  const worker = startManaged('http-app.ts');
  await worker.waitFor((m) => m === 'online', "'online'");
  const target = { socketPath: worker.sock };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const idleAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const waitAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  after(() => {
    agent.destroy();
    idleAgent.destroy();
    waitAgent.destroy();
  });

  // An idle kept-alive connection, to be closed by the drain.
  const idle = await request(target, '/hello', idleAgent).response;
  assert.equal(idle.headers.connection, 'keep-alive');
  const idleClosed = new Promise<void>((resolve) =>
    (idle.socket as NodeJS.EventEmitter).once('close', resolve),
  );

  // A slow request whose head has already gone out with keep-alive.
  const slow = request(target, '/slow', agent);
  await worker.waitFor((m) => isEvent(m, 'slow-started'), 'the slow request to start');
  // And one that the app holds without having answered anything yet.
  const waiting = request(target, '/wait', waitAgent);
  await worker.waitFor((m) => isEvent(m, 'handler-ran') && m.url === '/wait', 'the waiting request to start');

  sendTo(worker, 'shutdown');
  await worker.waitFor(inflight(2), 'the in-flight report of the drain');
  await withDeadline(idleClosed, 'the idle connection to be closed');
  // Queued behind the slow request on the agent's single connection.
  const next = request(target, '/hello', agent);
  assert.equal(slow.done(), false, 'the slow request is still in flight after shutdown');

  sendTo(worker, { cmd: 'finish-slow' });
  const slowRes = await slow.response;
  assert.equal(slowRes.status, 200);
  assert.equal(slowRes.body, 'start\ndone\n');
  const nextRes = await next.response;
  assert.equal(nextRes.status, 200);
  assert.equal(nextRes.socket, slowRes.socket, 'the next request reused the kept-alive connection');
  assert.equal(nextRes.headers.connection, 'close');
  const waitRes = await waiting.response;
  assert.equal(waitRes.body, 'waited\n');
  assert.equal(waitRes.headers.connection, 'close', 'a response begun after shutdown closes its connection');

  const { code, signal } = await withDeadline(worker.closed, 'the drained worker to exit');
  assert.equal(signal, null, worker.stderr());
  assert.equal(code, 0, worker.stderr());
  const reports = worker.messages.filter((m) => inflight(0)(m) || inflight(1)(m) || inflight(2)(m));
  assert.deepEqual(reports[0], { type: 'nodesockd:inflight', count: 2 }, 'the drain reports first');
  assert.deepEqual(reports.at(-1), { type: 'nodesockd:inflight', count: 0 }, 'and last reports 0');
});

test('shutdown does not cut off a response that is still being flushed to a slow client', async () => {
  const worker = startManaged('http-app.ts');
  await worker.waitFor((m) => m === 'online', "'online'");
  const received = withDeadline(
    new Promise<{ length: number; complete: boolean }>((resolve, reject) => {
      const req = http.request({ socketPath: worker.sock, path: '/big', agent: false }, (res) => {
        res.pause();
        worker.waitFor(inflight(1), 'the drain to start').then(() => {
          let length = 0;
          res.on('data', (chunk: Buffer) => {
            length += chunk.length;
          });
          res.on('end', () => resolve({ length, complete: res.complete }));
          res.on('error', reject);
          res.resume();
        }, reject);
      });
      req.on('error', reject);
      req.end();
    }),
    'the big response',
  );
  const ended = await worker.waitFor((m) => isEvent(m, 'big-ended'), 'the big response to be ended');
  assert.equal((ended as FixtureEvent).flushed, false, 'precondition: the body is still being flushed');
  // The client reads nothing until the drain has begun (and swept idle connections).
  sendTo(worker, 'shutdown');
  assert.deepEqual(await received, { length: 16 * 1024 * 1024, complete: true });
  const { code } = await withDeadline(worker.closed, 'the worker to exit');
  assert.equal(code, 0, worker.stderr());
});

test('a worker shut down while suspended answers held requests with 503 and exits', async () => {
  const worker = startManaged('http-app.ts', { suspended: true });
  await worker.waitFor((m) => m === 'online', "'online'");
  const { response } = request({ socketPath: worker.sock }, '/hello', false);
  await worker.waitFor((m) => isEvent(m, 'request-arrived'), 'the request to reach the worker');
  sendTo(worker, 'shutdown');
  const res = await response;
  assert.equal(res.status, 503);
  assert.equal(res.headers.connection, 'close');
  const { code } = await withDeadline(worker.closed, 'the worker to exit');
  assert.equal(code, 0, worker.stderr());
  assert.equal(
    worker.messages.some((m) => isEvent(m, 'handler-ran')),
    false,
    'the app never saw the request',
  );
});

test('reportBroken tells the daemon and the worker keeps serving', async () => {
  const worker = startManaged('http-app.ts');
  await worker.waitFor((m) => m === 'online', "'online'");
  sendTo(worker, { cmd: 'report-broken', reason: 'database is gone' });
  const broken = await worker.waitFor(
    (m) => typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'nodesockd:broken',
    'the broken report',
  );
  assert.deepEqual(broken, { type: 'nodesockd:broken', reason: 'database is gone' });
  const res = await request({ socketPath: worker.sock }, '/hello', false).response;
  assert.equal(res.status, 200);
  await stopAndExpectCleanExit(worker);
});

test('messages that are not the daemon’s reach the app unchanged and are otherwise ignored', async () => {
  const worker = startManaged('http-app.ts');
  await worker.waitFor((m) => m === 'online', "'online'");
  const appMessages: unknown[] = ['hello', { foo: [1, 2] }, 42, { type: 'nodesockd:from-the-future' }];
  // 'resume' to a worker that is not suspended: no effect, and not an app message.
  sendTo(worker, 'resume');
  for (const message of appMessages) sendTo(worker, message);
  sendTo(worker, { cmd: 'marker' });
  await worker.waitFor(
    (m) => isEvent(m, 'app-message') && (m.message as { cmd?: unknown })?.cmd === 'marker',
    'the marker message',
  );
  const received = worker.messages
    .filter((m) => isEvent(m, 'app-message'))
    .map((m) => (m as FixtureEvent).message);
  assert.deepEqual(received, [...appMessages, { cmd: 'marker' }]);
  const res = await request({ socketPath: worker.sock }, '/hello', false).response;
  assert.equal(res.status, 200);
  await stopAndExpectCleanExit(worker);
  assert.equal(
    worker.messages.some((m) => isEvent(m, 'app-message') && m.message === 'shutdown'),
    false,
  );
});

test('standalone: serves on PORT, nothing is suspended, reportBroken shuts down', async () => {
  const worker = startStandalone('http-app.ts');
  const line = JSON.parse(await worker.stdoutLine()) as { listening: number; managed: boolean };
  assert.equal(line.managed, false);
  assert.ok(line.listening > 0);
  const res = await request({ port: line.listening }, '/hello', false).response;
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { managed: false, suspendedAtHandler: false, resumeSeen: false });
  assert.equal(fs.existsSync(path.join(tmpDir, 'unused.sock')), false);

  const broken = await request({ port: line.listening }, '/broken', false).response;
  assert.equal(broken.status, 200);
  const { code } = await withDeadline(worker.closed, 'the standalone worker to exit');
  assert.equal(code, 0, worker.stderr());
});

test('suspend.express holds requests in an Express app until resume', async () => {
  const worker = startManaged('express-app.ts', { suspended: true });
  await worker.waitFor((m) => m === 'online', "'online'");
  const { response, done } = request({ socketPath: worker.sock }, '/hello', false);
  const arrived = await worker.waitFor((m) => isEvent(m, 'request-arrived'), 'the request to reach Express');
  assert.equal((arrived as FixtureEvent).suspended, true);
  assert.equal(done(), false);
  sendTo(worker, 'resume');
  const res = await response;
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { suspendedAtHandler: false, resumeSeen: true });
  await stopAndExpectCleanExit(worker);
});

test('HTTP/2: requests are held until resume, and shutdown sends GOAWAY and exits', async () => {
  const worker = startManaged('http2-app.ts', { suspended: true });
  await worker.waitFor((m) => m === 'online', "'online'");
  const session = http2.connect('http://localhost', { createConnection: () => net.connect(worker.sock) });
  after(() => session.destroy());
  const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
  let responded = false;
  const response = withDeadline(
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const stream = session.request({ ':path': '/hello' });
      let status = 0;
      let body = '';
      stream.setEncoding('utf8');
      stream.on('response', (headers) => {
        status = Number(headers[':status']);
      });
      stream.on('data', (chunk: string) => {
        body += chunk;
      });
      stream.on('end', () => {
        responded = true;
        resolve({ status, body });
      });
      stream.on('error', reject);
      stream.end();
    }),
    'the HTTP/2 response',
  );
  const arrived = await worker.waitFor(
    (m) => isEvent(m, 'request-arrived'),
    'the request to reach the worker',
  );
  assert.equal((arrived as FixtureEvent).suspended, true);
  assert.equal(responded, false);
  sendTo(worker, 'resume');
  const res = await response;
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { suspendedAtHandler: false, resumeSeen: true });

  sendTo(worker, 'shutdown');
  await withDeadline(goaway, 'GOAWAY');
  session.close();
  const { code } = await withDeadline(worker.closed, 'the worker to exit');
  assert.equal(code, 0, worker.stderr());
});

test('the Express, Koa and Fastify adapters wait for resume', async () => {
  const worker = startManaged('adapters.ts', { suspended: true });
  const called = await worker.waitFor((m) => isEvent(m, 'adapters-called'), 'the adapters to be called');
  assert.equal((called as FixtureEvent).suspended, true);
  assert.equal(
    worker.messages.some((m) => isEvent(m, 'continued')),
    false,
  );
  sendTo(worker, 'resume');
  const { code } = await withDeadline(worker.closed, 'the app to finish after resume');
  assert.equal(code, 0, worker.stderr());
  const continued = worker.messages.filter((m) => isEvent(m, 'continued')) as FixtureEvent[];
  assert.deepEqual(continued.map((m) => m.adapter).sort(), ['express', 'fastify', 'koa']);
  assert.ok(continued.every((m) => m.suspended === false));
});

test('standalone, the adapters continue at once', async () => {
  const worker = startStandalone('adapters.ts');
  assert.deepEqual(JSON.parse(await worker.stdoutLine()), ['express', 'fastify', 'koa']);
  const { code } = await withDeadline(worker.closed, 'the app to finish');
  assert.equal(code, 0, worker.stderr());
});

test('loading the library does not keep a finished app alive', async () => {
  const worker = startManaged('import-only.ts');
  assert.deepEqual(JSON.parse(await worker.stdoutLine()), { managed: true });
  const { code } = await withDeadline(worker.closed, 'the app to exit by itself');
  assert.equal(code, 0, worker.stderr());
});

test("the library does not stop an app's own message listener from keeping it alive", async () => {
  const worker = startManaged('plain-contract.ts', { suspended: true });
  // The fixture's script has finished here: only its own listener keeps it running.
  await worker.waitFor((m) => isEvent(m, 'ready'), 'the app to be ready');
  sendTo(worker, 'resume');
  await worker.waitFor((m) => isEvent(m, 'resumed-by-app'), "the app's own resume handling");
  const { code } = await withDeadline(worker.closed, 'the app to exit once its listener is gone');
  assert.equal(code, 0, worker.stderr());
});

test('awaiting nodesockd.resumed keeps the worker alive until resume, and no longer', async () => {
  const worker = startManaged('await-resumed.ts', { suspended: true });
  const waiting = await worker.waitFor((m) => isEvent(m, 'waiting'), 'the app to wait');
  assert.equal((waiting as FixtureEvent).suspended, true);
  sendTo(worker, 'resume');
  const resumed = await worker.waitFor((m) => isEvent(m, 'after-resumed'), 'the app to continue');
  assert.equal((resumed as FixtureEvent).suspended, false);
  const { code } = await withDeadline(worker.closed, 'the app to exit by itself');
  assert.equal(code, 0, worker.stderr());
});

test('serve() rejects a listening server, a bad port and a second call', async () => {
  const worker = startStandalone('serve-errors.ts');
  const results = JSON.parse(await worker.stdoutLine()) as Record<string, string>;
  assert.match(results.alreadyListening, /^error: .*not listening yet/);
  assert.match(results.badPort, /^error: .*port/);
  assert.equal(results.first, 'ok');
  assert.match(results.second, /^error: .*already called/);
  const { code } = await withDeadline(worker.closed, 'the fixture to exit');
  assert.equal(code, 0, worker.stderr());
});
