/**
 * App messaging (docs/cli.md#send-msg-and-send-req): `send-msg` and `send-req` from the control
 * socket to the workers, over each worker's IPC channel.
 *
 * Robustness rules: every request to a worker settles exactly once, by its reply, its timeout or
 * the worker's exit; whatever a worker sends is validated, and replies that are malformed,
 * unknown or late are dropped. Nothing here throws except a selector error (see selector.ts),
 * which the control socket turns into an error reply.
 */

import { MAX_FRAME_BYTES } from '../../ipc/framing';
import {
  APP_REQUEST_TIMEOUT_DEFAULT_MS,
  APP_REQUEST_TIMEOUT_MAX_MS,
  type SendMessageReply,
  type SendMessageRequest,
  type SendRequestReply,
  type SendRequestRequest,
  type WorkerOutcome,
  type WorkerRef,
  type WorkerResult,
} from '../../ipc/protocol';
import {
  type AppMessage,
  type AppRequest,
  type AppSendResult,
  type DaemonToWorker,
  LIFECYCLE_MESSAGES,
  MSG_APP_MSG,
  MSG_APP_REPLY,
  MSG_APP_REQ,
  MSG_APP_SEND,
  MSG_APP_SEND_RESULT,
  MSG_RESTART,
} from '../../ipc/worker-protocol';
import type { Logger } from '../../log';
import { Correlator } from '../../net/correlator';
import * as z from '../../zod';
import { describeExit, type ExitInfo } from '../worker/worker-state';
import { type LiveWorker, type SelectableWorker, SelectorError, selectWorkers, slotOf } from './selector';

/** What messaging needs of a worker (daemon/worker/managed-worker.ts's ManagedWorker is one). */
export interface MessageTarget extends SelectableWorker {
  readonly exitInfo: ExitInfo | null;
  /** Sends on the worker's IPC channel; false when the channel is closed. */
  send(message: DaemonToWorker): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'exit', listener: (exit: ExitInfo) => void): unknown;
}

function refOf(entry: LiveWorker<MessageTarget>): WorkerRef {
  return { id: entry.worker.id, slot: slotOf(entry), pid: entry.worker.pid, role: entry.role };
}

// ---------------------------------------------------------------------------------------------
// Fan-out

const MAX_ERROR_CHARS = 2000;
/** All replies of one `send-req` must fit in one control frame, with room for the envelope. */
const REPLY_BUDGET_BYTES = MAX_FRAME_BYTES - 64 * 1024;

/** What a worker may send back; anything else with the reply type is dropped. */
const appReplySchema = z.discriminatedUnion('ok', [
  z.object({
    type: z.literal(MSG_APP_REPLY),
    id: z.number().check(z.int(), z.positive()),
    ok: z.literal(true),
    data: z.optional(z.unknown()),
    stream: z.optional(z.enum(['item', 'end'])),
  }),
  z.object({
    type: z.literal(MSG_APP_REPLY),
    id: z.number().check(z.int(), z.positive()),
    ok: z.literal(false),
    error: z.pipe(
      z.string(),
      z.transform((s: string) => (s.length > MAX_ERROR_CHARS ? `${s.slice(0, MAX_ERROR_CHARS)}…` : s)),
    ),
  }),
]);

/** What a worker may ask of the others (`sendAppMessage`/`sendAppRequest` of the library). */
const appSendSchema = z.object({
  type: z.literal(MSG_APP_SEND),
  id: z.number().check(z.int(), z.positive()),
  kind: z.enum(['message', 'request']),
  name: z.string(),
  data: z.optional(z.unknown()),
  workers: z.optional(z.string()),
});

/** Most items one streamed reply may carry from one worker; more ends it with an error. */
const MAX_STREAM_ITEMS = 10_000;

/**
 * Throws (one line, for the reply) when the message cannot go over an IPC channel: Node's
 * channels serialize with JSON.stringify, which fails on data nested some thousands deep. Said
 * once for the command, not as a closed channel per worker.
 */
function assertSendable(message: unknown): void {
  try {
    JSON.stringify(message);
  } catch (err) {
    const deep = err instanceof RangeError ? ' (it is nested too deeply)' : '';
    throw new Error(
      `the data cannot be sent to a worker: ${err instanceof Error ? err.message : String(err)}${deep}`,
    );
  }
}

/** Why a request to a worker that is gone failed, in the words of the daemon's log. */
function exitedError(exit: ExitInfo | null): string {
  return `worker ${describeExit(exit ?? { code: null, signal: null })}`;
}

export class Messenger {
  /** Requests in flight to the workers, each with the worker it went to. */
  private readonly replies = new Correlator<WorkerOutcome, MessageTarget>();
  /** The items of streamed replies still open, by request id. */
  private readonly streams = new Map<number, unknown[]>();
  private readonly watched = new WeakSet<MessageTarget>();
  /** A restart asked for by a worker (v1 `process.send('restart')`) is queued or running. */
  private restartPending = false;

  constructor(
    private readonly listWorkers: () => LiveWorker<MessageTarget>[],
    private readonly log: Logger,
    /** A zero-downtime restart of every worker, through the pool's command queue. */
    private readonly restartAll: () => Promise<unknown> = async () => {},
  ) {}

  /**
   * Listens to every live worker not yet listened to, so what a worker sends on its own
   * (`sendAppMessage`, `'restart'`) is heard. Called on every pool change.
   */
  watchAll(): void {
    for (const { worker } of this.listWorkers()) this.watch(worker);
  }

  /** `send-msg`: fire and forget; says which workers' channels took it. */
  sendMessage(request: SendMessageRequest, sender?: MessageTarget): SendMessageReply {
    if (request.raw && LIFECYCLE_MESSAGES.has(request.name)) {
      throw new SelectorError(
        `send ${JSON.stringify(request.name)}: that string is the daemon's own word to its workers; use \`restart\`, \`stop\` or \`resume\``,
      );
    }
    if (request.raw && request.data !== undefined) throw new SelectorError('send <message> takes no data');
    const targets = selectWorkers(request.workers, this.listWorkers(), sender);
    const message: AppMessage | string = request.raw
      ? request.name
      : { type: MSG_APP_MSG, name: request.name };
    if (request.data !== undefined && typeof message === 'object') message.data = request.data;
    assertSendable(message);
    const reply: SendMessageReply = { sent: [], failed: [] };
    for (const target of targets) {
      if (target.worker.send(message)) reply.sent.push(refOf(target));
      else reply.failed.push({ ...refOf(target), error: this.unreachable(target.worker) });
    }
    this.log.debug(`app message ${JSON.stringify(request.name)} sent to ${reply.sent.length} worker(s)`);
    return reply;
  }

  /** `send-req`: one request per selected worker; each entry settles on its own. */
  async request(request: SendRequestRequest, sender?: MessageTarget): Promise<SendRequestReply> {
    const targets = selectWorkers(request.workers, this.listWorkers(), sender);
    assertSendable({ type: MSG_APP_REQ, id: 1, name: request.name, data: request.data });
    const timeoutMs = Math.min(
      Math.max(1, request.timeoutMs ?? APP_REQUEST_TIMEOUT_DEFAULT_MS),
      APP_REQUEST_TIMEOUT_MAX_MS,
    );
    const outcomes = await Promise.all(
      targets.map((t) => this.ask(t.worker, request.name, request.data, timeoutMs)),
    );
    const results = targets.map((t, i): WorkerResult => ({ ...refOf(t), ...outcomes[i]! }));
    fitBudget(results);
    return { results };
  }

  private ask(worker: MessageTarget, name: string, data: unknown, timeoutMs: number): Promise<WorkerOutcome> {
    if (worker.state === 'exited') return Promise.resolve({ ok: false, error: exitedError(worker.exitInfo) });
    this.watch(worker);
    // One deadline for the whole answer, streamed or not: the last item must come within it.
    let streamId = 0;
    const { id, outcome } = this.replies.open(worker, {
      ms: timeoutMs,
      outcome: () => {
        const items = this.streams.get(streamId);
        this.streams.delete(streamId);
        return items === undefined
          ? { ok: false, error: `no reply within ${timeoutMs} ms` }
          : { ok: false, error: `the streamed reply did not end within ${timeoutMs} ms`, items };
      },
    });
    streamId = id;
    const message: AppRequest = { type: MSG_APP_REQ, id, name };
    if (data !== undefined) message.data = data;
    if (!worker.send(message)) this.replies.settle(id, { ok: false, error: this.unreachable(worker) });
    return outcome;
  }

  private unreachable(worker: MessageTarget): string {
    return worker.state === 'exited' ? exitedError(worker.exitInfo) : 'its IPC channel is closed';
  }

  /** One pair of listeners per worker, however many requests it has in flight. */
  private watch(worker: MessageTarget): void {
    if (this.watched.has(worker)) return;
    this.watched.add(worker);
    worker.on('message', (message: unknown) => this.onWorkerMessage(worker, message));
    worker.on('exit', (exit: ExitInfo) =>
      this.replies.settleWhere((peer) => peer === worker, { ok: false, error: exitedError(exit) }),
    );
  }

  private onWorkerMessage(worker: MessageTarget, message: unknown): void {
    if (message === MSG_RESTART) {
      this.workerRestart(worker);
      return;
    }
    if (typeof message !== 'object' || message === null) return;
    if ((message as { type?: unknown }).type === MSG_APP_SEND) {
      void this.workerSend(worker, message);
      return;
    }
    if ((message as { type?: unknown }).type !== MSG_APP_REPLY) return;
    const parsed = appReplySchema.safeParse(message);
    if (!parsed.success) {
      this.log.debug(`worker ${worker.id}: malformed app reply ignored`);
      return;
    }
    const reply = parsed.data;
    // A reply to another worker's request, to an expired one, or to none at all is dropped.
    if (this.replies.peerOf(reply.id) !== worker) {
      this.log.debug(`worker ${worker.id}: reply to unknown or expired request #${reply.id} ignored`);
      return;
    }
    const items = this.streams.get(reply.id);
    if (reply.ok && reply.stream === 'item') {
      const list = items ?? [];
      this.streams.set(reply.id, list);
      list.push(reply.data ?? null);
      if (list.length > MAX_STREAM_ITEMS) {
        this.streams.delete(reply.id);
        this.replies.settle(reply.id, {
          ok: false,
          error: `streamed reply cut after ${MAX_STREAM_ITEMS} items`,
          items: list.slice(0, MAX_STREAM_ITEMS),
        });
      }
      return;
    }
    this.streams.delete(reply.id);
    let outcome: WorkerOutcome;
    if (!reply.ok)
      outcome = items ? { ok: false, error: reply.error, items } : { ok: false, error: reply.error };
    else if (reply.stream === 'end') outcome = { ok: true, items: items ?? [] };
    else outcome = reply.data === undefined ? { ok: true } : { ok: true, data: reply.data };
    this.replies.settle(reply.id, outcome);
  }

  /** v1's `process.send('restart')`: one restart of every worker, however many workers ask. */
  private workerRestart(worker: MessageTarget): void {
    if (this.restartPending) {
      this.log.debug(`worker ${worker.id} asked for a restart; one is already under way`);
      return;
    }
    this.restartPending = true;
    this.log.info(`worker ${worker.id} asked for a restart of all workers`);
    this.restartAll()
      .catch((err: unknown) =>
        this.log.warn(`restart asked for by worker ${worker.id} failed: ${String(err)}`),
      )
      .finally(() => {
        this.restartPending = false;
      });
  }

  /** A worker's `sendAppMessage`/`sendAppRequest`: sent as the CLI would, `self` = the sender. */
  private async workerSend(worker: MessageTarget, message: object): Promise<void> {
    const parsed = appSendSchema.safeParse(message);
    if (!parsed.success) {
      this.log.debug(`worker ${worker.id}: malformed app send ignored`);
      return;
    }
    const send = parsed.data;
    let result: AppSendResult;
    try {
      const request = { name: send.name, data: send.data, workers: send.workers };
      const results =
        send.kind === 'message'
          ? this.sendMessage(request, worker).sent
          : (await this.request(request, worker)).results;
      result = { type: MSG_APP_SEND_RESULT, id: send.id, ok: true, results };
    } catch (err) {
      result = {
        type: MSG_APP_SEND_RESULT,
        id: send.id,
        ok: false,
        error: err instanceof Error ? err.message : String(err),
      };
    }
    worker.send(result);
  }
}

/**
 * Keeps the whole reply within one control frame: while the replies are too big together, the
 * biggest becomes an error entry, so the others still reach the client.
 */
function fitBudget(results: WorkerResult[]): void {
  const sizes = results.map(
    (r) =>
      (r.ok && r.data !== undefined ? Buffer.byteLength(JSON.stringify(r.data) ?? '') : 0) +
      (r.items !== undefined ? Buffer.byteLength(JSON.stringify(r.items)) : 0),
  );
  let total = sizes.reduce((a, b) => a + b, 0);
  while (total > REPLY_BUDGET_BYTES) {
    const i = sizes.indexOf(Math.max(...sizes));
    const r = results[i]!;
    results[i] = {
      id: r.id,
      slot: r.slot,
      pid: r.pid,
      role: r.role,
      ok: false,
      error: `reply too large to return (${sizes[i]} bytes; all replies together must stay under ${REPLY_BUDGET_BYTES} bytes)`,
    };
    total -= sizes[i]!;
    sizes[i] = 0;
  }
}
