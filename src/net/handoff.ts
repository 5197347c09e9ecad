/**
 * Handing accepted TCP connections to child processes, as node:cluster's round-robin
 * primary does: the socket's handle (its file descriptor) goes over the child's IPC
 * channel, and the child serves it. No byte passes through the sender afterwards, and the
 * child sees the client's own address.
 *
 * Sender side: {@link HandoffSender} (one per child). The sender keeps its copy of the handle
 * until the child confirms it took the socket, so a socket the child could not take (it
 * exited, its channel closed, or it refused) is still whole and can go to another child.
 * Receiver side: {@link acceptHandoffs}.
 *
 * The socket must not have been read from: accept it with `pauseOnConnect: true`.
 */
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { Correlator, type Waiting } from './correlator';

const MSG_HANDOFF = 'nodesockd:handoff';
const MSG_TAKEN = 'nodesockd:handoff-taken';

interface HandoffMessage {
  type: typeof MSG_HANDOFF;
  id: number;
  meta: unknown;
}
interface TakenMessage {
  type: typeof MSG_TAKEN;
  id: number;
  ok: boolean;
  error?: string;
}

function isMessage<T extends { type: string; id: number }>(value: unknown, type: T['type']): value is T {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { type?: unknown }).type === type &&
    typeof (value as { id?: unknown }).id === 'number'
  );
}

/**
 * What can be handed over: an accepted socket, or a bare descriptor received from another
 * process (a libuv `Pipe` or `TCP` handle, as a worker passes a connection it moves).
 */
export type Handoverable = net.Socket | { close(): void };

/** A socket sent and not yet confirmed (the one object a send allocates). */
class PendingHandoff implements Waiting<Error | null, Handoverable> {
  constructor(
    readonly peer: Handoverable,
    private readonly done: (err: Error | null) => void,
  ) {}

  settled(err: Error | null): void {
    if (err) {
      this.done(err);
      return;
    }
    // The child holds its own descriptor now: closing this copy leaves the connection open.
    const socket = this.peer;
    if (socket instanceof net.Socket) socket.destroy();
    else socket.close();
    this.done(null);
  }
}

const everyPeer = (): boolean => true;

/** Sends accepted sockets to one child process over its IPC channel. */
export class HandoffSender {
  readonly #child: ChildProcess;
  /** The sends waiting for the child's confirmation, by id (null: taken; an error: not). */
  readonly #pending = new Correlator<Error | null, Handoverable>();
  #closed: Error | null = null;

  constructor(child: ChildProcess) {
    if (typeof child.send !== 'function')
      throw new Error('HandoffSender: the child process has no IPC channel');
    this.#child = child;
    child.on('message', this.#onMessage);
    child.once('exit', (code, signal) => this.close(new Error(`the child exited (${signal ?? code})`)));
    child.once('disconnect', () => this.close(new Error('the child closed its IPC channel')));
  }

  /** Sockets sent and not yet confirmed. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * Hands `socket` to the child, with `meta` (any JSON value) for the child's callback.
   * Resolves once the child has the socket; this side's copy is closed then. Rejects, leaving
   * `socket` untouched, when the child could not take it, or when `signal` aborts first (the
   * send is forgotten then: a confirmation arriving after it finds nothing).
   */
  send(socket: Handoverable, meta?: unknown, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const id = this.hand(socket, meta, (err) => (err ? reject(err) : resolve()));
      signal?.addEventListener('abort', () => this.#settle(id, new Error(String(signal.reason))), {
        once: true,
      });
    });
  }

  /**
   * {@link send} with a callback, for a caller that hands many sockets (no promise per
   * socket): `done` is called once, with null when the child took the socket (this side's
   * copy is closed then), or with why not (the socket is untouched). Returns the send's id.
   */
  hand(socket: Handoverable, meta: unknown, done: (err: Error | null) => void): number {
    if (this.#closed) {
      process.nextTick(done, this.#closed);
      return 0; // no send has this id: an abort finds nothing
    }
    const id = this.#pending.add(new PendingHandoff(socket, done));
    const message: HandoffMessage = { type: MSG_HANDOFF, id, meta };
    try {
      this.#child.send(message, socket as net.Socket, { keepOpen: true }, (err) => {
        if (err) this.#settle(id, new Error(`handing a connection to the child failed: ${err.message}`));
      });
    } catch (err) {
      // Never from inside this call: the caller may be placing other sockets.
      process.nextTick(() => this.#settle(id, err instanceof Error ? err : new Error(String(err))));
    }
    return id;
  }

  /** Fails every unconfirmed send (their sockets stay open for the caller). */
  close(reason = new Error('the handoff channel was closed')): void {
    if (this.#closed) return;
    this.#closed = reason;
    this.#child.removeListener('message', this.#onMessage);
    this.#pending.settleWhere(everyPeer, reason);
  }

  #onMessage = (message: unknown): void => {
    if (!isMessage<TakenMessage>(message, MSG_TAKEN)) return;
    this.#settle(
      message.id,
      message.ok ? null : new Error(message.error ?? 'the child refused the connection'),
    );
  };

  #settle(id: number, err: Error | null): void {
    this.#pending.settle(id, err);
  }
}

const senders = new WeakMap<ChildProcess, HandoffSender>();

/**
 * The one sender of a child (its confirmations are matched by id: two senders on one channel
 * would take each other's). Null when the child has no IPC channel open.
 */
export function handoffSenderFor(child: ChildProcess): HandoffSender | null {
  if (!child.connected) return null;
  let sender = senders.get(child);
  if (!sender) {
    sender = new HandoffSender(child);
    senders.set(child, sender);
  }
  return sender;
}

/**
 * In the child: calls `onSocket` for every socket handed over by a {@link HandoffSender}.
 * `onSocket` may throw to refuse the socket (the sender then gives it to someone else).
 * Returns a function that stops accepting (later handoffs are refused).
 */
export function acceptHandoffs(onSocket: (socket: net.Socket, meta: unknown) => void): () => void {
  if (typeof process.send !== 'function') throw new Error('acceptHandoffs: this process has no IPC channel');
  let accepting = true;
  const reply = (message: TakenMessage): void => {
    try {
      process.send?.(message);
    } catch {
      // The sender is gone; it fails the send on its side.
    }
  };
  const onMessage = (message: unknown, handle: unknown): void => {
    if (!isMessage<HandoffMessage>(message, MSG_HANDOFF)) return;
    // A bare descriptor (a connection another worker moved) becomes a socket here.
    const socket =
      handle instanceof net.Socket || handle === undefined || handle === null
        ? (handle ?? undefined)
        : new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts);
    if (!socket) {
      reply({ type: MSG_TAKEN, id: message.id, ok: false, error: 'the connection closed in transit' });
      return;
    }
    if (!accepting) {
      reply({ type: MSG_TAKEN, id: message.id, ok: false, error: 'the child is shutting down' });
      socket.destroy();
      return;
    }
    try {
      onSocket(socket, message.meta);
      reply({ type: MSG_TAKEN, id: message.id, ok: true });
    } catch (err) {
      reply({
        type: MSG_TAKEN,
        id: message.id,
        ok: false,
        error: err instanceof Error ? err.message : String(err),
      });
      socket.destroy();
    }
  };
  process.on('message', onMessage);
  return () => {
    accepting = false;
  };
}
