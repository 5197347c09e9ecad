/**
 * Accepting connections as bare handles, as node:cluster's round-robin primary does: the
 * listening handle's `onconnection` gets the accepted TCP handle, and no `net.Socket` (two
 * streams, their state, an 'end' and a 'close' per connection) is made for a connection that
 * only passes through this process on its way to a worker. Handing the bare handle over is
 * also cheaper for the receiver: Node sends it as a native handle, with none of the
 * bookkeeping it keeps for a sent `net.Socket`. Measured with the daemon's `listen` front and
 * `Connection: close` (a connection per request): about a third less daemon CPU per connection.
 * The process pool's front takes its connections the same way.
 *
 * A handle is made a socket only when its bytes must pass through here ({@link Accepted.toSocket}:
 * the relay to an adopted worker or a pool thread, the pool's waiting room). The handle is not read from until then: the client's bytes
 * wait in the kernel, as with `pauseOnConnect`.
 */
import net from 'node:net';
import util from 'node:util';

/** The libuv TCP handle Node gives a listening handle's `onconnection`. */
export interface TcpHandle {
  close(callback?: () => void): void;
  getpeername(out: { address?: string; port?: number; family?: string }): number;
}

interface ListeningHandle {
  onconnection: (status: number, handle?: TcpHandle) => void;
}

/** One accepted connection, not read from, until it is handed over, relayed or closed. */
export class Accepted {
  #handle: TcpHandle | null;
  #remote: string | undefined | null = null;

  constructor(handle: TcpHandle) {
    this.#handle = handle;
  }

  /** Closed here, handed over, or made a socket: this object no longer owns the connection. */
  get destroyed(): boolean {
    return this.#handle === null;
  }

  /** The handle, for handing over (the receiver's copy is its own; close this one after). */
  get handle(): TcpHandle {
    if (!this.#handle) throw new Error('the connection is no longer held here');
    return this.#handle;
  }

  /** The client's address (as the kernel says; undefined if it has gone). */
  get remoteAddress(): string | undefined {
    if (this.#remote === null) {
      const out: { address?: string } = {};
      this.#remote = this.#handle && this.#handle.getpeername(out) === 0 ? out.address : undefined;
    }
    return this.#remote;
  }

  /** Closes the connection (a no-op once it is no longer held). */
  destroy(): void {
    const handle = this.#handle;
    this.#handle = null;
    handle?.close();
  }

  /** This process's copy was closed by whoever took the connection (a worker confirmed it). */
  released(): void {
    this.#handle = null;
  }

  /** The connection as a paused socket, for piping its bytes; this object no longer holds it. */
  toSocket(options: { allowHalfOpen: boolean }): net.Socket {
    const handle = this.handle;
    this.#handle = null;
    // pauseOnCreate: what net.Server does for `pauseOnConnect` (no read until resumed or piped).
    return new net.Socket({
      handle,
      allowHalfOpen: options.allowHalfOpen,
      readable: true,
      writable: true,
      pauseOnCreate: true,
    } as net.SocketConstructorOpts);
  }
}

/**
 * Takes the listening `server`'s accepted connections as {@link Accepted}: call it once the
 * server listens (its handle exists then, and no connection is taken before the next poll).
 * An accept error (EMFILE, ENFILE, ...) is emitted as the server's 'error', as Node does.
 */
export function acceptRaw(server: net.Server, onConnection: (connection: Accepted) => void): void {
  const listening = (server as unknown as { _handle?: ListeningHandle | null })._handle;
  if (!listening) throw new Error('acceptRaw: the server is not listening');
  listening.onconnection = (status, handle) => {
    if (status < 0 || !handle) {
      const name = status < 0 ? util.getSystemErrorName(status) : 'EINVAL';
      server.emit(
        'error',
        Object.assign(new Error(`accept ${name}`), { code: name, errno: status, syscall: 'accept' }),
      );
      return;
    }
    onConnection(new Accepted(handle));
  };
}
