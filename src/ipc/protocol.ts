import { WORKER_ID_RE } from '../worker-id';
import * as z from '../zod';
import { escapeControlChars } from './framing';

/**
 * The control protocol spoken over the IPC file by the CLI (and any client) to the daemon:
 * newline-delimited JSON, one request → one reply carrying the same id
 * (docs/cli.md#the-control-protocol). {@link Commands} pairs each request with its reply, for
 * the client and the daemon alike.
 */

const restartOptions = z.strictObject({
  suspended: z.optional(z.boolean()),
  maxAttempts: z.optional(z.number().check(z.int(), z.minimum(1))),
});

import { APP_REQUEST_TIMEOUT_MAX_MS } from './limits';

export { APP_REQUEST_TIMEOUT_DEFAULT_MS, APP_REQUEST_TIMEOUT_MAX_MS } from './limits';

const sendMessage = z.strictObject({
  name: z.string().check(z.minLength(1), z.maxLength(256)),
  /** Any JSON value, handed to the app as is. */
  data: z.optional(z.unknown()),
  /** A worker selector (see daemon/messaging/selector.ts); default `all`, the serving workers. */
  workers: z.optional(z.string().check(z.maxLength(4096))),
});
/**
 * send-msg's data. `raw`: v1's `send <msg>`: the workers get `name` as a bare string on
 * `process.on('message')` (no data), not an app message object.
 */
const sendMessageCommand = z.extend(sendMessage, { raw: z.optional(z.literal(true)) });
const sendRequest = z.extend(sendMessage, {
  timeoutMs: z.optional(z.number().check(z.int(), z.minimum(1), z.maximum(APP_REQUEST_TIMEOUT_MAX_MS))),
});

/** `logs`: the workers' recent output the daemon keeps (daemon/log-history.ts). */
const logsQuery = z.strictObject({
  /** How many of the last lines (default 50); ignored with `after`. */
  lines: z.optional(z.number().check(z.int(), z.minimum(0), z.maximum(10_000_000))),
  /** Only this slot's lines (counted after filtering). */
  slot: z.optional(z.number().check(z.int(), z.minimum(0), z.maximum(255))),
  /** Following: the lines numbered after this, oldest first. */
  after: z.optional(z.number().check(z.int(), z.minimum(0))),
  /** Paging back: only lines numbered before this. */
  before: z.optional(z.number().check(z.int(), z.minimum(0))),
});

const commandSchemas = [
  z.strictObject({ id: z.number().check(z.int()), type: z.literal('status') }),
  z.strictObject({ id: z.number().check(z.int()), type: z.literal('config') }),
  z.strictObject({ id: z.number().check(z.int()), type: z.literal('health') }),
  z.strictObject({
    id: z.number().check(z.int()),
    type: z.literal('start'),
    data: z.optional(restartOptions),
  }),
  z.strictObject({
    id: z.number().check(z.int()),
    type: z.literal('restart'),
    data: z.optional(restartOptions),
  }),
  z.strictObject({ id: z.number().check(z.int()), type: z.literal('stop') }),
  z.strictObject({ id: z.number().check(z.int()), type: z.literal('resume') }),
  z.strictObject({ id: z.number().check(z.int()), type: z.literal('send-msg'), data: sendMessageCommand }),
  z.strictObject({ id: z.number().check(z.int()), type: z.literal('send-req'), data: sendRequest }),
  z.strictObject({ id: z.number().check(z.int()), type: z.literal('reload') }),
  z.strictObject({ id: z.number().check(z.int()), type: z.literal('logs'), data: z.optional(logsQuery) }),
  z.strictObject({ id: z.number().check(z.int()), type: z.literal('terminate') }),
  // restart --upgrade: hand the workers to the newer nodesockd installed on disk
  // (docs/lifecycle.md#daemon-handover-restart---upgrade).
  z.strictObject({
    id: z.number().check(z.int()),
    type: z.literal('handover'),
    data: z.strictObject({ version: z.string() }),
  }),
  z.strictObject({
    id: z.number().check(z.int()),
    type: z.literal('set-workers'),
    data: z.strictObject({ count: z.number().check(z.int(), z.minimum(1), z.maximum(256)) }),
  }),
  z.strictObject({
    id: z.number().check(z.int()),
    type: z.literal('set-standby'),
    data: z.strictObject({ count: z.number().check(z.int(), z.minimum(0), z.maximum(64)) }),
  }),
] as const;

/**
 * Not a command but an upgrade: a worker of an earlier daemon introducing itself in the first
 * frame of a connection, which then becomes its channel (docs/lifecycle.md#adoption).
 */
const workerHelloSchema = z.strictObject({
  id: z.number().check(z.int()),
  type: z.literal('worker-hello'),
  data: z.strictObject({
    workerId: z.string().check(z.regex(WORKER_ID_RE)),
    pid: z.number().check(z.int(), z.positive()),
  }),
});

/** Every frame a client may send: the commands and the worker hello. */
export const requestSchema = z.discriminatedUnion('type', [...commandSchemas, workerHelloSchema]);

export type Request = z.output<typeof requestSchema>;
export type WorkerHello = z.output<typeof workerHelloSchema>;
/** The reply data of an accepted {@link WorkerHello}. */
export interface WorkerHelloReply {
  adopted: true;
}
/** A request that the daemon answers by running a command. */
export type CommandRequest = Exclude<Request, WorkerHello>;
export type CommandName = CommandRequest['type'];
export type RestartOptions = z.output<typeof restartOptions>;
export type SendMessageRequest = z.output<typeof sendMessageCommand>;
export type SendRequestRequest = z.output<typeof sendRequest>;
export type LogsQuery = z.output<typeof logsQuery>;

/** The `data` of a command as the schema accepts it; `undefined` for a command without data. */
type CommandData<K extends CommandName> = K extends unknown
  ? Extract<CommandRequest, { type: K }> extends infer R
    ? 'data' extends keyof R
      ? R['data']
      : undefined
    : never
  : never;

export function isWorkerHello(request: Request): request is WorkerHello {
  return request.type === 'worker-hello';
}

export type Reply =
  | { id: number; ok: true; data?: unknown }
  | { id: number | null; ok: false; error: string };

// ---------------------------------------------------------------------------------------------
// Replies

/** What a worker is to its daemon: published in a slot, standby, replaced and finishing, or starting. */
export type WorkerRole = 'serving' | 'standby' | 'draining' | 'starting';

/** Where a worker is in its lifecycle (daemon/worker/worker-state.ts has the transitions). */
export type WorkerState = 'starting' | 'suspended' | 'online' | 'draining' | 'exited';

/** A worker as named in replies; `slot` is null unless it serves a slot (as in `status`). */
export interface WorkerRef {
  id: string;
  slot: number | null;
  pid: number | null;
  role: WorkerRole;
}

/**
 * One worker's answer: a single value (`data`), or, when its handler streamed, every item in
 * order (`items`, with no `data`). An error after some items keeps them in `items`.
 */
export type WorkerOutcome =
  | { ok: true; data?: unknown; items?: unknown[] }
  | { ok: false; error: string; items?: unknown[] };
export type WorkerResult = WorkerRef & WorkerOutcome;

/** The reply to `send-msg`: the workers whose IPC channel took the message, and the others. */
export interface SendMessageReply {
  sent: WorkerRef[];
  failed: (WorkerRef & { error: string })[];
}

/** The reply to `send-req`: one entry per selected worker, serving slots first. */
export interface SendRequestReply {
  results: WorkerResult[];
}

/** The reply to `restart`: the generation now serving, one worker per slot. */
export interface RestartResult {
  generation: number;
  workers: { slot: number; id: string; pid: number | null }[];
  /**
   * The replaced workers' kept-alive connections (docs/lifecycle.md#connection-handover): moved
   * to the new workers, busy (each moves as its response ends), or closing the old way.
   */
  connections?: { moved: number; busy: number; drained: number };
}

/**
 * What nginx's upstream must change after the slots changed (scaling, a new `socketFile`): the
 * published paths to add and to remove, and the upstream's name as `nodesockd nginx` writes it.
 */
export interface UpstreamChange {
  upstream: string;
  add: string[];
  remove: string[];
}

export interface StartResult {
  alreadyRunning: boolean;
  workers: number;
}

export interface HandoverResult {
  /** False when the version offered is not newer: the daemon keeps running. */
  handover: boolean;
  /** The version of the daemon that answered. */
  version: string;
  pid: number;
}

export interface TerminateResult {
  pid: number;
  /** A supervisor (systemd) starts the daemon again. */
  supervised: boolean;
  /** The longest the workers take to stop (shutdownTimeout + killTimeout); absent from older daemons. */
  drainMs?: number;
}

export interface WorkerStatus {
  id: string;
  slot: number | null;
  /** The slot it was started for (null: a standby), also while `slot` is null (starting). Absent from older daemons. */
  startedFor?: number | null;
  role: WorkerRole;
  pid: number | null;
  state: WorkerState;
  since: number;
  startedAt: number;
  generation: number;
  restarts: number;
  rssBytes: number | null;
  cpuSeconds: number | null;
  inflight: number | null;
  lastExit: string | null;
  /**
   * Where the worker listened other than its socket (`port 3000`, a path): an app that calls
   * `listen()` itself and so never serves on its socket. Absent when none (and from older daemons).
   */
  listenedElsewhere?: string[];
}

export interface SlotStatus {
  index: number;
  publishedPath: string;
  workerId: string | null;
  restarts: number;
  nextRetryAt: number | null;
  backoffMs: number | null;
  lastExit: string | null;
  /**
   * The slot's last failure (crash, failed start, broken report): when, the failed worker's
   * error line (an uncaught exception's `Error: …`), and its last stderr lines. Absent from
   * older daemons.
   */
  lastFailure?: { at: number; error: string | null; stderr: string[] } | null;
}

export interface DaemonStatus {
  version: string;
  pid: number;
  name: string;
  startedAt: number;
  running: boolean;
  suspended: boolean;
  ipcFile: string;
  devServer: string | null;
  /**
   * The `listen` front: its bound addresses, the connections handed to each worker and those
   * relayed to each adopted worker (by id; `relayed` is absent from older daemons), the
   * connections accepted and not yet taken by a worker (`waiting`), and by address the
   * certificate the workers end TLS with (null: plain TCP; absent: an older daemon). The
   * per-worker counts cover the workers that exist; `totals` all since the daemon started.
   * `stalled`: workers that confirmed no handed connection for the stall deadline, with since
   * when (epoch ms); each is being replaced.
   */
  front?: {
    addresses: string[];
    handedOut: Record<string, number>;
    relayed?: Record<string, number>;
    waiting?: number;
    tls?: (FrontCertificate | null)[];
    totals?: { handedOut: number; relayed: number };
    stalled?: Record<string, number>;
  } | null;
  /**
   * What is wrong that the worker table does not show, one line each: tmpDir gone (every slot
   * unreachable), a state file that cannot be written. Absent from older daemons.
   */
  problems?: string[];
  slots: SlotStatus[];
  workers: WorkerStatus[];
  /**
   * Kept-alive connections moved from replaced workers to their successors since the daemon
   * started, and moves that failed (those connections closed the old way). Absent: an older daemon.
   */
  handovers?: { moved: number; failed: number };
}

/** The certificate of a TLS `listen` entry, as `status` shows it. */
export interface FrontCertificate {
  subject: string;
  /** When it expires, ISO 8601. */
  validTo: string;
  /** SHA-256 fingerprint, colon-separated hex. */
  fingerprint256: string;
}

/**
 * The reply to `health`: healthy when the workers run and every slot has a worker (online or
 * suspended) whose published socket accepted a connection just now (daemon/health.ts).
 */
export interface HealthReport {
  healthy: boolean;
  /** Why not, in one line: the first slot's problem (and how many more), or null. */
  reason: string | null;
  slots: SlotHealth[];
}

export interface SlotHealth {
  index: number;
  workerId: string | null;
  /** The worker's state (online, suspended, …), or null when the slot has none. */
  state: WorkerState | null;
  /** Why the slot does not serve, or null when it accepted a connection. */
  problem: string | null;
}

/** One line a worker wrote, as the daemon received it. */
export interface LogLine {
  /** Its number: the order the daemon received the lines in, stdout and stderr alike. */
  seq: number;
  /** When it arrived, in ms since the epoch. */
  time: number;
  /** The slot the worker was started for; null for a standby. */
  slot: number | null;
  id: string;
  stream: 'out' | 'err';
  text: string;
}

/** The reply to `logs`. */
export interface LogsReply {
  /** The daemon's pid: the numbers start again with another daemon. */
  pid: number;
  lines: LogLine[];
  /** The number of the newest line the daemon has received (of any slot): where following goes on. */
  last: number;
  /** More lines matched than one reply holds: ask again (`after` the last, or `before` the first). */
  more: boolean;
  /** With `after`: lines after it were dropped (the history was full) before they were read. */
  dropped: boolean;
}

export interface ConfigReply {
  config: unknown;
  files: string[];
}

/** Each command's reply. */
interface Replies {
  status: DaemonStatus;
  health: HealthReport;
  config: ConfigReply;
  start: StartResult;
  restart: RestartResult;
  stop: { stopped: number };
  resume: { resumed: number };
  'send-msg': SendMessageReply;
  'send-req': SendRequestReply;
  reload: { actions: string[]; nginx?: UpstreamChange };
  logs: LogsReply;
  terminate: TerminateResult;
  handover: HandoverResult;
  'set-workers': { workers: number; nginx?: UpstreamChange };
  'set-standby': { standby: number };
}

/**
 * Each command: the `data` it takes and the `data` of its reply. The client's `request()` and
 * the daemon's handler table (daemon/commands.ts) are both typed by it, so a command whose reply
 * changes fails to compile on both sides, and so does a command without a handler.
 */
export type Commands = { [K in CommandName]: { data: CommandData<K>; reply: Replies[K] } };

/** A one-line description of why a frame is not a valid request. */
export function describeInvalidRequest(value: unknown, error: z.core.$ZodError): string {
  // Only a string type is quoted back: JSON.stringify of a deeply nested one overflows the stack.
  const type =
    typeof value === 'object' && value !== null && 'type' in value
      ? (value as { type: unknown }).type
      : undefined;
  const first = error.issues[0];
  const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
  if (first?.code === 'invalid_union' && typeof type === 'string') {
    const shown = type.length > 64 ? `${type.slice(0, 64)}…` : type;
    return escapeControlChars(`unknown request type ${JSON.stringify(shown)}`);
  }
  return escapeControlChars(`invalid request: ${where}${first?.message ?? 'malformed'}`);
}
