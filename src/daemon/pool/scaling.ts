import type { UpstreamChange } from '../../ipc/protocol';
import { errorMessage, type Logger } from '../../log';
import type { Launcher } from './launcher';
import type { SlotRecovery } from './slot-recovery';
import type { Slot, SlotTable } from './slots';
import type { StandbyPool } from './standby-pool';

export interface ScalingDeps {
  slots: SlotTable;
  standbys: StandbyPool;
  recovery: SlotRecovery;
  launcher: Launcher;
  log: Logger;
  /** The app's name (nginx's upstream is named after it). */
  name: () => string;
  /** Records a new count in the pool's config. */
  setCount: (key: 'workers' | 'standby', count: number) => void;
  /** Starts and publishes workers for new slots if the pool runs; returns the failures. */
  fillNew: (slots: Slot[]) => Promise<unknown[]>;
}

/**
 * Changing the number of slots and standbys (`set-workers`, `set-standby`, a reload), and what
 * nginx's upstream must then list: removed slots lose their published path before their worker
 * drains, new ones are filled; nginx is not reloaded for us, so the change is said.
 */
export class Scaling {
  constructor(private readonly deps: ScalingDeps) {}

  /** Sets the number of slots; throws (after the change) when a new worker failed to start. */
  async setSlots(count: number): Promise<{ workers: number }> {
    const { slots, log } = this.deps;
    const before = slots.size;
    const failures: unknown[] = [];
    this.deps.setCount('workers', count);
    if (count < before) {
      const { removed, released } = slots.truncate(count);
      for (const slot of removed) this.deps.recovery.cancel(slot);
      for (const worker of released) void this.deps.launcher.drain(worker, 'surplus');
    } else if (count > before) {
      failures.push(...(await this.deps.fillNew(slots.add(count - before))));
    }
    log.info(`workers set to ${count} (was ${before})`);
    if (failures.length > 0) {
      throw new Error(
        `workers set to ${count}, but ${failures.length} new worker(s) failed to start (retrying with backoff): ${errorMessage(failures[0])}`,
      );
    }
    return { workers: count };
  }

  /** Sets the number of standbys; surplus standbys drain, oldest first, missing ones start. */
  setStandby(count: number): { standby: number } {
    this.deps.setCount('standby', count);
    this.deps.standbys.trim();
    this.deps.standbys.replenish();
    this.deps.log.info(`standby count set to ${count}`);
    return { standby: count };
  }

  /** The published path of every slot, as nginx's upstream must list them. */
  publishedPaths(): string[] {
    const { slots } = this.deps;
    return slots.list().map((s) => slots.publisher.publishedPath(s.index));
  }

  /** The upstream lines to add and remove since `before` (logged), or nothing when none. */
  upstreamChange(before: string[]): { nginx?: UpstreamChange } {
    const after = this.publishedPaths();
    const add = after.filter((p) => !before.includes(p));
    const remove = before.filter((p) => !after.includes(p));
    if (add.length + remove.length === 0) return {};
    const upstream = this.deps.name().replace(/[^A-Za-z0-9_]/g, '_');
    this.deps.log.warn(
      `nginx's upstream ${upstream} must change, then reload nginx (nginx -s reload):` +
        [...add.map((p) => ` add ${p}`), ...remove.map((p) => ` remove ${p}`)].join(';'),
    );
    return { nginx: { upstream, add, remove } };
  }
}
