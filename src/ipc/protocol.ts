import { z } from 'zod';

/**
 * The control protocol spoken over the IPC file by the CLI (and any client) to the daemon:
 * newline-delimited JSON, one request → one reply carrying the same id.
 */

const restartOptions = z.strictObject({
  suspended: z.boolean().optional(),
  maxAttempts: z.number().int().min(1).optional(),
});

/** App messaging (SPEC §5.3): per-worker reply timeout of `send-req`. */
export const APP_REQUEST_TIMEOUT_DEFAULT_MS = 10_000;
export const APP_REQUEST_TIMEOUT_MAX_MS = 300_000;
const sendMessage = z.strictObject({
  name: z.string().min(1).max(256),
  /** Any JSON value, handed to the app as is. */
  data: z.unknown().optional(),
  /** A worker selector (see daemon/messaging.ts); default `all`, the serving workers. */
  workers: z.string().max(4096).optional(),
});
const sendRequest = sendMessage.extend({
  timeoutMs: z.number().int().min(1).max(APP_REQUEST_TIMEOUT_MAX_MS).optional(),
});

export const requestSchema = z.discriminatedUnion('type', [
  z.strictObject({ id: z.number().int(), type: z.literal('status') }),
  z.strictObject({ id: z.number().int(), type: z.literal('config') }),
  z.strictObject({ id: z.number().int(), type: z.literal('start'), data: restartOptions.optional() }),
  z.strictObject({ id: z.number().int(), type: z.literal('restart'), data: restartOptions.optional() }),
  z.strictObject({ id: z.number().int(), type: z.literal('stop') }),
  z.strictObject({ id: z.number().int(), type: z.literal('resume') }),
  z.strictObject({ id: z.number().int(), type: z.literal('send-msg'), data: sendMessage }),
  z.strictObject({ id: z.number().int(), type: z.literal('send-req'), data: sendRequest }),
  z.strictObject({ id: z.number().int(), type: z.literal('reload') }),
  z.strictObject({ id: z.number().int(), type: z.literal('terminate') }),
  // restart --upgrade: hand the workers to the newer nodesockd installed on disk (SPEC §4.9).
  z.strictObject({
    id: z.number().int(),
    type: z.literal('handover'),
    data: z.strictObject({ version: z.string() }),
  }),
  // A worker of an earlier daemon introducing itself; the connection then becomes its channel.
  z.strictObject({
    id: z.number().int(),
    type: z.literal('worker-hello'),
    data: z.strictObject({ workerId: z.string().regex(/^w[0-9a-f]{8}$/), pid: z.number().int().positive() }),
  }),
  z.strictObject({
    id: z.number().int(),
    type: z.literal('set-workers'),
    data: z.strictObject({ count: z.number().int().min(1).max(256) }),
  }),
  z.strictObject({
    id: z.number().int(),
    type: z.literal('set-standby'),
    data: z.strictObject({ count: z.number().int().min(0).max(64) }),
  }),
]);

export type Request = z.infer<typeof requestSchema>;
export type RequestType = Request['type'];
export type RestartOptions = z.infer<typeof restartOptions>;
export type SendMessageRequest = z.infer<typeof sendMessage>;
export type SendRequestRequest = z.infer<typeof sendRequest>;

export type Reply =
  | { id: number; ok: true; data?: unknown }
  | { id: number | null; ok: false; error: string };

export interface WorkerStatus {
  id: string;
  slot: number | null;
  /** serving (published in a slot), standby, draining (replaced, finishing), starting. */
  role: 'serving' | 'standby' | 'draining' | 'starting';
  pid: number | null;
  state: string;
  since: number;
  startedAt: number;
  generation: number;
  restarts: number;
  rssBytes: number | null;
  cpuSeconds: number | null;
  inflight: number | null;
  lastExit: string | null;
}

export interface SlotStatus {
  index: number;
  publishedPath: string;
  workerId: string | null;
  restarts: number;
  nextRetryAt: number | null;
  backoffMs: number | null;
  lastExit: string | null;
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
  slots: SlotStatus[];
  workers: WorkerStatus[];
}

export interface ConfigReply {
  config: unknown;
  files: string[];
}

/** A one-line description of why a frame is not a valid request. */
export function describeInvalidRequest(value: unknown, error: z.ZodError): string {
  // Only a string type is quoted back: JSON.stringify of a deeply nested one overflows the stack.
  const type =
    typeof value === 'object' && value !== null && 'type' in value
      ? (value as { type: unknown }).type
      : undefined;
  const first = error.issues[0];
  const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
  if (first?.code === 'invalid_union' && typeof type === 'string') {
    const shown = type.length > 64 ? `${type.slice(0, 64)}…` : type;
    return oneLine(`unknown request type ${JSON.stringify(shown)}`);
  }
  return oneLine(`invalid request: ${where}${first?.message ?? 'malformed'}`);
}

/** Peer input quoted in an error message (zod echoes unknown keys raw): control characters escaped. */
export function oneLine(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are the point
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
