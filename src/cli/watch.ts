/**
 * What a person at a terminal sees while the daemon works: `status --watch` (redrawn in place,
 * no flicker) and a progress line during long commands. Never on a pipe: scripts get the plain
 * output and nothing else.
 */
import type { DaemonStatus } from '../ipc/protocol';
import { terminalText } from './common';
import { listenedElsewhere } from './format';

const WATCH_INTERVAL_MS = 1000;
const PROGRESS_INTERVAL_MS = 250;

/** Redraws `render()` every second from the top of the screen until interrupted. */
export async function watch(
  load: () => Promise<DaemonStatus>,
  render: (status: DaemonStatus) => string,
  out: NodeJS.WriteStream = process.stdout,
): Promise<never> {
  if (!out.isTTY) throw new Error('status --watch needs a terminal; for scripts use status --json in a loop');
  // The alternate screen keeps the user's scrollback; the cursor is hidden while drawing.
  out.write('\x1b[?1049h\x1b[?25l');
  const restore = () => out.write('\x1b[?25h\x1b[?1049l');
  process.once('exit', restore);
  process.once('SIGINT', () => process.exit(0));
  for (;;) {
    let text: string;
    try {
      text = render(await load());
    } catch (err) {
      text = `nodesockd: ${err instanceof Error ? err.message : String(err)}`;
    }
    // Home, each line cleared to its end, then everything below cleared: no blank flash.
    out.write(
      `\x1b[H${terminalText(text)
        .split('\n')
        .map((l) => `${l}\x1b[K`)
        .join('\n')}\n\x1b[J`,
    );
    await new Promise((resolve) => setTimeout(resolve, WATCH_INTERVAL_MS));
  }
}

/** Where the progress line of a long command reads from. */
export interface ProgressSource {
  status: () => Promise<DaemonStatus>;
  /** The daemon's `onlineTimeout`, in ms (null when it cannot be read). */
  onlineTimeoutMs: () => Promise<number | null>;
}

/**
 * The progress line: the workers started since `before` that are online, and the one that has
 * waited longest, e.g. `restart: 1/2 workers online; slot 1: waiting for online, 12 s of 30`.
 */
export function progressLine(
  label: string,
  before: ReadonlySet<string>,
  status: DaemonStatus,
  onlineTimeoutMs: number | null,
  now: number,
): string {
  const fresh = status.workers.filter((w) => !before.has(w.id) && w.role !== 'draining');
  if (fresh.length === 0) return `${label}…`;
  const online = fresh.filter((w) => w.state === 'online' || w.state === 'suspended').length;
  const head = `${label}: ${online}/${fresh.length} workers online`;
  const waiting = fresh.filter((w) => w.state === 'starting').sort((a, b) => a.startedAt - b.startedAt)[0];
  if (!waiting) return `${head}…`;
  const slot = waiting.slot ?? waiting.startedFor;
  const who = slot === null || slot === undefined ? 'standby' : `slot ${slot}`;
  const waited = Math.max(0, Math.floor((now - waiting.startedAt) / 1000));
  const of = onlineTimeoutMs === null ? '' : ` of ${Math.round(onlineTimeoutMs / 1000)}`;
  return `${head}; ${who}: waiting for online, ${waited} s${of}`;
}

/**
 * Runs `task`; while it runs, shows {@link progressLine} on stderr, redrawn in place, when
 * stderr is a terminal (nothing otherwise). The workers that count are those the daemon did not
 * have before the task started. The line is cleared when the task ends.
 */
export async function withProgress<T>(
  label: string,
  task: () => Promise<T>,
  source: ProgressSource,
  err: NodeJS.WriteStream = process.stderr,
): Promise<T> {
  if (!err.isTTY) return task();
  const [before, timeout] = await Promise.all([
    source.status().catch(() => null),
    source.onlineTimeoutMs().catch(() => null),
  ]);
  const known = new Set(before?.workers.map((w) => w.id));
  let done = false;
  let shown = '';
  const running = task();
  // A new worker that listened elsewhere will wait out the timeout: said at once, on its own line.
  const told = new Set<string>();
  const tell = (s: DaemonStatus) => {
    for (const w of s.workers) {
      if (known.has(w.id) || told.has(w.id) || w.state !== 'starting' || !w.listenedElsewhere) continue;
      told.add(w.id);
      const who = w.startedFor === null || w.startedFor === undefined ? 'standby' : `slot ${w.startedFor}`;
      err.write(`\r\x1b[K${terminalText(`${who}: ${w.id} ${listenedElsewhere(w.listenedElsewhere)}`)}\n`);
      shown = '';
    }
  };
  const poll = async () => {
    while (!done) {
      const s = await source.status().catch(() => null);
      if (s && !done) {
        tell(s);
        // One line, cut to the terminal's width: a wrapped line could not be redrawn in place.
        const line = terminalText(progressLine(label, known, s, timeout, Date.now()));
        const cut = line.slice(0, Math.max(10, (err.columns || 80) - 1));
        if (cut !== shown) err.write(`\r\x1b[K${cut}`);
        shown = cut;
      }
      await new Promise((resolve) => setTimeout(resolve, PROGRESS_INTERVAL_MS));
    }
  };
  const polling = poll();
  try {
    return await running;
  } finally {
    done = true;
    await polling;
    err.write('\r\x1b[K');
  }
}
