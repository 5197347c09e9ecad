/**
 * Every worker (the preload creates the runtime for all) tells the daemon how late its event
 * loop runs, for the `nodesockd_worker_event_loop_delay_seconds` metric: a histogram from
 * perf_hooks, summarised and reset every few seconds. The timer never keeps the process alive.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { StatsMessage } from '../ipc/worker-protocol.js';

const LOOP_DELAY_REPORT_MS = 5000;

export function reportLoopDelay(send: (message: StatsMessage) => void): void {
  const histogram = monitorEventLoopDelay({ resolution: 20 });
  histogram.enable();
  const timer = setInterval(() => {
    // Nanoseconds; a histogram with no sample yet reports NaN.
    const p99 = histogram.percentile(99) / 1e9;
    const mean = histogram.mean / 1e9;
    histogram.reset();
    if (Number.isFinite(p99) && Number.isFinite(mean)) {
      send({ type: 'nodesockd:stats', eventLoopDelayP99: p99, eventLoopDelayMean: mean });
    }
  }, LOOP_DELAY_REPORT_MS);
  timer.unref();
}
