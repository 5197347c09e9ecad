import fs from 'node:fs';
import { isAlive } from './proc';

export class LockHeldError extends Error {}

/** Whether `pid` is a live nodesockd daemon (not just any process that reused the pid). */
function isLiveDaemon(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('nodesockd');
  } catch {
    return true; // No /proc: assume the worst, never steal a live lock.
  }
}

/**
 * One daemon per app (SPEC §4.7): `<ipcFile>.lock` holds the owner's pid, created with O_EXCL
 * so two daemons starting together cannot both win. A lock left by a dead daemon (SIGKILL, a
 * crash) is taken over.
 */
export class DaemonLock {
  private constructor(readonly path: string) {}

  static acquire(ipcFile: string): DaemonLock {
    const path = `${ipcFile}.lock`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = fs.openSync(path, 'wx', 0o600);
        fs.writeSync(fd, `${process.pid}\n`);
        fs.closeSync(fd);
        return new DaemonLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const content = readOr(path);
      const owner = Number.parseInt(content, 10);
      if (Number.isInteger(owner) && owner !== process.pid && isLiveDaemon(owner)) {
        throw new LockHeldError(`another nodesockd daemon (pid ${owner}) is already running on ${ipcFile}`);
      }
      // Stale: its owner is gone. Remove it only if nobody replaced it meanwhile.
      if (readOr(path) === content) fs.rmSync(path, { force: true });
    }
    throw new LockHeldError(`cannot take the lock ${path}; another daemon is starting`);
  }

  release(): void {
    if (readOr(this.path) === `${process.pid}\n`) fs.rmSync(this.path, { force: true });
  }
}

function readOr(path: string): string {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
