import type { Config } from '../config/schema';
import type { FrameConnection } from '../ipc/connection';
import type { SlotStatus, WorkerStatus } from '../ipc/protocol';
import { errorMessage, type Logger } from '../log';
import type { WorkerOutput } from './output';
import { processStartTicks, readProcStats } from './proc';
import type { Publisher } from './publisher';
import { canConnect } from './socket-probe';
import type { DaemonState, WorkerRecord } from './state-file';
import { describeExit, type ExitInfo, WorkerHandle, type WorkerSpawnOptions } from './worker';
import { isServing } from './worker-state';

/** Crash backoff: first retry almost at once, doubling up to the cap, reset after a stable run. */
const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 30_000;
const STABLE_AFTER_MS = 60_000;
/** Consecutive crashes of a slot after which it waits for the backoff instead of a standby. */
const STANDBY_CRASH_LIMIT = 3;

interface Slot {
  index: number;
  /** The worker the published path points at (null while the slot has none alive). */
  worker: WorkerHandle | null;
  /** How many workers this slot has had; the `{instance}` of output prefixes. */
  instances: number;
  restarts: number;
  consecutiveCrashes: number;
  retryTimer: NodeJS.Timeout | null;
  nextRetryAt: number | null;
  /** The delay of the retry scheduled last (grows while the slot crash-loops). */
  backoffMs: number | null;
  lastExit: string | null;
}

export type RestartResult = {
  generation: number;
  workers: { slot: number; id: string; pid: number | null }[];
};

/** Config keys whose change means new worker processes (a zero-downtime restart). */
const RESTART_KEYS = [
  'script',
  'args',
  'nodeArgs',
  'cwd',
  'env',
  'listenVar',
  'socketFile',
  'readiness',
  'upstreamKeepaliveTimeout',
] as const;
/** Keys that only change how the daemon treats workers from now on. */
const TUNING_KEYS = [
  'spawnTimeout',
  'onlineTimeout',
  'shutdownTimeout',
  'killTimeout',
  'maxStartAttempts',
] as const;

export interface StartOptions {
  suspended?: boolean;
  maxAttempts?: number;
}

class AbortedError extends Error {}

/**
 * Keeps one worker online behind each slot: starts, restarts (transactionally), suspends,
 * resumes, replaces crashed workers and stops them. Commands that change generations run one
 * at a time; crash replacement runs beside them and yields to whatever a command published.
 */
export class Supervisor {
  private slots: Slot[] = [];
  private readonly workers = new Set<WorkerHandle>();
  /** Started, suspended, unpublished spares (SPEC §1 "standby"). */
  private standbys: WorkerHandle[] = [];
  private standbysStarting = 0;
  private standbyCrashes = 0;
  private standbyTimer: NodeJS.Timeout | null = null;
  private standbyInstances = 0;
  private running = false;
  private suspendedWindow = false;
  private generation = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** Aborted by stop(), so replacement attempts in flight give up. */
  private lifetime = new AbortController();

  constructor(
    private config: Config,
    private publisher: Publisher,
    private readonly output: WorkerOutput,
    private readonly log: Logger,
  ) {
    this.slots = Array.from({ length: config.workers }, (_, index) => this.newSlot(index));
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

  /**
   * Changes the number of slots (SPEC §2 `set-workers`). New slots are published as their
   * workers come online; removed slots (the highest first) lose their published path before
   * their worker drains, so nginx never gets a dangling link.
   */
  setWorkers(count: number): Promise<{ workers: number }> {
    return this.serialize(() => this.scaleSlots(count));
  }

  /** Changes the number of standbys (SPEC §2 `set-standby`); surplus standbys drain, oldest first. */
  setStandby(count: number): { standby: number } {
    this.config = { ...this.config, standby: count };
    const surplus = this.standbys.length - count;
    if (surplus > 0) for (const w of this.standbys.splice(0, surplus)) void this.drain(w);
    this.replenishStandbys();
    this.log.info(`standby count set to ${count}`);
    return { standby: count };
  }

  /**
   * Applies a reloaded config with the smallest change: scaling, a rename, or a zero-downtime
   * restart when what the workers run changed. Returns what it did.
   */
  reconfigure(next: Config, nextPublisher: Publisher): Promise<string[]> {
    return this.serialize(async () => {
      const prev = this.config;
      const actions: string[] = [];
      const rerun = RESTART_KEYS.filter((k) => JSON.stringify(prev[k]) !== JSON.stringify(next[k]));
      const tuned = TUNING_KEYS.filter((k) => prev[k] !== next[k]);
      this.config = { ...next, workers: prev.workers, standby: prev.standby };
      if (next.socketFile !== prev.socketFile) this.pendingPublisher = nextPublisher;
      if (prev.name !== next.name) actions.push(`renamed ${prev.name} -> ${next.name}`);
      if (tuned.length > 0) actions.push(`updated ${tuned.join(', ')}`);
      if (next.workers !== prev.workers) {
        await this.scaleSlots(next.workers);
        actions.push(`workers ${prev.workers} -> ${next.workers}`);
      }
      if (next.standby !== prev.standby) {
        this.setStandby(next.standby);
        actions.push(`standby ${prev.standby} -> ${next.standby}`);
      }
      if (rerun.length > 0) {
        if (this.running) {
          try {
            await this.restartNow({ suspended: this.suspendedWindow });
          } catch (err) {
            // The workers still run the previous config; crash replacements must too.
            this.config = { ...prev, workers: this.config.workers, standby: this.config.standby };
            throw err;
          }
          actions.push(`restarted the workers (changed: ${rerun.join(', ')})`);
        } else {
          this.adoptPendingPublisher();
          actions.push(`changed ${rerun.join(', ')} (applies at the next start)`);
        }
      }
      return actions.length > 0 ? actions : ['no change'];
    });
  }

  private pendingPublisher: Publisher | null = null;

  /** Switches to a new socket naming; the old published paths are removed. */
  private adoptPendingPublisher(): void {
    if (!this.pendingPublisher) return;
    for (const slot of this.slots) this.publisher.unpublish(slot.index);
    this.publisher = this.pendingPublisher;
    this.pendingPublisher = null;
  }

  private async scaleSlots(count: number): Promise<{ workers: number }> {
    const before = this.slots.length;
    const failures: unknown[] = [];
    this.config = { ...this.config, workers: count };
    if (count < before) {
      for (const slot of this.slots.splice(count)) {
        this.cancelRetry(slot);
        this.publisher.unpublish(slot.index);
        const worker = slot.worker;
        slot.worker = null;
        if (worker) void this.drain(worker);
      }
    } else if (count > before) {
      const added = Array.from({ length: count - before }, (_, i) => this.newSlot(before + i));
      this.slots.push(...added);
      if (this.running) failures.push(...(await this.fillSlots(added, this.config.maxStartAttempts)));
    }
    this.log.info(`workers set to ${count} (was ${before})`);
    if (failures.length > 0) {
      throw new Error(
        `workers set to ${count}, but ${failures.length} new worker(s) failed to start (retrying with backoff): ${errorMessage(failures[0])}`,
      );
    }
    return { workers: count };
  }

  /**
   * Lets go of every worker without stopping it, for a daemon upgrade (SPEC §4.9): no more
   * replacements, channels closed (library workers reconnect to the next daemon). Returns the
   * state the next daemon adopts from.
   */
  detach(): DaemonState {
    this.lifetime.abort();
    for (const slot of this.slots) this.cancelRetry(slot);
    if (this.standbyTimer) clearTimeout(this.standbyTimer);
    this.standbyTimer = null;
    const state = this.snapshot();
    this.onChange = () => {};
    for (const worker of this.workers) {
      worker.removeAllListeners('exit');
      worker.removeAllListeners('broken');
      worker.detach();
    }
    this.workers.clear();
    this.running = false;
    return state;
  }

  /** Every live worker with its role, for app messaging and selectors. */
  listWorkers(): { worker: WorkerHandle; role: 'serving' | 'standby' | 'draining' | 'starting' }[] {
    const current = new Set(this.slots.map((s) => s.worker));
    return [...this.workers].map((worker) => ({
      worker,
      role: current.has(worker)
        ? 'serving'
        : this.standbys.includes(worker)
          ? 'standby'
          : worker.state === 'draining'
            ? 'draining'
            : 'starting',
    }));
  }

  /** Sockets of the slot workers that accept connections, for the dev server. */
  servingSockets(): string[] {
    return this.slots.flatMap((s) => (s.worker && isServing(s.worker.state) ? [s.worker.socketPath] : []));
  }

  start(opts: StartOptions = {}): Promise<{ alreadyRunning: boolean; workers: number }> {
    return this.serialize(async () => {
      if (this.running) return { alreadyRunning: true, workers: this.slots.length };
      this.running = true;
      this.suspendedWindow = opts.suspended === true;
      this.generation++;
      const failures = await this.fillSlots(this.slots, this.attempts(opts));
      this.replenishStandbys();
      if (failures.length > 0) {
        throw new Error(
          `${failures.length} of ${this.slots.length} workers failed to start (retrying with backoff): ${errorMessage(failures[0])}`,
        );
      }
      return { alreadyRunning: false, workers: this.slots.length };
    });
  }

  /**
   * Zero-downtime replacement (SPEC §4.2): the whole new generation must come online before
   * any published path changes. If one fails, the others are stopped and the current
   * generation stays exactly as it was, still supervised.
   */
  restart(opts: StartOptions = {}): Promise<RestartResult> {
    return this.serialize(() => this.restartNow(opts));
  }

  private async restartNow(opts: StartOptions): Promise<RestartResult> {
    const wasRunning = this.running;
    this.running = true;
    const generation = ++this.generation;
    const suspended = opts.suspended === true;
    const abort = new AbortController();
    const targets: (Slot | null)[] = [
      ...this.slots,
      ...Array.from({ length: this.config.standby }, () => null),
    ];
    const attempts = targets.map((slot) =>
      this.startWorker(slot, generation, suspended || slot === null, this.attempts(opts), abort.signal).catch(
        (err: unknown) => {
          abort.abort();
          throw err;
        },
      ),
    );
    const results = await Promise.allSettled(attempts);
    const failed = results.find(
      (r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof AbortedError),
    );
    if (failed || abort.signal.aborted) {
      this.pendingPublisher = null;
      const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      await Promise.all(started.map((w) => this.drain(w)));
      this.running = wasRunning;
      const reason = failed ? errorMessage(failed.reason) : 'aborted';
      const outcome = wasRunning ? 'the previous workers keep serving' : 'no workers are running';
      this.log.error(`restart failed; ${outcome}: ${reason}`);
      throw new Error(`restart failed, ${outcome}: ${reason}`);
    }
    this.suspendedWindow = suspended;
    const fresh = results.map((r) => (r as PromiseFulfilledResult<WorkerHandle>).value);
    this.adoptPendingPublisher();
    for (const [i, slot] of this.slots.entries()) this.swapIn(slot, fresh[i]!);
    const oldStandbys = this.standbys;
    this.standbys = fresh.slice(this.slots.length);
    for (const w of oldStandbys) void this.drain(w);
    this.log.info(`generation ${generation} is serving${suspended ? ' (suspended until resume)' : ''}`);
    const published = fresh.slice(0, this.slots.length);
    return { generation, workers: published.map((w) => ({ slot: w.slot ?? -1, id: w.id, pid: w.pid })) };
  }

  /** Releases suspended workers (the end of a migration window, SPEC §4.4). */
  resume(): { resumed: number } {
    if (!this.running) throw new Error('cannot resume: workers are not running (use start)');
    this.suspendedWindow = false;
    let resumed = 0;
    for (const slot of this.slots) {
      if (slot.worker?.state === 'suspended') {
        slot.worker.resume();
        resumed++;
      }
    }
    this.log.info(`resumed ${resumed} worker(s)`);
    return { resumed };
  }

  /** Drains every worker and removes the published paths; the daemon stays up. */
  stop(): Promise<{ stopped: number }> {
    // Abort starts in progress now rather than after them: a stop must not wait for an
    // onlineTimeout.
    this.lifetime.abort();
    return this.serialize(async () => {
      this.running = false;
      this.suspendedWindow = false;
      this.lifetime = new AbortController();
      for (const slot of this.slots) {
        this.cancelRetry(slot);
        this.publisher.unpublish(slot.index);
        slot.worker = null;
      }
      this.standbys = [];
      if (this.standbyTimer) clearTimeout(this.standbyTimer);
      this.standbyTimer = null;
      const all = [...this.workers];
      await Promise.all(all.map((w) => this.drain(w)));
      this.log.info(`stopped ${all.length} worker(s)`);
      return { stopped: all.length };
    });
  }

  status(): { slots: SlotStatus[]; workers: WorkerStatus[] } {
    const slots = this.slots.map((s) => ({
      index: s.index,
      publishedPath: this.publisher.publishedPath(s.index),
      workerId: s.worker?.id ?? null,
      restarts: s.restarts,
      nextRetryAt: s.nextRetryAt,
      backoffMs: s.backoffMs,
      lastExit: s.lastExit,
    }));
    const workers = this.listWorkers().map(({ worker: w, role }): WorkerStatus => {
      const stats = w.pid !== null ? readProcStats(w.pid) : null;
      return {
        id: w.id,
        slot: role === 'serving' ? w.slot : null,
        role,
        pid: w.pid,
        state: w.state,
        since: w.since,
        startedAt: w.startedAt,
        generation: w.generation,
        restarts: w.slot === null ? 0 : (this.slots[w.slot]?.restarts ?? 0),
        rssBytes: stats?.rssBytes ?? null,
        cpuSeconds: stats?.cpuSeconds ?? null,
        inflight: w.inflight,
        lastExit: w.exitInfo ? describeExit(w.exitInfo) : null,
      };
    });
    workers.sort((a, b) => (a.slot ?? 1e9) - (b.slot ?? 1e9) || a.startedAt - b.startedAt);
    return { slots, workers };
  }

  private attempts(opts: StartOptions): number {
    return opts.maxAttempts ?? this.config.maxStartAttempts;
  }

  private serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private newSlot(index: number): Slot {
    return {
      index,
      worker: null,
      instances: 0,
      restarts: 0,
      consecutiveCrashes: 0,
      retryTimer: null,
      nextRetryAt: null,
      backoffMs: null,
      lastExit: null,
    };
  }

  private workerOptions(slot: Slot | null, generation: number, suspended: boolean): WorkerSpawnOptions {
    const c = this.config;
    return {
      slot: slot?.index ?? null,
      instance: slot ? slot.instances++ : this.standbyInstances++,
      generation,
      suspended,
      script: c.script,
      args: c.args,
      nodeArgs: c.nodeArgs,
      cwd: c.cwd,
      env: workerEnv(c.env),
      listenVar: c.listenVar,
      appName: c.name,
      socketPathFor: (id) => (this.pendingPublisher ?? this.publisher).uniquePath(id),
      spawnTimeout: c.spawnTimeout,
      upstreamKeepaliveTimeout: c.upstreamKeepaliveTimeout,
      readiness: c.readiness,
      ipcFile: c.ipcFile,
      output: this.output,
      log: this.log,
    };
  }

  private spawn(slot: Slot | null, generation: number, suspended: boolean): WorkerHandle {
    return this.track(new WorkerHandle(this.workerOptions(slot, generation, suspended)));
  }

  private track(worker: WorkerHandle): WorkerHandle {
    this.workers.add(worker);
    worker.on('exit', (exit: ExitInfo) => this.onExit(worker, exit));
    worker.on('broken', () => this.onBroken(worker));
    worker.on('state', () => this.changed());
    this.changed();
    return worker;
  }

  /** Called on every change the state file must reflect. */
  onChange: () => void = () => {};

  private changed(): void {
    this.onChange();
  }

  /** What a daemon taking over from this one needs (SPEC §4.8). */
  snapshot(): DaemonState {
    return {
      version: 1,
      daemonPid: process.pid,
      running: this.running,
      suspended: this.suspendedWindow,
      generation: this.generation,
      workers: this.listWorkers()
        .filter(({ worker }) => worker.pid !== null && worker.state !== 'exited')
        .map(({ worker, role }) => ({
          id: worker.id,
          pid: worker.pid!,
          socketPath: worker.socketPath,
          slot: role === 'serving' ? worker.slot : null,
          role,
          suspended: worker.state === 'suspended',
          startedAt: worker.startedAt,
          generation: worker.generation,
          startTicks: processStartTicks(worker.pid!),
        })),
    };
  }

  /**
   * Takes over the live workers an earlier daemon left (SPEC §4.8): same pids keep serving in
   * the same slots; what is dead or no longer fits the config is dropped or drained.
   */
  async adopt(state: DaemonState): Promise<number> {
    let adopted = 0;
    this.generation = Math.max(this.generation, state.generation);
    for (const record of state.workers) {
      const why = await this.adoptable(record);
      if (why) {
        this.log.info(`not adopting worker ${record.id} (pid ${record.pid}): ${why}`);
        continue;
      }
      const slot = record.slot !== null && record.role === 'serving' ? this.slots[record.slot] : undefined;
      const worker = this.track(
        new WorkerHandle(this.workerOptions(slot ?? null, record.generation, record.suspended), record),
      );
      adopted++;
      if (slot && !slot.worker) {
        slot.worker = worker;
        this.publisher.publish(slot.index, worker.socketPath);
        this.log.info(`slot ${slot.index}: adopted worker ${worker.id} (pid ${worker.pid})`);
      } else if (record.role === 'standby' && this.standbys.length < this.config.standby) {
        worker.slot = null;
        this.standbys.push(worker);
        this.log.info(`adopted standby ${worker.id} (pid ${worker.pid})`);
      } else {
        this.log.info(`adopted worker ${worker.id} (pid ${worker.pid}) is not needed; draining it`);
        void this.drain(worker);
      }
    }
    if (adopted > 0) {
      this.running = state.running;
      this.suspendedWindow = state.suspended;
    }
    return adopted;
  }

  private async adoptable(record: WorkerRecord): Promise<string | null> {
    if (record.socketPath !== this.publisher.uniquePath(record.id))
      return 'its socket is not where this config puts it';
    const ticks = processStartTicks(record.pid);
    if (ticks === null) return 'its process is gone';
    if (record.startTicks !== null && ticks !== record.startTicks)
      return 'its pid now belongs to another process';
    if (!(await canConnect(record.socketPath))) return 'its socket does not answer';
    return null;
  }

  /** Hands a control-socket connection to the adopted worker that introduced itself on it. */
  attachWorkerChannel(id: string, pid: number, connection: FrameConnection): boolean {
    const worker = [...this.workers].find((w) => w.id === id && w.pid === pid && w.adopted);
    if (!worker?.adopted) return false;
    worker.adopted.attach(connection);
    this.log.info(`worker ${id} (pid ${pid}) reconnected`);
    return true;
  }

  /** After an adoption: start workers for the slots and standbys still missing. */
  fillMissing(): Promise<void> {
    return this.serialize(async () => {
      if (!this.running) return;
      await this.fillSlots(
        this.slots.filter((slot) => !slot.worker),
        this.config.maxStartAttempts,
      );
      this.replenishStandbys();
    });
  }

  /**
   * Starts and publishes a worker for each of these slots; a slot whose worker fails keeps
   * retrying with backoff. Returns the failures.
   */
  private async fillSlots(slots: Slot[], attempts: number): Promise<unknown[]> {
    const failures: unknown[] = [];
    await Promise.all(
      slots.map(async (slot) => {
        try {
          this.swapIn(slot, await this.startWorker(slot, this.generation, this.suspendedWindow, attempts));
        } catch (err) {
          if (err instanceof AbortedError) return;
          slot.lastExit = errorMessage(err);
          failures.push(err);
          this.scheduleReplacement(slot);
        }
      }),
    );
    return failures;
  }

  /** Starts a worker for the slot and waits until it is online, with up to `attempts` tries. */
  private async startWorker(
    slot: Slot | null,
    generation: number,
    suspended: boolean,
    attempts: number,
    abort?: AbortSignal,
  ): Promise<WorkerHandle> {
    const signals = [this.lifetime.signal, ...(abort ? [abort] : [])];
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (signals.some((s) => s.aborted)) throw new AbortedError('aborted');
      const worker = this.spawn(slot, generation, suspended);
      try {
        await raceAbort(worker.waitOnline(this.config.onlineTimeout), signals);
        return worker;
      } catch (err) {
        lastError = err;
        await worker.abort(this.config.killTimeout);
        if (err instanceof AbortedError) throw err;
        this.log.warn(`attempt ${attempt}/${attempts} failed: ${errorMessage(err)}`);
      }
    }
    throw lastError;
  }

  /** Publishes the worker in its slot and drains the one it replaces. */
  private swapIn(slot: Slot, worker: WorkerHandle): void {
    const previous = slot.worker;
    this.cancelRetry(slot);
    this.publisher.publish(slot.index, worker.socketPath);
    slot.worker = worker;
    if (!this.suspendedWindow) worker.resume();
    this.changed();
    this.log.info(`slot ${slot.index} -> worker ${worker.id} (pid ${worker.pid})`);
    if (previous && previous !== worker) void this.drain(previous);
  }

  private drain(worker: WorkerHandle): Promise<void> {
    return worker.drain(this.config.shutdownTimeout, this.config.killTimeout);
  }

  private onExit(worker: WorkerHandle, exit: ExitInfo): void {
    this.workers.delete(worker);
    void this.publisher.removeSocketIfDead(worker.socketPath).catch(() => undefined);
    if (this.standbys.includes(worker)) {
      this.standbys = this.standbys.filter((w) => w !== worker);
      this.log.warn(`standby ${worker.id} (pid ${worker.pid}) ${describeExit(exit)}`);
      this.standbyCrashes++;
      this.replenishStandbys();
      return;
    }
    const slot = worker.slot === null ? undefined : this.slots[worker.slot];
    if (!slot || slot.worker !== worker) return;
    // The published worker died without being asked to: a crash (SPEC §4.5).
    slot.worker = null;
    slot.lastExit = describeExit(exit);
    const tail = worker.lastStderr().slice(-5);
    this.log.warn(
      `slot ${slot.index}: worker ${worker.id} (pid ${worker.pid}) ${slot.lastExit}` +
        (tail.length > 0 ? `; last stderr: ${tail.join(' | ')}` : ''),
    );
    // A worker that ran stably before dying starts the backoff over; one that keeps dying
    // soon after coming online climbs it like one that never comes online.
    if (worker.onlineAt !== null && Date.now() - worker.onlineAt > STABLE_AFTER_MS)
      slot.consecutiveCrashes = 0;
    // A standby covers an isolated crash at once; a crash loop falls back to the backoff so
    // that it cannot burn through standbys as fast as they start.
    if (slot.consecutiveCrashes < STANDBY_CRASH_LIMIT && this.promoteStandby(slot)) {
      slot.consecutiveCrashes++;
      return;
    }
    this.scheduleReplacement(slot);
    slot.consecutiveCrashes++;
  }

  private onBroken(worker: WorkerHandle): void {
    if (this.standbys.includes(worker)) {
      this.standbys = this.standbys.filter((w) => w !== worker);
      void this.drain(worker);
      this.replenishStandbys();
      return;
    }
    const slot = worker.slot === null ? undefined : this.slots[worker.slot];
    if (!slot || slot.worker !== worker) return;
    // It keeps serving until its replacement is online; swapIn then drains it.
    if (!this.promoteStandby(slot)) this.scheduleReplacement(slot, 0);
  }

  /**
   * Puts a standby into the slot at once (it is already running), then starts a new standby.
   * During a suspended window the promoted worker stays suspended (SPEC §4.4).
   */
  private promoteStandby(slot: Slot): boolean {
    if (!this.running) return false;
    const spare = this.standbys.find((w) => isServing(w.state));
    if (!spare) return false;
    this.standbys = this.standbys.filter((w) => w !== spare);
    spare.slot = slot.index;
    slot.restarts++;
    this.log.info(`slot ${slot.index}: promoting standby ${spare.id} (pid ${spare.pid})`);
    this.swapIn(slot, spare);
    this.replenishStandbys();
    return true;
  }

  /** Starts standbys until there are `standby` of them, with backoff when they fail. */
  private replenishStandbys(): void {
    if (!this.running || this.standbyTimer) return;
    const missing = this.config.standby - this.standbys.length - this.standbysStarting;
    if (missing <= 0) return;
    const delay = this.standbyCrashes === 0 ? 0 : backoff(this.standbyCrashes - 1);
    this.standbyTimer = setTimeout(() => {
      this.standbyTimer = null;
      for (let i = 0; i < missing; i++) void this.startStandby();
    }, delay);
  }

  private async startStandby(): Promise<void> {
    this.standbysStarting++;
    try {
      const worker = await this.startWorker(null, this.generation, true, 1);
      this.standbysStarting--;
      if (!this.running || this.standbys.length >= this.config.standby) {
        await this.drain(worker);
        return;
      }
      this.standbys.push(worker);
      this.standbyCrashes = 0;
      this.log.info(`standby ${worker.id} (pid ${worker.pid}) ready`);
    } catch (err) {
      this.standbysStarting--;
      if (err instanceof AbortedError || !this.running) return;
      this.standbyCrashes++;
      this.log.warn(`standby failed to start: ${errorMessage(err).split('\n')[0]}`);
      this.replenishStandbys();
    }
  }

  private scheduleReplacement(slot: Slot, delayMs?: number): void {
    if (!this.running || slot.retryTimer) return;
    const delay = delayMs ?? backoff(slot.consecutiveCrashes);
    slot.nextRetryAt = Date.now() + delay;
    slot.backoffMs = delay;
    slot.retryTimer = setTimeout(() => void this.replace(slot), delay);
  }

  private cancelRetry(slot: Slot): void {
    if (slot.retryTimer) clearTimeout(slot.retryTimer);
    slot.retryTimer = null;
    slot.nextRetryAt = null;
  }

  private async replace(slot: Slot): Promise<void> {
    slot.retryTimer = null;
    slot.nextRetryAt = null;
    const replacing = slot.worker;
    slot.restarts++;
    try {
      const worker = await this.startWorker(slot, this.generation, this.suspendedWindow, 1);
      if (!this.running || slot.worker !== replacing) {
        // A command published something else meanwhile; this one is not needed.
        await this.drain(worker);
        return;
      }
      this.swapIn(slot, worker);
    } catch (err) {
      if (err instanceof AbortedError || !this.running) return;
      slot.consecutiveCrashes++;
      slot.lastExit = errorMessage(err);
      this.log.warn(`slot ${slot.index}: replacement failed: ${slot.lastExit.split('\n')[0]}`);
      if (slot.worker === replacing) this.scheduleReplacement(slot);
    }
  }
}

/** Exponential, capped, with jitter (50–100 % of the step) so crash-looping slots spread out. */
export function backoff(attempt: number): number {
  return Math.round(Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt) * (0.5 + Math.random() * 0.5));
}

function raceAbort<T>(promise: Promise<T>, signals: AbortSignal[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError('aborted'));
    for (const s of signals) {
      if (s.aborted) return onAbort();
      s.addEventListener('abort', onAbort, { once: true });
    }
    promise.then(resolve, reject).finally(() => {
      for (const s of signals) s.removeEventListener('abort', onAbort);
    });
  });
}

/** NAME copies the daemon's value (when set); NAME=value sets it. */
export function workerEnv(entries: string[], from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq >= 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    else if (from[entry] !== undefined) env[entry] = from[entry];
  }
  return env;
}
