/**
 * When a worker that failed may be started again: one rule for every way a worker fails (it
 * crashed, it never came online, it reported itself broken), for the daemon's slots and standbys
 * and for the pool library's workers alike (src/socketnaut/policy.ts: `restartDelay.initial`/`max` are
 * its `baseMs`/`capMs`, without jitter, as Socketnaut users expect exact delays).
 *
 * Exponential: 100 ms, 200 ms, 400 ms … capped at 30 s, each delay jittered to 50–100 % (unless
 * `jitter: false`) so crash-looping slots spread out. A worker that ran for `stableAfterMs`
 * before failing, or a failure that comes `stableAfterMs` after the previous retry, starts the
 * count over. After `standbyLimit` consecutive failures a slot stops taking standbys, so a crash
 * loop cannot burn through them as fast as they start.
 *
 * Pure: no timers and no clock of its own; the caller passes the time of each event.
 */

export type FailureKind = 'crash' | 'failed-start' | 'broken';

export interface Failure {
  kind: FailureKind;
  /** When it happened (ms, on the caller's clock). */
  at: number;
  /** How long the worker had been online when it failed; null if it never came online. */
  ranForMs: number | null;
}

export interface RestartPolicyOptions {
  baseMs?: number;
  capMs?: number;
  stableAfterMs?: number;
  standbyLimit?: number;
  /** A number in [0, 1); Math.random by default. */
  random?: () => number;
  /** Whether each delay is jittered to 50–100 % (default true). */
  jitter?: boolean;
}

export const RESTART_BACKOFF = {
  baseMs: 100,
  capMs: 30_000,
  stableAfterMs: 60_000,
  standbyLimit: 3,
} as const;

export class RestartPolicy {
  private readonly baseMs: number;
  private readonly capMs: number;
  private readonly stableAfterMs: number;
  private readonly standbyLimit: number;
  private readonly random: () => number;
  private readonly jitter: boolean;
  private consecutive = 0;
  private lastAt: number | null = null;
  private lastDelay = 0;
  private lastKind: FailureKind | null = null;

  constructor(options: RestartPolicyOptions = {}) {
    this.baseMs = options.baseMs ?? RESTART_BACKOFF.baseMs;
    this.capMs = options.capMs ?? RESTART_BACKOFF.capMs;
    this.stableAfterMs = options.stableAfterMs ?? RESTART_BACKOFF.stableAfterMs;
    this.standbyLimit = options.standbyLimit ?? RESTART_BACKOFF.standbyLimit;
    this.random = options.random ?? Math.random;
    this.jitter = options.jitter ?? true;
  }

  /** Counts a failure and returns the delay before the next start. */
  record(failure: Failure): number {
    const ranStably = failure.ranForMs !== null && failure.ranForMs >= this.stableAfterMs;
    const quietSince =
      this.lastAt === null ? false : failure.at - (this.lastAt + this.lastDelay) >= this.stableAfterMs;
    if (ranStably || quietSince) this.consecutive = 0;
    this.consecutive++;
    this.lastAt = failure.at;
    this.lastKind = failure.kind;
    this.lastDelay = this.delayFor(this.consecutive);
    return this.lastDelay;
  }

  /** Consecutive failures since the last stable run. */
  get failures(): number {
    return this.consecutive;
  }

  get lastFailure(): FailureKind | null {
    return this.lastKind;
  }

  /** The delay returned by the last record(), 0 before any. */
  get currentDelay(): number {
    return this.lastDelay;
  }

  /** Whether a standby may stand in after the failures so far (an isolated one, not a loop). */
  mayUseStandby(): boolean {
    return this.consecutive <= this.standbyLimit;
  }

  /** Forgets the failures (the slot or pool was stopped or restarted by a command). */
  reset(): void {
    this.consecutive = 0;
    this.lastAt = null;
    this.lastDelay = 0;
    this.lastKind = null;
  }

  private delayFor(n: number): number {
    const step = Math.min(this.capMs, this.baseMs * 2 ** Math.min(n - 1, 30));
    return this.jitter ? Math.round(step * (0.5 + this.random() * 0.5)) : step;
  }
}
