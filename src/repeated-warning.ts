/**
 * A warning that remote clients can make happen at their own rate (a refused or closed
 * connection): the first one is logged at once, the ones after it are counted and summed up in
 * at most one line per interval, so the clients never set the daemon's log rate.
 */
export class RepeatedWarning {
  private count = 0;
  private lastAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;

  /** `line(n)` says it happened `n` times (1 for the first, then the count of an interval). */
  constructor(
    private readonly write: (line: string) => void,
    private readonly line: (n: number) => string,
    private readonly intervalMs: number,
  ) {}

  /** Counts one occurrence. */
  note(): void {
    const now = Date.now();
    if (this.timer === null && now - this.lastAt >= this.intervalMs) {
      this.lastAt = now;
      this.write(this.line(1));
      return;
    }
    this.count++;
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), Math.max(0, this.lastAt + this.intervalMs - now));
    this.timer.unref();
  }

  private flush(): void {
    this.timer = null;
    if (this.count === 0) return;
    this.lastAt = Date.now();
    this.write(
      `${this.line(this.count)} in the last ${this.intervalMs % 1000 === 0 ? `${this.intervalMs / 1000} s` : `${this.intervalMs} ms`}`,
    );
    this.count = 0;
  }
}
