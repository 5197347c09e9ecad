import type { ManagedWorker } from '../worker/managed-worker';
import type { WorkerRole } from '../worker/worker-state';
import type { Launcher } from './launcher';
import type { SlotTable } from './slots';
import type { StandbyPool } from './standby-pool';

/** A live worker with its role and the slot it serves (status, messaging, the state file). */
export interface PlacedWorker {
  worker: ManagedWorker;
  role: WorkerRole;
  slot: number | null;
}

/**
 * Every live worker's role, derived (never stored): serving when a slot publishes it, a
 * standby when the standby pool holds it, else draining or still starting.
 */
export function placeWorkers(launcher: Launcher, slots: SlotTable, standbys: StandbyPool): PlacedWorker[] {
  return launcher.all().map((worker) => {
    const slot = slots.slotOf(worker);
    const role: WorkerRole = slot
      ? 'serving'
      : standbys.has(worker)
        ? 'standby'
        : worker.state === 'draining'
          ? 'draining'
          : 'starting';
    return { worker, role, slot: slot?.index ?? null };
  });
}
