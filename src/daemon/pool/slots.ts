import type { Logger } from '../../log';
import type { Timer } from '../../supervise/clock';
import { RestartPolicy, type RestartPolicyOptions } from '../../supervise/restart-policy';
import type { PreparedLink, Publisher } from '../publisher';
import type { ManagedWorker } from '../worker/managed-worker';
import { isServing } from '../worker/worker-state';

export interface SlotFailure {
  at: number;
  /** The failed worker's error line (worker/error-line.ts), or null. */
  error: string | null;
  stderr: string[];
}

/** Sets which worker a slot has: the slot table's alone (not exported). */
let setWorker: (slot: Slot, worker: ManagedWorker | null) => void;

/**
 * One traffic-serving position: a published path and the worker behind it. Which worker it
 * has, and whether it still exists, only the SlotTable changes; the recovery bookkeeping below
 * only SlotRecovery (slot-recovery.ts). Nothing outside `daemon/pool/` sees a Slot: status and
 * health read the projection of status.ts.
 */
export class Slot {
  #worker: ManagedWorker | null = null;
  #removed = false;
  #instances = 0;
  restarts = 0;
  lastExit: string | null = null;
  /** The last failure: when, the stderr line that says why, its last stderr lines (SlotFailure). */
  lastFailure: SlotFailure | null = null;
  /** A replacement scheduled after a failure. */
  retry: { timer: Timer; at: number; delayMs: number } | null = null;
  /** A replacement is starting (so a second failure report does not start another). */
  replacing = false;
  readonly policy: RestartPolicy;

  static {
    setWorker = (slot, worker) => {
      slot.#worker = worker;
    };
  }

  constructor(
    readonly index: number,
    policy: RestartPolicyOptions,
  ) {
    this.policy = new RestartPolicy(policy);
  }

  /** The worker the published path points at (null while the slot has none alive). */
  get worker(): ManagedWorker | null {
    return this.#worker;
  }

  /** Scaled away: nothing may be published for it any more. */
  get removed(): boolean {
    return this.#removed;
  }

  /** Marks the slot scaled away (the table, as it drops the slot). */
  remove(): void {
    this.#removed = true;
  }

  /** The `{instance}` of the next worker's output prefix: how many workers this slot has had. */
  nextInstance(): number {
    return this.#instances++;
  }

  /** Whether a replacement is scheduled or starting. */
  get recovering(): boolean {
    return this.retry !== null || this.replacing;
  }
}

/**
 * The slots and what each publishes. The only code that points a published path at a worker
 * (through the Publisher) and the only code that changes which worker a slot has.
 */
export class SlotTable {
  private slots: Slot[] = [];

  constructor(
    count: number,
    private publisherNow: Publisher,
    private readonly policy: RestartPolicyOptions,
    private readonly log: Logger,
  ) {
    this.add(count);
  }

  get publisher(): Publisher {
    return this.publisherNow;
  }

  list(): readonly Slot[] {
    return this.slots;
  }

  get size(): number {
    return this.slots.length;
  }

  /** The slot whose published path points at this worker. */
  slotOf(worker: ManagedWorker): Slot | undefined {
    return this.slots.find((s) => s.worker === worker);
  }

  add(count: number): Slot[] {
    const added = Array.from({ length: count }, (_, i) => new Slot(this.slots.length + i, this.policy));
    this.slots.push(...added);
    return added;
  }

  /**
   * Removes the slots from `count` on (the highest first), unpublishing each before its
   * worker is let go, so nginx never gets a dangling link. Returns the removed slots and the
   * workers they released (the caller drains them).
   */
  truncate(count: number): { removed: Slot[]; released: ManagedWorker[] } {
    const removed = this.slots.splice(count).reverse();
    const released: ManagedWorker[] = [];
    for (const slot of removed) {
      slot.remove();
      this.publisherNow.unpublish(slot.index);
      if (slot.worker) released.push(slot.worker);
      setWorker(slot, null);
    }
    return { removed, released };
  }

  /**
   * Points the slot at the worker; returns the worker it replaces. Throws when the link
   * cannot be made, and the slot is then unchanged.
   */
  publish(slot: Slot, worker: ManagedWorker): ManagedWorker | null {
    if (slot.removed) throw new Error(`slot ${slot.index} no longer exists`);
    this.publisherNow.publish(slot.index, worker.socketPath);
    return this.assign(slot, worker);
  }

  /**
   * Publishes a whole generation, all or nothing: every link is prepared first; if one
   * cannot be, or a rename fails midway, the slots already switched are pointed back at
   * their previous workers and the error is thrown. Returns the replaced workers.
   */
  publishAll(workers: ManagedWorker[]): (ManagedWorker | null)[] {
    const prepared: PreparedLink[] = [];
    try {
      for (const [i, slot] of this.slots.entries())
        prepared.push(this.publisherNow.prepare(slot.index, workers[i]!.socketPath));
    } catch (err) {
      for (const link of prepared) this.publisherNow.discard(link);
      throw err;
    }
    const done: number[] = [];
    try {
      for (const link of prepared) {
        this.publisherNow.commit(link);
        done.push(link.slot);
      }
    } catch (err) {
      for (const link of prepared.slice(done.length + 1)) this.publisherNow.discard(link);
      for (const index of done) {
        const previous = this.slots[index]!.worker;
        try {
          if (previous) this.publisherNow.publish(index, previous.socketPath);
          else this.publisherNow.unpublish(index);
        } catch (undo) {
          this.log.error(`slot ${index}: could not point the link back: ${(undo as Error).message}`);
        }
      }
      throw err;
    }
    return this.slots.map((slot, i) => this.assign(slot, workers[i]!));
  }

  /** The slot's worker is gone (crashed): the link stays, pointing at a socket that refuses. */
  vacate(slot: Slot): void {
    setWorker(slot, null);
  }

  /** Removes every published path and forgets the workers (stop). */
  clear(): void {
    for (const slot of this.slots) {
      this.publisherNow.unpublish(slot.index);
      setWorker(slot, null);
    }
  }

  /** Switches to a new socket naming; the old published paths are removed. */
  switchPublisher(next: Publisher): void {
    for (const slot of this.slots) this.publisherNow.unpublish(slot.index);
    this.publisherNow = next;
  }

  /**
   * The worker that now serves the slot `old` was started for, if another than `old` and one
   * that takes connections (online or suspended): where a replaced worker's connections go.
   */
  successorOf(old: ManagedWorker): ManagedWorker | null {
    const now = this.slots.find((s) => s.index === old.startedFor)?.worker ?? null;
    return now !== null && now !== old && (now.state === 'online' || now.state === 'suspended') ? now : null;
  }

  /** Releases the slot workers that hold requests while suspended; returns how many. */
  resumeSuspended(): number {
    let resumed = 0;
    for (const slot of this.slots) {
      if (slot.worker?.state === 'suspended') {
        slot.worker.resume();
        resumed++;
      }
    }
    return resumed;
  }

  /** Sockets of the slot workers that accept connections, for the dev server. */
  servingSockets(): string[] {
    return this.slots.flatMap((s) => (s.worker && isServing(s.worker.state) ? [s.worker.socketPath] : []));
  }

  private assign(slot: Slot, worker: ManagedWorker): ManagedWorker | null {
    const previous = slot.worker;
    setWorker(slot, worker);
    this.log.info(`slot ${slot.index} -> worker ${worker.id} (pid ${worker.pid})`);
    return previous === worker ? null : previous;
  }
}
