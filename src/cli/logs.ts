/**
 * `nodesockd logs [-f] [--slot N] [-n N]`: the workers' output from the log files of the config
 * (`stdout`, `stderr`). With `-f` it follows them, across a logrotate move and reopen
 * (SIGUSR2): a file replaced under the same name, or truncated, is read again from its start.
 */
import fs from 'node:fs';
import type { Config } from '../config/schema';

const FOLLOW_POLL_MS = 250;
const CHUNK = 64 * 1024;

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

/** The last `n` lines of a file (read from its end, never the whole file). */
function lastLines(file: string, n: number): { lines: string[]; size: number; ino: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const { size, ino } = fs.fstatSync(fd);
    let pos = size;
    let text = '';
    while (pos > 0 && text.split('\n').length <= n + 1) {
      const len = Math.min(CHUNK, pos);
      pos -= len;
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, pos);
      text = buf.toString('utf8') + text;
    }
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return { lines: n === 0 ? [] : lines.slice(-n), size, ino };
  } finally {
    fs.closeSync(fd);
  }
}

/** Prints the history, then (with `follow`) new lines until the process is stopped. */
export async function showLogs(
  config: Config,
  opts: LogsOptions,
  write: (line: string) => void,
): Promise<void> {
  const files = logFiles(config);
  const keep = opts.slot === undefined ? () => true : slotFilter(config.outputPrefix, opts.slot);
  const tails = files.map((file) => {
    try {
      const { lines, size, ino } = lastLines(file, opts.lines);
      for (const line of lines) if (keep(line)) write(line);
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
