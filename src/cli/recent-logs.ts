/**
 * `nodesockd logs` from the daemon's memory (daemon/log-history.ts), over the control socket:
 * the last lines in pages, then with `-f` the new ones, asked for every 250 ms after the last
 * number seen. Each line is tagged with its slot, worker and stream.
 */
import { request } from '../ipc/client';
import type { LogLine, LogsReply } from '../ipc/protocol';

const FOLLOW_POLL_MS = 250;
/** While following, how long the daemon may be unreachable (a handover) before `logs -f` gives up. */
const FOLLOW_RECONNECT_MS = 10_000;

export interface RecentLogsOptions {
  follow: boolean;
  slot?: number;
  lines: number;
  json: boolean;
  timestamps: boolean;
}

/** `slot 0  w5a0e22b2 err | text`; `standby` for a standby's lines. */
export function formatLogLine(line: LogLine, timestamps: boolean): string {
  const who = line.slot === null ? 'standby' : `slot ${line.slot}`;
  const time = timestamps ? `${new Date(line.time).toISOString()} ` : '';
  return `${time}${who.padEnd(7)} ${line.id} ${line.stream} | ${line.text}`;
}

/**
 * Prints the history (and with `follow`, new lines until the process is stopped). Rejects
 * before printing anything when the daemon does not answer, so the caller can read files instead.
 */
export async function showRecentLogs(
  ipcPath: string,
  opts: RecentLogsOptions,
  write: (lines: string) => void,
  warn: (message: string) => void,
): Promise<void> {
  const ask = (data: { lines?: number; after?: number; before?: number }) =>
    request(ipcPath, 'logs', { slot: opts.slot, ...data }, { timeoutMs: 10_000 });
  const print = (lines: LogLine[]) => {
    if (lines.length === 0) return;
    write(lines.map((l) => (opts.json ? JSON.stringify(l) : formatLogLine(l, opts.timestamps))).join('\n'));
  };

  // The history, newest page first, each page older than the one before; printed oldest first.
  const first = await ask({ lines: opts.lines });
  const pages = [first.lines];
  let got = first.lines.length;
  for (let page: LogsReply = first; page.more && got < opts.lines && page.lines.length > 0; ) {
    page = await ask({ lines: opts.lines - got, before: page.lines[0]?.seq });
    pages.unshift(page.lines);
    got += page.lines.length;
  }
  for (const lines of pages) print(lines);
  if (!opts.follow) return;

  let pid = first.pid;
  let cursor = first.last;
  let unreachableSince: number | null = null;
  let more = false;
  for (;;) {
    if (!more) await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
    more = false;
    let reply: LogsReply;
    try {
      reply = await ask({ after: cursor });
      unreachableSince = null;
    } catch (err) {
      unreachableSince ??= Date.now();
      if (Date.now() - unreachableSince > FOLLOW_RECONNECT_MS) throw err;
      continue;
    }
    if (reply.pid !== pid) {
      // Another daemon (a handover, a restart): its numbers start again.
      warn(`the daemon is now pid ${reply.pid} (was ${pid}); following it`);
      pid = reply.pid;
      cursor = 0;
      continue;
    }
    if (reply.dropped) warn('some lines were dropped: the workers wrote more than the daemon keeps');
    print(reply.lines);
    more = reply.more;
    cursor = reply.more ? (reply.lines.at(-1)?.seq ?? reply.last) : reply.last;
  }
}
