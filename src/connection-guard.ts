/**
 * What every listener of the daemon does with the connections it accepts, so that no client
 * holds a descriptor for as long as it likes: a cap on open connections ({@link ConnectionCap}:
 * at the cap the oldest idle connection is closed, and a new one is refused only when every
 * open one is busy), and deadlines for relayed connections ({@link closeWhenSilent}).
 */
import type net from 'node:net';
import type { Logger } from './log';
import { RepeatedWarning } from './repeated-warning';

/** The open connections of one listener, oldest first, each idle or busy. */
export class ConnectionCap {
  /** Open connections in the order they came, each with whether it is idle. */
  private readonly open = new Map<net.Socket, boolean>();
  private readonly evicted: RepeatedWarning;
  private readonly refused: RepeatedWarning;

  constructor(
    private readonly max: number,
    label: string,
    log: Logger,
    intervalMs: number,
  ) {
    const at = `${label}: ${max} connections open (the cap)`;
    this.evicted = new RepeatedWarning(
      (line) => log.warn(line),
      (n) => `${at}; closed the oldest idle one${n > 1 ? ` ${n} times` : ''} for a new one`,
      intervalMs,
    );
    this.refused = new RepeatedWarning(
      (line) => log.warn(line),
      (n) => `${at}, none of them idle; refused ${n === 1 ? 'a new connection' : `${n} new connections`}`,
      intervalMs,
    );
  }

  /** Counts a new connection in, idle; false (the socket destroyed) when it is refused. */
  admit(socket: net.Socket): boolean {
    if (!this.hasRoom()) {
      this.refused.note();
      socket.destroy();
      return false;
    }
    this.add(socket);
    return true;
  }

  /** Below the cap, or made so by closing the oldest idle connection; false when none is idle. */
  hasRoom(): boolean {
    if (this.open.size < this.max) return true;
    for (const [oldest, idle] of this.open) {
      if (!idle) continue;
      this.evicted.note();
      this.open.delete(oldest);
      oldest.destroy();
      return true;
    }
    return false;
  }

  /** Counts a connection in, idle, whatever the cap (room was made for it with {@link hasRoom}). */
  add(socket: net.Socket): void {
    this.open.set(socket, true);
    socket.once('close', () => this.open.delete(socket));
  }

  /** Stops counting a connection, leaving it open (it moved on: identified, handed over). */
  release(socket: net.Socket): void {
    this.open.delete(socket);
  }

  /** Marks an open connection busy (never closed for another) or idle again. */
  busy(socket: net.Socket, busy: boolean): void {
    if (this.open.has(socket)) this.open.set(socket, !busy);
  }

  get size(): number {
    return this.open.size;
  }
}

/**
 * Closes a relayed connection that sends nothing for `firstMs` after it opened, then one with no
 * byte either way for `idleMs`. `onFirst` runs at its first byte. Adds a 'data' listener: call it
 * on a paused socket (or one already piped) so that it does not start the flow.
 */
export function closeWhenSilent(
  socket: net.Socket,
  firstMs: number,
  idleMs: number,
  onFirst?: () => void,
): void {
  socket.setTimeout(firstMs);
  socket.once('data', () => {
    socket.setTimeout(idleMs);
    onFirst?.();
  });
  socket.on('timeout', () => socket.destroy());
}
