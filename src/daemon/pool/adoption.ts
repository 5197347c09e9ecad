import { ENV } from '../../ipc/worker-protocol';
import { errorMessage, type Logger } from '../../log';
import { processStartTicks } from '../proc';
import { socketOwner } from '../socket-owner';
import type { DaemonState, WorkerRecord } from '../state-file';
import type { Launcher } from './launcher';
import type { PlacedWorker } from './roles';
import type { SlotTable } from './slots';
import type { StandbyPool } from './standby-pool';

/**
 * What the next daemon needs to take over the workers if this one dies or hands over: the
 * live workers with their roles, and how to tell each from a process that reused its pid.
 */
export function snapshotOf(
  pool: { running: boolean; suspended: boolean; generation: number },
  workers: PlacedWorker[],
): DaemonState {
  return {
    version: 1,
    daemonPid: process.pid,
    running: pool.running,
    suspended: pool.suspended,
    generation: pool.generation,
    workers: workers
      .filter(({ worker }) => worker.pid !== null && worker.state !== 'exited')
      .map(({ worker, role, slot }) => ({
        id: worker.id,
        pid: worker.pid!,
        socketPath: worker.socketPath,
        slot,
        role,
        suspended: worker.state === 'suspended',
        startedAt: worker.startedAt,
        generation: worker.generation,
        startTicks: processStartTicks(worker.pid!),
      })),
  };
}

/**
 * Why a recorded worker cannot be adopted, or null if it can: it must still run (same pid,
 * same start time), its socket must be where this config puts it, and answer.
 */
async function whyNotAdoptable(
  record: WorkerRecord,
  expectedSocket: string,
  canConnect: (path: string) => Promise<boolean>,
): Promise<string | null> {
  if (record.socketPath !== expectedSocket) return 'its socket is not where this config puts it';
  const ticks = processStartTicks(record.pid);
  if (ticks === null) return 'its process is gone';
  if (record.startTicks !== null && ticks !== record.startTicks)
    return 'its pid now belongs to another process';
  if (!(await canConnect(record.socketPath))) return 'its socket does not answer';
  return null;
}

/**
 * A record for a live worker the state file does not list (the file could not be written
 * before the last daemon died), found by the process that listens on its socket and was
 * started for it (socket-owner.ts), or null. It serves `slot` when a published link points at
 * its socket; otherwise it was a standby or draining, and is drained.
 */
function unlistedRecord(
  id: string,
  socketPath: string,
  slot: number | null,
  generation: number,
): WorkerRecord | null {
  const pid = socketOwner(socketPath, { [ENV.workerId]: id, [ENV.socketPath]: socketPath });
  if (pid === null) return null;
  return {
    id,
    pid,
    socketPath,
    slot,
    role: slot === null ? 'draining' : 'serving',
    suspended: false,
    startedAt: Date.now(),
    generation,
    startTicks: processStartTicks(pid),
  };
}

export interface AdoptionDeps {
  slots: SlotTable;
  standbys: StandbyPool;
  launcher: Launcher;
  /** How many standbys the config asks for. */
  standbyCount: number;
  canConnect: (socketPath: string) => Promise<boolean>;
  log: Logger;
}

/**
 * Takes over the live workers an earlier daemon left: the same pids keep serving in the same
 * slots; what is dead or no longer fits the config is dropped or drained. Returns how many
 * were adopted.
 */
export async function adoptWorkers(deps: AdoptionDeps, state: DaemonState): Promise<number> {
  const { slots, standbys, launcher, log } = deps;
  let adopted = 0;
  for (const record of state.workers) {
    const why = await whyNotAdoptable(record, slots.publisher.uniquePath(record.id), deps.canConnect);
    if (why) {
      log.info(`not adopting worker ${record.id} (pid ${record.pid}): ${why}`);
      continue;
    }
    let slot = record.slot !== null && record.role === 'serving' ? slots.list()[record.slot] : undefined;
    if (slot && (await publishedElsewhere(deps, slot.index, record.socketPath))) {
      // The link is the truth: a state file written before a switch (or not since) is out of date.
      log.info(`slot ${slot.index} no longer publishes worker ${record.id} (the state file is out of date)`);
      slot = undefined;
    }
    const worker = launcher.adopt(record, slot?.index ?? null);
    adopted++;
    if (slot && !slot.worker) {
      try {
        slots.publish(slot, worker);
        log.info(`slot ${slot.index}: adopted worker ${worker.id} (pid ${worker.pid})`);
        continue;
      } catch (err) {
        log.error(`slot ${slot.index}: ${errorMessage(err)}`);
      }
    } else if (record.role === 'standby' && standbys.list().length < deps.standbyCount) {
      standbys.replaceAll([...standbys.list(), worker]);
      log.info(`adopted standby ${worker.id} (pid ${worker.pid})`);
      continue;
    }
    log.info(`adopted worker ${worker.id} (pid ${worker.pid}) is not needed; draining it`);
    void launcher.drain(worker, 'surplus');
  }
  return adopted;
}

/** Whether the slot's published link points at another socket than `socketPath`, one that answers. */
async function publishedElsewhere(deps: AdoptionDeps, index: number, socketPath: string): Promise<boolean> {
  const target = deps.slots.publisher.currentTarget(index);
  return target !== null && target !== socketPath && (await deps.canConnect(target));
}

/**
 * The records of the workers behind live sockets of this naming that no state file listed (it
 * was stale), each found by the process listening on it; one a published link points at serves
 * that slot.
 */
function unlistedRecords(slots: SlotTable, sockets: string[], generation: number): WorkerRecord[] {
  const publisher = slots.publisher;
  return sockets.flatMap((socketPath) => {
    const id = publisher.workerIdOf(socketPath);
    const slot = slots.list().find((s) => !s.worker && publisher.currentTarget(s.index) === socketPath);
    const record = id ? unlistedRecord(id, socketPath, slot?.index ?? null, generation) : null;
    return record ? [record] : [];
  });
}

/**
 * A state to adopt from for the workers behind `sockets` that no state file listed, or null
 * when none is found; `pool` is what the stale file said (running, unsuspended without one).
 */
export function unlistedState(
  slots: SlotTable,
  sockets: string[],
  generation: number,
  pool: { running: boolean; suspended: boolean } | null,
): DaemonState | null {
  const workers = unlistedRecords(slots, sockets, generation);
  if (workers.length === 0) return null;
  return {
    version: 1,
    daemonPid: 0,
    running: pool?.running ?? true,
    suspended: pool?.suspended ?? false,
    generation,
    workers,
  };
}
