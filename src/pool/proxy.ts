/**
 * The front of a pool (Socketnaut's ServiceProxy): owns the pool of worker threads or
 * processes, picks a worker for every accepted connection, and relays it (threads, or a TLS
 * front) or hands its socket over (process workers). Restarts crashed workers with backoff,
 * scales up at a bounded rate and down after an idle grace, and drains on shutdown.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { type ProxySocketAddressInfo, socketAddressInfo } from '../net/address-info.js';
import { HandoffSender } from '../net/handoff.js';
import type { ProxyProtocolVersion } from '../net/proxy-protocol.js';
import { chooseWorker } from '../net/routing.js';
import { describeError, log, type PoolLogger } from './log.js';
import { RestartBackoff } from './policy.js';
import {
  type AcceptAddress,
  type FrontToWorker,
  type HandoffMeta,
  isWorkerToFront,
  MSG_ACCEPT,
  MSG_ACCEPTING,
  MSG_CONFIG,
  MSG_DRAIN,
  MSG_LISTENING,
  MSG_LOAD,
  MSG_LOG,
  POOL_CHILD_ENV,
  POOL_PROXY_PROTOCOL_ENV,
  relayToThread as relay,
  type WorkerToFront,
} from './protocol.js';
import { POOL_RELAY_DIR_ENV, relayDir } from './relay-dir.js';
import { listenWithReusePort, type ReusePortListen, reusePortSupported } from './reuse-port.js';
import { defaultMaxWaiting, WaitingRoom } from './waiting-room.js';

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

export type WorkerState = 'starting' | 'ready' | 'draining' | 'exited';

/** One worker of the pool, as the front sees it. */
export class WorkerAgent<W extends Worker | ChildProcess = Worker> {
  /** The Worker (thread pools) or ChildProcess (process pools). */
  readonly worker: W;
  /** Open client connections on this worker (the load the pool balances on). */
  connections = 0;
  /** Settles when the worker listens: how to reach the app's own server, or null if it never got there. */
  readonly socketConnectOpts: Promise<net.SocketConnectOpts | null>;
  state: WorkerState = 'starting';
  /** The thread id or the pid. */
  readonly id: number;
  readonly startedAt = Date.now();
  readyAt: number | undefined;
  /** Since when this worker has had no connection. */
  idleSince = Date.now();
  /** @internal */ hop: string | undefined;
  /** @internal */ relayed = 0;
  /** @internal */ reported = 0;
  /** @internal */ inTransit = 0;
  /** Whether this thread accepts clients on the front's port itself (`reusePort`). */
  direct = false;
  /** @internal */ sender: HandoffSender | undefined;
  /** @internal */ exited: Promise<number>;
  /** @internal */ resolveReady: (connect: net.SocketConnectOpts | null) => void = () => {};
  /** @internal */ readyOrGone: Promise<boolean>;

  constructor(worker: W, id: number, exited: Promise<number>) {
    this.worker = worker;
    this.id = id;
    this.exited = exited;
    let settle: (connect: net.SocketConnectOpts | null) => void = () => {};
    this.socketConnectOpts = new Promise((resolve) => {
      settle = resolve;
    });
    let ready: (ok: boolean) => void = () => {};
    this.readyOrGone = new Promise((resolve) => {
      ready = resolve;
    });
    this.resolveReady = (connect) => {
      settle(connect);
      ready(connect !== undefined && this.state === 'ready');
    };
    void exited.then(() => {
      settle(null);
      ready(false);
    });
  }

  get ready(): boolean {
    return this.state === 'ready';
  }

  /** @internal */ recount(): void {
    const before = this.connections;
    this.connections = this.relayed + this.reported + this.inTransit;
    if (this.connections === 0 && before !== 0) this.idleSince = Date.now();
  }
}

/** Pool counters, for monitoring. */
export interface PoolStats {
  workers: number;
  ready: number;
  starting: number;
  draining: number;
  connections: number;
  waiting: number;
  spawned: number;
  crashed: number;
  exited: number;
  /** Workers accepting clients on the front's port themselves (`reusePort`). */
  direct: number;
}

export interface ServiceProxyEvents<W extends Worker | ChildProcess> {
  /** The first `minWorkers` workers listen (at once when `minWorkers` is 0); replayed to later listeners. */
  ready: WorkerAgent<W>[];
  /** A worker was started. */
  spawn: [agent: WorkerAgent<W>];
  /** A worker listens and takes connections. */
  online: [agent: WorkerAgent<W>];
  /** A worker ended (code: its exit code, or -1 when killed by a signal). */
  exit: [agent: WorkerAgent<W>, code: number];
  /** A worker ended without being asked to (an uncaught error, a failed load, a kill). */
  crash: [agent: WorkerAgent<W>, reason: string];
}

function positiveIntOrUndefined(name: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
    throw new Error(`createServiceProxy: ${name} must be a non-negative number, got ${String(value)}`);
}

function workerPath(url: string | URL): string {
  if (url instanceof URL) return fileURLToPath(url);
  if (url.startsWith('file:')) return fileURLToPath(url);
  return path.resolve(url);
}

function childEnv(
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

export class ServiceProxy<W extends Worker | ChildProcess = Worker> extends EventEmitter {
  /** The process-wide pool logger (shared by every ServiceProxy). */
  log: PoolLogger = log;
  server: net.Server;
  workerCount?: number;
  workerURL: string | URL;
  minWorkers: number;
  maxWorkers?: number;
  workersCheckingInterval?: number;
  workersCheckingIntervalTimeout?: NodeJS.Timeout;
  workerOptions?: WorkerOptions;
  readonly workerType: WorkerType;
  /** The pool, least-loaded first. Draining and exited workers are not in it. */
  agents: WorkerAgent<W>[] = [];
  /** The front's listening address, once it listens. */
  proxyAddressInfo?: net.AddressInfo | string | null;
  proxyAddressInfoRepr?: string;

  readonly #idleTimeout: number;
  readonly #maxSpawning: number;
  readonly #drainTimeout: number;
  readonly #proxyProtocol: ProxyProtocolVersion | null;
  readonly #connectAttempts: number;
  readonly #backoff: RestartBackoff;
  readonly #tlsFront: boolean;
  readonly #handoff: boolean;
  readonly #reusePort: ReusePortListen | null = null;
  #accept: AcceptAddress | null = null;
  readonly #all = new Set<WorkerAgent<W>>();
  /** Accepted connections that wait because no worker runs (they are in the room too). */
  readonly #waiting = new Set<net.Socket>();
  readonly #room: WaitingRoom;
  readonly #maxWaiting: number;
  readonly #waitTimeout: number;
  /** When each accepted connection stops waiting for a worker and is closed. */
  readonly #deadlines = new WeakMap<net.Socket, number>();
  /** Wakes a shutdown that waits for accepted connections to reach their workers. */
  #settled: (() => void) | null = null;
  readonly #clients = new Set<net.Socket>();
  #readyArgs: WorkerAgent<W>[] | null = null;
  #nextSpawnAt = 0;
  #spawnTimer: NodeJS.Timeout | null = null;
  #lastScaleUp = 0;
  #shutdown: Promise<PromiseSettledResult<unknown>[]> | null = null;
  #stats = { spawned: 0, crashed: 0, exited: 0 };

  constructor(options: ServiceProxyOptions) {
    super();
    if (typeof options !== 'object' || options === null)
      throw new Error('createServiceProxy: options must be an object');
    const {
      server,
      workerCount,
      workerURL,
      minWorkers = 0,
      maxWorkers,
      workersCheckingInterval,
      workerOptions,
    } = options;
    // Socketnaut's checks and messages, in its order.
    if (workerCount !== undefined && workerCount < 1) throw new Error('workerCount must be at least 1');
    if (maxWorkers !== undefined && maxWorkers < 1)
      throw new Error('maxWorkers must be at least 1 or undefined for unbounded scaling');
    if (minWorkers < 0) throw new Error('minWorkers must be non-negative');
    if (maxWorkers !== undefined && minWorkers > maxWorkers)
      throw new Error('minWorkers cannot exceed maxWorkers');
    if (!(server instanceof net.Server))
      throw new Error('createServiceProxy: server must be a net.Server or a tls.Server');
    if (!(typeof workerURL === 'string' || workerURL instanceof URL) || workerURL === '')
      throw new Error(
        'createServiceProxy: workerURL must be a path, a URL or (with workerOptions.eval) code',
      );
    for (const [name, value] of Object.entries({
      workerCount,
      minWorkers,
      maxWorkers,
      workersCheckingInterval,
      idleTimeout: options.idleTimeout,
      maxSpawning: options.maxSpawning,
      drainTimeout: options.drainTimeout,
      connectAttempts: options.connectAttempts,
      waitTimeout: options.waitTimeout,
      maxWaiting: options.maxWaiting,
      'restartDelay.initial': options.restartDelay?.initial,
      'restartDelay.max': options.restartDelay?.max,
    }))
      positiveIntOrUndefined(name, value);
    const workerType = options.workerType ?? 'thread';
    if (workerType !== 'thread' && workerType !== 'process')
      throw new Error(
        `createServiceProxy: workerType must be 'thread' or 'process', got ${String(workerType)}`,
      );
    if (
      options.proxyProtocol !== undefined &&
      options.proxyProtocol !== 'v1' &&
      options.proxyProtocol !== 'v2'
    )
      throw new Error(
        `createServiceProxy: proxyProtocol must be 'v1' or 'v2', got ${String(options.proxyProtocol)}`,
      );
    if (options.reusePort !== undefined && typeof options.reusePort !== 'boolean')
      throw new Error(`createServiceProxy: reusePort must be a boolean, got ${String(options.reusePort)}`);
    if (options.reusePort && workerType === 'process')
      throw new Error(
        'createServiceProxy: reusePort is for thread workers; process workers already get each connection without a relay',
      );
    if (workerType === 'process' && workerOptions?.eval)
      throw new Error(
        'createServiceProxy: workerOptions.eval is for thread workers; a process worker needs a file',
      );

    this.server = server;
    this.workerCount = workerCount;
    this.workerURL = workerURL;
    this.minWorkers = workerCount ?? minWorkers;
    this.maxWorkers = workerCount ?? maxWorkers;
    this.workersCheckingInterval = workersCheckingInterval;
    this.workerOptions = workerOptions;
    this.workerType = workerType;
    this.#idleTimeout = options.idleTimeout ?? workersCheckingInterval ?? 0;
    this.#maxSpawning = Math.max(1, options.maxSpawning ?? 4);
    this.#drainTimeout = options.drainTimeout ?? 10_000;
    this.#proxyProtocol = options.proxyProtocol ?? null;
    this.#connectAttempts = Math.max(1, options.connectAttempts ?? 3);
    this.#waitTimeout = options.waitTimeout ?? 5000;
    this.#maxWaiting = Math.max(1, options.maxWaiting ?? defaultMaxWaiting());
    this.#room = new WaitingRoom({ timeoutMs: this.#waitTimeout, log: this.log });
    this.#backoff = new RestartBackoff(
      options.restartDelay?.initial ?? 100,
      options.restartDelay?.max ?? 10_000,
    );
    this.#tlsFront = server instanceof tls.Server;
    this.#handoff = workerType === 'process' && !this.#tlsFront;

    if (this.#tlsFront) server.on('secureConnection', this.#onConnection);
    else {
      // Nothing is read in the front before the connection reaches its worker.
      (server as net.Server & { pauseOnConnect: boolean }).pauseOnConnect = true;
      server.on('connection', this.#onConnection);
    }
    if (options.reusePort && !this.#tlsFront) {
      if (!reusePortSupported())
        this.log.warn(
          `reusePort needs Node.js 22.12 or 23.1 or later (this is ${process.version}): the front relays every connection`,
        );
      else {
        this.#reusePort = listenWithReusePort(server);
        this.#hookClose(server);
      }
    }
    let logged = '';
    const onListening = (): void => {
      this.proxyAddressInfo = server.address();
      this.proxyAddressInfoRepr = JSON.stringify(this.proxyAddressInfo);
      // Once per address: listening again with SO_REUSEPORT is not news.
      if (logged !== this.proxyAddressInfoRepr)
        this.log.info(`Service Proxy listening on ${this.proxyAddressInfoRepr}`);
      logged = this.proxyAddressInfoRepr;
      const a = this.proxyAddressInfo;
      const reuse = this.#reusePort;
      if (reuse === null || a === null || typeof a !== 'object') return;
      if (reuse.used()) {
        if (this.#accept?.host !== a.address || this.#accept.port !== a.port)
          this.#setAccept({ host: a.address, port: a.port });
      }
      // listen() came before the proxy (or was still looking its host up): listen again with SO_REUSEPORT.
      else if (!reuse.seen())
        reuse.relisten(a, (err) =>
          this.log.warn(
            `reusePort: could not listen again on ${a.address}:${a.port} with SO_REUSEPORT (${err.message}): the front relays every connection`,
          ),
        );
    };
    if (server.listening) onListening();
    server.on('listening', onListening);

    // 'ready' is never lost: a listener added after it fired gets it on the next tick.
    this.on('newListener', (event: string | symbol, listener: (...args: unknown[]) => void) => {
      if (event !== 'ready' || this.#readyArgs === null) return;
      const args = this.#readyArgs;
      process.nextTick(() => {
        this.removeListener('ready', listener);
        listener.apply(this, args);
      });
    });

    this.#fill();
    this.#checkReady();

    if (this.workersCheckingInterval) {
      this.workersCheckingIntervalTimeout = setInterval(() => this.#reap(), this.workersCheckingInterval);
      this.workersCheckingIntervalTimeout.unref();
    }
  }

  /** Counters of the pool right now. */
  stats(): PoolStats {
    let ready = 0;
    let starting = 0;
    let draining = 0;
    let connections = 0;
    for (const a of this.#all) {
      if (a.state === 'ready') ready += 1;
      else if (a.state === 'starting') starting += 1;
      else if (a.state === 'draining') draining += 1;
      connections += a.connections;
    }
    return {
      workers: this.agents.length,
      ready,
      starting,
      draining,
      connections,
      waiting: this.#room.size,
      ...this.#stats,
      direct: [...this.#all].filter((a) => a.direct && a.state === 'ready').length,
    };
  }

  /**
   * Stops accepting, lets the workers finish what is in flight (idle keep-alive connections
   * are closed at once), stops the workers (forcibly after `timeout`, if given), and resolves
   * with each worker's exit. Rejects, after stopping the workers, when the server was never listening.
   */
  shutdown = (options: ShutdownOptions = {}): Promise<PromiseSettledResult<unknown>[]> => {
    if (this.#shutdown) return this.#shutdown;
    const timeout = options.timeout ?? null;
    positiveIntOrUndefined('shutdown timeout', timeout ?? undefined);
    this.#shutdown = (async () => {
      this.minWorkers = 0;
      clearInterval(this.workersCheckingIntervalTimeout);
      if (this.#spawnTimer) clearTimeout(this.#spawnTimer);
      // Closed on the check phase: what the kernel had queued when this poll phase began is
      // accepted first (closing a listener resets the connections still in its queue).
      await new Promise<void>((resolve) => setImmediate(resolve));
      const closed = new Promise<Error | undefined>((resolve) => this.server.close((err) => resolve(err)));
      this.server.removeListener(this.#tlsFront ? 'secureConnection' : 'connection', this.#onConnection);
      // The connections already accepted reach a worker before the workers drain, as the
      // daemon's front does: destroying one would reset a client whose request is sent.
      this.#flushWaiting(true);
      await this.#settle(timeout === null ? Number.POSITIVE_INFINITY : Date.now() + timeout);
      const everyone = [...this.#all];
      this.agents = [];
      for (const a of everyone) this.#drain(a, timeout);
      const forced =
        timeout === null
          ? undefined
          : setTimeout(() => {
              for (const c of this.#clients) c.destroy();
            }, timeout).unref();
      const results = await Promise.allSettled(everyone.map((a) => a.exited));
      clearTimeout(forced);
      for (const c of this.#clients) c.destroy();
      const closeError = await Promise.race([
        closed,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 100).unref()),
      ]);
      if (closeError) throw closeError;
      return results;
    })();
    return this.#shutdown;
  };

  // ---- direct accept (reusePort) ----

  /** Tells every thread where to accept clients itself (or, with null, to stop). */
  #setAccept(accept: AcceptAddress | null): void {
    this.#accept = accept;
    if (accept === null) for (const a of this.#all) a.direct = false;
    const message: FrontToWorker = { type: MSG_ACCEPT, accept };
    for (const a of this.#all) {
      if (a.state === 'exited' || a.state === 'draining' || !(a.worker instanceof Worker)) continue;
      a.worker.postMessage(message);
    }
  }

  /** `server.close()` stops the threads' own accepting too, at once. */
  #hookClose(server: net.Server): void {
    const original = server.close;
    const proxy = this;
    const patched = function (this: net.Server, ...args: unknown[]): net.Server {
      if (proxy.#accept !== null) proxy.#setAccept(null);
      return Reflect.apply(original, this, args) as net.Server;
    };
    Object.defineProperty(server, 'close', { value: patched, configurable: true, writable: true });
  }

  // ---- connections ----

  #onConnection = (socket: net.Socket): void => {
    socket.on('error', (err) => this.log.debug(`client socket: ${err.message}`));
    if (this.#tlsFront) socket.pause();
    this.#clients.add(socket);
    socket.once('close', () => this.#clients.delete(socket));
    this.#deadlines.set(socket, Date.now() + this.#waitTimeout);
    this.#route(socket, socketAddressInfo(socket), 1);
  };

  #route(socket: net.Socket, info: ProxySocketAddressInfo, attempt: number): void {
    if (socket.destroyed) return;
    const closing = this.#shutdown !== null;
    const live = this.agents.filter((a) => a.state === 'starting' || a.state === 'ready');
    const starting = live.filter((a) => a.state === 'starting').length;
    const choice = chooseWorker(live, {
      max: this.maxWorkers ?? Number.POSITIVE_INFINITY,
      starting,
      maxSpawning: this.#maxSpawning,
      maySpawn: !closing && Date.now() >= this.#nextSpawnAt,
    });
    let agent: WorkerAgent<W>;
    if (choice.kind === 'worker') agent = choice.worker;
    else if (choice.kind === 'spawn') {
      agent = this.#spawn();
      this.#lastScaleUp = Date.now();
    } else if (closing) {
      // No worker runs, and a closing pool starts none.
      this.#room.refuse(socket, 'shutdown');
      return;
    } else {
      this.#waitForWorker(socket);
      return;
    }
    agent.inTransit += 1;
    agent.recount();
    this.#reorder(agent);
    void this.#deliver(agent, socket, info).then(
      () => this.#settled?.(),
      (err: unknown) => {
        this.#settled?.();
        agent.inTransit -= 1;
        agent.recount();
        this.#reorder(agent);
        const code = (err as NodeJS.ErrnoException).code;
        if (agent.state === 'ready' && (code === 'ECONNREFUSED' || code === 'ENOENT')) {
          // Its relay socket is gone: the worker cannot serve; replace it.
          this.log.warn(
            `worker ${agent.id} could not take a connection: ${describeError(err)}; replacing it`,
          );
          this.#drain(agent, this.#drainTimeout);
          this.#fill();
        } else this.log.debug(`worker ${agent.id} could not take a connection: ${describeError(err)}`);
        if (attempt < this.#connectAttempts) this.#route(socket, info, attempt + 1);
        else this.#room.refuse(socket, 'failed');
      },
    );
  }

  /** No worker runs: `socket` waits in the room until one does (or it leaves, or its deadline passes). */
  #waitForWorker(socket: net.Socket): void {
    if (!this.#roomFor(socket)) return;
    this.#waiting.add(socket);
    void this.#room.hold(socket, this.#deadlineOf(socket)).then(() => this.#waiting.delete(socket));
    this.#scheduleSpawn();
  }

  /** Whether `socket` may wait; when the room is full it is closed. */
  #roomFor(socket: net.Socket): boolean {
    if (this.#room.size < this.#maxWaiting) return true;
    this.#room.refuse(socket, 'full');
    return false;
  }

  #deadlineOf(socket: net.Socket): number {
    return this.#deadlines.get(socket) ?? Date.now() + this.#waitTimeout;
  }

  /** Connections in transit to a worker (waiting for it to start, or being handed or relayed). */
  #inTransit(): number {
    let n = 0;
    for (const a of this.#all) n += a.inTransit;
    return n;
  }

  /** Until no accepted connection is in transit to a worker, or `deadline`. */
  async #settle(deadline: number): Promise<void> {
    while (this.#inTransit() > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.#settled = resolve;
        setTimeout(resolve, 50);
      });
    }
    this.#settled = null;
  }

  /**
   * `agent` is starting: `socket` waits in the room until it is ready. Throws when the worker
   * exited first; returns with `socket` closed when its client left or its deadline passed.
   */
  async #awaitStart(agent: WorkerAgent<W>, socket: net.Socket): Promise<void> {
    if (!this.#roomFor(socket)) return;
    const left = this.#room.hold(socket, this.#deadlineOf(socket)).then(() => false);
    const ready = await Promise.race([agent.readyOrGone, left]);
    this.#room.release(socket);
    if (!ready && !socket.destroyed) throw new Error(`worker ${agent.id} exited before it was ready`);
  }

  async #deliver(agent: WorkerAgent<W>, socket: net.Socket, info: ProxySocketAddressInfo): Promise<void> {
    if (agent.state === 'starting') await this.#awaitStart(agent, socket);
    else if (!(await agent.readyOrGone)) throw new Error(`worker ${agent.id} exited before it was ready`);
    if (socket.destroyed) {
      agent.inTransit -= 1;
      agent.recount();
      this.#reorder(agent);
      return;
    }
    if (this.#handoff && agent.sender) {
      // What the front read while the connection waited goes with it.
      const head = this.#room.detach(socket);
      const meta: HandoffMeta = head ? { ...info, head: head.toString('base64') } : info;
      await agent.sender.send(socket, meta);
      agent.inTransit -= 1;
      // Counted by the child from now on (MSG_LOAD); until its report comes, count it here.
      agent.reported += 1;
      agent.recount();
      return;
    }
    if (agent.hop === undefined) throw new Error(`worker ${agent.id} has no relay socket`);
    await relay(socket, agent.hop, info, this.#room.readFrom(socket));
    agent.inTransit -= 1;
    agent.relayed += 1;
    agent.recount();
    socket.once('close', () => {
      agent.relayed -= 1;
      agent.recount();
      this.#reorder(agent);
    });
  }

  /** Keeps the pool sorted by load; a worker whose count changed goes last among its equals. */
  #reorder(agent: WorkerAgent<W>): void {
    const i = this.agents.indexOf(agent);
    if (i === -1) return;
    this.agents.splice(i, 1);
    const j = this.agents.findIndex((a) => a.connections > agent.connections);
    if (j === -1) this.agents.push(agent);
    else this.agents.splice(j, 0, agent);
  }

  // ---- workers ----

  #spawn(): WorkerAgent<W> {
    this.#stats.spawned += 1;
    const agent = this.workerType === 'process' ? this.#spawnProcess() : this.#spawnThread();
    this.#all.add(agent);
    this.agents.unshift(agent);
    this.emit('spawn', agent);
    return agent;
  }

  #spawnThread(): WorkerAgent<W> {
    const worker = new Worker(this.workerURL, this.workerOptions);
    let lastError: string | undefined;
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    const agent = new WorkerAgent<W>(worker as W, worker.threadId, exited);
    const config: FrontToWorker = {
      type: MSG_CONFIG,
      proxyProtocol: this.#proxyProtocol,
      accept: this.#accept,
      relayDir: relayDir(),
    };
    worker.postMessage(config);
    worker.on('message', (m: unknown) => {
      if (isWorkerToFront(m)) this.#onMessage(agent, m);
    });
    worker.on('error', (err) => {
      lastError = describeError(err);
      this.log.error(`worker thread ${agent.id}: ${lastError}`);
    });
    void exited.then((code) => this.#onExit(agent, code, lastError));
    return agent;
  }

  #spawnProcess(): WorkerAgent<W> {
    const o = this.workerOptions;
    const child = fork(workerPath(this.workerURL), (o?.argv ?? []).map(String), {
      execArgv: o?.execArgv ?? process.execArgv,
      env: childEnv(o, this.#proxyProtocol),
      stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    let lastError: string | undefined;
    const exited = new Promise<number>((resolve) => {
      child.once('exit', (code, signal) => {
        if (signal) lastError ??= `killed by ${signal}`;
        resolve(code ?? -1);
      });
    });
    child.on('error', (err) => {
      lastError = describeError(err);
      this.log.error(`worker process: ${lastError}`);
    });
    const agent = new WorkerAgent<W>(child as W, child.pid ?? -1, exited);
    if (this.#handoff) agent.sender = new HandoffSender(child);
    child.on('message', (m: unknown) => {
      if (isWorkerToFront(m)) this.#onMessage(agent, m);
    });
    void exited.then((code) => this.#onExit(agent, code, lastError));
    return agent;
  }

  #onMessage(agent: WorkerAgent<W>, m: WorkerToFront): void {
    if (m.type === MSG_LOG) this.log.write(m.record);
    else if (m.type === MSG_ACCEPTING) {
      agent.direct = m.ok && this.#accept !== null;
      if (!m.ok && m.error)
        this.log.warn(
          `worker ${agent.id} cannot accept on the front's port (${m.error}): its share is relayed`,
        );
    } else if (m.type === MSG_LOAD) {
      agent.reported = m.connections;
      agent.recount();
      this.#reorder(agent);
    } else if (m.type === MSG_LISTENING) {
      if (agent.state !== 'starting') return;
      agent.state = 'ready';
      agent.readyAt = Date.now();
      agent.idleSince = Date.now();
      agent.hop = m.hop;
      agent.resolveReady(m.connect);
      this.log.debug(`worker ${agent.id} is listening on ${JSON.stringify(m.connect)}`);
      this.emit('online', agent);
      this.#checkReady();
      this.#flushWaiting();
      this.#fill();
    }
  }

  #onExit(agent: WorkerAgent<W>, code: number, lastError: string | undefined): void {
    const expected = agent.state === 'draining';
    const ranFor = agent.readyAt === undefined ? -1 : Date.now() - agent.readyAt;
    agent.state = 'exited';
    agent.sender?.close();
    if (agent.hop) fs.rm(agent.hop, { force: true }, () => {});
    this.#all.delete(agent);
    const i = this.agents.indexOf(agent);
    if (i !== -1) this.agents.splice(i, 1);
    this.#stats.exited += 1;
    this.emit('exit', agent, code);
    if (!expected && !this.#shutdown) {
      this.#stats.crashed += 1;
      const reason = lastError ?? `exited with code ${code}`;
      this.#backoff.recordFailure(ranFor);
      const delay = this.#backoff.delayMs();
      this.#nextSpawnAt = Date.now() + delay;
      this.log.error(
        `worker ${agent.id} ${ranFor < 0 ? 'failed to start' : 'crashed'}: ${reason.split('\n')[0]}; next start in ${delay} ms`,
      );
      this.emit('crash', agent, reason);
    }
    this.#fill();
  }

  /** Starts workers towards the floor, or for waiting connections, when the backoff allows. */
  #fill(): void {
    if (this.#shutdown) return;
    const wait = this.#nextSpawnAt - Date.now();
    if (wait > 0) {
      this.#scheduleSpawn();
      return;
    }
    const live = this.agents.filter((a) => a.state !== 'draining');
    let count = live.length;
    let starting = live.filter((a) => a.state === 'starting').length;
    // Cold start: one worker first, so the first client waits for one start and not for the
    // whole floor (on a few cores, 32 threads starting at once are all slow); then at most
    // maxSpawning at a time, each online worker making room for the next.
    const limit = live.some((a) => a.state === 'ready') ? this.#maxSpawning : 1;
    for (; count < this.minWorkers && starting < limit; count++, starting++) this.#spawn();
    if (this.#waiting.size > 0 && this.agents.length === 0) this.#spawn();
    this.#flushWaiting();
  }

  #scheduleSpawn(): void {
    if (this.#spawnTimer || this.#shutdown) return;
    const wait = Math.max(0, this.#nextSpawnAt - Date.now());
    this.#spawnTimer = setTimeout(() => {
      this.#spawnTimer = null;
      this.#fill();
    }, wait);
    this.#spawnTimer.unref();
  }

  /** The connections that wait for want of a worker go to one, now that there is one (or, `closing`, are closed). */
  #flushWaiting(closing = false): void {
    if (this.agents.length === 0 && !closing) return;
    for (const s of [...this.#waiting]) {
      this.#waiting.delete(s);
      this.#room.release(s);
      this.#route(s, socketAddressInfo(s), 1);
    }
  }

  #checkReady(): void {
    if (this.#readyArgs !== null) return;
    const ready = this.agents.filter((a) => a.state === 'ready');
    if (ready.length < this.minWorkers) return;
    this.#readyArgs = [...this.agents];
    const args = this.#readyArgs;
    // Never inside the constructor: listeners attached right after it still hear it.
    process.nextTick(() => this.emit('ready', ...args));
  }

  /** Asks `agent` to drain and exit, killed `timeoutMs` + 2 s later if still there (null: never killed). */
  #drain(agent: WorkerAgent<W>, timeoutMs: number | null): void {
    if (agent.state === 'exited' || agent.state === 'draining') return;
    agent.state = 'draining';
    agent.direct = false;
    const i = this.agents.indexOf(agent);
    if (i !== -1) this.agents.splice(i, 1);
    const message: FrontToWorker = { type: MSG_DRAIN, timeoutMs };
    const kill = (): void => {
      if (agent.worker instanceof Worker) void agent.worker.terminate();
      else agent.worker.kill('SIGKILL');
    };
    const killTimer = timeoutMs === null ? undefined : setTimeout(kill, timeoutMs + 2000).unref();
    void agent.exited.then(() => clearTimeout(killTimer));
    try {
      if (agent.worker instanceof Worker) agent.worker.postMessage(message);
      else if (agent.worker.connected) agent.worker.send(message);
      else agent.worker.kill('SIGTERM');
    } catch {
      clearTimeout(killTimer);
      kill();
    }
    // A worker that never listened has no agent to drain it.
    if (agent.readyAt === undefined) kill();
  }

  /** Scale-down: at most one idle worker per check, idle for the grace period, and not right after a scale-up. */
  #reap(): void {
    if (this.#shutdown) return;
    const now = Date.now();
    const live = this.agents.filter((a) => a.state === 'ready' || a.state === 'starting');
    if (live.length <= this.minWorkers || now - this.#lastScaleUp < this.#idleTimeout) return;
    let victim: WorkerAgent<W> | undefined;
    for (const a of live) {
      if (a.state !== 'ready' || a.connections !== 0 || now - a.idleSince < this.#idleTimeout) continue;
      if (!victim || a.idleSince < victim.idleSince) victim = a;
    }
    if (!victim) return;
    this.log.debug(`scale-down: worker ${victim.id} idle for ${now - victim.idleSince} ms`);
    this.#drain(victim, this.#drainTimeout);
  }
}

/** Creates a pool front. `workerType: 'process'` gives a pool of child processes. */
export function createServiceProxy(
  options: ServiceProxyOptions & { workerType: 'process' },
): ServiceProxy<ChildProcess>;
export function createServiceProxy(options: ServiceProxyOptions): ServiceProxy;
export function createServiceProxy(
  options: ServiceProxyOptions,
): ServiceProxy<Worker> | ServiceProxy<ChildProcess> {
  return options?.workerType === 'process'
    ? new ServiceProxy<ChildProcess>(options)
    : new ServiceProxy<Worker>(options);
}
