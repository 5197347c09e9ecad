/**
 * App messaging (SPEC §5.3): `send-msg` and `send-req` from the control socket to the workers,
 * over each worker's IPC channel.
 *
 * Robustness rules: a selector either names live workers or fails with a message naming the bad
 * part (nothing is silently skipped); every request to a worker settles exactly once, by its
 * reply, its timeout or the worker's exit; whatever a worker sends is validated, and replies that
 * are malformed, unknown or late are dropped. Nothing here throws except a selector error, which
 * the control socket turns into an error reply.
 */
import { z } from 'zod';
import { MAX_FRAME_BYTES } from '../ipc/framing';
import {
  APP_REQUEST_TIMEOUT_DEFAULT_MS,
  APP_REQUEST_TIMEOUT_MAX_MS,
  type SendMessageRequest,
  type SendRequestRequest,
} from '../ipc/protocol';
import {
  type AppMessage,
  type AppRequest,
  MSG_APP_MSG,
  MSG_APP_REPLY,
  MSG_APP_REQ,
} from '../ipc/worker-protocol';
import type { Logger } from '../log';
import type { ManagedWorker as WorkerHandle } from './worker/managed-worker';
import type { ExitInfo } from './worker/worker-state';

export type WorkerRole = 'serving' | 'standby' | 'draining' | 'starting';

export interface LiveWorker {
  worker: WorkerHandle;
  role: WorkerRole;
  /** The slot it serves, or null. */
  slot: number | null;
}

/** A worker as named in replies; `slot` is null unless it serves a slot (as in `status`). */
export interface WorkerRef {
  id: string;
  slot: number | null;
  pid: number | null;
  role: WorkerRole;
}

export type WorkerOutcome = { ok: true; data?: unknown } | { ok: false; error: string };
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

export class SelectorError extends Error {}

// ---------------------------------------------------------------------------------------------
// Selectors

type SelectorPart =
  | { text: string; kind: 'all' | 'standby' | 'every' }
  | { text: string; kind: 'slots'; from: number; to: number }
  | { text: string; kind: 'id'; id: string }
  | { text: string; kind: 'pid'; pid: number };

export const SELECTOR_HELP =
  'all (serving workers), standby, every (all live workers), a slot (0), a slot range (0-2), id:<worker id> or pid:<pid>, separated by commas';

/**
 * Parses a worker selector: comma-separated parts, each one of `all` (the serving workers, the
 * default), `standby`, `every` (every live worker: serving, standby, starting, draining), a slot
 * number `N`, an inclusive slot range `A-B`, `id:<worker id>`, `pid:<pid>`. Keywords and prefixes
 * are case-insensitive; spaces around parts are ignored. Throws a SelectorError naming the first
 * bad part.
 */
export function parseSelector(selector = 'all'): SelectorPart[] {
  const fail = (problem: string): never => {
    throw new SelectorError(`invalid worker selector ${JSON.stringify(selector)}: ${problem}`);
  };
  if (selector.trim() === '') fail(`it is empty; use ${SELECTOR_HELP}`);
  return selector.split(',').map((raw): SelectorPart => {
    const text = raw.trim();
    const lower = text.toLowerCase();
    if (text === '') return fail('an empty part (a comma too many?)');
    if (lower === 'all' || lower === 'standby' || lower === 'every') return { text, kind: lower };
    const slot = (digits: string): number => {
      const n = Number(digits);
      return Number.isSafeInteger(n) ? n : fail(`${JSON.stringify(text)}: slot number too large`);
    };
    if (/^\d+$/.test(text)) {
      const n = slot(text);
      return { text, kind: 'slots', from: n, to: n };
    }
    const range = /^(\d+)\s*-\s*(\d+)$/.exec(text);
    if (range) {
      const from = slot(range[1]!);
      const to = slot(range[2]!);
      if (from > to) fail(`${JSON.stringify(text)} is a range from high to low; write ${to}-${from}`);
      return { text, kind: 'slots', from, to };
    }
    if (lower.startsWith('id:')) {
      const id = text.slice(3).trim();
      if (!/^[A-Za-z0-9_-]+$/.test(id))
        fail(`${JSON.stringify(text)}: expected id:<worker id>, e.g. id:w5a0e22b2`);
      return { text, kind: 'id', id };
    }
    if (lower.startsWith('pid:')) {
      const digits = text.slice(4).trim();
      const pid = Number(digits);
      if (!/^\d+$/.test(digits) || !Number.isSafeInteger(pid) || pid < 1) {
        fail(`${JSON.stringify(text)}: expected pid:<process id>, e.g. pid:4242`);
      }
      return { text, kind: 'pid', pid };
    }
    const quoted = JSON.stringify(text);
    if (/^w[0-9a-f]{8}$/i.test(text))
      return fail(`${quoted} is not a part; for a worker id write id:${text}`);
    if (/^\$\d+$/.test(text))
      return fail(`${quoted} is not a part; for a process id write pid:${text.slice(1)}`);
    if (text.startsWith('!')) return fail(`${quoted}: negation is not supported; list what you want instead`);
    if (/^-\d+$|^\d+-$/.test(text)) return fail(`${quoted}: write both ends of a range, e.g. 0-2`);
    return fail(`${quoted} is not a part; use ${SELECTOR_HELP}`);
  });
}

const ROLE_ORDER: Record<WorkerRole, number> = { serving: 0, standby: 1, starting: 2, draining: 3 };

function slotOf(entry: LiveWorker): number | null {
  return entry.role === 'serving' ? entry.slot : null;
}

function matches(part: SelectorPart, entry: LiveWorker): boolean {
  switch (part.kind) {
    case 'all':
      return entry.role === 'serving';
    case 'standby':
      return entry.role === 'standby';
    case 'every':
      return true;
    case 'slots': {
      const slot = slotOf(entry);
      return slot !== null && slot >= part.from && slot <= part.to;
    }
    case 'id':
      return entry.worker.id.toLowerCase() === part.id.toLowerCase();
    case 'pid':
      return entry.worker.pid === part.pid;
  }
}

function describeLive(live: LiveWorker[]): string {
  if (live.length === 0) return 'no worker is running';
  const slots = live
    .flatMap((e) => {
      const slot = slotOf(e);
      return slot === null ? [] : [slot];
    })
    .sort((a, b) => a - b);
  const others = live.filter((e) => e.role !== 'serving');
  const counts = (['standby', 'starting', 'draining'] as const)
    .map((role) => [role, others.filter((e) => e.role === role).length] as const)
    .filter(([, n]) => n > 0)
    .map(([role, n]) => `${n} ${role}`);
  return [slots.length > 0 ? `serving slots: ${slots.join(', ')}` : 'no serving worker', ...counts].join(
    '; ',
  );
}

/**
 * The live workers a selector names, each once, serving slots first. Every part must match at
 * least one worker: `0,5` with no slot 5 is an error naming `5`, never a silent send to slot 0 only.
 */
export function selectWorkers(selector: string | undefined, workers: LiveWorker[]): LiveWorker[] {
  const parts = parseSelector(selector);
  const live = workers.filter((e) => e.worker.state !== 'exited');
  const picked = new Set<LiveWorker>();
  for (const part of parts) {
    const found = live.filter((e) => matches(part, e));
    if (found.length === 0) {
      const shown = selector === undefined ? '' : ` in ${JSON.stringify(selector)}`;
      throw new SelectorError(
        `worker selector${shown}: ${part.text} matches no worker (${describeLive(live)})`,
      );
    }
    for (const e of found) picked.add(e);
  }
  return [...picked].sort(
    (a, b) =>
      ROLE_ORDER[a.role] - ROLE_ORDER[b.role] ||
      (slotOf(a) ?? 0) - (slotOf(b) ?? 0) ||
      a.worker.startedAt - b.worker.startedAt,
  );
}

function refOf(entry: LiveWorker): WorkerRef {
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
    id: z.number().int().positive(),
    ok: z.literal(true),
    data: z.unknown().optional(),
  }),
  z.object({
    type: z.literal(MSG_APP_REPLY),
    id: z.number().int().positive(),
    ok: z.literal(false),
    error: z.string().transform((s) => (s.length > MAX_ERROR_CHARS ? `${s.slice(0, MAX_ERROR_CHARS)}…` : s)),
  }),
]);

interface Pending {
  worker: WorkerHandle;
  timer: NodeJS.Timeout;
  resolve: (outcome: WorkerOutcome) => void;
}

function exitedError(exit: ExitInfo | null): string {
  if (!exit) return 'worker exited';
  return `worker exited (${exit.signal ? `killed by ${exit.signal}` : `code ${exit.code}`})`;
}

export class Messenger {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly watched = new WeakSet<WorkerHandle>();

  constructor(
    private readonly listWorkers: () => LiveWorker[],
    private readonly log: Logger,
  ) {}

  /** `send-msg`: fire and forget; says which workers' channels took it. */
  sendMessage(request: SendMessageRequest): SendMessageReply {
    const targets = selectWorkers(request.workers, this.listWorkers());
    const message: AppMessage = { type: MSG_APP_MSG, name: request.name };
    if (request.data !== undefined) message.data = request.data;
    const reply: SendMessageReply = { sent: [], failed: [] };
    for (const target of targets) {
      if (target.worker.send(message)) reply.sent.push(refOf(target));
      else reply.failed.push({ ...refOf(target), error: this.unreachable(target.worker) });
    }
    this.log.debug(`app message ${JSON.stringify(request.name)} sent to ${reply.sent.length} worker(s)`);
    return reply;
  }

  /** `send-req`: one request per selected worker; each entry settles on its own. */
  async request(request: SendRequestRequest): Promise<SendRequestReply> {
    const targets = selectWorkers(request.workers, this.listWorkers());
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

  /** Requests in flight, for tests and status. */
  get inFlight(): number {
    return this.pending.size;
  }

  private ask(worker: WorkerHandle, name: string, data: unknown, timeoutMs: number): Promise<WorkerOutcome> {
    return new Promise<WorkerOutcome>((resolve) => {
      if (worker.state === 'exited') {
        resolve({ ok: false, error: exitedError(worker.exitInfo) });
        return;
      }
      this.watch(worker);
      const id = this.nextId++;
      const timer = setTimeout(
        () => this.settle(id, { ok: false, error: `no reply within ${timeoutMs} ms` }),
        timeoutMs,
      );
      this.pending.set(id, { worker, timer, resolve });
      const message: AppRequest = { type: MSG_APP_REQ, id, name };
      if (data !== undefined) message.data = data;
      if (!worker.send(message)) this.settle(id, { ok: false, error: this.unreachable(worker) });
    });
  }

  private unreachable(worker: WorkerHandle): string {
    return worker.state === 'exited' ? exitedError(worker.exitInfo) : 'its IPC channel is closed';
  }

  private settle(id: number, outcome: WorkerOutcome): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    pending.resolve(outcome);
  }

  /** One pair of listeners per worker, however many requests it has in flight. */
  private watch(worker: WorkerHandle): void {
    if (this.watched.has(worker)) return;
    this.watched.add(worker);
    worker.on('message', (message: unknown) => this.onWorkerMessage(worker, message));
    worker.on('exit', (exit: ExitInfo) => {
      for (const [id, pending] of this.pending) {
        if (pending.worker === worker) this.settle(id, { ok: false, error: exitedError(exit) });
      }
    });
  }

  private onWorkerMessage(worker: WorkerHandle, message: unknown): void {
    if (typeof message !== 'object' || message === null) return;
    if ((message as { type?: unknown }).type !== MSG_APP_REPLY) return;
    const parsed = appReplySchema.safeParse(message);
    if (!parsed.success) {
      this.log.debug(`worker ${worker.id}: malformed app reply ignored`);
      return;
    }
    const reply = parsed.data;
    // A reply to another worker's request, to an expired one, or to none at all is dropped.
    if (this.pending.get(reply.id)?.worker !== worker) {
      this.log.debug(`worker ${worker.id}: reply to unknown or expired request #${reply.id} ignored`);
      return;
    }
    this.settle(
      reply.id,
      reply.ok
        ? reply.data === undefined
          ? { ok: true }
          : { ok: true, data: reply.data }
        : { ok: false, error: reply.error },
    );
  }
}

/**
 * Keeps the whole reply within one control frame: while the replies are too big together, the
 * biggest becomes an error entry, so the others still reach the client.
 */
function fitBudget(results: WorkerResult[]): void {
  const sizes = results.map((r) =>
    r.ok && r.data !== undefined ? Buffer.byteLength(JSON.stringify(r.data) ?? '') : 0,
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
