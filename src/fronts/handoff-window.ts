/**
 * The `listen` front's handoffs that a worker has not confirmed yet. A descriptor sent cannot be
 * recalled (the worker would serve it after a pause), so each worker gets a small window of
 * unconfirmed handoffs, as node:cluster's round-robin primary gives one: a worker with a full
 * window gets no new connection, and what waits goes to the others. A worker whose oldest
 * handoff stays unconfirmed past the stall deadline is reported once (`onStalled`), to be
 * replaced; it stays stalled until it confirms one or is forgotten (it exited).
 *
 * Bookkeeping only: the front's queue of waiting connections (src/fronts/tcp-front.ts) is
 * what a settled handoff moves on, with no promise or timer per connection.
 */
export class HandoffWindow {
  /** Per worker id, when each unconfirmed handoff was sent, oldest first. */
  private readonly open = new Map<string, number[]>();
  private readonly stalledSince = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly size: number,
    private readonly stallMs: number,
    private readonly onStalled: (id: string, unconfirmed: number) => void,
  ) {}

  /** Whether worker `id` may be sent one more connection now. */
  hasRoom(id: string): boolean {
    return !this.stalledSince.has(id) && (this.open.get(id)?.length ?? 0) < this.size;
  }

  /**
   * Counts one handoff to worker `id` as unconfirmed; call the function returned once it
   * settles, with whether the worker confirmed it (a confirmation ends a stall).
   */
  begin(id: string): (confirmed: boolean) => void {
    const sentAt = Date.now();
    let list = this.open.get(id);
    if (!list) {
      list = [];
      this.open.set(id, list);
    }
    list.push(sentAt);
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), Math.max(10, Math.min(1000, this.stallMs / 4)));
      this.timer.unref();
    }
    const mine = list;
    return (confirmed) => {
      if (confirmed) this.stalledSince.delete(id);
      const at = mine.indexOf(sentAt);
      if (at >= 0) mine.splice(at, 1);
      if (mine.length === 0 && this.open.get(id) === mine) this.open.delete(id);
    };
  }

  /** A worker that is gone: its entries go with it. */
  forget(id: string): void {
    this.open.delete(id);
    this.stalledSince.delete(id);
  }

  /** The stalled workers and since when (ms since the epoch). */
  stalled(): Record<string, number> {
    return Object.fromEntries(this.stalledSince);
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
