/**
 * The `listen` front's handoffs that a worker has not confirmed yet. A descriptor sent cannot be
 * recalled (the worker would serve it after a pause), so each worker gets a small window of
 * unconfirmed handoffs, as node:cluster's round-robin primary gives one: a worker with a full
 * window gets no new connection, and what waits goes to the others. A worker whose oldest
 * handoff stays unconfirmed past the stall deadline is reported once (`onStalled`), to be
 * replaced; it stays stalled until it confirms one or is forgotten (it exited).
 */
export class HandoffWindow {
  /** Per worker id, when each unconfirmed handoff was sent, oldest first. */
  private readonly open = new Map<string, number[]>();
  private readonly stalledSince = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  /** Resolved at the next settled handoff; one for all who wait. */
  private next: { promise: Promise<void>; resolve: () => void } | null = null;

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
      this.wake();
    }
  }

  /** Resolves when a handoff settles (a window may have room again). */
  settled(): Promise<void> {
    if (!this.next) {
      const next: { promise?: Promise<void>; resolve: () => void } = { resolve: () => undefined };
      next.promise = new Promise<void>((r) => {
        next.resolve = r;
      });
      this.next = { promise: next.promise, resolve: () => next.resolve() };
    }
    return this.next.promise;
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

  private wake(): void {
    this.next?.resolve();
    this.next = null;
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
