/**
 * The pool's pure policies: restart backoff, and which worker takes a connection. No timers and
 * no I/O here, so they can be tested alone.
 */

/** Delays between restarts after failures: doubling from `initialMs` up to `maxMs`. */
export class RestartBackoff {
  #failures = 0;

  constructor(
    readonly initialMs = 100,
    readonly maxMs = 10_000,
    /** A worker that served this long before it died resets the count. */
    readonly resetAfterMs = 10_000,
  ) {}

  get failures(): number {
    return this.#failures;
  }

  /** Records an unexpected exit after `ranForMs` of readiness (or -1 when it never got ready). */
  recordFailure(ranForMs: number): void {
    if (ranForMs >= this.resetAfterMs) this.#failures = 0;
    this.#failures += 1;
  }

  /** The delay before the next start (0 when nothing failed). */
  delayMs(): number {
    if (this.#failures === 0) return 0;
    return Math.min(this.maxMs, this.initialMs * 2 ** (this.#failures - 1));
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
