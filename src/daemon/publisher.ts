import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log';
import { probeSocket } from './socket-probe';

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
  ) {
    const at = socketFile.indexOf('{worker}');
    this.before = socketFile.slice(0, at);
    this.after = socketFile.slice(at + '{worker}'.length);
  }

  uniquePath(workerId: string): string {
    return path.join(this.tmpDir, `${this.before}${workerId}${this.after}`);
  }

  publishedPath(slot: number): string {
    return path.join(this.tmpDir, `${this.before}${slot}${this.after}`);
  }

  /** Points the slot's published path at the socket, atomically. */
  publish(slot: number, socketPath: string): void {
    const target = this.publishedPath(slot);
    const temp = `${target}.new-${randomBytes(4).toString('hex')}`;
    // A relative target keeps working when tmpDir is mounted elsewhere (a volume shared
    // with an nginx container).
    fs.symlinkSync(path.basename(socketPath), temp);
    try {
      fs.renameSync(temp, target);
    } catch (err) {
      fs.rmSync(temp, { force: true });
      throw err;
    }
  }

  unpublish(slot: number): void {
    fs.rmSync(this.publishedPath(slot), { force: true });
  }

  /** Removes a worker's socket file after it exited, unless something still listens on it. */
  async removeSocketIfDead(socketPath: string): Promise<void> {
    if (!fs.existsSync(socketPath)) return;
    if ((await probeSocket(socketPath)) === 'dead') fs.rmSync(socketPath, { force: true });
  }

  /**
   * Cleans what a crashed daemon left behind (SPEC §4.1): temp links, published links whose
   * target no longer answers, and dead worker sockets. Live sockets are never unlinked.
   * Returns the unique sockets that are still alive (workers of a previous daemon).
   */
  async cleanStale(): Promise<string[]> {
    const b = escapeRegExp(this.before);
    const a = escapeRegExp(this.after);
    const published = new RegExp(`^${b}\\d+${a}$`);
    const temp = new RegExp(`^${b}\\d+${a}\\.new-[0-9a-f]+$`);
    const unique = new RegExp(`^${b}w[0-9a-f]{8}${a}$`);
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
