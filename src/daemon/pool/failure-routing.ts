import type { ManagedWorker } from '../worker/managed-worker';
import type { ExitInfo } from '../worker/worker-state';
import type { SlotRecovery } from './slot-recovery';
import type { SlotTable } from './slots';
import type { StandbyPool } from './standby-pool';

export interface FailureOwners {
  slots: SlotTable;
  standbys: StandbyPool;
  recovery: SlotRecovery;
}

/**
 * A worker's failure goes to whoever owns the worker: the standby pool, else the slot that
 * publishes it (slot recovery); a worker neither holds (draining, starting) is left alone.
 */
export function routeExit(owners: FailureOwners, worker: ManagedWorker, exit: ExitInfo): void {
  void owners.slots.publisher.removeSocketIfDead(worker.socketPath).catch(() => undefined);
  if (owners.standbys.onExit(worker, exit)) return;
  const slot = owners.slots.slotOf(worker);
  // The published worker died without being asked to: a crash.
  if (slot) owners.recovery.onCrash(slot, worker, exit);
}

/** A worker reported itself broken (or, with `why`, was seen stalled by the `listen` front). */
export function routeBroken(owners: FailureOwners, worker: ManagedWorker, why?: string): void {
  if (why === undefined && owners.standbys.onBroken(worker)) return;
  const slot = owners.slots.slotOf(worker);
  if (slot) owners.recovery.onBroken(slot, worker, why);
}
