/**
 * The nginx-safe drain for apps that never call `serve()` (docs/worker-library.md#what-the-preload-does):
 * every HTTP(S) server that listens on the worker's socket gets a {@link ServerGuard} in
 * preload mode. Until the daemon asks the worker to stop, the server behaves exactly as Node's.
 * After a `'shutdown'` (or a SIGTERM the app does not handle), the app's own `server.close()`
 * stops accepting once the listen backlog is empty, lets in-flight requests finish, answers
 * requests on kept-alive connections with `Connection: close`, leaves idle connections for
 * nginx to close (they end at the latest `upstreamKeepaliveTimeout` + 1 s after their last
 * request), and calls `close()`'s callback when the last connection has ended: the app's
 * `process.exit(0)` then comes at the right time.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { outlastUpstreamKeepalive, upstreamKeepaliveMs } from './keepalive.js';
import { guardedServers, shared } from './runtime.js';
import { ServerGuard } from './server-guard.js';
import { socketServers } from './worker-servers.js';

type Close = (this: net.Server, callback?: (err?: Error) => void) => net.Server;

/** http, https and http2 (compat `'request'` API) servers; not raw `net`/`tls` ones. */
function isHttpServer(server: net.Server): boolean {
  return (
    server instanceof http.Server || server instanceof https.Server || server.listenerCount('request') > 0
  );
}

export function installPreloadDrain(): void {
  const worker = shared.worker;
  const socketPath = worker.socketPath;
  if (!worker.managed || socketPath === undefined) return;
  const upstream = upstreamKeepaliveMs();
  const servers = new Set<net.Server>();
  /** A SIGTERM is being handled by draining (the app has no SIGTERM listener of its own). */
  let terminating = false;
  const stopping = () => shared.shutdownRequested || terminating;

  const adopt = (server: net.Server): void => {
    if (guardedServers().has(server) || !isHttpServer(server)) return;
    guardedServers().add(server);
    if (upstream !== undefined) outlastUpstreamKeepalive(server, upstream);
    const own = Object.hasOwn(server, 'close') ? (server.close as Close) : undefined;
    const nodeClose = (): void => {
      (own ?? (Object.getPrototypeOf(server) as { close: Close }).close).call(server);
    };
    const guard = new ServerGuard(server, worker, {
      exitOnClose: false,
      clientClosesIdle: upstream !== undefined,
      mode: 'preload',
      closeServer: nodeClose,
    });
    guard.install();
    guard.start();
    servers.add(server);
    server.once('close', () => servers.delete(server));
    const close: Close = function close(this: net.Server, callback) {
      if (!stopping() || !this.listening) {
        return (own ?? (Object.getPrototypeOf(this) as { close: Close }).close).call(this, callback);
      }
      if (typeof callback === 'function') this.once('close', () => callback());
      guard.drain();
      return this;
    };
    server.close = close as net.Server['close'];
  };

  socketServers(socketPath).onServer(adopt);

  // A daemon that has no channel to the worker stops it with SIGTERM. An app that handles
  // SIGTERM itself decides what that means; otherwise its servers are drained as above and the
  // process then ends by SIGTERM, as it would have at once without this. A second SIGTERM
  // ends it at once.
  const die = (): void => {
    process.off('SIGTERM', onTerm);
    process.kill(process.pid, 'SIGTERM');
  };
  const onTerm = (): void => {
    if (terminating) {
      die();
      return;
    }
    if (process.listenerCount('SIGTERM') > 1) return;
    const open = [...servers].filter((s) => s.listening);
    if (open.length === 0) {
      die();
      return;
    }
    terminating = true;
    let left = open.length;
    for (const server of open) {
      server.close(() => {
        left--;
        if (left === 0) die();
      });
    }
  };
  process.on('SIGTERM', onTerm);
}
