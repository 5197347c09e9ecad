/**
 * The options of a pool front: their types, Socketnaut's checks and messages in its order
 * (then ours), and the defaults. `resolveOptions` is the only place a default is chosen.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { WorkerOptions } from 'node:worker_threads';
import type { ProxyProtocolVersion } from '../net/proxy-protocol.js';
import { defaultMaxWaiting } from './waiting-room.js';

export type WorkerType = 'thread' | 'process';

export interface ServiceProxyOptions {
  /** The listening socket: a `net.Server` (raw TCP to the workers) or a `tls.Server` (TLS ends here). The caller calls `listen()`. */
  server: net.Server;
  /** The worker module: a path (relative to the cwd), a `file:` URL, or (threads, with `workerOptions.eval`) code. */
  workerURL: string | URL;
  /** Passed to every `new Worker()`; for process workers `argv`, `execArgv` and `env` are used. */
  workerOptions?: WorkerOptions;
  /** The pool's floor (default 0): started at once and kept, also across crashes. */
  minWorkers?: number;
  /** The pool's ceiling (default unbounded). */
  maxWorkers?: number;
  /** Sets both `minWorkers` and `maxWorkers`. */
  workerCount?: number;
  /** How often (ms) idle workers above the floor are looked at for scale-down; none when unset. */
  workersCheckingInterval?: number;
  /** `'thread'` (default, Socketnaut's) or `'process'`: forked children fed by handle passing. */
  workerType?: WorkerType;
  /** How long (ms) a worker must have been idle before scale-down stops it (default: `workersCheckingInterval`). */
  idleTimeout?: number;
  /** Workers starting at once for scale-up (default 4). */
  maxSpawning?: number;
  /** Restart backoff after crashes: first delay and cap in ms (default 100 and 10000). */
  restartDelay?: { initial?: number; max?: number };
  /** How long (ms) a scaled-down worker may take to finish its connections (default 10000). */
  drainTimeout?: number;
  /** Write a PROXY protocol header in front of each connection the app's server gets. */
  proxyProtocol?: ProxyProtocolVersion;
  /** Workers tried for one connection before it is dropped (default 3). */
  connectAttempts?: number;
  /**
   * Thread pools with a `net.Server` front on a TCP port: the front listens with SO_REUSEPORT
   * and every worker thread binds the same port and accepts clients itself, so only the
   * front's own share of the connections is relayed (default false). Needs Node.js ≥ 22.12 or
   * 23.1; elsewhere, and for a TLS front or a UNIX socket, the pool relays as usual.
   */
  reusePort?: boolean;
  /**
   * How long (ms) an accepted connection may wait for a worker (none runs, or its worker is
   * still starting) before it is closed (default 5000).
   */
  waitTimeout?: number;
  /**
   * Connections that may wait for a worker at once; past it a new one is closed at once
   * (default: a quarter of the process's open-file limit, at most 1000).
   */
  maxWaiting?: number;
}

export interface ShutdownOptions {
  /**
   * How long (ms) in-flight work may take before the workers are stopped and the connections
   * cut; the connections already accepted get as long again to reach a worker first. None by
   * default: in-flight work ends on its own, as in Socketnaut (idle connections close at once).
   */
  timeout?: number;
}

/** The options checked, with every default filled in. */
export interface PoolSettings {
  server: net.Server;
  workerURL: string | URL;
  workerOptions: WorkerOptions | undefined;
  workerType: WorkerType;
  workerCount: number | undefined;
  minWorkers: number;
  maxWorkers: number | undefined;
  workersCheckingInterval: number | undefined;
  idleTimeout: number;
  maxSpawning: number;
  restartDelay: { initial: number; max: number };
  drainTimeout: number;
  proxyProtocol: ProxyProtocolVersion | null;
  connectAttempts: number;
  reusePort: boolean;
  waitTimeout: number;
  maxWaiting: number;
  /** A `tls.Server`: TLS ends in the front, so every connection is relayed. */
  tlsFront: boolean;
  /** Process workers behind a plain front: each connection's handle is passed, not relayed. */
  handoff: boolean;
}

/** Throws a one-line error naming `name` unless `value` is unset or a non-negative number. */
export function checkNonNegative(name: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
    throw new Error(`createServiceProxy: ${name} must be a non-negative number, got ${String(value)}`);
}

/** Socketnaut's own checks, with its messages, in its order. */
function checkSocketnaut(options: ServiceProxyOptions): void {
  const { workerCount, maxWorkers, minWorkers = 0 } = options;
  if (workerCount !== undefined && workerCount < 1) throw new Error('workerCount must be at least 1');
  if (maxWorkers !== undefined && maxWorkers < 1)
    throw new Error('maxWorkers must be at least 1 or undefined for unbounded scaling');
  if (minWorkers < 0) throw new Error('minWorkers must be non-negative');
  if (maxWorkers !== undefined && minWorkers > maxWorkers)
    throw new Error('minWorkers cannot exceed maxWorkers');
}

/** Ours, for what Socketnaut leaves unchecked and for the options it does not have. */
function checkOurs(options: ServiceProxyOptions, workerType: WorkerType): void {
  const { server, workerURL } = options;
  if (!(server instanceof net.Server))
    throw new Error('createServiceProxy: server must be a net.Server or a tls.Server');
  if (!(typeof workerURL === 'string' || workerURL instanceof URL) || workerURL === '')
    throw new Error('createServiceProxy: workerURL must be a path, a URL or (with workerOptions.eval) code');
  for (const [name, value] of Object.entries({
    workerCount: options.workerCount,
    minWorkers: options.minWorkers,
    maxWorkers: options.maxWorkers,
    workersCheckingInterval: options.workersCheckingInterval,
    idleTimeout: options.idleTimeout,
    maxSpawning: options.maxSpawning,
    drainTimeout: options.drainTimeout,
    connectAttempts: options.connectAttempts,
    waitTimeout: options.waitTimeout,
    maxWaiting: options.maxWaiting,
    'restartDelay.initial': options.restartDelay?.initial,
    'restartDelay.max': options.restartDelay?.max,
  }))
    checkNonNegative(name, value);
  if (workerType !== 'thread' && workerType !== 'process')
    throw new Error(
      `createServiceProxy: workerType must be 'thread' or 'process', got ${String(workerType)}`,
    );
  const pp = options.proxyProtocol;
  if (pp !== undefined && pp !== 'v1' && pp !== 'v2')
    throw new Error(`createServiceProxy: proxyProtocol must be 'v1' or 'v2', got ${String(pp)}`);
  if (options.reusePort !== undefined && typeof options.reusePort !== 'boolean')
    throw new Error(`createServiceProxy: reusePort must be a boolean, got ${String(options.reusePort)}`);
  if (options.reusePort && workerType === 'process')
    throw new Error(
      'createServiceProxy: reusePort is for thread workers; process workers already get each connection without a relay',
    );
  if (workerType === 'process' && options.workerOptions?.eval)
    throw new Error(
      'createServiceProxy: workerOptions.eval is for thread workers; a process worker needs a file',
    );
}

/** Checks `options` (throwing one line that names the option) and fills in the defaults. */
export function resolveOptions(options: ServiceProxyOptions): PoolSettings {
  if (typeof options !== 'object' || options === null)
    throw new Error('createServiceProxy: options must be an object');
  checkSocketnaut(options);
  const workerType = options.workerType ?? 'thread';
  checkOurs(options, workerType);
  const { server, workerCount, workersCheckingInterval } = options;
  const tlsFront = server instanceof tls.Server;
  return {
    server,
    workerURL: options.workerURL,
    workerOptions: options.workerOptions,
    workerType,
    workerCount,
    minWorkers: workerCount ?? options.minWorkers ?? 0,
    maxWorkers: workerCount ?? options.maxWorkers,
    workersCheckingInterval,
    idleTimeout: options.idleTimeout ?? workersCheckingInterval ?? 0,
    maxSpawning: Math.max(1, options.maxSpawning ?? 4),
    restartDelay: { initial: options.restartDelay?.initial ?? 100, max: options.restartDelay?.max ?? 10_000 },
    drainTimeout: options.drainTimeout ?? 10_000,
    proxyProtocol: options.proxyProtocol ?? null,
    connectAttempts: Math.max(1, options.connectAttempts ?? 3),
    reusePort: options.reusePort === true,
    waitTimeout: options.waitTimeout ?? 5000,
    maxWaiting: Math.max(1, options.maxWaiting ?? defaultMaxWaiting()),
    tlsFront,
    handoff: workerType === 'process' && !tlsFront,
  };
}
