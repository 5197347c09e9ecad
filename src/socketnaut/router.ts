/**
 * Where each accepted connection goes: picks a worker (Socketnaut's rule, bounded), delivers
 * the connection to it (a relay over its UNIX socket, or its handle passed to a process
 * worker), retries another worker when that fails, and counts every worker's load. The pool
 * it routes over is kept least-loaded first. A connection that finds no worker waits in the
 * waiting room until one runs, its client leaves, or its deadline passes.
 *
 * A plain TCP front's connections come as bare handles ({@link Accepted}): a handle goes to a
 * process worker as it is; one that must wait or be relayed is made a socket first.
 */
import type { ChildProcess } from 'node:child_process';
import type net from 'node:net';
import type { Worker } from 'node:worker_threads';
import { socketAddressInfo } from '../net/address-info.js';
import { Accepted } from '../net/raw-accept.js';
import { chooseWorker } from '../net/routing.js';
import type { Clock } from '../supervise/clock.js';
import { describeError, type PoolLogger } from './log.js';
import type { HandoffMeta } from './protocol.js';
import { relayToThread as relay } from './protocol.js';
import type { WaitingRoom } from './waiting-room.js';
import type { WorkerAgent } from './worker-agent.js';

/** An accepted connection: a bare handle (a plain TCP front), or a socket (a TLS front, or made from a handle). */
export type Incoming = net.Socket | Accepted;

export interface RouterSettings {
  maxWorkers: number | undefined;
  maxSpawning: number;
  connectAttempts: number;
  waitTimeout: number;
  maxWaiting: number;
  /** Process workers get each connection's handle; threads (and a TLS front) get a relay. */
  handoff: boolean;
}

export interface RouterHost<W extends Worker | ChildProcess> {
  /** The live pool, least-loaded first (the router reorders it in place). */
  agents(): WorkerAgent<W>[];
  /** Every worker not yet exited, draining ones too. */
  all(): Iterable<WorkerAgent<W>>;
  /** The pool shuts down: no worker starts, a connection with none to go to is closed. */
  closing(): boolean;
  /** Whether a worker may start now (the crash backoff). */
  maySpawn(): boolean;
  /** Starts a worker for a connection that found no idle one. */
  scaleUp(): WorkerAgent<W>;
  /** A bare accepted connection as a paused socket (to wait in the room, or to be relayed). */
  socketOf(connection: Accepted): net.Socket;
  /** Starts a worker when the backoff allows, for connections that wait. */
  wantWorker(): void;
  /** `agent`'s relay socket is gone: it cannot serve and is replaced. */
  broken(agent: WorkerAgent<W>): void;
}

export class Router<W extends Worker | ChildProcess> {
  readonly #s: RouterSettings;
  readonly #host: RouterHost<W>;
  readonly #room: WaitingRoom;
  readonly #log: PoolLogger;
  readonly #clock: Clock;
  /** Accepted connections that wait because no worker runs (they are in the room too). */
  readonly #waiting = new Set<net.Socket>();
  /** When each accepted connection stops waiting for a worker and is closed. */
  readonly #deadlines = new WeakMap<Incoming, number>();
  /** Wakes a shutdown that waits for accepted connections to reach their workers. */
  #settled: (() => void) | null = null;

  constructor(
    settings: RouterSettings,
    host: RouterHost<W>,
    room: WaitingRoom,
    log: PoolLogger,
    clock: Clock,
  ) {
    this.#s = settings;
    this.#host = host;
    this.#room = room;
    this.#log = log;
    this.#clock = clock;
  }

  /** Connections waiting because no worker runs. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** A connection the front accepted (a bare handle from a plain TCP front). */
  accept(connection: Incoming): void {
    this.#deadlines.set(connection, this.#clock.now() + this.#s.waitTimeout);
    this.#route(connection, 1);
  }

  /** The connections that wait for want of a worker go to one, now that there is one (or, `closing`, are closed). */
  flush(closing = false): void {
    if (this.#host.agents().length === 0 && !closing) return;
    for (const s of [...this.#waiting]) {
      this.#waiting.delete(s);
      this.#room.release(s);
      this.#route(s, 1);
    }
  }

  /** Until no accepted connection is in transit to a worker, or `deadline`. */
  async settle(deadline: number): Promise<void> {
    while (this.#inTransit() > 0 && this.#clock.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.#settled = resolve;
        this.#clock.setTimeout(resolve, 50);
      });
    }
    this.#settled = null;
  }

  /** Keeps the pool sorted by load; a worker whose count changed goes last among its equals. */
  reorder(agent: WorkerAgent<W>): void {
    const agents = this.#host.agents();
    const i = agents.indexOf(agent);
    if (i === -1) return;
    agents.splice(i, 1);
    const j = agents.findIndex((a) => a.connections > agent.connections);
    if (j === -1) agents.push(agent);
    else agents.splice(j, 0, agent);
  }

  #route(socket: Incoming, attempt: number): void {
    if (socket.destroyed) return;
    const closing = this.#host.closing();
    const live = this.#host.agents().filter((a) => a.state === 'starting' || a.state === 'ready');
    const choice = chooseWorker(live, {
      max: this.#s.maxWorkers ?? Number.POSITIVE_INFINITY,
      starting: live.filter((a) => a.state === 'starting').length,
      maxSpawning: this.#s.maxSpawning,
      maySpawn: !closing && this.#host.maySpawn(),
    });
    let agent: WorkerAgent<W>;
    if (choice.kind === 'worker') agent = choice.worker;
    else if (choice.kind === 'spawn') agent = this.#host.scaleUp();
    else if (closing) {
      // No worker runs, and a closing pool starts none.
      this.#room.refuse(socket, 'shutdown');
      return;
    } else {
      this.#waitForWorker(this.#socket(socket));
      return;
    }
    agent.inTransit += 1;
    agent.recount();
    this.reorder(agent);
    // Made a socket here, not in #deliver: a retry elsewhere must get the socket, not its spent handle.
    const handOver = agent.state !== 'starting' && this.#s.handoff && agent.sender !== undefined;
    const delivered = handOver ? socket : this.#socket(socket);
    void this.#deliver(agent, delivered).then(
      () => this.#settled?.(),
      (err: unknown) => {
        this.#settled?.();
        agent.inTransit -= 1;
        agent.recount();
        this.reorder(agent);
        const code = (err as NodeJS.ErrnoException).code;
        if (agent.state === 'ready' && (code === 'ECONNREFUSED' || code === 'ENOENT')) {
          this.#log.warn(
            `worker ${agent.id} could not take a connection: ${describeError(err)}; replacing it`,
          );
          this.#host.broken(agent);
        } else this.#log.debug(`worker ${agent.id} could not take a connection: ${describeError(err)}`);
        if (attempt < this.#s.connectAttempts) this.#route(delivered, attempt + 1);
        else this.#room.refuse(delivered, 'failed');
      },
    );
  }

  /** No worker runs: `socket` waits in the room until one does (or it leaves, or its deadline passes). */
  #waitForWorker(socket: net.Socket): void {
    if (!this.#roomFor(socket)) return;
    this.#waiting.add(socket);
    void this.#room.hold(socket, this.#deadlineOf(socket)).then(() => this.#waiting.delete(socket));
    this.#host.wantWorker();
  }

  /** Whether `socket` may wait; when the room is full it is closed. */
  #roomFor(socket: net.Socket): boolean {
    if (this.#room.size < this.#s.maxWaiting) return true;
    this.#room.refuse(socket, 'full');
    return false;
  }

  /** `connection` as a socket (a bare one made so, keeping its deadline). */
  #socket(connection: Incoming): net.Socket {
    if (!(connection instanceof Accepted)) return connection;
    const socket = this.#host.socketOf(connection);
    this.#deadlines.set(socket, this.#deadlineOf(connection));
    return socket;
  }

  #deadlineOf(socket: Incoming): number {
    return this.#deadlines.get(socket) ?? this.#clock.now() + this.#s.waitTimeout;
  }

  /** Connections in transit to a worker (waiting for it to start, or being handed or relayed). */
  #inTransit(): number {
    let n = 0;
    for (const a of this.#host.all()) n += a.inTransit;
    return n;
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

  async #deliver(agent: WorkerAgent<W>, socket: Incoming): Promise<void> {
    if (agent.state === 'starting') await this.#awaitStart(agent, this.#socket(socket));
    else if (!(await agent.readyOrGone)) throw new Error(`worker ${agent.id} exited before it was ready`);
    if (socket.destroyed) {
      agent.inTransit -= 1;
      agent.recount();
      this.reorder(agent);
      return;
    }
    if (this.#s.handoff && agent.sender) {
      if (socket instanceof Accepted) {
        // Never read here: the handle goes as it is; the sender closed this copy once confirmed.
        // No meta: the worker reads both ends' addresses from its copy of the descriptor, if asked.
        await agent.sender.send(socket.handle, null);
        socket.released();
      } else {
        // What the front read while the connection waited goes with it.
        const head = this.#room.detach(socket);
        const meta: HandoffMeta | null = head ? { head: head.toString('base64') } : null;
        await agent.sender.send(socket, meta);
      }
      agent.inTransit -= 1;
      // Counted by the child from now on (MSG_LOAD); until its report comes, counted here.
      agent.handedOff();
      return;
    }
    if (agent.hop === undefined) throw new Error(`worker ${agent.id} has no relay socket`);
    const relayed = this.#socket(socket);
    await relay(relayed, agent.hop, socketAddressInfo(relayed), this.#room.readFrom(relayed));
    agent.inTransit -= 1;
    agent.relayed += 1;
    agent.recount();
    relayed.once('close', () => {
      agent.relayed -= 1;
      agent.recount();
      this.reorder(agent);
    });
  }
}
