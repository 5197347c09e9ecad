/**
 * The pool's restart backoff: the one restart policy (src/supervise/restart-policy.ts) as the
 * pool uses it. `restartDelay.initial`/`max` are the policy's base and cap; no jitter (the
 * delays are the documented 100 ms, 200 ms, … up to 10 s); a worker that served for 10 s, or a
 * failure 10 s after the last retry, starts the count over. Also which worker takes a
 * connection (pure: no timers, no I/O).
 */
import { type Clock, systemClock } from '../supervise/clock.js';
import { RestartPolicy } from '../supervise/restart-policy.js';

/** A worker that served this long before it died (or failed this long after the last retry) resets the count. */
export const POOL_STABLE_AFTER_MS = 10_000;

/** Delays between restarts after failures: doubling from `initialMs` up to `maxMs`. */
export class RestartBackoff {
  readonly #policy: RestartPolicy;

  constructor(
    initialMs = 100,
    maxMs = 10_000,
    private readonly clock: Clock = systemClock,
  ) {
    this.#policy = new RestartPolicy({
      baseMs: initialMs,
      capMs: maxMs,
      stableAfterMs: POOL_STABLE_AFTER_MS,
      jitter: false,
    });
  }

  get failures(): number {
    return this.#policy.failures;
  }

  /** Records an unexpected exit after `ranForMs` of readiness (or -1 when it never got ready). */
  recordFailure(ranForMs: number): void {
    const ranFor = ranForMs < 0 ? null : ranForMs;
    this.#policy.record({
      kind: ranFor === null ? 'failed-start' : 'crash',
      at: this.clock.now(),
      ranForMs: ranFor,
    });
  }

  /** The delay before the next start (0 when nothing failed). */
  delayMs(): number {
    return this.#policy.currentDelay;
  }
}

export interface Candidate {
  connections: number;
  ready: boolean;
}

/**
 * The least-loaded worker (ready ones before starting ones at equal load; earlier in the
 * list wins a tie, so a caller that moves the chosen one to the end of its equals rotates).
 */
export function leastLoaded<T extends Candidate>(workers: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const w of workers) {
    if (
      best === undefined ||
      w.connections < best.connections ||
      (w.connections === best.connections && w.ready && !best.ready)
    )
      best = w;
  }
  return best;
}

export type Choice<T> = { kind: 'worker'; worker: T } | { kind: 'spawn' } | { kind: 'wait' };

/**
 * Socketnaut's rule, bounded: an idle worker if there is one; else a new worker while the pool
 * is below its maximum and fewer than `maxSpawning` are starting; else the least-loaded.
 */
export function chooseWorker<T extends Candidate>(
  workers: readonly T[],
  o: { max: number; starting: number; maxSpawning: number; maySpawn: boolean },
): Choice<T> {
  const best = leastLoaded(workers);
  if (best && best.connections === 0) return { kind: 'worker', worker: best };
  if (o.maySpawn && workers.length < o.max && o.starting < o.maxSpawning) return { kind: 'spawn' };
  if (best) return { kind: 'worker', worker: best };
  return { kind: 'wait' };
}
