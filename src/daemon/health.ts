/**
 * `nodesockd health` and the metrics listener's `/readyz`: the daemon serves when its workers
 * run and every slot has a worker, online or suspended (a suspended worker holds requests, it
 * does not refuse them), that is not stopped (a SIGSTOPped worker's socket still completes
 * connections, into its backlog, which nobody accepts), and whose published socket accepts a
 * connection now within the deadline: the path nginx connects to is connected to, as nginx
 * would. A slot that does not serve says why in one line, naming the worker and its pid.
 */
import type { DaemonStatus, HealthReport, SlotHealth, SlotStatus } from '../ipc/protocol';
import { slotFailureSummary } from '../ipc/slot-failure';
import { isStopped } from './proc';

function seconds(ms: number): string {
  return `${Math.max(0, Math.ceil(ms / 1000))} s`;
}

/** Why a slot has no worker: a crash loop waiting for its next try, or a worker starting. */
function noWorker(slot: SlotStatus, now: number): string {
  const last = slotFailureSummary(slot);
  if (slot.nextRetryAt !== null) {
    return `no worker online (crash loop: ${last ?? 'failed'}, next try in ${seconds(slot.nextRetryAt - now)})`;
  }
  return `no worker online (starting${last === null ? '' : `; last failure: ${last}`})`;
}

export async function checkHealth(
  status: Pick<DaemonStatus, 'running' | 'slots' | 'workers'>,
  opts: {
    closing: boolean;
    canConnect: (path: string) => Promise<boolean>;
    stopped?: (pid: number) => boolean;
    now?: number;
  },
): Promise<HealthReport> {
  if (opts.closing) return { healthy: false, reason: 'the daemon is shutting down', slots: [] };
  if (!status.running) {
    return { healthy: false, reason: 'the workers are stopped (`nodesockd start` starts them)', slots: [] };
  }
  const now = opts.now ?? Date.now();
  const stopped = opts.stopped ?? isStopped;
  const slots = await Promise.all(
    status.slots.map(async (slot): Promise<SlotHealth> => {
      const worker = status.workers.find((w) => w.id === slot.workerId && w.slot === slot.index);
      const base = { index: slot.index, workerId: worker?.id ?? null, state: worker?.state ?? null };
      if (!worker) return { ...base, problem: noWorker(slot, now) };
      const named = `worker ${worker.id}${worker.pid === null ? '' : ` (pid ${worker.pid})`}`;
      if (worker.state !== 'online' && worker.state !== 'suspended')
        return { ...base, problem: `${named} is ${worker.state}` };
      if (worker.pid !== null && stopped(worker.pid))
        return {
          ...base,
          problem: `${named} is stopped (SIGSTOP): it accepts no connection until it is continued (SIGCONT)`,
        };
      if (!(await opts.canConnect(slot.publishedPath)))
        return {
          ...base,
          problem: `${named} does not accept connections on ${slot.publishedPath}`,
        };
      return { ...base, problem: null };
    }),
  );
  const failing = slots.filter((s) => s.problem !== null);
  const first = failing[0];
  const more = failing.length > 1 ? ` (and ${failing.length - 1} more slot(s))` : '';
  return {
    healthy: failing.length === 0,
    reason: first ? `slot ${first.index}: ${first.problem}${more}` : null,
    slots,
  };
}
