/**
 * Time as the supervision policies see it (the daemon's, the pool library's). The daemon uses
 * the system clock; the policy tests drive a fake one (test/helpers/fake-pool.ts `FakeClock`),
 * so backoff and promotion rules are checked without waiting.
 */
export interface Timer {
  /** Lets the process exit while the timer is pending (a no-op on a fake clock). */
  unref(): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer | null | undefined): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => {
    if (timer) clearTimeout(timer as NodeJS.Timeout);
  },
};
