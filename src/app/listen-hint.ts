/**
 * In the worker, through the preload: an app that calls `listen()` on something other than its
 * socket (`app.listen(3000)`) is the usual reason a worker never comes online under nodesockd.
 * Every `listen()` call is looked at as it is made; one on a port or another path is told to
 * the daemon at once (`nodesockd:listened-elsewhere`), which says how to fix it
 * (daemon/worker/listen-hint.ts). The call itself goes on unchanged.
 */
import path from 'node:path';
import { MSG_LISTENED_ELSEWHERE } from '../ipc/worker-protocol.js';
import { sendToDaemon } from './channel.js';
import { shared } from './runtime.js';
import { onListenCall } from './worker-servers.js';

/** At most this many different addresses are told (an app listening in a loop says it once). */
const MAX_TOLD = 8;

/**
 * What `listen(...args)` binds, as the message says it: a port (`3000`, `0` for any free one),
 * `host:port`, or a path; null for a handle or file descriptor (inherited, not chosen).
 */
export function listenTarget(args: unknown[]): string | null {
  const [first, second] = args;
  const port = (p: unknown, host: unknown) =>
    typeof host === 'string' && host !== '' ? `${host.includes(':') ? `[${host}]` : host}:${p}` : String(p);
  if (typeof first === 'object' && first !== null) {
    const options = first as { port?: unknown; host?: unknown; path?: unknown };
    if (typeof options.path === 'string') return options.path;
    if (typeof options.port === 'number' || typeof options.port === 'string')
      return port(options.port, options.host);
    return null;
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return first;
  if (typeof first === 'number' || typeof first === 'string') return port(first, second);
  return first === undefined || first === null || typeof first === 'function' ? '0' : null;
}

export function installListenHint(): void {
  const socketPath = shared.worker.socketPath;
  if (!shared.worker.managed || socketPath === undefined) return;
  const told = new Set<string>();
  onListenCall((_server, args) => {
    const address = listenTarget(args);
    const own = address !== null && path.resolve(address) === socketPath;
    if (address !== null && !own && !told.has(address) && told.size < MAX_TOLD) {
      told.add(address);
      sendToDaemon({ type: MSG_LISTENED_ELSEWHERE, address });
    }
  });
}
