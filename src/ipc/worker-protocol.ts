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

/** The plain strings of the lifecycle contract (a raw app message must not fake one). */
export const LIFECYCLE_MESSAGES: ReadonlySet<string> = new Set([
  MSG_ONLINE,
  MSG_SHUTDOWN,
  MSG_RESUME,
  MSG_RESTART,
]);

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
 * Daemon → worker, with the listening handle of a `listen` entry whose workers accept
 * themselves (fronts/shared-listener.ts; app/shared-accept.ts). Internal (`NODE_`): apps never see it.
 */
export const MSG_SHARED_LISTENER = 'NODE_NODESOCKD_SHARED_LISTENER';
export interface SharedListenerMessage {
  cmd: typeof MSG_SHARED_LISTENER;
  entry: number;
  tls: boolean;
}

export function isSharedListenerMessage(m: unknown): m is SharedListenerMessage {
  if (typeof m !== 'object' || m === null) return false;
  const { cmd, entry, tls } = m as Partial<SharedListenerMessage>;
  return cmd === MSG_SHARED_LISTENER && typeof entry === 'number' && typeof tls === 'boolean';
}

/**
 * Daemon → worker, with each connection's handle (net/handoff.ts's `meta`): which `listen`
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
  /** `websocketCloseGrace` in ms: how long an app has to close its WebSockets after 'shutdown'. */
  websocketCloseGrace: 'NODESOCKD_WEBSOCKET_CLOSE_GRACE_MS',
  /** `stopIdleTimeout` in ms: how long a stopping worker with no successor leaves idle connections open. */
  stopIdleTimeout: 'NODESOCKD_STOP_IDLE_TIMEOUT_MS',
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
 * Connection handover (docs/lifecycle.md#connection-handover): when a worker is replaced by a
 * newer one, its kept-alive connections move to the successor through the daemon. Every message
 * has a `cmd` starting with `NODE_`, so Node delivers it as 'internalMessage': apps never see it.
 *
 * - daemon → old worker, before `'shutdown'`: {@link HandoverStart} (a successor takes its connections).
 * - old worker → daemon: {@link HandoverMove} with the connection's raw handle (nothing read from
 *   it since its last request ended), one per connection.
 * - daemon → old worker: {@link HandoverMoved}: the successor took it (the old worker closes its
 *   copy), or not (the old worker serves it on, closing it the old way).
 * - old worker → daemon: {@link HandoverReport} once every connection idle at `'shutdown'` is settled.
 * The hop from the daemon to the successor is net/handoff.ts's, with {@link MovedHandoffMeta}.
 */
export const MSG_HANDOVER_START = 'NODE_NODESOCKD_HANDOVER';
export const MSG_HANDOVER_MOVE = 'NODE_NODESOCKD_MOVE';
export const MSG_HANDOVER_MOVED = 'NODE_NODESOCKD_MOVED';
export const MSG_HANDOVER_REPORT = 'NODE_NODESOCKD_HANDOVER_REPORT';

export interface HandoverStart {
  cmd: typeof MSG_HANDOVER_START;
}
export interface HandoverMove {
  cmd: typeof MSG_HANDOVER_MOVE;
  id: number;
}
export interface HandoverMoved {
  cmd: typeof MSG_HANDOVER_MOVED;
  id: number;
  ok: boolean;
  error?: string;
}
/** How the connections a worker had at `'shutdown'` went, once its idle ones are settled. */
export interface HandoverReport {
  cmd: typeof MSG_HANDOVER_REPORT;
  /** Idle connections now served by the successor. */
  moved: number;
  /** Connections with a request in flight: each moves when its response has ended. */
  busy: number;
  /** Connections that cannot move (TLS, HTTP/2, pipelined, a refused move): they close the old way. */
  drained: number;
}
/** With a moved connection's handle (net/handoff.ts's `meta`), to the successor. */
export interface MovedHandoffMeta {
  moved: true;
  /** Date.now() after which the successor must refuse it (the old worker may have taken it back). */
  deadline: number;
}

function cmdOf(m: unknown): unknown {
  return typeof m === 'object' && m !== null ? (m as { cmd?: unknown }).cmd : undefined;
}
const count = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0;

export function isHandoverStart(m: unknown): m is HandoverStart {
  return cmdOf(m) === MSG_HANDOVER_START;
}
export function isHandoverMove(m: unknown): m is HandoverMove {
  return cmdOf(m) === MSG_HANDOVER_MOVE && count((m as { id?: unknown }).id);
}
export function isHandoverMoved(m: unknown): m is HandoverMoved {
  return (
    cmdOf(m) === MSG_HANDOVER_MOVED &&
    count((m as { id?: unknown }).id) &&
    typeof (m as { ok?: unknown }).ok === 'boolean'
  );
}
export function isHandoverReport(m: unknown): m is HandoverReport {
  if (cmdOf(m) !== MSG_HANDOVER_REPORT) return false;
  const r = m as Partial<HandoverReport>;
  return count(r.moved) && count(r.busy) && count(r.drained);
}
export function isMovedHandoffMeta(m: unknown): m is MovedHandoffMeta {
  return (
    typeof m === 'object' &&
    m !== null &&
    (m as { moved?: unknown }).moved === true &&
    typeof (m as { deadline?: unknown }).deadline === 'number'
  );
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
