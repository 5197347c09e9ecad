import { ENV } from '../../ipc/worker-protocol';
import { processStartTicks } from '../proc';
import { socketOwner } from '../socket-owner';
import type { DaemonState, WorkerRecord } from '../state-file';
import type { ManagedWorker } from '../worker/managed-worker';
import type { WorkerRole } from '../worker/worker-state';

/**
 * What the next daemon needs to take over the workers if this one dies or hands over: the
 * live workers with their roles, and how to tell each from a process that reused its pid.
 */
export function snapshotOf(
  pool: { running: boolean; suspended: boolean; generation: number },
  workers: { worker: ManagedWorker; role: WorkerRole; slot: number | null }[],
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
export async function whyNotAdoptable(
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
export function unlistedRecord(
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
