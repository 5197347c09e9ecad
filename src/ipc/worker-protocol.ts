/**
 * What the daemon and a worker say to each other over the Node child-process IPC channel.
 *
 * The plain strings are the contract of the original tool (docs/worker-library.md#the-contract): an app without the
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
/** Daemon → worker: an app message (`nodesockd send-msg`), emitted as `'message'` (name, data). */
export interface AppMessage {
  type: 'nodesockd:app-msg';
  name: string;
  data?: unknown;
}
/** Daemon → worker: an app request (`nodesockd send-req`); answered by one {@link AppReply}. */
export interface AppRequest {
  type: 'nodesockd:app-req';
  /** Unique per daemon; the reply carries it back. */
  id: number;
  name: string;
  data?: unknown;
}
/**
 * Worker → daemon: the answer to the {@link AppRequest} with the same id. A single reply has no
 * `stream`. A streamed reply (a handler returning an async iterable) is any number of frames with
 * `stream: 'item'`, one per item, then one frame with `stream: 'end'` (no data); an error frame
 * (`ok: false`) ends a stream early.
 */
export type AppReply =
  | { type: 'nodesockd:app-reply'; id: number; ok: true; data?: unknown; stream?: 'item' | 'end' }
  | { type: 'nodesockd:app-reply'; id: number; ok: false; error: string };

/** Worker → daemon: v1's `process.send('restart')`: a zero-downtime restart of every worker. */
export const MSG_RESTART = 'restart';

/**
 * Worker → daemon: an app message or request from this worker to others (`sendAppMessage`,
 * `sendAppRequest`); `workers` is a selector where `self` is the sender. A request is answered
 * by one {@link AppSendResult} with the same id.
 */
export interface AppSend {
  type: 'nodesockd:app-send';
  id: number;
  kind: 'message' | 'request';
  name: string;
  data?: unknown;
  workers?: string;
}
/** Daemon → worker: how an {@link AppSend} went: the per-worker results, or why it failed. */
export type AppSendResult =
  | { type: 'nodesockd:app-send-result'; id: number; ok: true; results: unknown[] }
  | { type: 'nodesockd:app-send-result'; id: number; ok: false; error: string };
export const MSG_APP_SEND = 'nodesockd:app-send';
export const MSG_APP_SEND_RESULT = 'nodesockd:app-send-result';

export const MSG_APP_MSG = 'nodesockd:app-msg';
export const MSG_APP_REQ = 'nodesockd:app-req';
export const MSG_APP_REPLY = 'nodesockd:app-reply';

/** Worker → daemon, every few seconds: how late its event loop ran (for metrics). */
export interface StatsMessage {
  type: 'nodesockd:stats';
  /** The 99th percentile of the event loop delay since the last report, in seconds. */
  eventLoopDelayP99: number;
  /** Its mean, in seconds. */
  eventLoopDelayMean: number;
}

export type WorkerToDaemon =
  | typeof MSG_ONLINE
  | typeof MSG_RESTART
  | BrokenMessage
  | InflightMessage
  | StatsMessage
  | AppReply
  | AppSend
  | ListenedElsewhereMessage;
export type DaemonToWorker =
  | typeof MSG_SHUTDOWN
  | typeof MSG_RESUME
  | AppMessage
  | AppRequest
  | AppSendResult
  | TlsMaterialMessage
  /** v1's `nodesockd send <msg>`: any other string, as the app's own message. */
  | (string & {});

/**
 * Daemon → worker: the PEM material of the `listen` entries that end TLS (fronts/tls-material.ts),
 * by entry index (null: a plain TCP entry). Its `cmd` starts with `NODE_`, so Node delivers it
 * as the process's 'internalMessage', not 'message': an app that logs every message it gets
 * never sees the private key. Sent before a worker's first TLS connection and on every reload.
 */
export const MSG_TLS = 'NODE_NODESOCKD_TLS';
export interface TlsPem {
  key: string;
  cert: string;
  ca?: string;
}
export interface TlsMaterialMessage {
  cmd: typeof MSG_TLS;
  version: number;
  /** The daemon runs with `debug`: the worker prints one line per failed TLS handshake. */
  debug: boolean;
  entries: (TlsPem | null)[];
}

export function isTlsMaterialMessage(m: unknown): m is TlsMaterialMessage {
  if (typeof m !== 'object' || m === null) return false;
  const { cmd, version, entries } = m as Partial<TlsMaterialMessage>;
  return (
    cmd === MSG_TLS &&
    typeof version === 'number' &&
    Array.isArray(entries) &&
    entries.every(
      (e) =>
        e === null ||
        (typeof e === 'object' &&
          typeof e.key === 'string' &&
          typeof e.cert === 'string' &&
          (e.ca === undefined || typeof e.ca === 'string')),
    )
  );
}

/**
 * Daemon → worker, with each connection's handle (pool/handoff.ts's `meta`): which `listen`
 * entry it came from, and whether the worker ends TLS on it.
 */
export interface FrontHandoffMeta {
  entry: number;
  tls: boolean;
}

export function isFrontHandoffMeta(m: unknown): m is FrontHandoffMeta {
  return (
    typeof m === 'object' &&
    m !== null &&
    Number.isInteger((m as { entry?: unknown }).entry) &&
    typeof (m as { tls?: unknown }).tls === 'boolean'
  );
}

/** Environment variables the daemon sets for each worker (besides `listenVar`). */
export const ENV = {
  socketPath: 'NODESOCKD_SOCKET_PATH',
  workerId: 'NODESOCKD_WORKER_ID',
  workerIndex: 'NODESOCKD_WORKER_INDEX',
  suspended: 'NODESOCKD_SUSPENDED',
  appName: 'NODESOCKD_APP_NAME',
  /** nginx's upstream `keepalive_timeout` in ms: how long nginx may reuse an idle connection. */
  upstreamKeepalive: 'NODESOCKD_UPSTREAM_KEEPALIVE_MS',
  /** The daemon's control socket: the worker reconnects there when its daemon is gone. */
  ipcFile: 'NODESOCKD_IPC_FILE',
  /** What the preload does: a comma-separated list of `drain`, `reconnect` (config `preload`). */
  preload: 'NODESOCKD_PRELOAD',
} as const;

export function isBrokenMessage(m: unknown): m is BrokenMessage {
  return (
    typeof m === 'object' &&
    m !== null &&
    (m as { type?: unknown }).type === 'nodesockd:broken' &&
    typeof (m as { reason?: unknown }).reason === 'string'
  );
}

export function isStatsMessage(m: unknown): m is StatsMessage {
  if (typeof m !== 'object' || m === null || (m as { type?: unknown }).type !== 'nodesockd:stats')
    return false;
  const { eventLoopDelayP99: p99, eventLoopDelayMean: mean } = m as Partial<StatsMessage>;
  return (
    typeof p99 === 'number' &&
    Number.isFinite(p99) &&
    p99 >= 0 &&
    typeof mean === 'number' &&
    Number.isFinite(mean) &&
    mean >= 0
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

function typeOf(m: unknown): unknown {
  return typeof m === 'object' && m !== null ? (m as { type?: unknown }).type : undefined;
}

/** An app message from the daemon (what the worker library turns into a `'message'` event). */
export function isAppMessage(m: unknown): m is AppMessage {
  return typeOf(m) === MSG_APP_MSG && typeof (m as { name?: unknown }).name === 'string';
}

/** Any object claiming to be an app request; its id and name are checked by the receiver. */
export function isAppRequestLike(
  m: unknown,
): m is { type: typeof MSG_APP_REQ; id?: unknown; name?: unknown; data?: unknown } {
  return typeOf(m) === MSG_APP_REQ;
}

/**
 * Worker → daemon, from the preload (app/listen-hint.ts): the app called `listen()` on something
 * other than its socket (`address`: a port, `host:port` or a path), the usual reason a worker
 * never comes online under nodesockd (daemon/worker/listen-hint.ts says how to fix it).
 */
export interface ListenedElsewhereMessage {
  type: 'nodesockd:listened-elsewhere';
  address: string;
}
export const MSG_LISTENED_ELSEWHERE = 'nodesockd:listened-elsewhere';

export function isListenedElsewhereMessage(m: unknown): m is ListenedElsewhereMessage {
  return typeOf(m) === MSG_LISTENED_ELSEWHERE && typeof (m as { address?: unknown }).address === 'string';
}
