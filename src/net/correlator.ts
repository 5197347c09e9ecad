/**
 * Requests waiting for their replies, matched by id. Each one settles exactly once: by its
 * reply, by its deadline, or by {@link Correlator.settleWhere} when its peer is gone; whatever
 * comes after that (a late reply, a reply to an unknown id) finds nothing and is dropped.
 * Used by the control client (ipc/client.ts), by the daemon's app messaging
 * (daemon/messaging/messenger.ts), by the worker's (app/app-messaging.ts) and by the handle
 * passing of the `listen` front and the process pool (net/handoff.ts).
 */

/** What waits for one reply: its peer, and what it does once settled. */
export interface Waiting<T, Peer> {
  readonly peer: Peer;
  settled(outcome: T): void;
}

/** A request of {@link Correlator.open}: a promise's resolve, and its deadline's timer. */
class Deferred<T, Peer> implements Waiting<T, Peer> {
  timer: NodeJS.Timeout | undefined;

  constructor(
    readonly peer: Peer,
    private readonly resolve: (outcome: T) => void,
  ) {}

  settled(outcome: T): void {
    clearTimeout(this.timer);
    this.resolve(outcome);
  }
}

export class Correlator<T, Peer = undefined> {
  private nextId = 1;
  private readonly pending = new Map<number, Waiting<T, Peer>>();

  /**
   * A new request to `peer`: its id (unique in this correlator) and its outcome. With a
   * deadline, `outcome()` is what it settles to when no reply came within `ms`.
   */
  open(peer: Peer, deadline?: { ms: number; outcome: () => T }): { id: number; outcome: Promise<T> } {
    const id = this.nextId++;
    const outcome = new Promise<T>((resolve) => {
      const waiting = new Deferred(peer, resolve);
      if (deadline) waiting.timer = setTimeout(() => this.settle(id, deadline.outcome()), deadline.ms);
      this.pending.set(id, waiting);
    });
    return { id, outcome };
  }

  /**
   * A new request whose waiting object is the caller's own: its id. No promise, timer or
   * closure is made here (a per-connection path: the caller's object is the one allocation).
   */
  add(waiting: Waiting<T, Peer>): number {
    const id = this.nextId++;
    this.pending.set(id, waiting);
    return id;
  }

  /** Requests still waiting. */
  get size(): number {
    return this.pending.size;
  }

  /** The peer a request still waiting was sent to; undefined once it settled (or never was). */
  peerOf(id: number): Peer | undefined {
    return this.pending.get(id)?.peer;
  }

  /** Settles a request; false if it had settled already or never existed. */
  settle(id: number, outcome: T): boolean {
    const waiting = this.pending.get(id);
    if (!waiting) return false;
    this.pending.delete(id);
    waiting.settled(outcome);
    return true;
  }

  /** Settles every request still waiting on a matching peer. */
  settleWhere(match: (peer: Peer) => boolean, outcome: T): void {
    for (const [id, waiting] of this.pending) if (match(waiting.peer)) this.settle(id, outcome);
  }
}
