import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import * as z from '../zod';

const workerRecord = z.object({
  id: z.string().check(z.regex(/^w[0-9a-f]{8}$/)),
  pid: z.number().check(z.int(), z.positive()),
  socketPath: z.string(),
  slot: z.nullable(z.number().check(z.int(), z.minimum(0))),
  role: z.enum(['serving', 'standby', 'draining', 'starting']),
  suspended: z.boolean(),
  startedAt: z.number(),
  generation: z.number().check(z.int()),
  /** Process start time (from /proc), so a reused pid is never mistaken for the worker. */
  startTicks: z.nullable(z.string()),
});

const stateSchema = z.object({
  version: z.literal(1),
  daemonPid: z.number().check(z.int()),
  running: z.boolean(),
  suspended: z.boolean(),
  generation: z.number().check(z.int()),
  workers: z.array(workerRecord),
});

export type DaemonState = z.output<typeof stateSchema>;
export type WorkerRecord = z.output<typeof workerRecord>;

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
const CREATE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
const READ_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

/** Why a state file cannot be trusted (a phrase), or null. */
function distrust(stat: fs.Stats): string | null {
  const uid = process.getuid?.();
  if (!stat.isFile()) return 'is not a regular file';
  if (uid !== undefined && stat.uid !== uid)
    return `belongs to uid ${stat.uid}, not to this daemon's uid ${uid}`;
  if (stat.mode & 0o022) {
    return `is writable by group or others (mode ${(stat.mode & 0o777).toString(8).padStart(4, '0')})`;
  }
  return null;
}

/**
 * The first retry of a failed write, doubled after each failed retry up to the last: a file
 * that small costs nothing to try, and space freed is used within seconds.
 */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;

/**
 * What the next daemon needs to take over the workers if this one dies (docs/lifecycle.md#adoption), kept in
 * tmpDir next to the control socket and replaced atomically on every change. A write that
 * fails (a full file system) is said once, retried with backoff until one succeeds, and shown
 * by {@link problem} meanwhile (`status`).
 */
export class StateFile {
  private pending = false;
  private retry: NodeJS.Timeout | null = null;
  private retryMs = RETRY_FIRST_MS;
  private failure: { since: number; error: string } | null = null;

  constructor(
    readonly path: string,
    private readonly log: { error: (m: string) => void; info: (m: string) => void },
  ) {}

  /** Coalesces bursts of changes (a restart swaps every slot) into one write. */
  schedule(snapshot: () => DaemonState): void {
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.save(snapshot);
    });
  }

  /** Writes the state now; if that fails, says so (once) and tries again later. */
  save(snapshot: () => DaemonState, retrying = false): boolean {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    try {
      this.write(snapshot());
    } catch (err) {
      const error = (err as Error).message;
      if (!this.failure) {
        this.log.error(
          `cannot write the state file ${this.path} (${error}): a daemon started after this one dies would not know the current workers; retrying`,
        );
      }
      this.failure = { since: this.failure?.since ?? Date.now(), error };
      // Only a failed retry backs off: a burst of changes must not push the next try away.
      if (retrying) this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
      this.retry = setTimeout(() => this.save(snapshot, true), this.retryMs);
      this.retry.unref();
      return false;
    }
    if (this.failure) {
      const seconds = Math.round((Date.now() - this.failure.since) / 1000);
      this.log.info(`state file ${this.path} written again (it could not be for ${seconds} s)`);
    }
    this.failure = null;
    this.retryMs = RETRY_FIRST_MS;
    return true;
  }

  /** Why the file on disk may not match the workers, or null. */
  get problem(): string | null {
    if (!this.failure) return null;
    const since = new Date(this.failure.since).toISOString();
    return `the state file ${this.path} cannot be written (${this.failure.error}) since ${since}; retrying`;
  }

  /** No more retries (the daemon is closing). */
  stop(): void {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
  }

  /**
   * Replaces the file atomically, or throws. The temporary name is random and created with
   * O_EXCL and O_NOFOLLOW, so nothing planted in tmpDir (a symlink at a guessed name) is ever
   * written through.
   */
  write(state: DaemonState): void {
    const temp = `${this.path}.${randomBytes(8).toString('hex')}.tmp`;
    const fd = fs.openSync(temp, CREATE_FLAGS, 0o600);
    try {
      // writeFileSync writes it all or throws (a bare write(2) may write part of it on a full disk).
      fs.writeFileSync(fd, `${JSON.stringify(state, null, 2)}\n`);
      fs.closeSync(fd);
      fs.renameSync(temp, this.path);
    } catch (err) {
      fs.rmSync(temp, { force: true });
      throw err;
    }
  }

  /**
   * The state an earlier daemon left, or null (none, unreadable or not ours). Only a regular
   * file owned by this daemon's user and writable by nobody else is trusted: anything else may
   * have been planted to make the daemon adopt (and later signal) a process of someone else's.
   */
  read(): { state: DaemonState | null; problem: string | null } {
    let text: string;
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO planted here must not block the daemon's start.
      fd = fs.openSync(this.path, READ_FLAGS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { state: null, problem: null };
      if (code === 'ELOOP') return { state: null, problem: `${this.path} is a symlink; ignoring it` };
      return { state: null, problem: `${this.path} cannot be read (${code}); ignoring it` };
    }
    try {
      const untrusted = distrust(fs.fstatSync(fd));
      if (untrusted) return { state: null, problem: `${this.path} ${untrusted}; ignoring it` };
      text = fs.readFileSync(fd, 'utf8');
    } catch (err) {
      return { state: null, problem: `${this.path} cannot be read (${(err as Error).message}); ignoring it` };
    } finally {
      fs.closeSync(fd);
    }
    try {
      const parsed = stateSchema.safeParse(JSON.parse(text));
      if (parsed.success) return { state: parsed.data, problem: null };
      return { state: null, problem: `${this.path} is not a valid state file; ignoring it` };
    } catch {
      return { state: null, problem: `${this.path} is not valid JSON; ignoring it` };
    }
  }

  remove(): void {
    fs.rmSync(this.path, { force: true });
  }
}
