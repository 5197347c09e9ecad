/**
 * The front of a pool (Socketnaut's ServiceProxy): a façade over the pool's mechanisms. It
 * takes the options (options.ts), accepts connections for the router (router.ts), starts
 * workers (spawn.ts) as the scaler says (scaler.ts), follows each worker's lifecycle
 * (worker-agent.ts), emits the pool's events, and shuts the pool down.
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import type { Worker, WorkerOptions } from 'node:worker_threads';
import { type Accepted, acceptRaw } from '../net/raw-accept.js';
import { type Clock, systemClock } from '../supervise/clock.js';
import { DirectAccept } from './direct-accept.js';
import { log, type PoolLogger } from './log.js';
import {
  checkNonNegative,
  type PoolSettings,
  resolveOptions,
  type ServiceProxyOptions,
  type ShutdownOptions,
  type WorkerType,
} from './options.js';
import { MSG_ACCEPTING, MSG_LISTENING, MSG_LOAD, MSG_LOG, type WorkerToFront } from './protocol.js';
import { Router } from './router.js';
import { Scaler } from './scaler.js';
import { spawnWorker } from './spawn.js';
import { WaitingRoom } from './waiting-room.js';
import { can, WorkerAgent } from './worker-agent.js';

export type { ServiceProxyOptions, ShutdownOptions, WorkerType } from './options.js';
export { WorkerAgent, type WorkerState } from './worker-agent.js';

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

export class ServiceProxy<W extends Worker | ChildProcess = Worker> extends EventEmitter {
  /** The process-wide pool logger (shared by every ServiceProxy). */
  log: PoolLogger = log;
  server: net.Server;
  workerCount?: number;
  workerURL: string | URL;
  maxWorkers?: number;
  workersCheckingInterval?: number;
  /** Socketnaut's scale-down timer; unset here: the checks run on the pool's clock, and shutdown() stops them. */
  workersCheckingIntervalTimeout?: NodeJS.Timeout;
  workerOptions?: WorkerOptions;
  readonly workerType: WorkerType;
  /** The pool, least-loaded first. Draining and exited workers are not in it. */
  agents: WorkerAgent<W>[] = [];
  /** The front's listening address, once it listens. */
  proxyAddressInfo?: net.AddressInfo | string | null;
  proxyAddressInfoRepr?: string;

  readonly #o: PoolSettings;
  readonly #clock: Clock = systemClock;
  readonly #room: WaitingRoom;
  readonly #router: Router<W>;
  readonly #scaler: Scaler<WorkerAgent<W>>;
  #direct: DirectAccept | null = null;
  readonly #all = new Set<WorkerAgent<W>>();
  readonly #clients = new Set<net.Socket>();
  #readyArgs: WorkerAgent<W>[] | null = null;
  #shutdown: Promise<PromiseSettledResult<unknown>[]> | null = null;
  #stats = { spawned: 0, crashed: 0, exited: 0 };

  constructor(options: ServiceProxyOptions) {
    super();
    const o = resolveOptions(options);
    this.#o = o;
    this.server = o.server;
    this.workerCount = o.workerCount;
    this.workerURL = o.workerURL;
    this.maxWorkers = o.maxWorkers;
    this.workersCheckingInterval = o.workersCheckingInterval;
    this.workerOptions = o.workerOptions;
    this.workerType = o.workerType;
    this.#room = new WaitingRoom({ timeoutMs: o.waitTimeout, log: this.log });
    this.#scaler = new Scaler(
      { ...o, checkInterval: o.workersCheckingInterval },
      {
        workers: () => this.agents,
        waiting: () => this.#router.waiting,
        spawn: () => this.#spawn(),
        drain: (agent, reason) => {
          this.log.debug(`scale-down: worker ${agent.id} ${reason}`);
          this.#drain(agent, o.drainTimeout);
        },
        flush: () => this.#router.flush(),
      },
      this.#clock,
    );
    this.#router = new Router(
      o,
      {
        agents: () => this.agents,
        all: () => this.#all,
        closing: () => this.#shutdown !== null,
        maySpawn: () => this.#scaler.maySpawn(),
        scaleUp: () => this.#scaler.scaleUp(),
        wantWorker: () => this.#scaler.scheduleSpawn(),
        socketOf: (connection) => this.#adopt(connection.toSocket({ allowHalfOpen: true })),
        broken: (agent) => {
          this.#drain(agent, o.drainTimeout);
          this.#scaler.fill();
        },
      },
      this.#room,
      this.log,
      this.#clock,
    );
    this.#listen(o.server);
    // 'ready' is never lost: a listener added after it fired gets it on the next tick.
    this.on('newListener', (event: string | symbol, listener: (...args: unknown[]) => void) => {
      if (event !== 'ready' || this.#readyArgs === null) return;
      const args = this.#readyArgs;
      process.nextTick(() => {
        this.removeListener('ready', listener);
        listener.apply(this, args);
      });
    });
    this.#scaler.start();
    this.#checkReady();
  }

  /** The pool's floor (Socketnaut's `minWorkers`); 0 once it shuts down. */
  get minWorkers(): number {
    return this.#scaler.minWorkers;
  }
  set minWorkers(n: number) {
    this.#scaler.minWorkers = n;
  }

  /** Counters of the pool right now. */
  stats(): PoolStats {
    const count = { ready: 0, starting: 0, draining: 0, exited: 0 };
    let connections = 0;
    let direct = 0;
    for (const a of this.#all) {
      count[a.state] += 1;
      connections += a.connections;
      if (a.direct && a.state === 'ready') direct += 1;
    }
    const { ready, starting, draining } = count;
    const waiting = this.#room.size;
    return {
      workers: this.agents.length,
      ready,
      starting,
      draining,
      connections,
      waiting,
      ...this.#stats,
      direct,
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
    checkNonNegative('shutdown timeout', timeout ?? undefined);
    this.#shutdown = this.#close(timeout);
    return this.#shutdown;
  };

  async #close(timeout: number | null): Promise<PromiseSettledResult<unknown>[]> {
    this.#scaler.stop();
    // Closed on the check phase: what the kernel had queued when this poll phase began is
    // accepted first (closing a listener resets the connections still in its queue).
    await new Promise<void>((resolve) => setImmediate(resolve));
    const closed = new Promise<Error | undefined>((resolve) => this.server.close((err) => resolve(err)));
    this.server.removeListener(this.#o.tlsFront ? 'secureConnection' : 'connection', this.#onConnection);
    // The connections already accepted reach a worker before the workers drain, as the
    // daemon's front does: destroying one would reset a client whose request is sent.
    this.#router.flush(true);
    await this.#router.settle(timeout === null ? Number.POSITIVE_INFINITY : this.#clock.now() + timeout);
    const everyone = [...this.#all];
    this.agents = [];
    for (const a of everyone) this.#drain(a, timeout);
    const cut = () => {
      for (const c of this.#clients) c.destroy();
    };
    const forced = timeout === null ? null : this.#clock.setTimeout(cut, timeout);
    forced?.unref();
    const results = await Promise.allSettled(everyone.map((a) => a.exited));
    this.#clock.clearTimeout(forced);
    cut();
    const closeError = await Promise.race([
      closed,
      new Promise<undefined>((r) => this.#clock.setTimeout(() => r(undefined), 100).unref()),
    ]);
    if (closeError) throw closeError;
    return results;
  }

  // ---- the front's server ----

  #listen(server: net.Server): void {
    const bare = rawAccepting(server, this.#o.handoff);
    if (this.#o.tlsFront) server.on('secureConnection', this.#onConnection);
    else if (!bare) {
      // Nothing is read in the front before the connection reaches its worker.
      (server as net.Server & { pauseOnConnect: boolean }).pauseOnConnect = true;
      server.on('connection', this.#onConnection);
    }
    if (this.#o.reusePort && !this.#o.tlsFront)
      this.#direct = DirectAccept.for(server, this.log, () => this.#all);
    let logged = '';
    const onListening = (): void => {
      this.proxyAddressInfo = server.address();
      this.proxyAddressInfoRepr = JSON.stringify(this.proxyAddressInfo);
      // Once per address: listening again with SO_REUSEPORT is not news.
      if (logged !== this.proxyAddressInfoRepr)
        this.log.info(`Service Proxy listening on ${this.proxyAddressInfoRepr}`);
      logged = this.proxyAddressInfoRepr;
      this.#direct?.listening(this.proxyAddressInfo);
      // Each time it listens (a new handle): its connections come as bare handles.
      if (bare && !this.#shutdown) acceptRaw(server, this.#onBare);
    };
    if (server.listening) onListening();
    server.on('listening', onListening);
  }

  #onConnection = (socket: net.Socket): void => {
    if (this.#o.tlsFront) socket.pause();
    this.#router.accept(this.#adopt(socket));
  };

  #onBare = (connection: Accepted): void => {
    this.#router.accept(connection);
  };

  /** A client socket of this front: its errors logged, closed at the end of a shutdown's timeout. */
  #adopt(socket: net.Socket): net.Socket {
    socket.on('error', (err) => this.log.debug(`client socket: ${err.message}`));
    this.#clients.add(socket);
    socket.once('close', () => this.#clients.delete(socket));
    return socket;
  }

  // ---- workers ----

  #spawn(): WorkerAgent<W> {
    this.#stats.spawned += 1;
    const proc = spawnWorker<W>({ ...this.#o, log: this.log }, this.#direct?.address ?? null);
    const agent = new WorkerAgent<W>(proc, this.#clock);
    proc.onMessage((m) => this.#onMessage(agent, m));
    void proc.exited.then((code) => this.#onExit(agent, code));
    this.#all.add(agent);
    this.agents.unshift(agent);
    this.emit('spawn', agent);
    return agent;
  }

  #onMessage(agent: WorkerAgent<W>, m: WorkerToFront): void {
    if (m.type === MSG_LOG) this.log.write(m.record);
    else if (m.type === MSG_ACCEPTING) {
      agent.direct = m.ok && (this.#direct?.address ?? null) !== null;
      if (!m.ok && m.error)
        this.log.warn(
          `worker ${agent.id} cannot accept on the front's port (${m.error}): its share is relayed`,
        );
    } else if (m.type === MSG_LOAD) {
      agent.report(m.connections, m.received);
      this.#router.reorder(agent);
    } else if (m.type === MSG_LISTENING) {
      // A worker asked to drain before it listened is not brought back.
      if (!can(agent.state, 'ready')) return;
      agent.online(m.connect, m.hop);
      this.log.debug(`worker ${agent.id} is listening on ${JSON.stringify(m.connect)}`);
      this.emit('online', agent);
      this.#checkReady();
      this.#router.flush();
      this.#scaler.fill();
    }
  }

  #onExit(agent: WorkerAgent<W>, code: number): void {
    const expected = agent.state === 'draining';
    const ranFor = agent.exit();
    agent.sender?.close();
    if (agent.hop) fs.rm(agent.hop, { force: true }, () => {});
    this.#all.delete(agent);
    const i = this.agents.indexOf(agent);
    if (i !== -1) this.agents.splice(i, 1);
    this.#stats.exited += 1;
    this.emit('exit', agent, code);
    if (!expected && !this.#shutdown) {
      this.#stats.crashed += 1;
      const reason = agent.proc.lastError ?? `exited with code ${code}`;
      const delay = this.#scaler.crashed(ranFor);
      this.log.error(
        `worker ${agent.id} ${ranFor < 0 ? 'failed to start' : 'crashed'}: ${reason.split('\n')[0]}; next start in ${delay} ms`,
      );
      this.emit('crash', agent, reason);
    }
    this.#scaler.fill();
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
    if (!can(agent.state, 'drain')) return;
    agent.draining();
    const i = this.agents.indexOf(agent);
    if (i !== -1) this.agents.splice(i, 1);
    agent.proc.drain(timeoutMs, agent.readyAt !== undefined, this.#clock);
  }
}

/**
 * Whether the front takes `server`'s connections as bare handles (src/net/raw-accept.ts): when
 * they are handed to process workers, from a plain `net.Server` with nothing else of its own
 * on a connection (no 'connection' listener, no `maxConnections`, both of which only
 * net.Server's own accept path serves).
 */
function rawAccepting(server: net.Server, handoff: boolean): boolean {
  return (
    handoff &&
    Object.getPrototypeOf(server) === net.Server.prototype &&
    server.listenerCount('connection') === 0 &&
    !Number.isFinite(server.maxConnections ?? Number.POSITIVE_INFINITY)
  );
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
