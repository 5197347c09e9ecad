import { errorMessage, type Logger } from '../../log';
import type { Clock, Timer } from '../../supervise/clock';
import { RestartPolicy, type RestartPolicyOptions } from '../../supervise/restart-policy';
import type { ManagedWorker } from '../worker/managed-worker';
import { type DrainReason, describeExit, type ExitInfo, isServing } from '../worker/worker-state';
import { AbortedError } from './launcher';

export interface StandbyDeps {
  /** How many standbys the config asks for. */
  wanted: () => number;
  /** Whether the pool is running (no standbys are started otherwise). */
  running: () => boolean;
  /** Starts one suspended worker without a slot and resolves when it is online. */
  start: () => Promise<ManagedWorker>;
  drain: (worker: ManagedWorker, reason: DrainReason) => Promise<void>;
  clock: Clock;
  log: Logger;
  policy: RestartPolicyOptions;
}

/**
 * Started, suspended, unpublished spares, promoted into a slot when its worker dies. Kept at
 * the wanted count; a standby that fails (at start, or dying later) counts against the same
 * restart policy as a slot, so a standby that dies soon after start is not respawned flat out.
 */
export class StandbyPool {
  private spares: ManagedWorker[] = [];
  private starting = 0;
  private timer: Timer | null = null;
  private readonly policy: RestartPolicy;

  constructor(private readonly deps: StandbyDeps) {
    this.policy = new RestartPolicy(deps.policy);
  }

  list(): readonly ManagedWorker[] {
    return this.spares;
  }

  has(worker: ManagedWorker): boolean {
    return this.spares.includes(worker);
  }

  /** Failures in a row (for status). */
  get failures(): number {
    return this.policy.failures;
  }

  /** Takes a spare that is ready to serve, for a slot. */
  take(): ManagedWorker | null {
    const spare = this.spares.find((w) => isServing(w.state));
    if (!spare) return null;
    this.spares = this.spares.filter((w) => w !== spare);
    this.replenish();
    return spare;
  }

  /** A standby exited: forget it, count the failure, start another after the backoff. */
  onExit(worker: ManagedWorker, exit: ExitInfo): boolean {
    if (!this.has(worker)) return false;
    this.spares = this.spares.filter((w) => w !== worker);
    this.deps.log.warn(`standby ${worker.id} (pid ${worker.pid}) ${describeExit(exit)}`);
    this.fail(worker);
    return true;
  }

  /** A standby reported itself broken: drained, and counted like a crash. */
  onBroken(worker: ManagedWorker): boolean {
    if (!this.has(worker)) return false;
    this.spares = this.spares.filter((w) => w !== worker);
    void this.deps.drain(worker, 'broken');
    this.fail(worker);
    return true;
  }

  /** Installs a new generation's standbys; returns the previous ones for draining. */
  replaceAll(fresh: ManagedWorker[]): ManagedWorker[] {
    const old = this.spares;
    this.spares = fresh;
    this.policy.reset();
    this.replenish();
    return old;
  }

  /** Drains spares above the wanted count, oldest first. */
  trim(): void {
    const surplus = this.spares.length - this.deps.wanted();
    if (surplus <= 0) return;
    for (const w of this.spares.splice(0, surplus)) void this.deps.drain(w, 'surplus');
  }

  /** Stops replenishing and returns the spares (the caller drains or detaches them). */
  clear(): ManagedWorker[] {
    this.deps.clock.clearTimeout(this.timer);
    this.timer = null;
    const all = this.spares;
    this.spares = [];
    this.policy.reset();
    return all;
  }

  /** Starts standbys until there are as many as wanted, after the backoff of recent failures. */
  replenish(delayMs = 0): void {
    if (!this.deps.running() || this.timer) return;
    if (this.deps.wanted() - this.spares.length - this.starting <= 0) return;
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = null;
      const missing = this.deps.wanted() - this.spares.length - this.starting;
      for (let i = 0; i < missing; i++) void this.startOne();
    }, delayMs);
  }

  private fail(worker: ManagedWorker | null): void {
    const now = this.deps.clock.now();
    const onlineAt = worker?.onlineAt ?? null;
    const delay = this.policy.record({
      kind: worker ? 'crash' : 'failed-start',
      at: now,
      ranForMs: onlineAt === null ? null : now - onlineAt,
    });
    this.deps.log.info(`standbys: next start in ${delay} ms (${this.policy.failures} failures in a row)`);
    this.replenish(delay);
  }

  private async startOne(): Promise<void> {
    this.starting++;
    let worker: ManagedWorker;
    try {
      worker = await this.deps.start();
    } catch (err) {
      this.starting--;
      if (err instanceof AbortedError || !this.deps.running()) return;
      this.deps.log.warn(`standby failed to start: ${errorMessage(err).split('\n')[0]}`);
      this.fail(null);
      return;
    }
    this.starting--;
    if (!this.deps.running() || this.spares.length >= this.deps.wanted()) {
      await this.deps.drain(worker, 'surplus');
      return;
    }
    this.spares.push(worker);
    this.deps.log.info(`standby ${worker.id} (pid ${worker.pid}) ready`);
  }
}
