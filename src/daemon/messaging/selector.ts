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

export type SelectorPart =
  | { text: string; kind: 'all' | 'standby' | 'every' }
  | { text: string; kind: 'slots'; from: number; to: number }
  | { text: string; kind: 'id'; id: string }
  | { text: string; kind: 'pid'; pid: number };

const SELECTOR_HELP =
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
    if (WORKER_ID_RE_ANY_CASE.test(text))
      return fail(`${quoted} is not a part; for a worker id write id:${text}`);
    if (/^\$\d+$/.test(text))
      return fail(`${quoted} is not a part; for a process id write pid:${text.slice(1)}`);
    if (text.startsWith('!')) return fail(`${quoted}: negation is not supported; list what you want instead`);
    if (/^-\d+$|^\d+-$/.test(text)) return fail(`${quoted}: write both ends of a range, e.g. 0-2`);
    return fail(`${quoted} is not a part; use ${SELECTOR_HELP}`);
  });
}

const ROLE_ORDER: Record<WorkerRole, number> = { serving: 0, standby: 1, starting: 2, draining: 3 };

export function slotOf(entry: LiveWorker): number | null {
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
export function selectWorkers<W extends SelectableWorker>(
  selector: string | undefined,
  workers: LiveWorker<W>[],
): LiveWorker<W>[] {
  const parts = parseSelector(selector);
  const live = workers.filter((e) => e.worker.state !== 'exited');
  const picked = new Set<LiveWorker<W>>();
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
