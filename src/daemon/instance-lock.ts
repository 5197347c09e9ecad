import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { errorMessage, type Logger } from '../log';
import { DaemonLock, lockOwner } from './lock';
import { boundListenerHolders, socketInodeOfFd } from './socket-owner';
import { socketInode as inodeOf, probeSocket } from './socket-probe';
import { dirProblem } from './tmpdir';

/**
 * Set by a daemon for the successor it starts on `restart --upgrade`: `<fd>:<inode>`, the lock's
 * listening socket passed as that fd, and the inode of the lock file it is bound to.
 */
export const LOCK_FD_ENV = 'NODESOCKD_LOCK_FD';

/** How often the daemon checks that the lock file is still its own. */
const WATCH_MS = 1000;

/**
 * One daemon per app, held by the kernel: a listening UNIX socket at `<ipcFile>.lock.sock`, in
 * the directory of the control socket, which only the app user can write (daemon/tmpdir.ts),
 * with mode 0600. Only the app user (and root) can create, remove or connect to it, so no other
 * user can take it, plant it, or make the daemon hold a descriptor through it.
 *
 * The lock is held while a connect() to the file succeeds, that is exactly as long as some
 * process holds the socket: a SIGKILL or a crash leaves a file that refuses connections, which
 * the next daemon takes over. A daemon takes it by binding a socket under a temporary name and
 * link()ing that name to the lock's: link never replaces a file, so of two daemons only one
 * gets it. A connection to it is closed at once, unread and unanswered: it only says "held";
 * the holder's pid is in the lock file (daemon/lock.ts).
 *
 * On `restart --upgrade` the daemon passes the listening socket itself to its successor
 * ({@link LOCK_FD_ENV}), so the lock is held without a gap. If the file is removed (with
 * tmpDir) or replaced, the daemon takes the lock again once the directory is back.
 *
 * The file is only the lock's name: the lock is the socket, which a removed tmpDir does not
 * take. Until the daemon has a file again (it looks every WATCH_MS), another daemon started
 * meanwhile would find no file and take the lock beside it; so a daemon finding no live file
 * first asks the kernel, which lists every socket under the path it was bound to for as long as
 * it is open (/proc/net/unix): a listening socket bound at the lock's name (or at the temporary
 * name it is bound to before its link) that a live process of this user holds is a lock held.
 * No other user can hold one that counts, so none can keep the daemon from starting.
 */
export class InstanceLock {
  private watch: NodeJS.Timeout | null = null;
  private watching = false;
  private lastProblem = '';
  private passedOn = false;

  private constructor(
    private readonly ipcFile: string,
    readonly path: string,
    private server: net.Server,
    private ino: number,
    private readonly log: Logger,
  ) {
    this.watch = setInterval(() => void this.check(), WATCH_MS);
    this.watch.unref();
  }

  static async acquire(ipcFile: string, log: Logger): Promise<InstanceLock> {
    const file = `${ipcFile}.lock.sock`;
    const inherited = await takeInherited(file, log);
    if (inherited) return new InstanceLock(ipcFile, file, inherited.server, inherited.ino, log);
    const taken = await take(file);
    if ('heldBy' in taken) {
      const owner = taken.heldBy ?? lockOwner(ipcFile);
      const gone = taken.heldBy === null ? '' : ` (it holds its lock, whose file ${file} was removed)`;
      throw new Error(
        `another nodesockd daemon${owner ? ` (pid ${owner})` : ''} is already running on ${ipcFile}${gone}`,
      );
    }
    return new InstanceLock(ipcFile, file, taken.server, taken.ino, log);
  }

  /**
   * For a successor started on handover: the listening socket's fd and the value of
   * {@link LOCK_FD_ENV} once it is passed as `childFd`. From then on release() leaves the file
   * to the successor.
   */
  passOn(childFd: number): { fd: number; env: string } | null {
    const fd = serverFd(this.server);
    if (fd === null) return null;
    this.passedOn = true;
    return { fd, env: `${childFd}:${this.ino}` };
  }

  /** Lets go: removes the lock file if it is still this daemon's (and not passed on), closes the socket. */
  async release(): Promise<void> {
    if (this.watch) clearInterval(this.watch);
    this.watch = null;
    if (!this.passedOn && inodeOf(this.path) === this.ino) fs.rmSync(this.path, { force: true });
    await closeServer(this.server);
  }

  /** Every WATCH_MS: the lock file is still ours, or it is taken again (tmpDir removed and re-created). */
  private async check(): Promise<void> {
    if (this.watching || !this.watch || inodeOf(this.path) === this.ino) return;
    this.watching = true;
    try {
      const dir = path.dirname(this.path);
      const unsafe = dirProblem(dir, undefined, true);
      if (unsafe)
        return this.report(`${this.path} is gone or replaced; not taking the lock again: ${unsafe}`);
      const taken = await take(this.path, this.server);
      if (!this.watch) {
        if (!('heldBy' in taken)) await closeServer(taken.server, this.path, taken.ino);
        return;
      }
      if ('heldBy' in taken) {
        const owner = taken.heldBy ?? lockOwner(this.ipcFile);
        const pid = owner && owner !== process.pid ? ` (pid ${owner})` : '';
        return this.report(
          `${this.path} was replaced by a lock another process holds${pid}: ` +
            'two daemons may now run for this app; stop one of them',
        );
      }
      const old = this.server;
      this.server = taken.server;
      this.ino = taken.ino;
      this.lastProblem = '';
      await closeServer(old);
      // And the pid file beside it (daemon/lock.ts), if it went too: its content is the same.
      DaemonLock.acquire(this.ipcFile);
      this.log.warn(`${this.path} was gone or replaced; took the daemon lock again`);
    } catch (err) {
      // The code only: the message names a temporary file, and would make each report new.
      const why = (err as NodeJS.ErrnoException).code ?? errorMessage(err);
      this.report(
        `${this.path} is gone; the daemon lock is taken again once ${path.dirname(this.path)} is back (${why})`,
      );
    } finally {
      this.watching = false;
    }
  }

  /** Logs a problem once, not every WATCH_MS. */
  private report(problem: string): void {
    if (problem === this.lastProblem) return;
    this.lastProblem = problem;
    this.log.error(problem);
  }
}

/** A connection to the lock only learns that it is held: closed at once, nothing read or held. */
function lockServer(): net.Server {
  const server = net.createServer({ pauseOnConnect: true }, (socket) => socket.destroy());
  server.on('error', () => undefined);
  server.unref();
  return server;
}

type Taken = { server: net.Server; ino: number } | { heldBy: number | null };

/**
 * Takes the lock at `file`, or finds it held (by the pid, when known). A file nobody listens on
 * (its daemon died) is moved aside and the lock taken; a file that is not a socket is refused.
 * With no live file, a lock socket whose file is gone still holds it (`own`: this daemon's).
 */
async function take(file: string, own?: net.Server): Promise<Taken> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = fs.lstatSync(file, { throwIfNoEntry: false });
    if (existing) {
      if (!existing.isSocket()) throw new Error(`${file} exists and is not a socket; refusing to replace it`);
      if ((await probeSocket(file)) === 'alive') return { heldBy: null };
    }
    const holder = heldWithoutFile(file, own);
    if (holder !== null) return { heldBy: holder };
    if (existing) removeStale(file, existing.ino);
    const tmp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
    const server = lockServer();
    await listenPrivate(server, tmp);
    try {
      fs.chmodSync(tmp, 0o600);
      fs.linkSync(tmp, file);
      const ino = inodeOf(file);
      if (ino !== null) return { server, ino };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        await closeServer(server);
        throw new Error(`cannot take the lock ${file} (a hard link to a socket): ${errorMessage(err)}`);
      }
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    await closeServer(server);
  }
  throw new Error(`cannot take the lock ${file}; another daemon is starting`);
}

/**
 * Removes a dead lock file, unless another daemon replaced it meanwhile: it is renamed aside
 * first, and if what was moved is not the dead file, linked back (link never replaces a lock
 * a third daemon may have taken since).
 */
function removeStale(file: string, staleIno: number): void {
  const aside = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.stale`;
  try {
    fs.renameSync(file, aside);
  } catch {
    return; // Gone already.
  }
  try {
    if (inodeOf(aside) !== staleIno) fs.linkSync(aside, file);
  } catch {
    // Taken again meanwhile: that daemon holds it.
  }
  fs.rmSync(aside, { force: true });
}

/**
 * The pid of another process of this user that holds a lock socket of `file` (bound at its name,
 * or at a temporary name of {@link take}) although the file is gone or not that socket; or null.
 */
function heldWithoutFile(file: string, own?: net.Server): number | null {
  const ownFd = own ? serverFd(own) : null;
  const ownInode = ownFd === null ? null : socketInodeOfFd(ownFd);
  const bound = (name: string) => name === file || (name.startsWith(`${file}.`) && name.endsWith('.tmp'));
  return boundListenerHolders(bound, new Set(ownInode === null ? [] : [ownInode]))[0] ?? null;
}

/** The descriptor of a listening server, or null. */
function serverFd(server: net.Server): number | null {
  const fd = (server as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

/** Binds and listens at `file`, reachable by this user alone from the start (umask 077 for that one synchronous bind). */
function listenPrivate(server: net.Server, file: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve();
    });
    const previous = process.umask(0o077);
    try {
      server.listen(file);
    } finally {
      process.umask(previous);
    }
  });
}

/** The lock passed by a predecessor on handover, if it is still the one at `file`. */
async function takeInherited(file: string, log: Logger): Promise<{ server: net.Server; ino: number } | null> {
  const value = process.env[LOCK_FD_ENV];
  delete process.env[LOCK_FD_ENV];
  const match = /^(\d+):(\d+)$/.exec(value ?? '');
  if (!match) return null;
  const fd = Number(match[1]);
  const ino = Number(match[2]);
  let usable = false;
  try {
    usable = fs.fstatSync(fd).isSocket() && inodeOf(file) === ino;
  } catch {
    // Not open.
  }
  if (!usable) {
    log.warn(
      `the lock passed by the previous daemon (fd ${fd}) is not the one at ${file}; taking the lock anew`,
    );
    try {
      fs.closeSync(fd);
    } catch {
      // Not open after all.
    }
    return null;
  }
  const server = lockServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, ino };
}

/** Closes a lock socket; with `file` and `ino`, removes its file too if it is still that one. */
async function closeServer(server: net.Server, file?: string, ino?: number): Promise<void> {
  if (file !== undefined && inodeOf(file) === ino) fs.rmSync(file, { force: true });
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
