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
import type { DrainReason, ExitInfo, WorkerRole } from '../worker/worker-state';
import { adoptWorkers, snapshotOf, unlistedRecords } from './adoption';
import { ConnectionHandover } from './handover';
import { Launcher } from './launcher';
import { applyReconfigure } from './reconfigure';
import { runRestartTransaction } from './restart-transaction';
import { Scaling } from './scaling';
import { SlotRecovery } from './slot-recovery';
import { type Slot, SlotTable } from './slots';
import { StandbyPool } from './standby-pool';
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
  private readonly onChange: () => void;
  private readonly onRestart: (ms: number, ok: boolean) => void;
  private readonly canConnect: (socketPath: string) => Promise<boolean>;
  private running = false;
  private suspendedWindow = false;
  private generation = 0;
  /** Commands that change generations run one at a time. */
  private readonly queue = new SerialQueue();
  /** Aborted by stop() and detach(), so starts in flight give up; renewed once a stop has drained. */
  private lifetime = new AbortController();
  /** Aborted for good by close(): no worker is spawned afterwards, whatever is queued. */
  private readonly closing = new AbortController();
  /** A new socket naming from a reload, used from the next generation on. */
  private pendingPublisher: Publisher | null = null;
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
    this.launcher = new Launcher(
      {
        config: () => this.config,
        socketPathFor: (id) => (this.pendingPublisher ?? this.slots.publisher).uniquePath(id),
        output: deps.output,
        clock: this.clock,
        log: deps.log,
        canConnect: deps.canConnect,
        spawn: deps.spawn,
      },
      {
        exit: (worker, exit) => this.onExit(worker, exit),
        broken: (worker) => this.onBroken(worker),
        changed: () => this.onChange(),
      },
    );
    this.handover = new ConnectionHandover({
      successorOf: (old) => {
        const slot = this.slots.list().find((s) => s.index === old.startedFor);
        const now = slot?.worker ?? null;
        return now !== null && now !== old && (now.state === 'online' || now.state === 'suspended')
          ? now
          : null;
      },
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
      this.refuseWhenClosed('start');
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
    this.refuseWhenClosed('restart');
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
          takePendingPublisher: () => {
            const naming = this.pendingPublisher;
            this.pendingPublisher = null;
            return naming;
          },
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
    let resumed = 0;
    for (const slot of this.slots.list()) {
      if (slot.worker?.state === 'suspended') {
        slot.worker.resume();
        resumed++;
      }
    }
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
    this.lifetime.abort();
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
      let stopped = 0;
      for (let all = this.launcher.all(); all.length > 0; all = this.launcher.all()) {
        stopped += all.length;
        await Promise.all(all.map((w) => this.launcher.drain(w, 'stopped')));
      }
      // Only now may a later command start workers again.
      if (!this.closing.signal.aborted) this.lifetime = new AbortController();
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
    this.closing.abort();
    return this.stop();
  }

  private refuseWhenClosed(what: string): void {
    if (this.closing.signal.aborted) throw new Error(`cannot ${what}: the daemon is shutting down`);
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
          renameSockets: (publisher) => {
            this.pendingPublisher = publisher;
          },
          applyNaming: () => {
            if (this.pendingPublisher) this.slots.switchPublisher(this.pendingPublisher);
            this.pendingPublisher = null;
          },
          restart: () => this.restartNow({ suspended: this.suspendedWindow }),
        },
        next,
        nextPublisher,
      ),
    );
  }

  /** Every live worker with its role and slot, for status, messaging and the state file. */
  listWorkers(): { worker: ManagedWorker; role: WorkerRole; slot: number | null }[] {
    return this.launcher.all().map((worker) => {
      const slot = this.slots.slotOf(worker);
      const role: WorkerRole = slot
        ? 'serving'
        : this.standbys.has(worker)
          ? 'standby'
          : worker.state === 'draining'
            ? 'draining'
            : 'starting';
      return { worker, role, slot: slot?.index ?? null };
    });
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
    const workers = unlistedRecords(this.slots, sockets, this.generation);
    if (workers.length === 0) return Promise.resolve(0);
    return this.adopt({
      version: 1,
      daemonPid: 0,
      running: state?.running ?? true,
      suspended: state?.suspended ?? false,
      generation: this.generation,
      workers,
    });
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
    this.lifetime.abort();
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
      signals: [this.lifetime.signal, this.closing.signal, ...(abort ? [abort] : [])],
    });
  }

  private onExit(worker: ManagedWorker, exit: ExitInfo): void {
    void this.slots.publisher.removeSocketIfDead(worker.socketPath).catch(() => undefined);
    if (this.standbys.onExit(worker, exit)) return;
    const slot = this.slots.slotOf(worker);
    // The published worker died without being asked to: a crash.
    if (slot) this.recovery.onCrash(slot, worker, exit);
  }

  /**
   * The `listen` front saw a slot worker confirm no handed connection for its stall deadline (a
   * stuck event loop, a stopped process): replaced as one that reported itself broken, so its
   * replacement starts now and it is drained, up to SIGKILL, once that one serves.
   */
  replaceStalled(id: string, why: string): void {
    const worker = this.launcher.all().find((w) => w.id === id);
    const slot = worker && this.slots.slotOf(worker);
    if (slot) this.recovery.onBroken(slot, worker, `stalled: ${why}`);
  }

  private onBroken(worker: ManagedWorker): void {
    if (this.standbys.onBroken(worker)) return;
    const slot = this.slots.slotOf(worker);
    if (slot) this.recovery.onBroken(slot, worker);
  }

  private attempts(opts: RestartOptions): number {
    return opts.maxAttempts ?? this.config.maxStartAttempts;
  }
}
