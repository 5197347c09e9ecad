import { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import {
  isBrokenMessage,
  isHandoverMove,
  isInflightMessage,
  isStatsMessage,
  MSG_ONLINE,
  MSG_RESUME,
  MSG_SHUTDOWN,
} from '../../ipc/worker-protocol';
import { errorMessage, type Logger } from '../../log';
import { guardHandleAcks } from '../../net/handle-ack-guard';
import type { Clock, Timer } from '../../supervise/clock';
import { clip } from './spawn';
import type { WorkerProcess } from './worker-process';
import { signalGroup } from './worker-process';
import {
  advance,
  can,
  type DrainReason,
  describeExit,
  type ExitInfo,
  type Lifecycle,
  type LifecycleEvent,
  type WorkerState,
} from './worker-state';

const READINESS_POLL_MS = 50;
/** A failure report (status, a command's error) is cut to this many characters. */
const FAILURE_REPORT_MAX = 4096;

export interface ManagedWorkerOptions {
  id: string;
  socketPath: string;
  /** The slot it was started for (its NODESOCKD_WORKER_INDEX), or null for a standby. */
  startedFor: number | null;
  generation: number;
  /** When its process started (for an adopted worker: when the earlier daemon started it). */
  startedAt: number;
  process: WorkerProcess;
  /** Started suspended: it reports online as 'suspended' and holds requests until resume(). */
  suspended: boolean;
  /** 'connect': also online once its socket accepts a connection (apps that never say 'online'). */
  readiness: 'message' | 'connect';
  /** An earlier daemon's worker, found online (or suspended): no start-up to wait for. */
  adopted?: boolean;
  /** No 'spawn' event within this many ms: the start is given up (SIGKILL). 0: no limit. */
  spawnTimeoutMs: number;
  lastStderr?: () => string[];
  /** The stderr line that says why it died (worker/error-line.ts). */
  errorLine?: () => string | null;
  /** The process group it leads (signalled on escalation, so its helpers stop too); null: none. */
  processGroup: number | null;
  /** Whether a connection to the socket can be established (readiness by connect). */
  canConnect: (socketPath: string) => Promise<boolean>;
  clock: Clock;
  log: Logger;
}

/**
 * The daemon's view of one worker: its lifecycle (see worker-state.ts), the messages it
 * sends, and how it is stopped. It is given its process, so the pool can be exercised with a
 * fake one. Emits 'state' (from, to), 'exit' (ExitInfo), 'broken' (reason; once) and
 * 'message' (anything that is not the lifecycle protocol: app messaging).
 */
export class ManagedWorker extends EventEmitter {
  readonly id: string;
  readonly socketPath: string;
  readonly startedFor: number | null;
  readonly generation: number;
  readonly startedAt: number;
  readonly adopted: boolean;
  private lifecycle: Lifecycle;
  private readonly proc: WorkerProcess;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly readiness: 'message' | 'connect';
  private readonly suspendedStart: boolean;
  private readonly stderrTail: () => string[];
  private readonly errorLineOf: () => string | null;
  private readonly canConnect: (socketPath: string) => Promise<boolean>;
  /** The process group to signal on escalation (the worker leads its own group). */
  private readonly pgid: number | null;
  private spawnError: Error | null = null;
  /** It sent 'online' itself, so it speaks the message protocol ('shutdown' included). */
  private saidOnline = false;
  private broken: string | null = null;
  private inflightCount: number | null = null;
  private loopDelay: { p99: number; mean: number } | null = null;
  /** resume() found no channel (an adopted worker not reconnected yet): sent once one appears. */
  private resumePending = false;
  private readonly timers = new Set<Timer>();
  /** It is being replaced and its connections move (pool/handover.ts relays its descriptors). */
  acceptsMoves = false;
  /** Where it listened other than its socket (listen-hint.ts), as said: `port 3000`, a path. */
  readonly listenedElsewhere: string[] = [];
  /** The killTimeout of the stop in progress: how long leftover helpers get after SIGTERM. */
  private killTimeoutMs = 5000;

  constructor(opts: ManagedWorkerOptions) {
    super();
    this.id = opts.id;
    this.socketPath = opts.socketPath;
    this.startedFor = opts.startedFor;
    this.generation = opts.generation;
    this.startedAt = opts.startedAt;
    this.adopted = opts.adopted === true;
    this.proc = opts.process;
    this.clock = opts.clock;
    this.readiness = opts.readiness;
    this.suspendedStart = opts.suspended;
    this.stderrTail = opts.lastStderr ?? (() => []);
    this.errorLineOf = opts.errorLine ?? (() => null);
    this.canConnect = opts.canConnect;
    this.log = opts.log.child(`worker ${this.id}: `);
    const now = this.clock.now();
    this.lifecycle = this.adopted
      ? { state: opts.suspended ? 'suspended' : 'online', since: now, onlineAt: now }
      : { state: 'starting', since: now };
    this.pgid = opts.processGroup;
    this.saidOnline = this.adopted;

    // A worker sends no descriptor the daemon asked for, but one it moves during a handover: any
    // other is closed at once (kept, each would hold a descriptor in the daemon for good).
    this.proc.on('message', (message: unknown, handle?: unknown) => {
      if (handle) disposeHandle(handle);
      this.onMessage(message);
    });
    if (this.proc instanceof ChildProcess)
      guardHandleAcks(this.proc, (line) => this.log.warn(line), 'the daemon');
    this.proc.on('internalMessage', (message: unknown, handle?: unknown) => {
      // Node shows a descriptor's envelope first, then the message it carries: the latter decides.
      if (!handle || (message as { cmd?: unknown } | null)?.cmd === 'NODE_HANDLE') return;
      if (this.acceptsMoves && isHandoverMove(message)) return;
      disposeHandle(handle);
    });
    this.proc.on('exit', (code: number | null, signal: NodeJS.Signals | null) =>
      this.onExit({ code, signal }),
    );
    this.proc.on('connect', () => this.onChannel());
    this.proc.on('error', (err: Error) => {
      this.spawnError = err;
      this.log.error(`cannot start: ${err.message}`);
      // A failed spawn emits no 'exit': finish the lifecycle here.
      if (this.proc.pid === undefined) this.onExit({ code: null, signal: null });
    });
    if (!this.adopted && opts.spawnTimeoutMs > 0) {
      const timer = this.after(opts.spawnTimeoutMs, () => {
        this.spawnError = new Error(`no spawn event within ${opts.spawnTimeoutMs} ms`);
        this.signal('SIGKILL');
      });
      this.proc.once('spawn', () => this.cancel(timer));
    }
    if (!this.adopted && opts.readiness === 'connect') this.pollReadiness();
  }

  get pid(): number | null {
    return this.proc.pid ?? null;
  }

  get state(): WorkerState {
    return this.lifecycle.state;
  }

  get since(): number {
    return this.lifecycle.since;
  }

  /** When it came online (or was adopted); null before. */
  get onlineAt(): number | null {
    return this.lifecycle.state === 'starting' ? null : this.lifecycle.onlineAt;
  }

  get exitInfo(): ExitInfo | null {
    return this.lifecycle.state === 'exited' ? this.lifecycle.exit : null;
  }

  /** Why the worker said it cannot serve (reportBroken), or null. */
  get brokenReason(): string | null {
    return this.broken;
  }

  /** Requests in flight, as its library last reported (null: unknown). */
  get inflight(): number | null {
    return this.inflightCount;
  }

  /** Event loop delay as the worker last reported it (seconds), or null. */
  get eventLoopDelay(): { p99: number; mean: number } | null {
    return this.loopDelay;
  }

  get connected(): boolean {
    return this.proc.connected;
  }

  /** Its process when this daemon spawned it (an IPC channel that carries handles); null otherwise. */
  get childProcess(): ChildProcess | null {
    return this.proc instanceof ChildProcess ? this.proc : null;
  }

  /** The last lines the worker wrote to stderr, for error reports. */
  lastStderr(): string[] {
    return this.stderrTail();
  }

  /** The stderr line that says why it died (an uncaught exception's first line), or null. */
  errorLine(): string | null {
    return this.errorLineOf();
  }

  /** Why this worker stopped, with its last stderr lines, for a command's error reply. */
  failureReport(what: string): string {
    const tail = this.lastStderr();
    const head = `worker ${this.id} ${this.startedFor === null ? '(standby)' : `for slot ${this.startedFor}`} ${what}`;
    const report = tail.length > 0 ? `${head}; its last stderr lines:\n  ${tail.join('\n  ')}` : head;
    return clip(report, FAILURE_REPORT_MAX);
  }

  /** Resolves when the worker reports online; rejects with the reason it never will. */
  waitOnline(timeoutMs: number): Promise<void> {
    if (this.state === 'online' || this.state === 'suspended') return Promise.resolve();
    if (this.state !== 'starting') return Promise.reject(new Error(this.whyNotOnline()));
    return new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        this.cancel(timer);
        this.off('state', onState);
      };
      const onState = (_from: WorkerState, to: WorkerState) => {
        if (to === 'online' || to === 'suspended') {
          cleanup();
          resolve();
        } else if (to === 'exited' || to === 'draining') {
          cleanup();
          reject(new Error(this.whyNotOnline()));
        }
      };
      const timer = this.after(timeoutMs, () => {
        cleanup();
        reject(new Error(this.failureReport(`did not report online within ${timeoutMs} ms`)));
      });
      this.on('state', onState);
    });
  }

  private whyNotOnline(): string {
    if (this.lifecycle.state === 'exited') {
      return this.failureReport(
        this.spawnError
          ? `could not be started: ${this.spawnError.message}`
          : `${describeExit(this.lifecycle.exit)} before reporting online`,
      );
    }
    return this.failureReport(
      this.broken ? `reported broken: ${this.broken}` : 'was stopped before it came online',
    );
  }

  /** Releases a suspended worker; with no channel yet, as soon as one appears. */
  resume(): void {
    if (!can(this.state, 'resume')) return;
    if (this.send(MSG_RESUME)) {
      this.resumePending = false;
      this.transition({ type: 'resume' });
      return;
    }
    if (!this.resumePending) {
      this.log.warn('no channel to it yet; it is resumed as soon as it reconnects');
    }
    this.resumePending = true;
  }

  /**
   * Asks the worker to finish its requests and exit; escalates to SIGTERM (the process group)
   * after shutdownTimeout and SIGKILL after a further killTimeout. Resolves once it has exited.
   */
  drain(shutdownTimeout: number, killTimeout: number, reason: DrainReason = 'replaced'): Promise<void> {
    const exited = this.exited();
    if (!can(this.state, 'drain')) return exited;
    this.transition({ type: 'drain', reason });
    this.killTimeoutMs = killTimeout;
    // An app seen online only by connecting to it may not listen for 'shutdown'; SIGTERM is
    // the conventional stop request such apps handle.
    const speaksIpc = this.readiness === 'message' || this.saidOnline;
    if (!speaksIpc || !this.send(MSG_SHUTDOWN)) this.signal('SIGTERM');
    this.after(shutdownTimeout, () => {
      this.log.warn(`still running ${shutdownTimeout} ms after shutdown; sending SIGTERM`);
      this.signal('SIGTERM', true);
      this.after(killTimeout, () => {
        this.log.warn(`still running ${killTimeout} ms after SIGTERM; sending SIGKILL`);
        this.signal('SIGKILL', true);
      });
    });
    return exited;
  }

  /**
   * Stops a worker that never came online: it has no requests to finish, so SIGTERM at once
   * and SIGKILL after killTimeout. Resolves once it has exited.
   */
  abort(killTimeout: number): Promise<void> {
    const exited = this.exited();
    if (!can(this.state, 'exit')) return exited;
    if (can(this.state, 'drain')) this.transition({ type: 'drain', reason: 'aborted' });
    this.killTimeoutMs = killTimeout;
    this.signal('SIGTERM', true);
    this.after(killTimeout, () => this.signal('SIGKILL', true));
    return exited;
  }

  /** Closes the channel to the worker and stops watching it; the process keeps running. */
  detach(): void {
    for (const timer of this.timers) this.clock.clearTimeout(timer);
    this.timers.clear();
    this.removeAllListeners();
    this.proc.removeAllListeners();
    // A late error on a channel we let go of must not become an uncaught exception.
    this.proc.on('error', () => undefined);
    try {
      if (this.proc.connected) this.proc.disconnect?.();
    } catch {
      // Already disconnected.
    }
    this.proc.unref?.();
  }

  /**
   * Sends any message over the worker's channel; false when there is none, or the message
   * cannot be serialized (logged). Node's own `false` means a busy channel that has queued the
   * message: that is sent.
   */
  send(message: unknown): boolean {
    if (!this.proc.connected) return false;
    try {
      this.proc.send(message, (err: Error | null) => {
        if (err) this.log.debug(`could not send a message: ${err.message}`);
      });
      return true;
    } catch (err) {
      this.log.warn(`could not send a message: ${errorMessage(err)}`);
      return false;
    }
  }

  private exited(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.state === 'exited') resolve();
      else this.once('exit', () => resolve());
    });
  }

  /** For apps that listen but never call process.send('online') (the plain contract). */
  private pollReadiness(): void {
    const poll = async () => {
      if (!can(this.state, 'online')) return;
      if (await this.canConnect(this.socketPath)) {
        if (can(this.state, 'online')) this.transition({ type: 'online', suspended: this.suspendedStart });
        return;
      }
      this.after(READINESS_POLL_MS, () => void poll());
    };
    this.after(READINESS_POLL_MS, () => void poll());
  }

  private signal(sig: NodeJS.Signals, group = false): void {
    if (this.state === 'exited' || this.proc.pid === undefined) return;
    if (group && this.pgid !== null && signalGroup(this.pgid, sig)) return;
    try {
      this.proc.kill(sig);
    } catch {
      // Already gone: 'exit' follows.
    }
  }

  private onChannel(): void {
    if (this.resumePending && can(this.state, 'resume')) this.resume();
  }

  private onMessage(message: unknown): void {
    if (message === MSG_ONLINE) {
      this.saidOnline = true;
      if (can(this.state, 'online')) this.transition({ type: 'online', suspended: this.suspendedStart });
    } else if (isBrokenMessage(message)) {
      // A report matters only from a worker that could still be drained for it.
      if (!can(this.state, 'drain')) return;
      const first = this.broken === null;
      this.broken = message.reason.slice(0, 1024);
      if (!first) return;
      this.log.warn(`reported broken: ${this.broken}`);
      this.emit('broken', this.broken);
    } else if (isInflightMessage(message)) {
      this.inflightCount = message.count;
    } else if (isStatsMessage(message)) {
      this.loopDelay = { p99: message.eventLoopDelayP99, mean: message.eventLoopDelayMean };
    }
    // Anything else is the app's own business (or app messaging, see 'message' listeners).
    else this.emit('message', message);
  }

  private onExit(exit: ExitInfo): void {
    if (!can(this.state, 'exit')) return;
    const wasDraining = this.state === 'draining';
    for (const timer of this.timers) this.clock.clearTimeout(timer);
    this.timers.clear();
    this.transition({ type: 'exit', exit });
    // Helpers the worker started (a browser, ffmpeg) must not outlive a worker we stopped.
    const pgid = this.pgid;
    if (wasDraining && pgid !== null && signalGroup(pgid, 'SIGTERM')) {
      this.log.info(
        `processes of its group outlived it; sent them SIGTERM (SIGKILL in ${this.killTimeoutMs} ms)`,
      );
      this.clock.setTimeout(() => signalGroup(pgid, 'SIGKILL'), this.killTimeoutMs).unref();
    }
    this.emit('exit', exit);
  }

  private transition(event: LifecycleEvent): void {
    const from = this.lifecycle.state;
    this.lifecycle = advance(this.lifecycle, event, this.clock.now());
    this.log.debug(`${from} -> ${this.lifecycle.state}`);
    this.emit('state', from, this.lifecycle.state);
  }

  private after(ms: number, fn: () => void): Timer {
    const timer = this.clock.setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  private cancel(timer: Timer): void {
    this.clock.clearTimeout(timer);
    this.timers.delete(timer);
  }
}

/** Closes a descriptor that came with a message: a socket, a server, or a bare handle. */
function disposeHandle(handle: unknown): void {
  const h = handle as { destroy?: () => void; close?: () => void };
  try {
    if (typeof h.destroy === 'function') h.destroy();
    else if (typeof h.close === 'function') h.close();
  } catch {
    // Already closed.
  }
}
