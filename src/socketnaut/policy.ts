/**
 * The pool's restart backoff: the one restart policy (src/supervise/restart-policy.ts) as the
 * pool uses it. `restartDelay.initial`/`max` are the policy's base and cap; no jitter (the
 * delays are the documented 100 ms, 200 ms, … up to 10 s); a worker that served for 10 s, or a
 * failure 10 s after the last retry, starts the count over. Which worker takes a connection is
 * src/net/routing.ts.
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
