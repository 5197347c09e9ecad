import fs from 'node:fs';
import { accountName } from '../accounts';
import { errorMessage, type Logger } from '../log';
import { inspectTmpDir } from './tmpdir';

/** The first retry of a failed recovery, doubled after each failure up to the last. */
const RETRY_FIRST_MS = 2000;
const RETRY_MAX_MS = 60_000;

export interface TmpDirWatchDeps {
  tmpDir: string;
  log: Logger;
  /** Whether the control socket in tmpDir is still the one this daemon bound. */
  ipcBound: () => boolean;
  rebindIpc: () => Promise<void>;
  saveState: () => void;
  /** The unique sockets of the workers that serve the slots now. */
  servingSockets: () => string[];
  /** Replaces every worker (new sockets, new links), all or nothing; null when the workers are stopped. */
  restartWorkers: () => Promise<unknown> | null;
}

interface DirIdentity {
  ino: number;
  uid: number;
  gid: number;
  mode: number;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

function statOrNull(dir: string): fs.Stats | null {
  try {
    return fs.statSync(dir);
  } catch {
    return null;
  }
}

/**
 * tmpDir removed while the daemon runs (a tmp cleaner, a deploy script, `rm -rf /run/myapp`)
 * takes with it the control socket, the state file, every worker's socket and every published
 * link: each slot refuses connections although its worker runs. Polled by the daemon, this
 * treats that as the outage it is: says so (log, `status`), re-creates the directory only
 * exactly as it was (owner, group, mode with SETGID) or waits for the operator, and once it is
 * back binds the control socket again and replaces the workers by a transactional restart, so
 * every slot gets a new socket and a new link.
 */
export class TmpDirWatch {
  private dir: DirIdentity;
  private outage: string | null = null;
  private waiting: string | null = null;
  private busy = false;
  private retryMs = RETRY_FIRST_MS;
  private nextTryAt = 0;

  constructor(private readonly deps: TmpDirWatchDeps) {
    const stat = fs.statSync(deps.tmpDir);
    this.dir = { ino: stat.ino, uid: stat.uid, gid: stat.gid, mode: stat.mode & 0o7777 };
  }

  /** The outage, as `status` shows it, or null. */
  get problem(): string | null {
    if (!this.outage) return null;
    return this.waiting ? `${this.outage}; ${this.waiting}` : this.outage;
  }

  async check(): Promise<void> {
    if (this.busy || Date.now() < this.nextTryAt) return;
    this.busy = true;
    try {
      await this.checkOnce();
    } catch (err) {
      // Said once per cause, not every poll.
      this.wait(`${errorMessage(err)}; trying again`);
    } finally {
      this.busy = false;
    }
  }

  private async checkOnce(): Promise<void> {
    const { tmpDir, log } = this.deps;
    let stat = statOrNull(tmpDir);
    if (!stat) {
      this.begin(
        `tmpDir ${tmpDir} is gone: every slot is unreachable (the workers' sockets and the published links went with it)`,
      );
      if (!this.recreate()) return;
      stat = fs.statSync(tmpDir);
    }
    const replaced = stat.ino !== this.dir.ino;
    const ipcGone = !this.deps.ipcBound();
    if (!replaced && !ipcGone && !this.outage) return;
    const socketsGone = replaced || this.deps.servingSockets().some((socket) => !fs.existsSync(socket));
    if (socketsGone) this.begin(`tmpDir ${tmpDir} was emptied or replaced: every slot is unreachable`);
    if (stat.uid !== this.dir.uid) {
      this.wait(this.takenBy(stat.uid));
      return;
    }
    const unsafe = inspectTmpDir(tmpDir).find((f) => f.level === 'error');
    if (unsafe) {
      this.wait(`${unsafe.message}; the slots stay unreachable until it is fixed`);
      return;
    }
    if (ipcGone) {
      log.warn(`${tmpDir}: the control socket is gone or replaced; binding it again`);
      await this.deps.rebindIpc();
    }
    // A later re-creation still restores the owner, group and mode the daemon started with.
    this.dir = { ...this.dir, ino: stat.ino };
    this.deps.saveState();
    if (!this.outage) return;
    let restarted: unknown;
    try {
      restarted = await this.deps.restartWorkers();
    } catch (err) {
      this.nextTryAt = Date.now() + this.retryMs;
      this.wait(
        `replacing the workers failed (${errorMessage(err)}); trying again in ${this.retryMs / 1000} s`,
      );
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
      return;
    }
    log.info(
      restarted === null
        ? `tmpDir ${tmpDir} is back (the workers are stopped: \`start\` publishes them)`
        : `tmpDir ${tmpDir} is back: every slot serves again (new workers, new sockets and links)`,
    );
    this.outage = null;
    this.waiting = null;
    this.retryMs = RETRY_FIRST_MS;
  }

  /**
   * tmpDir is back, but another user's: someone took the name while it was gone (it lies in a
   * directory others can write). Not "run the daemon as that user": the name is to be freed.
   */
  private takenBy(uid: number): string {
    const { tmpDir } = this.deps;
    const { gid, mode } = this.dir;
    const owner = (id: number) => `${accountName('/etc/passwd', id)} (uid ${id})`;
    return (
      `another user, ${owner(uid)}, took its name while it was gone (it was ${owner(this.dir.uid)}'s); ` +
      `the slots stay unreachable and the CLI will not trust a control socket there. As root: rm -rf ${tmpDir} ` +
      `(the daemon then re-creates it as it was: install -d -o ${this.dir.uid} -g ${gid} -m ${octal(mode)}), ` +
      'and move tmpDir to a directory only root and the app user can write (/run/<app>, see nodesockd check)'
    );
  }

  private begin(outage: string): void {
    if (this.outage) return;
    this.outage = outage;
    this.deps.log.error(outage);
  }

  /** What the outage waits for; logged when it changes. */
  private wait(why: string): void {
    if (why !== this.waiting) this.deps.log.error(`tmpDir ${this.deps.tmpDir}: ${why}`);
    this.waiting = why;
  }

  /**
   * Makes tmpDir again with the owner, group and mode it had (SETGID included), or leaves
   * nothing and waits: never a directory the daemon's own checks would refuse, or that
   * nginx's group could not traverse.
   */
  private recreate(): boolean {
    const { tmpDir } = this.deps;
    const { uid, gid, mode } = this.dir;
    const as = `install -d -o ${uid} -g ${gid} -m ${octal(mode)} ${tmpDir}`;
    try {
      fs.mkdirSync(tmpDir, { mode: 0o700 });
    } catch (err) {
      this.wait(`cannot re-create it (${errorMessage(err)}); waiting for it: ${as}`);
      return false;
    }
    try {
      fs.chownSync(tmpDir, uid, gid);
      fs.chmodSync(tmpDir, mode);
      const made = fs.statSync(tmpDir).mode & 0o7777;
      if (made !== mode) throw new Error(`its mode came out ${octal(made)}`);
    } catch (err) {
      fs.rmSync(tmpDir, { recursive: true, force: true });
      this.wait(`cannot re-create it as it was (${errorMessage(err)}); waiting for it: ${as}`);
      return false;
    }
    this.deps.log.warn(`re-created tmpDir ${tmpDir} as it was (${octal(mode)} ${uid}:${gid})`);
    return true;
  }
}
