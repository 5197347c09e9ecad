/**
 * `nodesockd logs --files` (and `logs` when no daemon answers): the workers' output from the log files
 * (`stdout`, `stderr`). With `-f` it follows them, across a logrotate move and reopen
 * (SIGUSR2): a file replaced under the same name, or truncated, is read again from its start.
 */
import fs from 'node:fs';
import type { Config } from '../config/schema';

const FOLLOW_POLL_MS = 250;
const CHUNK = 64 * 1024;
/** History lines per write: one write (and system call) per line would cost more than the reading. */
const WRITE_BATCH = 1000;

export interface LogsOptions {
  follow: boolean;
  /** Only the lines of this slot's workers (needs `{worker}` in outputPrefix). */
  slot?: number;
  /** Lines of history to print first. */
  lines: number;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A test for the lines of one slot, from the output prefix pattern; throws when it cannot tell. */
export function slotFilter(outputPrefix: string, slot: number): (line: string) => boolean {
  if (!outputPrefix.includes('{worker}')) {
    throw new Error(`logs --slot needs {worker} in outputPrefix (it is ${JSON.stringify(outputPrefix)})`);
  }
  const pattern = escapeRegExp(outputPrefix)
    .replaceAll('\\{worker\\}', String(slot))
    .replaceAll('\\{instance\\}', '\\d+')
    .replaceAll('\\{id\\}', 'w[0-9a-f]{8}')
    .replaceAll('\\{date\\}', '\\S+');
  const re = new RegExp(`^${pattern}`);
  return (line) => re.test(line);
}

/** The distinct log files of the config; throws when there are none. */
export function logFiles(config: Pick<Config, 'stdout' | 'stderr'>): string[] {
  const files = [
    ...new Set([config.stdout, config.stderr].filter((f): f is string => !!f && f !== '/dev/null')),
  ];
  if (files.length === 0) {
    throw new Error(
      "no log files are configured: the workers' output goes to the daemon's own stdout and stderr (set stdout/stderr in the config, or read the daemon's log)",
    );
  }
  return files;
}

/**
 * The last `n` lines of a file that `keep` accepts (`--slot` filters before it counts), read
 * backwards from its end in chunks: each byte is looked at once, and no further back than
 * needed. A line is decoded whole, so a character split by a chunk boundary stays intact.
 */
function lastLines(
  file: string,
  n: number,
  keep: (line: string) => boolean,
): { lines: string[]; size: number; ino: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const { size, ino } = fs.fstatSync(fd);
    const found: string[] = []; // newest first
    // The end of the line that starts before `pos`, in reverse chunk order.
    let rest: Buffer[] = [];
    let pos = size;
    while (pos > 0 && found.length < n) {
      const len = Math.min(CHUNK, pos);
      const buf = Buffer.allocUnsafe(len);
      if (fs.readSync(fd, buf, 0, len, pos - len) < len) break; // Truncated meanwhile.
      // The newline that ends the file ends its last line; it does not start an empty one.
      let end = pos === size && buf[len - 1] === 0x0a ? len - 1 : len;
      pos -= len;
      for (let nl = end > 0 ? buf.lastIndexOf(0x0a, end - 1) : -1; nl !== -1 && found.length < n; ) {
        const line =
          rest.length === 0
            ? buf.toString('utf8', nl + 1, end)
            : Buffer.concat([buf.subarray(nl + 1, end), ...rest.reverse()]).toString('utf8');
        rest = [];
        if (keep(line)) found.push(line);
        end = nl;
        nl = end > 0 ? buf.lastIndexOf(0x0a, end - 1) : -1;
      }
      rest.push(buf.subarray(0, end));
    }
    if (pos === 0 && size > 0 && found.length < n) {
      const first = Buffer.concat(rest.reverse()).toString('utf8');
      if (keep(first)) found.push(first);
    }
    return { lines: found.reverse(), size, ino };
  } finally {
    fs.closeSync(fd);
  }
}

/** Prints the history, then (with `follow`) new lines until the process is stopped. */
export async function showLogs(
  config: Config,
  opts: LogsOptions,
  /** Prints lines: one, or several joined by newlines (the history goes in batches). */
  write: (lines: string) => void,
): Promise<void> {
  const files = logFiles(config);
  const keep = opts.slot === undefined ? () => true : slotFilter(config.outputPrefix, opts.slot);
  const tails = files.map((file) => {
    try {
      const { lines, size, ino } = lastLines(file, opts.lines, keep);
      for (let i = 0; i < lines.length; i += WRITE_BATCH) write(lines.slice(i, i + WRITE_BATCH).join('\n'));
      return { file, pos: size, ino, partial: '' };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return { file, pos: 0, ino: -1, partial: '' };
    }
  });
  if (!opts.follow) return;
  for (;;) {
    for (const t of tails) {
      let stat: fs.Stats;
      try {
        stat = fs.statSync(t.file);
      } catch {
        continue; // Moved away and not created again yet.
      }
      if (stat.ino !== t.ino || stat.size < t.pos) {
        // Rotated (a new file under the name) or truncated: read the new one from its start.
        t.ino = stat.ino;
        t.pos = 0;
        t.partial = '';
      }
      if (stat.size <= t.pos) continue;
      const fd = fs.openSync(t.file, 'r');
      try {
        while (t.pos < stat.size) {
          const buf = Buffer.alloc(Math.min(CHUNK, stat.size - t.pos));
          const n = fs.readSync(fd, buf, 0, buf.length, t.pos);
          if (n === 0) break;
          t.pos += n;
          const text = t.partial + buf.subarray(0, n).toString('utf8');
          const lines = text.split('\n');
          t.partial = lines.pop() ?? '';
          for (const line of lines) if (keep(line)) write(line);
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
  }
}
