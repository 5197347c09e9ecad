/**
 * One worker of the pool as the front sees it (`WorkerAgent`): its lifecycle, its address,
 * and its load. The lifecycle is one pure function; the agent changes its state only
 * through {@link advance}, and an event the table does not allow is a bug that throws:
 *
 *   starting ──ready──▶ ready ──drain──▶ draining ──exit──▶ exited
 *      │  └─────────────drain─────────────▲                  ▲
 *      └───────────────────────exit───────(any but exited)───┘
 */
import type { ChildProcess } from 'node:child_process';
import type net from 'node:net';
import type { Worker } from 'node:worker_threads';
import type { HandoffSender } from '../net/handoff.js';
import { type Clock, systemClock } from '../supervise/clock.js';
import type { PoolWorker } from './spawn.js';

export type WorkerState = 'starting' | 'ready' | 'draining' | 'exited';

/** `ready`: it listens; `drain`: it was asked to stop; `exit`: it ended. */
export type AgentEvent = 'ready' | 'drain' | 'exit';

const NEXT: Record<WorkerState, Partial<Record<AgentEvent, WorkerState>>> = {
  starting: { ready: 'ready', drain: 'draining', exit: 'exited' },
  ready: { drain: 'draining', exit: 'exited' },
  draining: { exit: 'exited' },
  exited: {},
};

export class IllegalAgentTransitionError extends Error {
  constructor(from: WorkerState, event: AgentEvent) {
    super(`illegal pool worker transition: '${event}' in state '${from}'`);
  }
}

/** Whether `event` may happen in `state`. */
export function can(state: WorkerState, event: AgentEvent): boolean {
  return NEXT[state][event] !== undefined;
}

/** The state after `event`; throws IllegalAgentTransitionError when the table does not allow it. */
export function advance(state: WorkerState, event: AgentEvent): WorkerState {
  const next = NEXT[state][event];
  if (next === undefined) throw new IllegalAgentTransitionError(state, event);
  return next;
}

/** One worker of the pool, as the front sees it. */
export class WorkerAgent<W extends Worker | ChildProcess = Worker> {
  /** The Worker (thread pools) or ChildProcess (process pools). */
  readonly worker: W;
  /** Open client connections on this worker (the load the pool balances on). */
  connections = 0;
  /** Settles when the worker listens: how to reach the app's own server, or null if it never got there. */
  readonly socketConnectOpts: Promise<net.SocketConnectOpts | null>;
  /** The thread id or the pid. */
  readonly id: number;
  readonly startedAt: number;
  readyAt: number | undefined;
  /** Since when this worker has had no connection. */
  idleSince: number;
  /** Whether this thread accepts clients on the front's port itself (`reusePort`). */
  direct = false;
  /** @internal */ readonly proc: PoolWorker<W>;
  /** @internal */ hop: string | undefined;
  /** @internal Connections the front relays to it. */ relayed = 0;
  /** @internal Connections on their way to it (waiting for it to start, being handed or relayed). */
  inTransit = 0;
  /** @internal Settles true once it is ready, false if it exited first. */
  readonly readyOrGone: Promise<boolean>;
  #state: WorkerState = 'starting';
  readonly #clock: Clock;
  #settle: (connect: net.SocketConnectOpts | null) => void = () => {};
  #settleReady: (ok: boolean) => void = () => {};
  /** Handoffs it confirmed; its own last report: open connections and handoffs received then. */
  #handed = 0;
  #childOpen = 0;
  #childReceived = 0;

  constructor(proc: PoolWorker<W>, clock: Clock = systemClock) {
    this.proc = proc;
    this.worker = proc.handle;
    this.id = proc.id;
    this.#clock = clock;
    this.startedAt = clock.now();
    this.idleSince = this.startedAt;
    this.socketConnectOpts = new Promise((resolve) => {
      this.#settle = resolve;
    });
    this.readyOrGone = new Promise((resolve) => {
      this.#settleReady = resolve;
    });
    void proc.exited.then(() => {
      this.#settle(null);
      this.#settleReady(false);
    });
  }

  get state(): WorkerState {
    return this.#state;
  }

  get ready(): boolean {
    return this.#state === 'ready';
  }

  /** @internal */ get exited(): Promise<number> {
    return this.proc.exited;
  }

  /** @internal */ get sender(): HandoffSender | undefined {
    return this.proc.sender;
  }

  /** @internal It listens: reachable at `connect`, relayed to over `hop`. */
  online(connect: net.SocketConnectOpts | null, hop: string): void {
    this.#state = advance(this.#state, 'ready');
    this.readyAt = this.#clock.now();
    this.idleSince = this.readyAt;
    this.hop = hop;
    this.#settle(connect);
    this.#settleReady(true);
  }

  /** @internal It was asked to stop: it takes no new connection. */
  draining(): void {
    this.#state = advance(this.#state, 'drain');
    this.direct = false;
  }

  /** @internal It ended; returns how long it had been ready (-1: it never was). */
  exit(): number {
    this.#state = advance(this.#state, 'exit');
    return this.readyAt === undefined ? -1 : this.#clock.now() - this.readyAt;
  }

  /** @internal Connections a process worker has open, or a thread accepted itself, by the front's count. */
  get reported(): number {
    // A report that came before the confirmation of a handoff it counts is matched by that confirmation.
    return Math.max(0, this.#childOpen + this.#handed - this.#childReceived);
  }

  /** @internal The worker confirmed a handoff: counted here until its report does. */
  handedOff(): void {
    this.#handed += 1;
    this.recount();
  }

  /** @internal The worker's own report: `open` connections, after `received` handoffs. */
  report(open: number, received: number): void {
    this.#childOpen = open;
    this.#childReceived = received;
    this.recount();
  }

  /** @internal */ recount(): void {
    const before = this.connections;
    this.connections = this.relayed + this.reported + this.inTransit;
    if (this.connections === 0 && before !== 0) this.idleSince = this.#clock.now();
  }
}
