import type { SlotStatus, WorkerStatus } from '../../ipc/protocol';
import { readProcStats } from '../proc';
import { describeExit } from '../worker/worker-state';
import type { PlacedWorker } from './roles';
import type { SlotTable } from './slots';

/** What `status` shows of the pool: each slot, and each live worker with its process facts. */
export function poolStatus(
  table: SlotTable,
  live: PlacedWorker[],
): { slots: SlotStatus[]; workers: WorkerStatus[] } {
  const slots = table.list().map((s) => ({
    index: s.index,
    publishedPath: table.publisher.publishedPath(s.index),
    workerId: s.worker?.id ?? null,
    restarts: s.restarts,
    nextRetryAt: s.retry?.at ?? null,
    backoffMs: s.retry?.delayMs ?? (s.policy.failures > 0 ? s.policy.currentDelay : null),
    lastExit: s.lastExit,
    lastFailure: s.lastFailure,
  }));
  const workers = live.map(({ worker: w, role, slot }): WorkerStatus => {
    const stats = w.pid !== null ? readProcStats(w.pid) : null;
    return {
      id: w.id,
      slot,
      startedFor: w.startedFor,
      role,
      pid: w.pid,
      state: w.state,
      since: w.since,
      startedAt: w.startedAt,
      generation: w.generation,
      restarts: slot === null ? 0 : (table.list()[slot]?.restarts ?? 0),
      rssBytes: stats?.rssBytes ?? null,
      cpuSeconds: stats?.cpuSeconds ?? null,
      inflight: w.inflight,
      lastExit: w.exitInfo ? describeExit(w.exitInfo) : null,
      ...(w.listenedElsewhere.length > 0 && { listenedElsewhere: [...w.listenedElsewhere] }),
    };
  });
  workers.sort((a, b) => (a.slot ?? 1e9) - (b.slot ?? 1e9) || a.startedAt - b.startedAt);
  return { slots, workers };
}
