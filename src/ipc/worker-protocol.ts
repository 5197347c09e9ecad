/**
 * What the daemon and a worker say to each other over the Node child-process IPC channel.
 *
 * The plain strings are the contract of the original tool (SPEC §5.1): an app without the
 * library sends `'online'` and handles `'shutdown'` and `'resume'`. The library speaks the
 * same strings, plus a few namespaced objects the daemon understands and a plain app never sees.
 */

/** Worker → daemon: listening and ready (or, when suspended, ready to hold requests). */
export const MSG_ONLINE = 'online';
/** Daemon → worker: stop accepting, finish in-flight requests, exit. */
export const MSG_SHUTDOWN = 'shutdown';
/** Daemon → worker: release requests held while suspended. */
export const MSG_RESUME = 'resume';

export interface BrokenMessage {
  type: 'nodesockd:broken';
  reason: string;
}
export interface InflightMessage {
  type: 'nodesockd:inflight';
  count: number;
}
export type WorkerToDaemon = typeof MSG_ONLINE | BrokenMessage | InflightMessage;
export type DaemonToWorker = typeof MSG_SHUTDOWN | typeof MSG_RESUME;

/** Environment variables the daemon sets for each worker (besides `listenVar`). */
export const ENV = {
  socketPath: 'NODESOCKD_SOCKET_PATH',
  workerId: 'NODESOCKD_WORKER_ID',
  workerIndex: 'NODESOCKD_WORKER_INDEX',
  suspended: 'NODESOCKD_SUSPENDED',
  appName: 'NODESOCKD_APP_NAME',
  /** nginx's upstream `keepalive_timeout` in ms: how long nginx may reuse an idle connection. */
  upstreamKeepalive: 'NODESOCKD_UPSTREAM_KEEPALIVE_MS',
} as const;

export function isBrokenMessage(m: unknown): m is BrokenMessage {
  return (
    typeof m === 'object' &&
    m !== null &&
    (m as { type?: unknown }).type === 'nodesockd:broken' &&
    typeof (m as { reason?: unknown }).reason === 'string'
  );
}

export function isInflightMessage(m: unknown): m is InflightMessage {
  return (
    typeof m === 'object' &&
    m !== null &&
    (m as { type?: unknown }).type === 'nodesockd:inflight' &&
    Number.isInteger((m as { count?: unknown }).count)
  );
}
