import { errorMessage, type Logger } from '../../log';
import type { Clock } from '../../supervise/clock';
import type { FailureKind } from '../../supervise/restart-policy';
import type { ManagedWorker } from '../worker/managed-worker';
import { clip } from '../worker/spawn';
import { type DrainReason, describeExit, type ExitInfo } from '../worker/worker-state';
import { AbortedError, StartFailure } from './launcher';
import type { Slot, SlotTable } from './slots';
import type { StandbyPool } from './standby-pool';

/**
 * How much of a failed worker's stderr a slot keeps for `status --verbose` and `--json`: its
 * last lines, at most this many and this many characters in all (a status of 256 crash-looping
 * slots must still fit in one reply frame).
 */
const FAILURE_STDERR_LINES = 10;
const FAILURE_STDERR_CHARS = 2048;

/** The last lines of `lines` within both bounds. */
function lastLines(lines: string[]): string[] {
  const kept: string[] = [];
  let chars = 0;
  for (const line of lines.slice(-FAILURE_STDERR_LINES).reverse()) {
    chars += line.length + 1;
    if (chars > FAILURE_STDERR_CHARS) break;
    kept.unshift(line);
  }
  return kept;
}

export interface RecoveryDeps {
  slots: SlotTable;
  standbys: StandbyPool;
  running: () => boolean;
  suspended: () => boolean;
  /** Starts a worker for the slot and resolves when it is online (one attempt). */
  start: (slot: Slot) => Promise<ManagedWorker>;
  drain: (worker: ManagedWorker, reason: DrainReason) => Promise<void>;
  changed: () => void;
  clock: Clock;
  log: Logger;
}

/**
 * Keeps every slot served after its worker fails: a standby stands in at once for an
 * isolated failure; otherwise a replacement starts after the slot's restart policy says so.
 * A slot has at most one replacement scheduled or starting, however many failures it reports.
 */
export class SlotRecovery {
  constructor(private readonly deps: RecoveryDeps) {}

  /** A slot's worker exited without being asked to: a crash. */
  onCrash(slot: Slot, worker: ManagedWorker, exit: ExitInfo): void {
    this.deps.slots.vacate(slot);
    slot.lastExit = describeExit(exit);
    const error = worker.errorLine();
    this.noteFailure(slot, error, worker.lastStderr());
    const tail = worker.lastStderr().slice(-5);
    this.deps.log.warn(
      `slot ${slot.index}: worker ${worker.id} (pid ${worker.pid}) ${slot.lastExit}` +
        (error !== null ? `: ${error}` : '') +
        (tail.length > 0 ? `; last stderr: ${tail.join(' | ')}` : ''),
    );
    this.failed(slot, 'crash', worker);
  }

  /** A slot's worker reported itself broken; it keeps serving until its replacement is online. */
  onBroken(slot: Slot, worker: ManagedWorker, why = `reported broken: ${worker.brokenReason ?? ''}`): void {
    if (slot.recovering) return;
    slot.lastExit = why;
    this.noteFailure(slot, null, []);
    this.failed(slot, 'broken', worker);
  }

  /** A worker could not be started or published for the slot (start, scale-up, adoption fill). */
  onStartFailure(slot: Slot, err: unknown): void {
    slot.lastExit = clip(errorMessage(err), 4096);
    if (err instanceof StartFailure) this.noteFailure(slot, err.errorLine, err.stderr);
    else this.noteFailure(slot, null, []);
    this.failed(slot, 'failed-start', null);
  }

  private noteFailure(slot: Slot, error: string | null, stderr: string[]): void {
    slot.lastFailure = { at: this.deps.clock.now(), error, stderr: lastLines(stderr) };
  }

  /**
   * Starts and publishes a worker for each slot with `start` (start, scale-up, adoption fill);
   * a slot that fails retries with backoff. Returns the failures.
   */
  async fill(slots: Slot[], start: (slot: Slot) => Promise<ManagedWorker>): Promise<unknown[]> {
    const failures: unknown[] = [];
    await Promise.all(
      slots.map(async (slot) => {
        let worker: ManagedWorker;
        try {
          worker = await start(slot);
        } catch (err) {
          if (err instanceof AbortedError) return;
          failures.push(err);
          this.onStartFailure(slot, err);
          return;
        }
        try {
          this.swapIn(slot, worker);
        } catch (err) {
          failures.push(err);
          void this.deps.drain(worker, 'aborted');
          this.onStartFailure(slot, err);
        }
      }),
    );
    return failures;
  }

  /** Publishes the worker in its slot and drains the one it replaces. Throws if it cannot be published. */
  swapIn(slot: Slot, worker: ManagedWorker): void {
    this.cancel(slot);
    const previous = this.deps.slots.publish(slot, worker);
    if (!this.deps.suspended()) worker.resume();
    this.deps.changed();
    if (previous) void this.deps.drain(previous, 'replaced');
  }

  cancel(slot: Slot): void {
    if (slot.retry) this.deps.clock.clearTimeout(slot.retry.timer);
    slot.retry = null;
  }

  private failed(slot: Slot, kind: FailureKind, worker: ManagedWorker | null): void {
    const now = this.deps.clock.now();
    const onlineAt = worker?.onlineAt ?? null;
    const delay = slot.policy.record({ kind, at: now, ranForMs: onlineAt === null ? null : now - onlineAt });
    if (slot.policy.mayUseStandby() && this.promote(slot)) return;
    this.schedule(slot, delay);
  }

  /**
   * Puts a standby into the slot at once (it is already running). During a suspended window
   * the promoted worker stays suspended.
   */
  private promote(slot: Slot): boolean {
    if (!this.deps.running() || slot.removed) return false;
    const spare = this.deps.standbys.take();
    if (!spare) return false;
    slot.restarts++;
    this.deps.log.info(`slot ${slot.index}: promoting standby ${spare.id} (pid ${spare.pid})`);
    try {
      this.swapIn(slot, spare);
      return true;
    } catch (err) {
      this.deps.log.error(`slot ${slot.index}: ${errorMessage(err)}`);
      void this.deps.drain(spare, 'aborted');
      return false;
    }
  }

  private schedule(slot: Slot, delayMs: number): void {
    if (!this.deps.running() || slot.recovering || slot.removed) return;
    const timer = this.deps.clock.setTimeout(() => void this.replace(slot), delayMs);
    slot.retry = { timer, at: this.deps.clock.now() + delayMs, delayMs };
    this.deps.changed();
  }

  private async replace(slot: Slot): Promise<void> {
    slot.retry = null;
    slot.replacing = true;
    const replacing = slot.worker;
    slot.restarts++;
    let worker: ManagedWorker;
    try {
      worker = await this.deps.start(slot);
    } catch (err) {
      slot.replacing = false;
      if (err instanceof AbortedError || !this.deps.running() || slot.removed) return;
      this.deps.log.warn(`slot ${slot.index}: replacement failed: ${errorMessage(err).split('\n')[0]}`);
      if (slot.worker === replacing || slot.worker === null) this.onStartFailure(slot, err);
      return;
    }
    slot.replacing = false;
    const superseded = slot.worker !== null && slot.worker !== replacing;
    if (!this.deps.running() || slot.removed || superseded) {
      // A command published something else meanwhile (or the slot is gone): not needed.
      await this.deps.drain(worker, 'surplus');
      return;
    }
    try {
      this.swapIn(slot, worker);
    } catch (err) {
      this.deps.log.error(`slot ${slot.index}: ${errorMessage(err)}`);
      void this.deps.drain(worker, 'aborted');
      this.onStartFailure(slot, err);
    }
  }
}
