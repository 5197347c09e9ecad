/**
 * Worker selectors of `send-msg` and `send-req` (docs/cli.md#send-msg-and-send-req): the parser
 * and the matcher, pure functions of the selector text and the live workers.
 *
 * A selector either names live workers or fails with a message naming the bad part: nothing is
 * silently skipped.
 */
import type { WorkerRole } from '../../ipc/protocol';
import { WORKER_ID_PATTERN } from '../../worker-id';

/** What a selector looks at in a worker (daemon/worker/managed-worker.ts's ManagedWorker is one). */
export interface SelectableWorker {
  readonly id: string;
  readonly pid: number | null;
  readonly state: string;
  readonly startedAt: number;
}

/** A live worker and what it is to the daemon. */
export interface LiveWorker<W extends SelectableWorker = SelectableWorker> {
  worker: W;
  role: WorkerRole;
  /** The slot it serves, or null. */
  slot: number | null;
}

export class SelectorError extends Error {}

const WORKER_ID_RE_ANY_CASE = new RegExp(`^${WORKER_ID_PATTERN}$`, 'i');

type PartMatch =
  | { kind: 'all' | 'standby' | 'every' | 'self' }
  | { kind: 'slots'; from: number; to: number | null }
  | { kind: 'id'; id: string }
  | { kind: 'pid'; pid: number };

/**
 * One part of a selector; `negated` (`!part`) means every worker of the part's collection but
 * those it names: serving workers for slots and slot ranges, every live worker otherwise.
 * `to: null` is an open range (`2-`: from slot 2 to the last).
 */
export type SelectorPart = PartMatch & { text: string; negated?: true };

const SELECTOR_HELP =
  'all (serving workers), standby, every (all live workers), self (the sending worker), a slot (0), a slot range (0-2, -2, 2-), a worker id (w5a0e22b2 or id:w5a0e22b2), a pid ($4242 or pid:4242), each may be negated with !, separated by commas';

/**
 * Parses a worker selector: comma-separated parts, each one of `all` (the serving workers, the
 * default), `standby`, `every` (every live worker: serving, standby, starting, draining),
 * `self` (the worker that sends, for a worker's sendAppMessage/sendAppRequest), a slot number
 * `N`, an inclusive slot range `A-B`, an open range `-B` (from slot 0) or `A-` (to the last
 * slot), a worker id written bare or as `id:<worker id>`, a pid as `$<pid>` or `pid:<pid>`;
 * `!` before a part negates it. Keywords and prefixes are case-insensitive; spaces around
 * parts are ignored. Throws a SelectorError naming the first bad part.
 */
export function parseSelector(selector = 'all'): SelectorPart[] {
  const fail = (problem: string): never => {
    throw new SelectorError(`invalid worker selector ${JSON.stringify(selector)}: ${problem}`);
  };
  if (selector.trim() === '') fail(`it is empty; use ${SELECTOR_HELP}`);
  return selector.split(',').map((raw): SelectorPart => {
    const text = raw.trim();
    if (text === '') return fail('an empty part (a comma too many?)');
    const negated = text.startsWith('!');
    const body = negated ? text.slice(1).trim() : text;
    if (negated && body.startsWith('!')) fail(`${JSON.stringify(text)}: negate a part once`);
    if (body === '') fail(`${JSON.stringify(text)}: ! needs a part after it, e.g. !self or !0`);
    const match = parsePart(body, text, fail);
    return negated ? { ...match, text, negated: true } : { ...match, text };
  });
}

function parsePart(body: string, text: string, fail: (problem: string) => never): PartMatch {
  const lower = body.toLowerCase();
  const quoted = JSON.stringify(text);
  if (lower === 'all' || lower === 'standby' || lower === 'every' || lower === 'self') return { kind: lower };
  const slot = (digits: string): number => {
    const n = Number(digits);
    return Number.isSafeInteger(n) ? n : fail(`${quoted}: slot number too large`);
  };
  if (/^\d+$/.test(body)) {
    const n = slot(body);
    return { kind: 'slots', from: n, to: n };
  }
  const range = /^(\d*)\s*-\s*(\d*)$/.exec(body);
  if (range && (range[1] !== '' || range[2] !== '')) {
    const from = range[1] === '' ? 0 : slot(range[1]!);
    const to = range[2] === '' ? null : slot(range[2]!);
    if (to !== null && from > to) fail(`${quoted} is a range from high to low; write ${to}-${from}`);
    return { kind: 'slots', from, to };
  }
  const pidOf = (digits: string): number => {
    const pid = Number(digits);
    if (!/^\d+$/.test(digits) || !Number.isSafeInteger(pid) || pid < 1) {
      fail(`${quoted}: expected pid:<process id> or $<process id>, e.g. $4242`);
    }
    return pid;
  };
  if (lower.startsWith('pid:')) return { kind: 'pid', pid: pidOf(body.slice(4).trim()) };
  if (body.startsWith('$')) return { kind: 'pid', pid: pidOf(body.slice(1).trim()) };
  if (lower.startsWith('id:')) {
    const id = body.slice(3).trim();
    if (!/^[A-Za-z0-9_-]+$/.test(id)) fail(`${quoted}: expected id:<worker id>, e.g. id:w5a0e22b2`);
    return { kind: 'id', id };
  }
  if (WORKER_ID_RE_ANY_CASE.test(body)) return { kind: 'id', id: body };
  return fail(`${quoted} is not a part; use ${SELECTOR_HELP}`);
}

const ROLE_ORDER: Record<WorkerRole, number> = { serving: 0, standby: 1, starting: 2, draining: 3 };

export function slotOf(entry: LiveWorker): number | null {
  return entry.role === 'serving' ? entry.slot : null;
}

function matches(part: SelectorPart, entry: LiveWorker, sender: SelectableWorker | undefined): boolean {
  if (part.negated) {
    // The collection a negated part inverts within: the serving workers for slots.
    const inCollection = part.kind === 'slots' ? slotOf(entry) !== null : true;
    return inCollection && !named(part, entry, sender);
  }
  return named(part, entry, sender);
}

function named(part: PartMatch, entry: LiveWorker, sender: SelectableWorker | undefined): boolean {
  switch (part.kind) {
    case 'self':
      return entry.worker === sender;
    case 'all':
      return entry.role === 'serving';
    case 'standby':
      return entry.role === 'standby';
    case 'every':
      return true;
    case 'slots': {
      const slot = slotOf(entry);
      return slot !== null && slot >= part.from && (part.to === null || slot <= part.to);
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
export function selectWorkers<W extends SelectableWorker>(
  selector: string | undefined,
  workers: LiveWorker<W>[],
  sender?: SelectableWorker,
): LiveWorker<W>[] {
  const parts = parseSelector(selector);
  if (sender === undefined && parts.some((p) => p.kind === 'self')) {
    throw new SelectorError(
      `worker selector ${JSON.stringify(selector)}: self is the sending worker; only a worker can use it (sendAppMessage, sendAppRequest)`,
    );
  }
  const live = workers.filter((e) => e.worker.state !== 'exited');
  const picked = new Set<LiveWorker<W>>();
  for (const part of parts) {
    const found = live.filter((e) => matches(part, e, sender));
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
