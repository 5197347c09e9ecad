import fs from 'node:fs';
import { isAlive, processStartTicks } from './proc';

/**
 * Whether the lock's owner still runs: the pid is alive, belongs to this user, and is the very
 * process that wrote the lock (its start time matches). A reused pid, or any process whose
 * command line merely mentions nodesockd (an editor, `tail -f nodesockd.log`, another user's
 * `exec -a nodesockd`), is not the daemon.
 */
function isLiveDaemon(pid: number, startTicks: string | null): boolean {
  if (!isAlive(pid)) return false;
  let uid: number;
  try {
    uid = fs.statSync(`/proc/${pid}`).uid;
  } catch {
    return true; // No /proc: assume the worst, never steal a live lock.
  }
  if (uid !== process.getuid?.()) return false;
  if (startTicks !== null) return processStartTicks(pid) === startTicks;
  // A lock of an older version holds only the pid: its daemon set this title.
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('nodesockd daemon');
  } catch {
    return true;
  }
}

/** The pid (first line) and the process start time (`start-ticks=N`, second line) of a lock. */
function parseLock(content: string): { pid: number; startTicks: string | null } {
  const [pid = '', ticks = ''] = content.split('\n');
  return { pid: Number.parseInt(pid, 10), startTicks: /^start-ticks=(\d+)$/.exec(ticks)?.[1] ?? null };
}

/**
 * One daemon per app (SPEC §4.7): `<ipcFile>.lock` holds the owner's pid on its first line (so
 * `kill -USR2 "$(head -n1 …lock)"` works) and its start time in clock ticks since boot on the
 * second, as `start-ticks=N`: not a number, so an old `kill $(cat …lock)` can never signal a
 * pid that happens to equal it. Created with O_EXCL so two daemons starting together cannot both win. A lock left by
 * a dead daemon (SIGKILL, a crash) is taken over.
 */
export class DaemonLock {
  private constructor(
    readonly path: string,
    private readonly content: string,
  ) {}

  static acquire(ipcFile: string): DaemonLock {
    const path = `${ipcFile}.lock`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const content = `${process.pid}\nstart-ticks=${processStartTicks(process.pid) ?? ''}\n`;
        const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
        const fd = fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
        fs.writeSync(fd, content);
        fs.closeSync(fd);
        return new DaemonLock(path, content);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const content = readOr(path);
      const { pid: owner, startTicks } = parseLock(content);
      if (Number.isInteger(owner) && owner !== process.pid && isLiveDaemon(owner, startTicks)) {
        throw new Error(`another nodesockd daemon (pid ${owner}) is already running on ${ipcFile}`);
      }
      // Stale: its owner is gone. Remove it only if nobody replaced it meanwhile.
      if (readOr(path) === content) fs.rmSync(path, { force: true });
    }
    throw new Error(`cannot take the lock ${path}; another daemon is starting`);
  }

  release(): void {
    if (readOr(this.path) === this.content) fs.rmSync(this.path, { force: true });
  }
}

/** The pid a daemon wrote into `<ipcFile>.lock`, for messages; null when there is none. */
export function lockOwner(ipcFile: string): number | null {
  const { pid } = parseLock(readOr(`${ipcFile}.lock`));
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

function readOr(path: string): string {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
