/**
 * `serve()`: the one call that turns any `net.Server` into a well-behaved nodesockd worker.
 */
import type { AddressInfo, ListenOptions, Server } from 'node:net';
import type { Nodesockd } from './api.js';
import { outlastUpstreamKeepalive, upstreamKeepaliveMs } from './keepalive.js';
import { guardedServers, shared } from './runtime.js';
import { ServerGuard } from './server-guard.js';

/** Options for {@link serve}. */
export interface ServeOptions {
  /**
   * Standalone only: the TCP port. Default: `PORT` from the environment when it is a port
   * number, else 3000. `0` picks a free port (see {@link ServeInfo.port}).
   */
  port?: number;
  /** Standalone only: the interface to bind. Default: Node's (all interfaces). */
  host?: string;
  /**
   * After a shutdown, exit the process with code 0 once the server has closed (all in-flight
   * requests done). Set to `false` to clean up first (await {@link ServeInfo.closed}) and exit
   * yourself. Default `true`.
   */
  exitOnClose?: boolean;
}

/** Where {@link serve} listens, and when it is done. */
export interface ServeInfo {
  /** `true` when listening on the daemon's socket, `false` on the standalone port. */
  readonly managed: boolean;
  /** The UNIX socket listened on; `undefined` standalone. */
  readonly socketPath: string | undefined;
  /** The TCP port listened on (the real one when `0` was asked); `undefined` when managed. */
  readonly port: number | undefined;
  /** `server.address()` once listening. */
  readonly address: string | AddressInfo | null;
  /** Resolves when the server has closed and its last connection has ended. Never rejects. */
  readonly closed: Promise<void>;
}

const DEFAULT_PORT = 3000;

function isPort(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 65535;
}

function portFromEnv(): number | undefined {
  const raw = process.env.PORT;
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  const port = Number(raw);
  return isPort(port) ? port : undefined;
}

function listenOptions(worker: Nodesockd, options: ServeOptions): ListenOptions {
  if (worker.managed && worker.socketPath !== undefined) return { path: worker.socketPath };
  if (options.port !== undefined && !isPort(options.port)) {
    throw new RangeError(`nodesockd: serve() option "port" must be an integer 0-65535, got ${options.port}`);
  }
  const port = options.port ?? portFromEnv() ?? DEFAULT_PORT;
  return options.host === undefined ? { port } : { port, host: options.host };
}

function listen(server: Server, options: ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(options);
  });
}

/**
 * Listen on the worker's socket (standalone: on a TCP port), report online, hold requests while
 * suspended and drain gracefully on shutdown.
 *
 * Works with any `net.Server`: `http`, `https`, `http2` (compatibility `'request'` API), and the
 * server of a framework, as long as it is not listening yet: pass `http.createServer(app)` for
 * Express or Koa (`app.callback()`), `fastify.server` after `await fastify.ready()`.
 * Request handlers may be attached before or after the call.
 *
 * Held while suspended: `'request'`, `'checkContinue'`, `'checkExpectation'`, `'upgrade'` and
 * `'connect'`. A raw HTTP/2 `'stream'` handler is not held: gate it with {@link suspend}.
 *
 * On `'shutdown'`: the listener is closed; each request still to be answered, and each one
 * arriving on a kept-alive connection, is answered with `Connection: close`. Under the daemon,
 * idle connections are left for nginx to close (it stops using them after its upstream
 * `keepalive_timeout`, `upstreamKeepaliveTimeout` in the config): closing them here would race
 * nginx sending a request on them. Standalone, idle connections are closed at once (never one
 * whose response is still being flushed). HTTP/2 sessions get GOAWAY; requests
 * still held because the worker was never resumed get a 503. In-flight counts are reported to
 * the daemon. When the last connection ends the process exits with code 0 (see
 * {@link ServeOptions.exitOnClose}); the daemon kills it if that takes longer than its
 * `shutdownTimeout`.
 *
 * @throws (rejects) if `serve()` was already called in this process, if the server is already
 * listening, or with the server's own error if it cannot listen (e.g. `EADDRINUSE`).
 *
 * @example
 * ```ts
 * import http from 'node:http';
 * import express from 'express';
 * import { serve } from 'nodesockd';
 * const app = express();
 * app.get('/', (req, res) => res.send('hello'));
 * await serve(http.createServer(app));
 * ```
 */
export async function serve(server: Server, options: ServeOptions = {}): Promise<ServeInfo> {
  const worker = shared.worker;
  if (shared.served) {
    throw new Error('nodesockd: serve() was already called in this process; a worker serves one server');
  }
  if (server.listening) {
    throw new Error(
      'nodesockd: serve() needs a server that is not listening yet, as it calls listen() itself',
    );
  }
  const target = listenOptions(worker, options);
  shared.served = true;
  const upstreamKeepalive = worker.managed ? upstreamKeepaliveMs() : undefined;
  if (upstreamKeepalive !== undefined) outlastUpstreamKeepalive(server, upstreamKeepalive);
  const guard = new ServerGuard(server, worker, {
    exitOnClose: options.exitOnClose ?? true,
    clientClosesIdle: upstreamKeepalive !== undefined,
    mode: 'serve',
  });
  // The preload leaves this server to serve(): one guard per server.
  guardedServers().add(server);
  guard.install();
  try {
    await listen(server, target);
  } catch (err) {
    guard.uninstall();
    shared.served = false;
    throw err;
  }
  guard.start();
  // A shutdown that arrived while the socket was being bound: this worker will never be used.
  if (shared.shutdownRequested) guard.drain();
  else worker.reportOnline();
  const address = server.address();
  return {
    managed: target.path !== undefined,
    socketPath: target.path,
    port: typeof address === 'object' && address !== null ? address.port : undefined,
    address,
    closed: guard.closed,
  };
}
