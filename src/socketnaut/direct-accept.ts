/**
 * `reusePort` on the front's side: the front's server listens with SO_REUSEPORT (again, when
 * its `listen()` came first), every thread is told where to accept clients itself, and
 * `server.close()` stops them too, at once.
 */
import type net from 'node:net';
import type { PoolLogger } from './log.js';
import { type AcceptAddress, MSG_ACCEPT } from './protocol.js';
import { listenWithReusePort, type ReusePortListen, reusePortSupported } from './reuse-port.js';
import type { PoolWorker } from './spawn.js';
import type { WorkerState } from './worker-agent.js';

/** What direct accepting reads and sets of a worker. */
export interface DirectWorker {
  readonly state: WorkerState;
  direct: boolean;
  readonly proc: Pick<PoolWorker, 'isThread' | 'post'>;
}

export class DirectAccept {
  #address: AcceptAddress | null = null;
  readonly #reuse: ReusePortListen;
  readonly #log: PoolLogger;
  readonly #workers: () => Iterable<DirectWorker>;

  /** Null, with a warning, where this Node.js has no SO_REUSEPORT for TCP servers. */
  static for(
    server: net.Server,
    log: PoolLogger,
    workers: () => Iterable<DirectWorker>,
  ): DirectAccept | null {
    if (reusePortSupported()) return new DirectAccept(server, log, workers);
    log.warn(
      `reusePort needs Node.js 22.12 or 23.1 or later (this is ${process.version}): the front relays every connection`,
    );
    return null;
  }

  private constructor(server: net.Server, log: PoolLogger, workers: () => Iterable<DirectWorker>) {
    this.#reuse = listenWithReusePort(server);
    this.#log = log;
    this.#workers = workers;
    const original = server.close;
    const patched = (...args: unknown[]): net.Server => {
      if (this.#address !== null) this.#set(null);
      return Reflect.apply(original, server, args) as net.Server;
    };
    Object.defineProperty(server, 'close', { value: patched, configurable: true, writable: true });
  }

  /** Where the threads accept clients themselves, if they do. */
  get address(): AcceptAddress | null {
    return this.#address;
  }

  /** The front's server listens on `a`: the threads accept there too. */
  listening(a: net.AddressInfo | string | null): void {
    if (a === null || typeof a !== 'object') return;
    if (this.#reuse.used()) {
      if (this.#address?.host !== a.address || this.#address.port !== a.port)
        this.#set({ host: a.address, port: a.port });
    }
    // listen() came before the proxy (or was still looking its host up): listen again with SO_REUSEPORT.
    else if (!this.#reuse.seen())
      this.#reuse.relisten(a, (err) =>
        this.#log.warn(
          `reusePort: could not listen again on ${a.address}:${a.port} with SO_REUSEPORT (${err.message}): the front relays every connection`,
        ),
      );
  }

  /** Tells every thread where to accept clients itself (or, with null, to stop). */
  #set(accept: AcceptAddress | null): void {
    this.#address = accept;
    for (const w of this.#workers()) {
      if (accept === null) w.direct = false;
      if (w.state === 'exited' || w.state === 'draining' || !w.proc.isThread) continue;
      w.proc.post({ type: MSG_ACCEPT, accept });
    }
  }
}
