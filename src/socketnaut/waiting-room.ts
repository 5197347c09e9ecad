/**
 * The pool's accepted connections that wait for a worker (none runs, or the chosen one is still
 * starting). A waiting connection is read, up to {@link READ_LIMIT} bytes kept for its worker,
 * so that a client that leaves (a reset, or its FIN before it sent anything) is noticed and its
 * descriptor freed; a client that sent its request and then half-closed still waits for its
 * answer (src/net/relay.ts passes its end on). It is closed at its deadline; and what is closed
 * is said in rate-limited log lines.
 *
 * What was read goes first to the worker: written after the relay header, or sent along with
 * a handed-over descriptor ({@link WaitingRoom.detach} stops this process reading it first).
 */
import fs from 'node:fs';
import type net from 'node:net';
import tls from 'node:tls';
import type { PoolLogger } from './log.js';

/** Bytes read from one waiting connection before it is read no further (a client that leaves is then noticed only at its deadline). */
export const READ_LIMIT = 64 * 1024;
/** At most one log line per this many ms about closed connections (the counts add up in between). */
const LOG_INTERVAL_MS = 1000;

/** A quarter of this process's open-file limit, at most 1000 (1000 where the limit cannot be read). */
export function defaultMaxWaiting(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m) return Math.max(1, Math.min(1000, Math.floor(Number(m[1]) / 4)));
  } catch {
    // Not Linux: the fixed default.
  }
  return 1000;
}

interface Held {
  timer: NodeJS.Timeout;
  onData: (chunk: Buffer) => void;
  onEnd: () => void;
  onClose: () => void;
}

/**
 * A TCP socket's handle, as net.Socket drives it (`reading` says whether it reads now). A
 * `pauseOnConnect` socket's handle does not read; a waiting one is started as net's own
 * `_read` would, and stopped as `pauseOnConnect` does, before its descriptor is handed over.
 */
interface StreamHandle {
  reading?: boolean;
  readStart?: () => number;
  readStop?: () => number;
}

function handleOf(socket: net.Socket): StreamHandle | null {
  if (socket instanceof tls.TLSSocket) return null; // only ever relayed, through the TLS stream
  const handle = (socket as net.Socket & { _handle?: StreamHandle | null })._handle;
  return handle && typeof handle.readStart === 'function' && typeof handle.readStop === 'function'
    ? handle
    : null;
}

function startHandle(socket: net.Socket): void {
  const handle = handleOf(socket);
  if (!handle || handle.reading) return;
  handle.reading = true;
  handle.readStart?.();
}

function stopHandle(socket: net.Socket): void {
  const handle = handleOf(socket);
  if (!handle?.reading) return;
  handle.reading = false;
  handle.readStop?.();
}

/** Why the front closed a connection no worker took. */
type Closed = 'deadline' | 'full' | 'failed' | 'shutdown';

function concat(chunks: Buffer[] | undefined): Buffer | null {
  return chunks && chunks.length > 0 ? Buffer.concat(chunks) : null;
}

export class WaitingRoom {
  readonly #held = new Map<net.Socket, Held>();
  /** The bytes read from each socket, for its worker (they come first on its connection). */
  readonly #read = new WeakMap<net.Socket, Buffer[]>();
  readonly #log: PoolLogger;
  readonly #timeoutMs: number;
  #closed: Record<Closed, number> = { deadline: 0, full: 0, failed: 0, shutdown: 0 };
  #lastLog = 0;
  #logTimer: NodeJS.Timeout | null = null;

  constructor(options: { timeoutMs: number; log: PoolLogger }) {
    this.#timeoutMs = options.timeoutMs;
    this.#log = options.log;
  }

  get size(): number {
    return this.#held.size;
  }

  /**
   * Holds `socket` until {@link release}, reading it. The promise settles when it leaves
   * otherwise: its client left, or `deadline` (a `Date.now()` time) passed; it is closed then.
   */
  hold(socket: net.Socket, deadline: number): Promise<void> {
    return new Promise((resolve) => {
      if (socket.destroyed) {
        resolve();
        return;
      }
      const chunks = this.#read.get(socket) ?? [];
      this.#read.set(socket, chunks);
      let bytes = chunks.reduce((n, c) => n + c.length, 0);
      const leave = (): void => {
        if (this.#unhold(socket)) resolve();
      };
      const close = (why: 'deadline' | null): void => {
        if (!this.#held.has(socket)) return;
        if (why) this.#count(why);
        socket.destroy();
        leave();
      };
      const held: Held = {
        timer: setTimeout(() => close('deadline'), Math.max(0, deadline - Date.now())),
        onData: (chunk) => {
          chunks.push(chunk);
          bytes += chunk.length;
          // The stream buffers up to its high-water mark, then net stops reading the handle.
          if (bytes >= READ_LIMIT) socket.pause();
        },
        // A client that ends its side before it sent anything has left; one that sent its
        // request, then half-closed, waits for the answer.
        onEnd: () => {
          if (bytes === 0) close(null);
        },
        onClose: leave,
      };
      held.timer.unref();
      // Set before its end is read: net would otherwise end our side at the client's FIN.
      socket.allowHalfOpen = true;
      this.#held.set(socket, held);
      socket.on('data', held.onData);
      socket.once('end', held.onEnd);
      socket.once('close', held.onClose);
      if (bytes < READ_LIMIT) {
        socket.resume();
        startHandle(socket);
      }
    });
  }

  /** Takes `socket` out, paused (what comes meanwhile stays in its stream); its `hold()` promise never settles. */
  release(socket: net.Socket): void {
    this.#unhold(socket);
  }

  /** What was read from `socket` while it waited (null: nothing). */
  readFrom(socket: net.Socket): Buffer | null {
    return concat(this.#read.get(socket));
  }

  /**
   * Before `socket`'s descriptor goes to a child: stops this process reading it (as
   * `pauseOnConnect` would have) and returns all it read, its stream's buffer included. A
   * later {@link hold} reads it again.
   */
  detach(socket: net.Socket): Buffer | null {
    const chunks = this.#read.get(socket) ?? [];
    stopHandle(socket);
    if (socket.readableLength > 0) {
      for (let c = socket.read() as Buffer | null; c !== null; c = socket.read() as Buffer | null)
        chunks.push(c);
      // Taking the buffer may have restarted the handle; nothing is read before the next poll phase.
      stopHandle(socket);
      this.#read.set(socket, chunks);
    }
    return concat(chunks);
  }

  /**
   * Closes a connection no worker takes, counted in the log line: the room is full, the
   * workers tried (`connectAttempts`) all failed to take it, or the pool shuts down.
   */
  refuse(socket: { destroy(): void }, why: Exclude<Closed, 'deadline'>): void {
    this.#count(why);
    socket.destroy();
  }

  /** Stops holding; true when `socket` was held. */
  #unhold(socket: net.Socket): boolean {
    const held = this.#held.get(socket);
    if (!held) return false;
    this.#held.delete(socket);
    clearTimeout(held.timer);
    socket.removeListener('data', held.onData);
    socket.removeListener('end', held.onEnd);
    socket.removeListener('close', held.onClose);
    socket.pause();
    return true;
  }

  #count(why: Closed): void {
    this.#closed[why] += 1;
    if (this.#logTimer) return;
    const wait = this.#lastLog + LOG_INTERVAL_MS - Date.now();
    if (wait <= 0) this.#flushLog();
    else {
      this.#logTimer = setTimeout(() => this.#flushLog(), wait);
      this.#logTimer.unref();
    }
  }

  #flushLog(): void {
    this.#logTimer = null;
    this.#lastLog = Date.now();
    const { deadline, full, failed, shutdown } = this.#closed;
    this.#closed = { deadline: 0, full: 0, failed: 0, shutdown: 0 };
    const parts: string[] = [];
    if (deadline > 0) parts.push(`${deadline} that waited ${this.#timeoutMs} ms for a worker`);
    if (full > 0) parts.push(`${full} that found maxWaiting connections already waiting`);
    if (failed > 0) parts.push(`${failed} that every worker tried failed to take`);
    if (shutdown > 0) parts.push(`${shutdown} that no worker took before the shutdown`);
    if (parts.length > 0) this.#log.warn(`closed client connections: ${parts.join('; ')}`);
  }
}
