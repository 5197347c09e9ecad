/**
 * Starting one pool worker, a thread or a child process, and one face over both
 * ({@link PoolWorker}): its messages, asking it to drain, killing it, its exit. The only
 * place that tells a `Worker` from a `ChildProcess`.
 */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { guardHandleAcks } from '../net/handle-ack-guard.js';
import { HandoffSender } from '../net/handoff.js';
import type { ProxyProtocolVersion } from '../net/proxy-protocol.js';
import type { Clock } from '../supervise/clock.js';
import { describeError, type PoolLogger } from './log.js';
import {
  type AcceptAddress,
  type FrontToWorker,
  isWorkerToFront,
  MSG_CONFIG,
  MSG_DRAIN,
  POOL_CHILD_ENV,
  POOL_PROXY_PROTOCOL_ENV,
  type WorkerToFront,
} from './protocol.js';
import { POOL_RELAY_DIR_ENV, relayDir } from './relay-dir.js';

/** A forced stop comes this long after a drain's own deadline, if the worker is still there. */
const KILL_GRACE_MS = 2000;

/** One worker of the pool, thread or process, as the front drives it. */
export interface PoolWorker<W extends Worker | ChildProcess = Worker | ChildProcess> {
  /** The Worker or ChildProcess. */
  readonly handle: W;
  /** The thread id or the pid. */
  readonly id: number;
  /** Whether it is a thread (threads may accept on the front's port themselves). */
  readonly isThread: boolean;
  /** Settles with its exit code (-1 when killed by a signal). */
  readonly exited: Promise<number>;
  /** Why it ended, when it said so (an error, a signal). */
  readonly lastError: string | undefined;
  /** Passes accepted sockets to a process worker (process pools behind a plain front). */
  readonly sender: HandoffSender | undefined;
  onMessage(fn: (message: WorkerToFront) => void): void;
  /** Sends `message` if the worker can still hear it; returns whether it was sent. */
  post(message: FrontToWorker): boolean;
  /**
   * Asks it to finish its connections and exit; kills it `timeoutMs` + 2 s later if it is
   * still there (null: never), or at once when it cannot be asked or never listened.
   */
  drain(timeoutMs: number | null, listened: boolean, clock: Clock): void;
  /** Stops it at once (a thread is terminated, a process gets SIGKILL). */
  kill(): void;
}

export interface SpawnSpec {
  workerType: 'thread' | 'process';
  workerURL: string | URL;
  workerOptions: WorkerOptions | undefined;
  proxyProtocol: ProxyProtocolVersion | null;
  /** Process workers get each connection's handle (no relay). */
  handoff: boolean;
  log: PoolLogger;
}

/** The worker module's file (process workers): a path (relative to the cwd) or a `file:` URL. */
export function workerPath(url: string | URL): string {
  if (url instanceof URL || url.startsWith('file:')) return fileURLToPath(url);
  return path.resolve(url);
}

/** A process worker's environment: the caller's (or `workerOptions.env`), without the daemon's variables. */
export function childEnv(
  options: WorkerOptions | undefined,
  proxyProtocol: ProxyProtocolVersion | null,
): NodeJS.ProcessEnv {
  const base =
    options?.env && typeof options.env === 'object' ? (options.env as NodeJS.ProcessEnv) : process.env;
  const env: NodeJS.ProcessEnv = {};
  // A pool inside a nodesockd worker: its children are not the daemon's workers.
  for (const [k, v] of Object.entries(base)) if (!k.startsWith('NODESOCKD_')) env[k] = v;
  env[POOL_CHILD_ENV] = '1';
  env[POOL_PROXY_PROTOCOL_ENV] = proxyProtocol ?? '';
  env[POOL_RELAY_DIR_ENV] = relayDir();
  return env;
}

class SpawnedWorker<W extends Worker | ChildProcess> implements PoolWorker<W> {
  lastError: string | undefined;
  readonly isThread: boolean;
  readonly exited: Promise<number>;
  readonly sender: HandoffSender | undefined;

  constructor(
    readonly handle: W,
    readonly id: number,
    handoff: boolean,
    log: PoolLogger,
  ) {
    const h: Worker | ChildProcess = handle;
    this.isThread = h instanceof Worker;
    if (h instanceof Worker) {
      this.exited = new Promise((resolve) => h.once('exit', resolve));
      h.on('error', (err) => {
        this.lastError = describeError(err);
        log.error(`worker thread ${id}: ${this.lastError}`);
      });
    } else {
      this.exited = new Promise((resolve) => {
        h.once('exit', (code, signal) => {
          if (signal) this.lastError ??= `killed by ${signal}`;
          resolve(code ?? -1);
        });
      });
      h.on('error', (err) => {
        this.lastError = describeError(err);
        log.error(`worker process: ${this.lastError}`);
      });
    }
    this.sender = handoff && !(h instanceof Worker) ? new HandoffSender(h) : undefined;
  }

  onMessage(fn: (message: WorkerToFront) => void): void {
    (this.handle as Worker | ChildProcess).on('message', (m: unknown) => {
      if (isWorkerToFront(m)) fn(m);
    });
  }

  post(message: FrontToWorker): boolean {
    const h: Worker | ChildProcess = this.handle;
    if (h instanceof Worker) h.postMessage(message);
    else if (h.connected) h.send(message);
    else return false;
    return true;
  }

  drain(timeoutMs: number | null, listened: boolean, clock: Clock): void {
    const timer = timeoutMs === null ? null : clock.setTimeout(() => this.kill(), timeoutMs + KILL_GRACE_MS);
    timer?.unref();
    void this.exited.then(() => clock.clearTimeout(timer));
    try {
      if (!this.post({ type: MSG_DRAIN, timeoutMs })) (this.handle as ChildProcess).kill('SIGTERM');
    } catch {
      clock.clearTimeout(timer);
      this.kill();
    }
    // A worker that never listened has no agent to drain it.
    if (!listened) this.kill();
  }

  kill(): void {
    const h: Worker | ChildProcess = this.handle;
    if (h instanceof Worker) void h.terminate();
    else h.kill('SIGKILL');
  }
}

/** Starts one worker as `spec` says; a thread gets its first message (the config) at once. */
export function spawnWorker<W extends Worker | ChildProcess>(
  spec: SpawnSpec,
  accept: AcceptAddress | null,
): PoolWorker<W> {
  if (spec.workerType === 'thread') {
    const worker = new Worker(spec.workerURL, spec.workerOptions);
    worker.postMessage({
      type: MSG_CONFIG,
      proxyProtocol: spec.proxyProtocol,
      accept,
      relayDir: relayDir(),
    } satisfies FrontToWorker);
    return new SpawnedWorker(worker as W, worker.threadId, false, spec.log);
  }
  const o = spec.workerOptions;
  const child = fork(workerPath(spec.workerURL), (o?.argv ?? []).map(String), {
    execArgv: o?.execArgv ?? process.execArgv,
    env: childEnv(o, spec.proxyProtocol),
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    serialization: 'json',
  });
  // A forged NODE_HANDLE_ACK would be an uncaught exception in the front, one per message.
  guardHandleAcks(child, (line) => spec.log.warn(`worker process ${child.pid}: ${line}`), 'the pool');
  return new SpawnedWorker(child as W, child.pid ?? -1, spec.handoff, spec.log);
}
