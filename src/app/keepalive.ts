/**
 * Keep-alive timing of a worker's HTTP server against nginx's upstream keepalive.
 */
import type { Server } from 'node:net';
import { ENV } from '../ipc/worker-protocol.js';

/** nginx's upstream `keepalive_timeout` (ms), as the daemon passes it; undefined outside a daemon. */
export function upstreamKeepaliveMs(): number | undefined {
  const raw = process.env[ENV.upstreamKeepalive];
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
}

/**
 * Node closes idle keep-alive connections after 5 s by default, while nginx may reuse an idle
 * upstream connection for its whole keepalive_timeout (60 s by default): a request nginx sends
 * as Node closes is lost. The worker must therefore keep idle connections longer than nginx does.
 */
export function outlastUpstreamKeepalive(server: Server, upstreamMs: number): void {
  const http = server as Server & {
    keepAliveTimeout?: number;
    headersTimeout?: number;
    requestTimeout?: number;
  };
  if (typeof http.keepAliveTimeout !== 'number') return;
  const keepAlive = upstreamMs + 1000;
  if (http.keepAliveTimeout < keepAlive) http.keepAliveTimeout = keepAlive;
  if (typeof http.headersTimeout === 'number' && http.headersTimeout < keepAlive + 1000) {
    const limit =
      typeof http.requestTimeout === 'number' && http.requestTimeout > 0 ? http.requestTimeout : Infinity;
    http.headersTimeout = Math.min(keepAlive + 1000, limit);
  }
}
