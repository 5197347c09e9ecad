/**
 * The `listen` front's handoffs that a worker has not confirmed yet. A descriptor sent cannot be
 * recalled (the worker would serve it after a pause), so each worker gets a small window of
 * unconfirmed handoffs, as node:cluster's round-robin primary gives one: a worker with a full
 * window gets no new connection, and what waits goes to the others. A worker whose oldest
 * handoff stays unconfirmed past the stall deadline is reported once (`onStalled`), to be
 * replaced; it stays stalled until it confirms one or is forgotten (it exited).
 *
 * A settled handoff frees one place, so it wakes one waiter, not all: woken all at once, every
 * connection that waits went through the targets again for each settle (with 64 clients and
 * `Connection: close`, 233 µs of daemon CPU per connection against 88 µs with 16). A waiter may
 * have stopped waiting (its retry pause came first): when the one woken took no place by the
 * next check phase, the next one is woken.
 */
/** Waiters kept before all are woken (most are then ones that stopped waiting). */
const MAX_WAITERS = 4096;

export class HandoffWindow {
  /** Per worker id, when each unconfirmed handoff was sent, oldest first. */
  private readonly open = new Map<string, number[]>();
  private readonly stalledSince = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  /** Who waits for a place, oldest first (some may have stopped waiting). */
  private readonly waiters: (() => void)[] = [];
  /** Whether a handoff started since the last waiter was woken. */
  private took = false;
  private chain: NodeJS.Immediate | null = null;

  constructor(
    private readonly size: number,
    private readonly stallMs: number,
    private readonly onStalled: (id: string, unconfirmed: number) => void,
  ) {}

  /** Whether worker `id` may be sent one more connection now. */
  hasRoom(id: string): boolean {
    return !this.stalledSince.has(id) && (this.open.get(id)?.length ?? 0) < this.size;
  }

  /** Runs `send` as one of worker `id`'s unconfirmed handoffs, until it settles. */
  async track(id: string, send: () => Promise<void>): Promise<void> {
    const sentAt = Date.now();
    this.took = true;
    const list = this.open.get(id) ?? [];
    list.push(sentAt);
    this.open.set(id, list);
    this.timer ??= setInterval(() => this.check(), Math.max(10, Math.min(1000, this.stallMs / 4)));
    this.timer.unref();
    try {
      await send();
      this.stalledSince.delete(id);
    } finally {
      list.splice(list.indexOf(sentAt), 1);
      if (list.length === 0 && this.open.get(id) === list) this.open.delete(id);
      this.wakeOne();
    }
  }

  /** Resolves when a place may be free for this waiter (a handoff settled, or a worker is gone). */
  settled(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.waiters.push(resolve);
      // Waiters that stopped waiting pile up only while nothing settles: then all are woken.
      if (this.waiters.length > MAX_WAITERS) this.wake();
    });
  }

  /** A worker that is gone: its entries go with it. */
  forget(id: string): void {
    this.open.delete(id);
    this.stalledSince.delete(id);
    this.wake();
  }

  /** The stalled workers and since when (ms since the epoch). */
  stalled(): Record<string, number> {
    return Object.fromEntries(this.stalledSince);
  }

  /** Wakes every waiter. */
  private wake(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  /** Wakes the oldest waiter; the next one too, at the check phase, if it took no place. */
  private wakeOne(): void {
    const resolve = this.waiters.shift();
    if (!resolve) return;
    this.took = false;
    resolve();
    this.chain ??= setImmediate(() => {
      this.chain = null;
      if (!this.took) this.wakeOne();
    });
  }

  private check(): void {
    const now = Date.now();
    for (const [id, list] of this.open) {
      const oldest = list[0];
      if (oldest === undefined || this.stalledSince.has(id) || now - oldest < this.stallMs) continue;
      this.stalledSince.set(id, oldest);
      this.onStalled(id, list.length);
    }
    if (this.open.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
