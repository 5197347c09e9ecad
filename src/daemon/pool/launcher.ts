import type { Config } from '../../config/schema';
import type { FrameConnection } from '../../ipc/connection';
import { errorMessage, type Logger } from '../../log';
import type { Clock } from '../../supervise/clock';
import { newWorkerId } from '../../worker-id';
import type { WorkerOutput } from '../output';
import { AdoptedProcess } from '../worker/adopted-process';
import { watchListenHint } from '../worker/listen-hint';
import { ManagedWorker } from '../worker/managed-worker';
import { type SpawnedWorker, type SpawnSpec, spawnWorker, workerEnv } from '../worker/spawn';
import type { DrainReason, ExitInfo } from '../worker/worker-state';

export class AbortedError extends Error {
  constructor() {
    super('aborted');
  }
}

/**
 * A worker did not come online: the reason (with its last stderr lines and, when it listened
 * elsewhere, the fix), plus its error line and stderr for `status`.
 */
export class StartFailure extends Error {
  constructor(
    message: string,
    readonly errorLine: string | null,
    readonly stderr: string[],
  ) {
    super(message);
  }
}

/** A worker of an earlier daemon, as recorded in the state file and found alive. */
export interface AdoptionRecord {
  id: string;
  pid: number;
  socketPath: string;
  suspended: boolean;
  startedAt: number;
  generation: number;
}

export interface LaunchEvents {
  exit(worker: ManagedWorker, exit: ExitInfo): void;
  broken(worker: ManagedWorker): void;
  changed(): void;
}

export interface LauncherDeps {
  config: () => Config;
  /** The unique socket path of a new worker id (from the current socket naming). */
  socketPathFor: (id: string) => string;
  output: WorkerOutput;
  clock: Clock;
  log: Logger;
  canConnect: (socketPath: string) => Promise<boolean>;
  /** Starts the process; the real one spawns node, the policy tests pass a fake. */
  spawn?: (spec: SpawnSpec) => SpawnedWorker;
}

/**
 * Makes workers and knows every live one: spawns (or adopts) a process, wraps it in a
 * `ManagedWorker`, reports its exit, broken report and state changes to the pool, and starts
 * one until it is online (with retries) for whoever needs a worker: the restart transaction,
 * slot recovery, scaling and the standby pool.
 */
export class Launcher {
  private readonly live = new Set<ManagedWorker>();
  private readonly adoptedProcesses = new Map<string, AdoptedProcess>();
  private readonly spawnProcess: (spec: SpawnSpec) => SpawnedWorker;
  private standbyInstances = 0;

  constructor(
    private readonly deps: LauncherDeps,
    private readonly events: LaunchEvents,
  ) {
    this.spawnProcess = deps.spawn ?? spawnWorker;
  }

  /** Every worker not yet exited. */
  all(): ManagedWorker[] {
    return [...this.live];
  }

  /**
   * Starts a worker for `slot` (null: a standby) and waits until it is online, with up to
   * `attempts` tries; an aborted signal stops it and throws AbortedError.
   */
  async start(
    slot: { index: number; nextInstance(): number } | null,
    opts: { generation: number; suspended: boolean; attempts: number; signals: AbortSignal[] },
  ): Promise<ManagedWorker> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= opts.attempts; attempt++) {
      if (opts.signals.some((s) => s.aborted)) throw new AbortedError();
      const { worker, listenHint } = this.spawn(slot, opts.generation, opts.suspended);
      try {
        await raceAbort(worker.waitOnline(this.deps.config().onlineTimeout), opts.signals);
        return worker;
      } catch (err) {
        await worker.abort(this.deps.config().killTimeout);
        if (err instanceof AbortedError) throw err;
        const hint = listenHint();
        // Listening elsewhere is the reason to show first: the error line is then its symptom.
        lastError = new StartFailure(
          hint === null ? errorMessage(err) : `${errorMessage(err)}\n${hint}`,
          hint?.split('\n')[0]?.replace(/; its last stdout lines:$/, '') ?? worker.errorLine(),
          worker.lastStderr(),
        );
        this.deps.log.warn(`attempt ${attempt}/${opts.attempts} failed: ${errorMessage(lastError)}`);
      }
    }
    throw lastError;
  }

  /** Drains a worker with the configured timeouts. */
  drain(worker: ManagedWorker, reason: DrainReason): Promise<void> {
    const c = this.deps.config();
    return worker.drain(c.shutdownTimeout, c.killTimeout, reason);
  }

  /**
   * Drains every worker, and again any that came up meanwhile, until none is left; returns
   * how many were drained.
   */
  async drainAll(reason: DrainReason): Promise<number> {
    let drained = 0;
    for (let all = this.all(); all.length > 0; all = this.all()) {
      drained += all.length;
      await Promise.all(all.map((w) => this.drain(w, reason)));
    }
    return drained;
  }

  /** Takes over a live worker of an earlier daemon. */
  adopt(record: AdoptionRecord, slot: number | null): ManagedWorker {
    const proc = new AdoptedProcess(record.pid);
    this.adoptedProcesses.set(record.id, proc);
    const worker = new ManagedWorker({
      id: record.id,
      socketPath: record.socketPath,
      startedFor: slot,
      generation: record.generation,
      startedAt: record.startedAt,
      process: proc,
      suspended: record.suspended,
      readiness: this.deps.config().readiness,
      adopted: true,
      // Started detached by the earlier daemon: it leads its own process group.
      processGroup: record.pid,
      spawnTimeoutMs: 0,
      canConnect: this.deps.canConnect,
      clock: this.deps.clock,
      log: this.deps.log,
    });
    return this.track(worker);
  }

  /** Hands a control-socket connection to the adopted worker that introduced itself on it. */
  attachChannel(id: string, pid: number, connection: FrameConnection): boolean {
    const proc = this.adoptedProcesses.get(id);
    if (!proc || proc.pid !== pid) return false;
    proc.attach(connection);
    this.deps.log.info(`worker ${id} (pid ${pid}) reconnected`);
    return true;
  }

  /** Lets go of every worker, leaving the processes running (a daemon upgrade). */
  detachAll(): void {
    for (const worker of this.live) worker.detach();
    for (const proc of this.adoptedProcesses.values()) proc.release();
    this.live.clear();
    this.adoptedProcesses.clear();
  }

  private spawn(
    slot: { index: number; nextInstance(): number } | null,
    generation: number,
    suspended: boolean,
  ): { worker: ManagedWorker; listenHint: () => string | null } {
    const c = this.deps.config();
    const id = newWorkerId();
    const socketPath = this.deps.socketPathFor(id);
    const instance = slot ? slot.nextInstance() : this.standbyInstances++;
    const spawned = this.spawnProcess({
      id,
      socketPath,
      slot: slot?.index ?? null,
      suspended,
      script: c.script,
      args: c.args,
      nodeArgs: c.nodeArgs,
      cwd: c.cwd,
      env: workerEnv(c.env),
      listenVar: c.listenVar,
      appName: c.name,
      upstreamKeepaliveTimeout: c.upstreamKeepaliveTimeout,
      websocketCloseGrace: c.websocketCloseGrace,
      stopIdleTimeout: c.stopIdleTimeout,
      ipcFile: c.ipcFile,
      preload: c.preload,
      output: this.deps.output,
      tags: { worker: slot ? String(slot.index) : 'standby', instance, id },
    });
    const worker = new ManagedWorker({
      id,
      socketPath,
      startedFor: slot?.index ?? null,
      generation,
      startedAt: this.deps.clock.now(),
      process: spawned.process,
      suspended,
      readiness: c.readiness,
      spawnTimeoutMs: c.spawnTimeout,
      processGroup: spawned.processGroup,
      lastStderr: spawned.lastStderr,
      errorLine: spawned.errorLine,
      canConnect: this.deps.canConnect,
      clock: this.deps.clock,
      log: this.deps.log,
    });
    const listenHint = watchListenHint(worker, {
      listenVar: c.listenVar,
      lastStdout: spawned.lastStdout,
      log: this.deps.log,
    });
    return { worker: this.track(worker), listenHint };
  }

  private track(worker: ManagedWorker): ManagedWorker {
    this.live.add(worker);
    worker.on('exit', (exit: ExitInfo) => {
      this.live.delete(worker);
      this.adoptedProcesses.delete(worker.id);
      this.events.exit(worker, exit);
    });
    worker.on('broken', () => this.events.broken(worker));
    worker.on('state', () => this.events.changed());
    this.events.changed();
    return worker;
  }
}

function raceAbort<T>(promise: Promise<T>, signals: AbortSignal[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError());
    for (const s of signals) {
      if (s.aborted) return onAbort();
      s.addEventListener('abort', onAbort, { once: true });
    }
    promise.then(resolve, reject).finally(() => {
      for (const s of signals) s.removeEventListener('abort', onAbort);
    });
  });
}
