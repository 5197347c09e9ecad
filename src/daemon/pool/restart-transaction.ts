import type { RestartResult } from '../../ipc/protocol';
import { errorMessage, type Logger } from '../../log';
import type { Publisher } from '../publisher';
import type { ManagedWorker } from '../worker/managed-worker';
import { type ConnectionHandover, type HandoverCounts, sumCounts } from './handover';
import { AbortedError, type Launcher } from './launcher';
import type { SlotRecovery } from './slot-recovery';
import type { Slot, SlotTable } from './slots';
import type { StandbyPool } from './standby-pool';

/** How long a restart waits for a replaced worker to say how its idle connections went. */
const HANDOVER_REPORT_WAIT_MS = 8000;

export interface RestartTransactionDeps {
  slots: SlotTable;
  standbys: StandbyPool;
  recovery: SlotRecovery;
  launcher: Launcher;
  /** Moves the replaced workers' connections to their successors; null when `handover` is off. */
  handover: ConnectionHandover | null;
  /** How many standbys the new generation has. */
  standbyCount: number;
  log: Logger;
  /** Starts one worker of the new generation, for a slot or (null) as a standby, until online. */
  start(slot: Slot | null, signal: AbortSignal): Promise<ManagedWorker>;
  /** The socket naming a reload asked for (cleared): published with this generation, or dropped. */
  takePendingPublisher(): Publisher | null;
  /** The new generation is published (the pool's suspended window follows it). */
  published(): void;
  /** The state file must be written. */
  changed(): void;
}

export interface RestartPlan {
  generation: number;
  /** The new slot workers stay suspended until `resume`. */
  suspended: boolean;
  /** Whether workers served before (what a failure leaves). */
  wasRunning: boolean;
}

/**
 * The zero-downtime restart as one transaction: the whole new generation (slots and standbys)
 * must come online before any published path changes, and the swap itself is all or nothing.
 * If anything fails, the new workers are stopped, the current generation stays as it was, and
 * this throws. Resolves once the old workers' idle connections have moved (or will close the
 * old way).
 */
export async function runRestartTransaction(
  deps: RestartTransactionDeps,
  plan: RestartPlan,
): Promise<RestartResult> {
  const { slots: table, launcher, log } = deps;
  const abort = new AbortController();
  const slots = [...table.list()];
  const targets: (Slot | null)[] = [...slots, ...Array.from({ length: deps.standbyCount }, () => null)];
  const results = await Promise.allSettled(
    targets.map((slot) =>
      deps.start(slot, abort.signal).catch((err: unknown) => {
        abort.abort();
        throw err;
      }),
    ),
  );
  const fresh = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find(
    (r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof AbortedError),
  );
  let handovers: Promise<HandoverCounts | null>[] = [];
  let reason: string | null = failed ? errorMessage(failed.reason) : abort.signal.aborted ? 'aborted' : null;
  if (reason === null) {
    try {
      const naming = deps.takePendingPublisher();
      if (naming) table.switchPublisher(naming);
      const replaced = table.publishAll(fresh.slice(0, slots.length));
      deps.published();
      for (const slot of slots) {
        deps.recovery.cancel(slot);
        slot.policy.reset();
        if (!plan.suspended) slot.worker?.resume();
      }
      // Told before 'shutdown': the old workers' connections go to the new ones.
      const handover = deps.handover;
      handovers = replaced.map((w) =>
        w && handover ? handover.begin(w, HANDOVER_REPORT_WAIT_MS) : Promise.resolve(null),
      );
      for (const w of replaced) if (w) void launcher.drain(w, 'replaced');
      for (const w of deps.standbys.replaceAll(fresh.slice(slots.length))) void launcher.drain(w, 'replaced');
    } catch (err) {
      reason = errorMessage(err);
    }
  }
  if (reason !== null) {
    deps.takePendingPublisher();
    await Promise.all(fresh.map((w) => launcher.drain(w, 'aborted')));
    // A crashed slot has no worker (vacated): say how many previous workers really serve.
    const serving = slots.filter((slot) => slot.worker !== null).length;
    const outcome = !plan.wasRunning
      ? 'no workers are running'
      : serving === slots.length
        ? 'the previous workers keep serving'
        : serving === 0
          ? 'no worker is serving (the previous ones had failed)'
          : `${serving} of ${slots.length} previous workers keep serving`;
    log.error(`restart failed; ${outcome}: ${reason}`);
    throw new Error(`restart failed, ${outcome}: ${reason}`);
  }
  deps.changed();
  const { generation } = plan;
  log.info(`generation ${generation} is serving${plan.suspended ? ' (suspended until resume)' : ''}`);
  const workers = slots.map((slot) => ({ slot: slot.index, id: slot.worker!.id, pid: slot.worker!.pid }));
  const connections = sumCounts(await Promise.all(handovers));
  if (handovers.length > 0 && connections.moved + connections.busy + connections.drained > 0) {
    log.info(
      `connections: ${connections.moved} moved to generation ${generation}, ${connections.busy} busy (move as their responses end), ${connections.drained} close the old way`,
    );
  }
  return { generation, workers, connections };
}
