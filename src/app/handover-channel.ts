/**
 * The worker's end of the connection handover (docs/lifecycle.md#connection-handover): one per
 * process (every copy of the library shares it through `globalThis`). The daemon says first
 * whether this worker has a successor ({@link MSG_HANDOVER_START}, before `'shutdown'`); then
 * {@link HandoverChannel.move} sends a connection's descriptor to the daemon and waits for the
 * answer. The descriptor stays open here until the successor has confirmed it took the
 * connection; without that answer in time, or with a refusal, the connection is taken back and
 * served here as before.
 */
import type net from 'node:net';
import {
  type HandoverMove,
  type HandoverReport,
  isHandoverMoved,
  isHandoverStart,
  MSG_HANDOVER_MOVE,
  MSG_HANDOVER_REPORT,
} from '../ipc/worker-protocol.js';
import { plainHandle, type RawHandle } from './http-connections.js';

/**
 * How long a moved connection may wait for the daemon's answer before it is taken back. Longer
 * than the daemon's own wait for the successor (pool/handover.ts), which is longer than the
 * successor's deadline to take it: whoever gives up does so after the one before it.
 */
const ANSWER_TIMEOUT_MS = 6000;

/** A server whose connections move (server-handover.ts). */
export interface HandoverParticipant {
  /** Starts moving; resolves with how its connections went (null: it was not handing over). */
  begin(): Promise<Omit<HandoverReport, 'cmd'> | null>;
}

interface Pending {
  socket: net.Socket;
  handle: RawHandle;
  /** Undoes {@link holdEnd}; true when the app ended the socket meanwhile. */
  release: () => boolean;
  timer: NodeJS.Timeout;
  resolve: (moved: boolean) => void;
}

export class HandoverChannel {
  #successor = false;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #participants = new Set<HandoverParticipant>();

  constructor() {
    process.on('internalMessage', (message: unknown) => {
      if (isHandoverStart(message)) void this.#start();
      else if (isHandoverMoved(message)) this.#settle(message.id, message.ok);
    });
  }

  /** The daemon named a successor for this worker's connections. */
  get active(): boolean {
    return this.#successor;
  }

  /**
   * Moves an idle connection to the successor. Reading stops at the descriptor first, so no
   * byte of a next request reaches this process. Resolves true once the successor has it (this
   * copy is closed then, without a FIN), false when it stays here (reading again).
   */
  move(socket: net.Socket): Promise<boolean> {
    const handle = plainHandle(socket);
    if (!this.#successor || handle === null || typeof process.send !== 'function' || !process.connected)
      return Promise.resolve(false);
    handle.readStop();
    // Node's own paths resume a socket by calling readStart (parserOnMessageComplete, resume()):
    // none may start reading while the descriptor is on its way.
    Object.defineProperty(handle, 'readStart', { value: () => 0, configurable: true, writable: true });
    socket.setTimeout(0);
    const release = holdEnd(socket);
    const id = this.#nextId++;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => this.#settle(id, false), ANSWER_TIMEOUT_MS);
      timer.unref();
      this.#pending.set(id, { socket, handle, release, timer, resolve });
      const message: HandoverMove = { cmd: MSG_HANDOVER_MOVE, id };
      try {
        process.send?.(message, handle as unknown as net.Socket, { keepOpen: true }, (err) => {
          if (err) this.#settle(id, false);
        });
      } catch {
        this.#settle(id, false);
      }
    });
  }

  /** A server whose connections move when the daemon names a successor; returns the undo. */
  register(participant: HandoverParticipant): () => void {
    this.#participants.add(participant);
    return () => this.#participants.delete(participant);
  }

  /** Moves every participant's connections, then tells the daemon how it went. */
  async #start(): Promise<void> {
    if (this.#successor) return;
    this.#successor = true;
    const total = { moved: 0, busy: 0, drained: 0 };
    const reports = await Promise.all([...this.#participants].map((p) => p.begin().catch(() => null)));
    for (const r of reports) {
      if (r === null) continue;
      total.moved += r.moved;
      total.busy += r.busy;
      total.drained += r.drained;
    }
    this.#report(total);
  }

  #report(counts: Omit<HandoverReport, 'cmd'>): void {
    if (typeof process.send !== 'function' || !process.connected) return;
    try {
      process.send({ cmd: MSG_HANDOVER_REPORT, ...counts } satisfies HandoverReport);
    } catch {
      // The daemon is gone; it counts nothing then.
    }
  }

  #settle(id: number, moved: boolean): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    const { socket, handle } = pending;
    delete (handle as { readStart?: unknown }).readStart;
    const endedMeanwhile = pending.release();
    if (moved) {
      // Closing this descriptor leaves the connection open: the successor holds its own.
      socket.destroy();
    } else if (!socket.destroyed) {
      handle.readStart();
      const keepAlive = (socket as unknown as { _server?: { keepAliveTimeout?: unknown } | null })._server
        ?.keepAliveTimeout;
      if (typeof keepAlive === 'number' && keepAlive > 0) socket.setTimeout(keepAlive);
      if (endedMeanwhile) socket.end();
    }
    pending.resolve(moved);
  }
}

/**
 * While a connection is on its way, an app's shutdown code may end it (stoppable,
 * http-terminator and terminus call `socket.end()` on idle sockets): that would send a FIN on
 * the connection the successor is taking. The end is held, and done only if the connection
 * stays here. Returns the undo, which says whether an end was asked for.
 */
function holdEnd(socket: net.Socket): () => boolean {
  let asked = false;
  const held = function heldEnd(this: net.Socket, ...args: unknown[]) {
    asked = true;
    const done = args.find((a) => typeof a === 'function') as (() => void) | undefined;
    if (done) queueMicrotask(done);
    return this;
  };
  const own = { end: Object.hasOwn(socket, 'end'), destroySoon: Object.hasOwn(socket, 'destroySoon') };
  const saved = { end: socket.end, destroySoon: (socket as { destroySoon?: unknown }).destroySoon };
  Object.assign(socket, { end: held, destroySoon: held });
  return () => {
    for (const key of ['end', 'destroySoon'] as const) {
      if (own[key]) Object.assign(socket, { [key]: saved[key] });
      else delete (socket as unknown as Record<string, unknown>)[key];
    }
    return asked;
  };
}

const KEY = Symbol.for('nodesockd.handover');

/** The process's handover channel (created on first use). */
export function handoverChannel(): HandoverChannel {
  const holder = globalThis as unknown as Record<symbol, HandoverChannel | undefined>;
  let channel = holder[KEY];
  if (channel === undefined) {
    channel = new HandoverChannel();
    holder[KEY] = channel;
  }
  return channel;
}
