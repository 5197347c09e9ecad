/**
 * What a person at a terminal sees while the daemon works: `status --watch` (redrawn in place,
 * no flicker) and a progress line during long commands. Never on a pipe: scripts get the plain
 * output and nothing else.
 */
import type { DaemonStatus } from '../ipc/protocol';
import { terminalText } from './common';

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

/**
 * While `task` runs, shows `label: 3/4 workers online…` on stderr when it is a terminal,
 * counting the workers of the generation being started. Cleared when the task ends.
 */
export async function withProgress<T>(
  label: string,
  task: Promise<T>,
  load: () => Promise<DaemonStatus>,
  err: NodeJS.WriteStream = process.stderr,
): Promise<T> {
  if (!err.isTTY) return task;
  let done = false;
  const before = await load().catch(() => null);
  const newest = before ? Math.max(0, ...before.workers.map((w) => w.generation)) : 0;
  const poll = async () => {
    while (!done) {
      const s = await load().catch(() => null);
      if (s && !done) {
        const fresh = s.workers.filter((w) => w.generation > newest);
        const online = fresh.filter((w) => w.state === 'online' || w.state === 'suspended').length;
        const wanted = s.slots.length + s.workers.filter((w) => w.role === 'standby').length;
        err.write(`\r\x1b[K${label}: ${online}/${Math.max(wanted, fresh.length)} workers online…`);
      }
      await new Promise((resolve) => setTimeout(resolve, PROGRESS_INTERVAL_MS));
    }
  };
  const polling = poll();
  try {
    return await task;
  } finally {
    done = true;
    await polling;
    err.write('\r\x1b[K');
  }
}
