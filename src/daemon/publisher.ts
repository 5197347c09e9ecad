import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log';
import { WORKER_ID_PATTERN } from '../worker-id';
import { probeSocket } from './socket-probe';

export interface PreparedLink {
  slot: number;
  temp: string;
  target: string;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Owns the names in tmpDir: each worker's unique socket (`app.<id>.sock`) and each slot's
 * published path (`app.<index>.sock`), a symlink that nginx connects through. A published
 * path only ever changes by rename(2) of a fresh link over it, so nginx sees the old target
 * or the new one, never nothing.
 */
export class Publisher {
  private readonly before: string;
  private readonly after: string;

  constructor(
    private readonly tmpDir: string,
    socketFile: string,
    private readonly log: Logger,
    /** How a published link names its target (the config's `symlinks`). */
    private readonly symlinks: 'relative' | 'absolute' = 'relative',
  ) {
    const at = socketFile.indexOf('{worker}');
    this.before = socketFile.slice(0, at);
    this.after = socketFile.slice(at + '{worker}'.length);
  }

  uniquePath(workerId: string): string {
    return path.join(this.tmpDir, `${this.before}${workerId}${this.after}`);
  }

  /** The worker id in a unique socket path of this naming, or null. */
  workerIdOf(socketPath: string): string | null {
    const name = path.basename(socketPath);
    if (!name.startsWith(this.before) || !name.endsWith(this.after)) return null;
    const id = name.slice(this.before.length, name.length - this.after.length);
    return new RegExp(`^${WORKER_ID_PATTERN}$`).test(id) && this.uniquePath(id) === socketPath ? id : null;
  }

  publishedPath(slot: number): string {
    return path.join(this.tmpDir, `${this.before}${slot}${this.after}`);
  }

  /** Points the slot's published path at the socket, atomically. */
  publish(slot: number, socketPath: string): void {
    this.commit(this.prepare(slot, socketPath));
  }

  /**
   * The first half of a publication: a fresh link to the socket under a temporary name, and
   * a check that the published path can be replaced by it. Throws (leaving nothing behind)
   * when tmpDir is full or something that is not a link sits at the published path.
   */
  prepare(slot: number, socketPath: string): PreparedLink {
    const target = this.publishedPath(slot);
    let existing: fs.Stats | null = null;
    try {
      existing = fs.lstatSync(target);
    } catch {
      // Nothing published yet.
    }
    if (existing && !existing.isSymbolicLink()) {
      throw new Error(
        `cannot publish slot ${slot}: ${target} is ${existing.isDirectory() ? 'a directory' : 'not a symlink'}; remove it`,
      );
    }
    const temp = `${target}.new-${randomBytes(4).toString('hex')}`;
    // A relative target (the default) keeps working when tmpDir is mounted elsewhere (a volume
    // shared with an nginx container); `symlinks: absolute` names the full path, as the original did.
    try {
      fs.symlinkSync(this.symlinks === 'absolute' ? socketPath : path.basename(socketPath), temp);
    } catch (err) {
      throw new Error(`cannot publish slot ${slot}: ${(err as Error).message}`);
    }
    return { slot, temp, target };
  }

  /** The second half: rename(2) of the prepared link over the published path. */
  commit(link: PreparedLink): void {
    try {
      fs.renameSync(link.temp, link.target);
    } catch (err) {
      this.discard(link);
      throw new Error(`cannot publish slot ${link.slot}: ${(err as Error).message}`);
    }
  }

  discard(link: PreparedLink): void {
    fs.rmSync(link.temp, { force: true });
  }

  /** The socket a published path points at now, or null. */
  currentTarget(slot: number): string | null {
    try {
      return path.resolve(this.tmpDir, fs.readlinkSync(this.publishedPath(slot)));
    } catch {
      return null;
    }
  }

  /** Removes the slot's published path (only a link: never what somebody else put there). */
  unpublish(slot: number): void {
    const target = this.publishedPath(slot);
    try {
      if (fs.lstatSync(target).isSymbolicLink()) fs.rmSync(target, { force: true });
    } catch {
      // Already gone, or tmpDir unreadable: nothing to remove that we could remove.
    }
  }

  /** Removes a worker's socket file after it exited, unless something still listens on it. */
  async removeSocketIfDead(socketPath: string): Promise<void> {
    if (!fs.existsSync(socketPath)) return;
    if ((await probeSocket(socketPath)) === 'dead') fs.rmSync(socketPath, { force: true });
  }

  /**
   * Cleans what a crashed daemon left behind (docs/lifecycle.md#daemon-start-lock-state-file-adoption): temp links, published links whose
   * target no longer answers, and dead worker sockets. Live sockets are never unlinked.
   * Returns the unique sockets that are still alive (workers of a previous daemon).
   */
  async cleanStale(): Promise<string[]> {
    const b = escapeRegExp(this.before);
    const a = escapeRegExp(this.after);
    const published = new RegExp(`^${b}\\d+${a}$`);
    const temp = new RegExp(`^${b}\\d+${a}\\.new-[0-9a-f]+$`);
    const unique = new RegExp(`^${b}${WORKER_ID_PATTERN}${a}$`);
    const live: string[] = [];
    for (const name of fs.readdirSync(this.tmpDir)) {
      const file = path.join(this.tmpDir, name);
      if (temp.test(name)) {
        this.log.info(`removing stale temporary link ${file}`);
        fs.rmSync(file, { force: true });
      } else if (published.test(name) && fs.lstatSync(file).isSymbolicLink()) {
        if ((await probeSocket(file)) === 'dead') {
          this.log.info(`removing stale published link ${file}`);
          fs.rmSync(file, { force: true });
        }
      } else if (unique.test(name) && fs.lstatSync(file).isSocket()) {
        if ((await probeSocket(file)) === 'dead') {
          this.log.info(`removing stale worker socket ${file}`);
          fs.rmSync(file, { force: true });
        } else {
          live.push(file);
        }
      }
    }
    return live;
  }
}
