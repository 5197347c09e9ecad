/**
 * Requests waiting for their replies, matched by id. Each one settles exactly once: by its
 * reply, by its deadline, or by {@link Correlator.settleWhere} when its peer is gone; whatever
 * comes after that (a late reply, a reply to an unknown id) finds nothing and is dropped.
 * Used by the control client (ipc/client.ts), by the daemon's app messaging
 * (daemon/messaging/messenger.ts) and by the worker's (app/app-messaging.ts).
 */
export class Correlator<T, Peer = undefined> {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { peer: Peer; timer: NodeJS.Timeout | undefined; resolve: (outcome: T) => void }
  >();

  /**
   * A new request to `peer`: its id (unique in this correlator) and its outcome. With a
   * deadline, `outcome()` is what it settles to when no reply came within `ms`.
   */
  open(peer: Peer, deadline?: { ms: number; outcome: () => T }): { id: number; outcome: Promise<T> } {
    const id = this.nextId++;
    const outcome = new Promise<T>((resolve) => {
      const timer = deadline ? setTimeout(() => this.settle(id, deadline.outcome()), deadline.ms) : undefined;
      this.pending.set(id, { peer, timer, resolve });
    });
    return { id, outcome };
  }

  /** The peer a request still waiting was sent to; undefined once it settled (or never was). */
  peerOf(id: number): Peer | undefined {
    return this.pending.get(id)?.peer;
  }

  /** Settles a request; false if it had settled already or never existed. */
  settle(id: number, outcome: T): boolean {
    const entry = this.pending.get(id);
    if (!entry) return false;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    entry.resolve(outcome);
    return true;
  }

  /** Settles every request still waiting on a matching peer. */
  settleWhere(match: (peer: Peer) => boolean, outcome: T): void {
    for (const [id, entry] of this.pending) if (match(entry.peer)) this.settle(id, outcome);
  }
}
