import type { Config } from '../../config/schema';
import type { FrameConnection } from '../../ipc/connection';
import type {
  RestartOptions,
  RestartResult,
  SlotStatus,
  StartResult,
  UpstreamChange,
  WorkerStatus,
} from '../../ipc/protocol';
import { errorMessage, type Logger } from '../../log';
import { type Clock, systemClock } from '../../supervise/clock';
import type { RestartPolicyOptions } from '../../supervise/restart-policy';
import { SerialQueue } from '../../supervise/serial-queue';
import type { WorkerOutput } from '../output';
import type { Publisher } from '../publisher';
import type { DaemonState } from '../state-file';
import type { ManagedWorker } from '../worker/managed-worker';
import type { SpawnedWorker, SpawnSpec } from '../worker/spawn';
import type { DrainReason } from '../worker/worker-state';
import { adoptWorkers, snapshotOf, unlistedState } from './adoption';
import { type FailureOwners, routeBroken, routeExit } from './failure-routing';
import { ConnectionHandover } from './handover';
import { Launcher } from './launcher';
import { applyReconfigure } from './reconfigure';
import { runRestartTransaction } from './restart-transaction';
import { type PlacedWorker, placeWorkers } from './roles';
import { Scaling } from './scaling';
import { SlotRecovery } from './slot-recovery';
import { type Slot, SlotTable } from './slots';
import { SocketNaming } from './socket-naming';
import { StandbyPool } from './standby-pool';
import { StartGate } from './start-gate';
import { poolStatus } from './status';

export interface SupervisorDeps {
  config: Config;
  publisher: Publisher;
  output: WorkerOutput;
  log: Logger;
  canConnect: (socketPath: string) => Promise<boolean>;
  /** Called on every change the state file must reflect. */
  onChange?: () => void;
  /** Called when a restart (a command's, or a reload's) ends: how long it took, and whether it served. */
  onRestart?: (ms: number, ok: boolean) => void;
  clock?: Clock;
  policy?: RestartPolicyOptions;
  /** Replaces the real spawn (policy tests). */
  spawn?: (spec: SpawnSpec) => SpawnedWorker;
}

/**
 * The pool: keeps one online worker behind each slot, plus the standbys. It owns the command
 * queue (commands that change generations run one at a time) and applies each command with
 * the slot table, the launcher, the standby pool and slot recovery; crash recovery runs
 * beside the queue and yields to whatever a command published.
 */
export class Supervisor {
  private config: Config;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly slots: SlotTable;
  private readonly launcher: Launcher;
  private readonly standbys: StandbyPool;
  private readonly recovery: SlotRecovery;
  private readonly scaling: Scaling;
  private readonly failures: FailureOwners;
  private readonly onChange: () => void;
  private readonly onRestart: (ms: number, ok: boolean) => void;
  private readonly canConnect: (socketPath: string) => Promise<boolean>;
  private running = false;
  private suspendedWindow = false;
  private generation = 0;
  /** Commands that change generations run one at a time. */
  private readonly queue = new SerialQueue();
  /** Which starts may go on: none after stop() or detach() until drained, none after close(). */
  private readonly gate = new StartGate();
  private readonly naming: SocketNaming;
  /** Moves a replaced worker's connections to its successor. */
  readonly handover: ConnectionHandover;

  constructor(deps: SupervisorDeps) {
    this.config = deps.config;
    this.log = deps.log;
    this.clock = deps.clock ?? systemClock;
    this.onChange = deps.onChange ?? (() => {});
    this.onRestart = deps.onRestart ?? (() => {});
    this.canConnect = deps.canConnect;
    const policy = deps.policy ?? {};
    this.slots = new SlotTable(deps.config.workers, deps.publisher, policy, deps.log);
    this.naming = new SocketNaming(this.slots);
    this.launcher = new Launcher(
      {
        config: () => this.config,
        socketPathFor: (id) => this.naming.uniquePath(id),
        output: deps.output,
        clock: this.clock,
        log: deps.log,
        canConnect: deps.canConnect,
        spawn: deps.spawn,
      },
      {
        exit: (worker, exit) => routeExit(this.failures, worker, exit),
        broken: (worker) => routeBroken(this.failures, worker),
        changed: () => this.onChange(),
      },
    );
    this.handover = new ConnectionHandover({
      successorOf: (old) => this.slots.successorOf(old),
      log: deps.log,
    });
    const drain = (w: ManagedWorker, why: DrainReason) => this.launcher.drain(w, why);
    this.standbys = new StandbyPool({
      wanted: () => this.config.standby,
      running: () => this.running,
      start: () => this.startOne(null, true, 1),
      drain,
      clock: this.clock,
      log: deps.log,
      policy,
    });
    this.recovery = new SlotRecovery({
      slots: this.slots,
      standbys: this.standbys,
      running: () => this.running,
      suspended: () => this.suspendedWindow,
      start: (slot) => this.startOne(slot, this.suspendedWindow, 1),
      drain,
      changed: () => this.onChange(),
      clock: this.clock,
      log: deps.log,
    });
    this.failures = { slots: this.slots, standbys: this.standbys, recovery: this.recovery };
    this.scaling = new Scaling({
      slots: this.slots,
      standbys: this.standbys,
      recovery: this.recovery,
      launcher: this.launcher,
      log: deps.log,
      name: () => this.config.name,
      setCount: (key, count) => {
        this.config = { ...this.config, [key]: count };
      },
      fillNew: async (slots) => (this.running ? this.fill(slots, this.config.maxStartAttempts) : []),
    });
  }

  get isRunning(): boolean {
    return this.running;
  }

  get isSuspended(): boolean {
    return this.suspendedWindow;
  }

  get currentConfig(): Config {
    return this.config;
  }

  start(opts: RestartOptions = {}): Promise<StartResult> {
    return this.queue.run(async () => {
      this.gate.refuseWhenClosed('start');
      if (this.running) return { alreadyRunning: true, workers: this.slots.size };
      this.running = true;
      this.suspendedWindow = opts.suspended === true;
      this.generation++;
      const failures = await this.fill([...this.slots.list()], this.attempts(opts));
      this.standbys.replenish();
      if (failures.length > 0) {
        throw new Error(
          `${failures.length} of ${this.slots.size} workers failed to start (retrying with backoff): ${errorMessage(failures[0])}`,
        );
      }
      return { alreadyRunning: false, workers: this.slots.size };
    });
  }

  /**
   * Zero-downtime replacement: the whole new generation (slots and standbys) must come online
   * before any published path changes, and the swap itself is all or nothing. If anything
   * fails, the new workers are stopped and the current generation stays as it was, supervised.
   */
  restart(opts: RestartOptions = {}): Promise<RestartResult> {
    return this.queue.run(() => this.restartNow(opts));
  }

  private async restartNow(opts: RestartOptions): Promise<RestartResult> {
    const began = this.clock.now();
    try {
      const result = await this.restartGeneration(opts);
      this.onRestart(this.clock.now() - began, true);
      return result;
    } catch (err) {
      this.onRestart(this.clock.now() - began, false);
      throw err;
    }
  }

  private async restartGeneration(opts: RestartOptions): Promise<RestartResult> {
    this.gate.refuseWhenClosed('restart');
    const wasRunning = this.running;
    this.running = true;
    const generation = ++this.generation;
    const suspended = opts.suspended === true;
    const attempts = this.attempts(opts);
    try {
      return await runRestartTransaction(
        {
          slots: this.slots,
          standbys: this.standbys,
          recovery: this.recovery,
          launcher: this.launcher,
          handover: this.config.handover ? this.handover : null,
          standbyCount: this.config.standby,
          log: this.log,
          start: (slot, signal) =>
            this.startOne(slot, suspended || slot === null, attempts, generation, signal),
          takePendingPublisher: () => this.naming.take(),
          published: () => {
            this.suspendedWindow = suspended;
          },
          changed: () => this.onChange(),
        },
        { generation, suspended, wasRunning },
      );
    } catch (err) {
      this.running = wasRunning;
      throw err;
    }
  }

  /** Releases suspended workers (the end of a migration window). */
  resume(): { resumed: number } {
    if (!this.running) throw new Error('cannot resume: workers are not running (use start)');
    this.suspendedWindow = false;
    const resumed = this.slots.resumeSuspended();
    this.log.info(`resumed ${resumed} worker(s)`);
    return { resumed };
  }

  /**
   * Drains every worker and removes the published paths; the daemon stays up. Resolves once no
   * worker is left: one that a start in flight spawned or brought online meanwhile is drained
   * too, and no start may spawn until then.
   */
  stop(): Promise<{ stopped: number }> {
    // Abort starts in progress now rather than after them: a stop must not wait for an onlineTimeout.
    this.gate.abortStarts();
    return this.queue.run(async () => {
      this.running = false;
      this.suspendedWindow = false;
      for (const slot of this.slots.list()) this.recovery.cancel(slot);
      try {
        this.slots.clear();
      } catch (err) {
        this.log.error(`stop: ${errorMessage(err)}`);
      }
      this.standbys.clear();
      const stopped = await this.launcher.drainAll('stopped');
      // Only now may a later command start workers again.
      this.gate.reopen();
      this.log.info(`stopped ${stopped} worker(s)`);
      return { stopped };
    });
  }

  /**
   * stop() for good (the daemon shutting down): resolves once every worker has exited, and
   * no command queued meanwhile or later (a control-socket `restart`, a worker's restart
   * request, a tmpDir recovery) starts one, for it would outlive the daemon unsupervised.
   */
  close(): Promise<{ stopped: number }> {
    this.gate.close();
    return this.stop();
  }

  /**
   * Changes the number of slots; removed slots lose their published path before their worker
   * drains. Says which upstream lines nginx now needs (it is not reloaded for us).
   */
  setWorkers(count: number): Promise<{ workers: number; nginx?: UpstreamChange }> {
    return this.queue.run(async () => {
      const before = this.scaling.publishedPaths();
      try {
        return { ...(await this.scaling.setSlots(count)), ...this.scaling.upstreamChange(before) };
      } catch (err) {
        this.scaling.upstreamChange(before); // logged: the slots changed even if a new worker failed
        throw err;
      }
    });
  }

  /** Changes the number of standbys; surplus standbys drain, oldest first, missing ones start. */
  setStandby(count: number): Promise<{ standby: number }> {
    return this.queue.run(async () => this.scaling.setStandby(count));
  }

  /**
   * Applies a reloaded config with the smallest change: scaling, a rename, or a zero-downtime
   * restart when what the workers run changed. Returns what it did.
   */
  reconfigure(
    next: Config,
    nextPublisher: Publisher,
  ): Promise<{ actions: string[]; nginx?: UpstreamChange }> {
    return this.queue.run(() =>
      applyReconfigure(
        {
          config: () => this.config,
          setConfig: (config) => {
            this.config = config;
          },
          running: () => this.running,
          scaling: this.scaling,
          renameSockets: (publisher) => this.naming.stage(publisher),
          applyNaming: () => this.naming.apply(),
          restart: () => this.restartNow({ suspended: this.suspendedWindow }),
        },
        next,
        nextPublisher,
      ),
    );
  }

  /** Every live worker with its role and slot, for status, messaging and the state file. */
  listWorkers(): PlacedWorker[] {
    return placeWorkers(this.launcher, this.slots, this.standbys);
  }

  /** Sockets of the slot workers that accept connections, for the dev server. */
  servingSockets(): string[] {
    return this.slots.servingSockets();
  }

  status(): { slots: SlotStatus[]; workers: WorkerStatus[] } {
    return poolStatus(this.slots, this.listWorkers());
  }

  /** What a daemon taking over from this one needs. */
  snapshot(): DaemonState {
    return snapshotOf(
      { running: this.running, suspended: this.suspendedWindow, generation: this.generation },
      this.listWorkers(),
    );
  }

  /**
   * Takes over the live workers an earlier daemon left (adoption.ts): the same pids keep
   * serving in the same slots. Returns how many.
   */
  async adopt(state: DaemonState): Promise<number> {
    this.generation = Math.max(this.generation, state.generation);
    const adopted = await adoptWorkers(
      {
        slots: this.slots,
        standbys: this.standbys,
        launcher: this.launcher,
        standbyCount: this.config.standby,
        canConnect: this.canConnect,
        log: this.log,
      },
      state,
    );
    if (adopted > 0) {
      this.running = state.running;
      this.suspendedWindow = state.suspended;
    }
    return adopted;
  }

  /**
   * Adopts the workers behind live sockets of this naming that no state file listed (it was
   * stale): each found by the process listening on it (adoption.ts). Returns how many.
   */
  adoptUnlisted(sockets: string[], state: { running: boolean; suspended: boolean } | null): Promise<number> {
    const found = unlistedState(this.slots, sockets, this.generation, state);
    return found ? this.adopt(found) : Promise.resolve(0);
  }

  /** Hands a control-socket connection to the adopted worker that introduced itself on it. */
  attachWorkerChannel(id: string, pid: number, connection: FrameConnection): boolean {
    return this.launcher.attachChannel(id, pid, connection);
  }

  /** After an adoption: start workers for the slots and standbys still missing. */
  fillMissing(): Promise<void> {
    return this.queue.run(async () => {
      if (!this.running) return;
      await this.fill(
        this.slots.list().filter((slot) => !slot.worker),
        this.config.maxStartAttempts,
      );
      this.standbys.replenish();
    });
  }

  /**
   * Lets go of every worker without stopping it, for a daemon upgrade: no more replacements,
   * channels closed (workers reconnect to the next daemon). Returns the state to adopt from.
   */
  detach(): DaemonState {
    this.gate.abortStarts();
    for (const slot of this.slots.list()) this.recovery.cancel(slot);
    const state = this.snapshot();
    this.standbys.clear();
    this.launcher.detachAll();
    this.running = false;
    return state;
  }

  /** Starts and publishes a worker for each slot; a slot that fails retries with backoff. */
  private fill(slots: Slot[], attempts: number): Promise<unknown[]> {
    return this.recovery.fill(slots, (slot) => this.startOne(slot, this.suspendedWindow, attempts));
  }

  private startOne(
    slot: Slot | null,
    suspended: boolean,
    attempts: number,
    generation = this.generation,
    abort?: AbortSignal,
  ): Promise<ManagedWorker> {
    return this.launcher.start(slot, {
      generation,
      suspended,
      attempts,
      signals: this.gate.signals(abort),
    });
  }

  /**
   * The `listen` front saw a slot worker confirm no handed connection for its stall deadline (a
   * stuck event loop, a stopped process): replaced as one that reported itself broken, so its
   * replacement starts now and it is drained, up to SIGKILL, once that one serves.
   */
  replaceStalled(id: string, why: string): void {
    const worker = this.launcher.all().find((w) => w.id === id);
    if (worker) routeBroken(this.failures, worker, `stalled: ${why}`);
  }

  private attempts(opts: RestartOptions): number {
    return opts.maxAttempts ?? this.config.maxStartAttempts;
  }
}
