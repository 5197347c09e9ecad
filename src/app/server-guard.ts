/**
 * What `serve()` does to a listening server: hold requests while suspended
 * (docs/lifecycle.md#suspension), count them, and drain gracefully on shutdown
 * (docs/lifecycle.md#draining-and-escalation).
 */
import type { EventEmitter } from 'node:events';
import type { Server, Socket } from 'node:net';
import { ENV } from '../ipc/worker-protocol.js';
import { ActiveResponses } from './active-responses.js';
import type { Nodesockd } from './api.js';
import { handoverChannel } from './handover-channel.js';
import { httpConnections, idleConnections } from './http-connections.js';
import { InflightReporter } from './inflight-reporter.js';
import { lingerOnClose } from './lingering-close.js';
import { ServerHandover } from './server-handover.js';
import { WebSocketCloser } from './websocket-close.js';

/** Events that start an HTTP request/response exchange on http, https and http2-compat servers. */
const REQUEST_EVENTS: ReadonlySet<string> = new Set(['request', 'checkContinue', 'checkExpectation']);
/** Events that hand a raw socket to the app; held while suspended but not counted in flight. */
const UPGRADE_EVENTS: ReadonlySet<string> = new Set(['upgrade', 'connect']);

/**
 * After the daemon swapped the published path, connections that resolved the old path a moment
 * earlier may still sit in the listen backlog; closing the listener would reset them. The
 * listener closes once no connection arrived for this long.
 */
const ACCEPT_QUIET_MS = 250;

/** `websocketCloseGrace` and `stopIdleTimeout` as the daemon passes them (defaults outside a daemon). */
function msFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  return raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : fallback;
}

/** The parts of `http.ServerResponse` / `http2.Http2ServerResponse` used here. */
interface TrackedResponse extends EventEmitter {
  readonly socket?: Socket | null;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  shouldKeepAlive?: boolean;
  finished?: boolean;
  writeHead(statusCode: number, headers: Record<string, string>): unknown;
  end(chunk: string): unknown;
}

/** The parts of `http.IncomingMessage` used here. */
interface HandedRequest {
  readonly complete: boolean;
  readonly socket: Socket | null;
  once(event: 'end', listener: () => void): unknown;
  push(chunk: unknown, encoding?: BufferEncoding): boolean;
}
interface UpgradeRequest {
  headers: Record<string, string | string[] | undefined>;
}

interface ClosableSession extends EventEmitter {
  readonly closed: boolean;
  readonly destroyed: boolean;
  close(): void;
}

interface HeldRequest {
  /** Answers a held request that will never reach the app because the worker is stopping. */
  readonly reject: () => void;
}

type Emit = (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;

function keepAliveOff(res: TrackedResponse): void {
  // Node then writes `Connection: close` and closes the connection after this response, so the
  // client (nginx) learns not to reuse it. HTTP/2 responses have no such flag; sessions get GOAWAY.
  if (!res.headersSent && 'shouldKeepAlive' in res) res.shouldKeepAlive = false;
}

/** HTTP/1 responses keep `finished` as a plain field; HTTP/2 ones expose a read-only getter. */
function isPlainFinishedFlag(res: TrackedResponse): boolean {
  return Object.getOwnPropertyDescriptor(res, 'finished')?.writable === true;
}

function serviceUnavailable(res: TrackedResponse): void {
  if (res.headersSent || res.writableEnded) return;
  keepAliveOff(res);
  res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '1' });
  res.end('Service Unavailable: the worker stopped before it was resumed\n');
}

/**
 * Hooks one server. Installed before `listen()` and removed again if listening fails, so a failed
 * `serve()` leaves the server as it found it.
 */
/** How a {@link ServerGuard} is used. */
export interface GuardOptions {
  /** After the drain, exit the process once the server has closed (`serve()`). */
  exitOnClose: boolean;
  /** Leave idle connections for the client to close (nginx upstream keepalive), see drain(). */
  clientClosesIdle: boolean;
  /**
   * `'serve'`: `serve()`'s server: held while suspended, drained on `'shutdown'` and SIGTERM.
   * `'preload'`: an app's own server on the worker's socket (preload-drain.ts): never held (the
   * app gates on resume itself), drained when the app closes it after a shutdown request, and
   * exactly as Node's otherwise.
   */
  mode: 'serve' | 'preload';
  /** Closes the listener (preload mode: Node's own close, from before the app's was wrapped). */
  closeServer?: () => void;
}

export class ServerGuard {
  readonly #server: Server;
  readonly #worker: Nodesockd;
  readonly #exitOnClose: boolean;
  readonly #mode: 'serve' | 'preload';
  readonly #closeServer: () => void;
  /** Leave idle connections for the client to close (nginx upstream keepalive), see drain(). */
  readonly #clientClosesIdle: boolean;
  #lastAccept = 0;
  readonly #reporter: InflightReporter;
  readonly #active = new ActiveResponses<TrackedResponse>();
  readonly #held = new Set<HeldRequest>();
  readonly #sessions = new Set<ClosableSession>();
  readonly #undo: Array<() => void> = [];
  /** Moves the connections to a successor (null: not a daemon's worker). */
  #handover: ServerHandover | null = null;
  readonly #webSockets = new WebSocketCloser();
  /** With pipelining only: each connection's latest response, and those responses' connection. */
  readonly #lastOf = new WeakMap<Socket, TrackedResponse>();
  readonly #socketOf = new WeakMap<TrackedResponse, Socket>();
  #inflight = 0;
  #draining = false;
  #serverClosed = false;
  /** Node's `closeIdleConnections`; absent on servers that have none (plain `net`, HTTP/2-only). */
  #originalSweep: (() => void) | undefined;
  #resolveClosed: () => void = () => {};
  /** Resolves when the server has closed and every connection has ended. */
  readonly closed: Promise<void>;

  constructor(server: Server, worker: Nodesockd, options: GuardOptions) {
    this.#clientClosesIdle = options.clientClosesIdle;
    this.#server = server;
    this.#worker = worker;
    this.#exitOnClose = options.exitOnClose;
    this.#mode = options.mode;
    this.#closeServer = options.closeServer ?? (() => server.close());
    this.#reporter = new InflightReporter(worker);
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  install(): void {
    this.#interceptEmit();
    this.#guardIdleSweep();
    if (this.#worker.managed) {
      const handover = new ServerHandover(
        this.#server,
        handoverChannel(),
        () => this.#active.snapshot(),
        () => this.#sessions.size,
      );
      this.#handover = handover;
      this.#undo.push(handover.unregister);
    }
    const onConnection = (socket: Socket): void => {
      this.#lastAccept = Date.now();
      this.#handover?.onConnection(socket);
    };
    this.#server.on('connection', onConnection);
    this.#undo.push(() => this.#server.off('connection', onConnection));
    const onSession = (session: ClosableSession): void => {
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      if (this.#draining) session.close();
    };
    this.#server.on('session', onSession);
    this.#undo.push(() => this.#server.off('session', onSession));
  }

  uninstall(): void {
    for (const undo of this.#undo.splice(0).reverse()) undo();
  }

  /** Called once listening: from now on `'shutdown'` drains and the server's close ends the process. */
  start(): void {
    this.#server.once('close', () => {
      this.#serverClosed = true;
      this.#resolveClosed();
      if (this.#draining) this.#finish();
    });
    if (this.#worker.managed) {
      this.#worker.once('shutdown', () => {
        const grace = msFromEnv(ENV.websocketCloseGrace, 1000);
        this.#webSockets.closeAfter(grace, grace);
      });
    }
    if (this.#mode === 'preload') return;
    this.#worker.once('shutdown', () => this.drain());
    if (this.#worker.managed) {
      // A daemon that adopted this worker without a channel to it (docs/lifecycle.md#adoption),
      // or any supervisor, asks with SIGTERM: drain the same way. A second SIGTERM, or the
      // daemon's SIGKILL after killTimeout, still ends the process.
      process.once('SIGTERM', () => {
        if (this.#draining) process.kill(process.pid, 'SIGTERM');
        else this.#worker.requestShutdown();
      });
    }
  }

  /**
   * Stop accepting, let in-flight requests finish, make clients drop their kept-alive
   * connections. Idempotent.
   */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    this.#reporter.start(this.#inflight);
    for (const socket of httpConnections(this.#server)) lingerOnClose(socket);
    for (const res of this.#active.snapshot()) {
      this.#handover?.holdEnd(res, true);
      if (!this.#keepsAlive(res)) this.#closeAfter(res);
    }
    for (const held of [...this.#held]) {
      this.#held.delete(held);
      held.reject();
    }
    for (const session of this.#sessions) if (!session.closed && !session.destroyed) session.close();
    if (this.#serverClosed) {
      this.#finish();
      return;
    }
    // http.Server#close() sweeps idle connections through the guarded closeIdleConnections below.
    if (this.#server.listening) this.#closeWhenQuiet();
    else this.#sweep();
    if (this.#clientClosesIdle) {
      // Idle connections nginx keeps are not waited for past stopIdleTimeout (nginx's own timer
      // would keep a stopping worker for its whole keepalive_timeout).
      setTimeout(() => this.#closeIdle(), msFromEnv(ENV.stopIdleTimeout, 3000)).unref();
    }
  }

  /** Connections that are to move keep alive; the others close after their response. */
  #keepsAlive(res: TrackedResponse): boolean {
    return this.#handover?.keepsAlive(res.socket ?? null) === true;
  }

  /** Closes the connections idle now (not those on their way to a successor). */
  #closeIdle(): void {
    for (const socket of idleConnections(this.#server)) {
      if (this.#handover?.isMoving(socket)) continue;
      socket.destroy();
    }
  }

  #closeWhenQuiet(): void {
    this.#lastAccept = Math.max(this.#lastAccept, Date.now());
    const check = (): void => {
      const quiet = Date.now() - this.#lastAccept;
      if (quiet >= ACCEPT_QUIET_MS) {
        if (this.#server.listening) this.#closeServer();
      } else {
        setTimeout(check, ACCEPT_QUIET_MS - quiet);
      }
    };
    setTimeout(check, ACCEPT_QUIET_MS);
  }

  #finish(): void {
    this.#reporter.flush(() => {
      if (!this.#exitOnClose) return;
      if (process.connected && typeof process.disconnect === 'function') process.disconnect();
      process.exit(0);
    });
  }

  /**
   * Requests are intercepted at `emit` rather than by moving the `'request'` listeners: that also
   * covers listeners added after `serve()`, keeps `once` listeners and listener order intact, and
   * counts every request before any app code sees it.
   */
  #interceptEmit(): void {
    const target = this.#server as unknown as { emit: Emit };
    const hadOwn = Object.hasOwn(target, 'emit');
    const own = hadOwn ? target.emit : undefined;
    const proto = Object.getPrototypeOf(target) as { emit: Emit };
    const guard = this;
    target.emit = function emit(this: unknown, event: string | symbol, ...args: unknown[]): boolean {
      // Looked up per call so that instrumentation patching the prototype later is still honoured.
      const next = own ?? proto.emit;
      if (typeof event === 'string') {
        if (REQUEST_EVENTS.has(event)) {
          return guard.#onRequest(args[0] as HandedRequest, args[1] as TrackedResponse, () =>
            next.call(this, event, ...args),
          );
        }
        if (event === 'upgrade') guard.#webSockets.track(args[0] as UpgradeRequest, args[1] as Socket);
        if (UPGRADE_EVENTS.has(event)) {
          return guard.#onUpgrade(args[1] as { destroy(): void }, () => next.call(this, event, ...args));
        }
      }
      return next.call(this, event, ...args);
    };
    this.#undo.push(() => {
      if (hadOwn) target.emit = own as Emit;
      else delete (target as { emit?: Emit }).emit;
    });
  }

  /**
   * Node's own idle sweep (run by `close()` since Node 19) treats a connection as idle as soon as
   * its response has been `end()`ed, even while the body is still being flushed to a slow client,
   * and destroys it: a large response would be cut off mid-drain. During the sweep such responses
   * are briefly shown as unfinished so that Node skips their connections; those then close like
   * any connection whose last response was already sent with keep-alive (see `#onRequest`).
   */
  #guardIdleSweep(): void {
    const target = this.#server as unknown as { closeIdleConnections?: () => void };
    const original = target.closeIdleConnections;
    if (typeof original !== 'function') return;
    const hadOwn = Object.hasOwn(target, 'closeIdleConnections');
    this.#originalSweep = () => original.call(target);
    target.closeIdleConnections = () => this.#sweep();
    this.#undo.push(() => {
      if (hadOwn) target.closeIdleConnections = original;
      else delete target.closeIdleConnections;
    });
  }

  #sweep(): void {
    if (this.#originalSweep === undefined) return;
    // An app's own server before any shutdown: exactly Node's behaviour.
    if (this.#mode === 'preload' && !this.#draining) {
      this.#originalSweep();
      return;
    }
    // Behind nginx with upstream keepalive, closing an idle connection races nginx sending a
    // request on it (a POST caught so is not retried: a 502). nginx stops using a connection
    // when a response says `Connection: close` or after its keepalive_timeout, so idle
    // connections are left to that; serve() set keepAliveTimeout past nginx's as the backstop.
    if (this.#clientClosesIdle && this.#draining) return;
    const flushing: TrackedResponse[] = [];
    for (const res of this.#active.snapshot()) {
      if (res.writableEnded && !res.writableFinished && isPlainFinishedFlag(res)) flushing.push(res);
    }
    for (const res of flushing) res.finished = false;
    try {
      this.#originalSweep();
    } finally {
      for (const res of flushing) res.finished = true;
    }
  }

  /**
   * Makes `res` close its connection, unless a later pipelined request on the same connection
   * is still to be answered: closing after an earlier response would drop that request, so the
   * last one closes instead (an earlier response this guard had set to close is set back).
   */
  #closeAfter(res: TrackedResponse): void {
    const socket = this.#socketOf.get(res);
    if (socket !== undefined && this.#lastOf.get(socket) !== res) return;
    keepAliveOff(res);
  }

  #onRequest(req: HandedRequest, res: TrackedResponse, dispatch: () => boolean): boolean {
    this.#inflight++;
    this.#active.add(res);
    // Pipelining (rare) is recorded when seen, so the common request allocates nothing here: a
    // request behind another response still attached to its connection.
    const socket = req.socket;
    const current = (socket as { _httpMessage?: TrackedResponse | null } | null)?._httpMessage;
    if (socket !== null && current && current !== res) {
      const earlier = this.#lastOf.get(socket) ?? current;
      if (this.#draining && this.#active.has(earlier) && !earlier.headersSent && 'shouldKeepAlive' in earlier)
        earlier.shouldKeepAlive = true;
      this.#socketOf.set(earlier, socket);
      this.#socketOf.set(res, socket);
      this.#lastOf.set(socket, res);
    }
    this.#handover?.onRequest(req.socket, res);
    this.#handover?.holdEnd(res, this.#draining);
    // A connection closed from now on waits for the client's close (lingering-close.ts).
    if ((this.#draining || this.#handover?.active) && 'shouldKeepAlive' in res) lingerOnClose(req.socket);
    res.once('close', () => {
      this.#active.delete(res);
      this.#inflight--;
      this.#reporter.update(this.#inflight);
      this.#handover?.afterResponse(req);
    });
    // During a drain every response closes its connection, unless the connection moves to a
    // successor. That is also how a connection ends whose last response went out with
    // keep-alive before the drain: closing it the moment it turns idle would race the client
    // reusing it (if no request comes, stopIdleTimeout or keepAliveTimeout ends it).
    if (this.#draining && !this.#keepsAlive(res)) this.#closeAfter(res);
    this.#reporter.update(this.#inflight);
    if (this.#mode === 'preload' || !this.#worker.suspended) return dispatch();
    this.#hold(
      () => {
        // A client that gave up while the request was held gets no app code run for it.
        if (this.#active.has(res)) dispatch();
      },
      () => serviceUnavailable(res),
    );
    return true;
  }

  #onUpgrade(socket: { destroy(): void }, dispatch: () => boolean): boolean {
    if (this.#mode === 'preload' || !this.#worker.suspended) return dispatch();
    this.#hold(dispatch, () => socket.destroy());
    return true;
  }

  #hold(release: () => void, reject: () => void): void {
    const held: HeldRequest = { reject };
    if (this.#draining) {
      reject();
      return;
    }
    this.#held.add(held);
    // From the first held request on, `status` shows the worker's in-flight count (held ones included).
    this.#reporter.start(this.#inflight);
    this.#worker.resumed.then(() => {
      // queueMicrotask, not a direct call: an exception in the app's handler must surface as an
      // uncaught exception, exactly as for a request that was never held, not as a rejection.
      if (this.#held.delete(held)) queueMicrotask(release);
    });
  }
}
