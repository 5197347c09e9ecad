import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { errorMessage } from '../log';
import { RepeatedWarning } from '../repeated-warning';
import { type DaemonStdio, daemonStdio, MAX_QUEUED_BYTES, type Sink, StreamSink } from '../stdio';
import { LogHistory } from './log-history';

export interface OutputTags {
  /** Slot index, or "standby"/"-" for a worker without a slot. */
  worker: string;
  /** How many workers the slot has had before this one. */
  instance: number;
  id: string;
}

/** The longest line a worker can write: longer ones are split, each piece marked. */
export const MAX_LINE_BYTES = 16 * 1024;
/** How much of each stderr line the daemon keeps for a failure report (`onLine`). */
export const TAIL_LINE_BYTES = 512;
const SPLIT_MARKER = ` [nodesockd: line longer than ${MAX_LINE_BYTES} bytes, continued on the next line]`;
const SPLIT_MARKER_BYTES = Buffer.from(SPLIT_MARKER);
/** A log file that cannot be written is retried after this, doubling up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 1000;
/**
 * What a log file may hold for its disk before the workers writing to it wait. A worker pipe is
 * paused once its chunk is queued, so each adds at most a chunk (64 KiB of a pipe, its lines
 * prefixed) beyond this; FILE_MAX_QUEUED_BYTES only guards memory should that ever fail.
 */
const FILE_ROOM_BYTES = MAX_QUEUED_BYTES;
const FILE_MAX_QUEUED_BYTES = 64 * MAX_QUEUED_BYTES;
/** The "workers wait for the file" warning: the first at once, then a count per interval. */
const WAIT_WARNING_MS = 60_000;

/**
 * Where worker stdout/stderr lines go: the daemon's memory of recent output (`logs`,
 * log-history.ts), and the configured files, else the daemon's own stdout and stderr, each line
 * prefixed with `outputPrefix` ({date}, {worker}, {instance}, {id}). Memory stays bounded
 * whatever a worker writes: lines are cut at MAX_LINE_BYTES, the history is bounded in bytes,
 * a log file slower than the workers makes them wait (their pipes are paused until it has
 * room: a file loses nothing), and the daemon's stdout or stderr that does not keep up drops
 * output (counted, see stdio.ts) instead of queueing it.
 */
export class WorkerOutput {
  readonly history = new LogHistory();
  private out!: Sink;
  private err!: Sink;
  private files: FileSink[] = [];

  constructor(
    private prefix: string,
    stdoutFile?: string,
    stderrFile?: string,
    private readonly report: (message: string) => void = (message) =>
      daemonStdio().stderr.write(`nodesockd: ${message}\n`),
    private readonly stdio: DaemonStdio = daemonStdio(),
  ) {
    this.configure(prefix, stdoutFile, stderrFile);
  }

  /**
   * Throws, naming the key, when a log file `next` adds cannot be opened for appending (a reload
   * checks before it applies anything). Creates it when missing, as the daemon would. A file
   * already open is not checked again: its sink retries on its own.
   */
  check(next: { stdout?: string; stderr?: string }): void {
    for (const key of ['stdout', 'stderr'] as const) {
      const file = next[key];
      if (!file || this.files.some((f) => f.path === file)) continue;
      try {
        fs.closeSync(fs.openSync(file, 'a', 0o640));
      } catch (err) {
        const why = (err as NodeJS.ErrnoException).code ?? errorMessage(err);
        throw new Error(`${key}: cannot open ${file} (${why}); nothing reloaded`);
      }
    }
  }

  /**
   * Takes the prefix and the log files from now on (start, reload): a file already open stays
   * open, a new one is opened, one no longer named is closed after what it holds is written.
   */
  configure(prefix: string, stdoutFile?: string, stderrFile?: string): void {
    this.prefix = prefix;
    const previous = this.files;
    this.files = [];
    const file = (path: string): FileSink => {
      const open = this.files.find((f) => f.path === path);
      if (open) return open;
      const sink = previous.find((f) => f.path === path) ?? new FileSink(path, this.report);
      this.files.push(sink);
      return sink;
    };
    this.out = stdoutFile ? file(stdoutFile) : this.stdio.stdout;
    this.err = stderrFile ? file(stderrFile) : this.stdio.stderr;
    for (const f of previous) if (!this.files.includes(f)) f.close();
  }

  /** Reopens the log files, so logrotate can move them away (SIGUSR2, SIGUSR1). */
  reopen(): void {
    for (const f of this.files) f.reopen();
  }

  /**
   * Copies a worker's output to its sink line by line. `onLine` gets each line cut to
   * TAIL_LINE_BYTES (what a failure report quotes).
   */
  attach(
    from: Readable | null,
    kind: 'stdout' | 'stderr',
    tags: OutputTags,
    onLine?: (line: string) => void,
  ) {
    if (!from) return;
    const splitter = new LineSplitter(MAX_LINE_BYTES);
    const slot = /^\d+$/.test(tags.worker) ? Number(tags.worker) : null;
    const stream = kind === 'stdout' ? 'out' : 'err';
    const emit = (lines: Line[]) => {
      for (const { bytes, split } of lines) {
        const text = bytes.toString('utf8');
        if (onLine) onLine(bytes.length > TAIL_LINE_BYTES ? capLine(bytes, TAIL_LINE_BYTES) : text);
        this.history.add(slot, tags.id, stream, split ? Buffer.concat([bytes, SPLIT_MARKER_BYTES]) : bytes);
        (kind === 'stdout' ? this.out : this.err).write(
          `${this.format(tags)}${text}${split ? SPLIT_MARKER : ''}\n`,
        );
      }
    };
    from.on('data', (chunk: Buffer) => {
      emit(splitter.push(chunk));
      const room = (kind === 'stdout' ? this.out : this.err).room?.();
      if (!room) return;
      from.pause();
      void room.then(() => from.resume());
    });
    from.on('end', () => emit(splitter.end()));
    // The worker is gone; its 'exit' is handled elsewhere.
    from.on('error', () => {});
  }

  close(): void {
    for (const f of this.files) f.close();
  }

  private format(tags: OutputTags): string {
    return this.prefix
      .replaceAll('{date}', new Date().toISOString())
      .replaceAll('{worker}', tags.worker)
      .replaceAll('{instance}', String(tags.instance))
      .replaceAll('{id}', tags.id);
  }
}

export interface Line {
  bytes: Buffer;
  /** Cut at the maximum length: the line goes on in the next one. */
  split: boolean;
}

/** Splits a byte stream into lines (LF or CRLF), none longer than `max` bytes. */
export class LineSplitter {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly max: number) {}

  push(chunk: Buffer): Line[] {
    const lines: Line[] = [];
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      this.add(chunk.subarray(start, nl === -1 ? chunk.length : nl), lines);
      if (nl === -1) break;
      let bytes = this.pending;
      if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, -1);
      lines.push({ bytes, split: false });
      this.pending = Buffer.alloc(0);
      start = nl + 1;
    }
    return lines;
  }

  /** The last line, when the stream ended without a newline. */
  end(): Line[] {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest.length > 0 ? [{ bytes: rest, split: false }] : [];
  }

  private add(piece: Buffer, lines: Line[]): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, piece]) : piece;
    while (buf.length > this.max) {
      const cut = utf8Boundary(buf, this.max);
      lines.push({ bytes: buf.subarray(0, cut), split: true });
      buf = buf.subarray(cut);
    }
    // A copy: a slice would keep the whole chunk it came from alive.
    this.pending = Buffer.from(buf);
  }
}

/** The largest index ≤ `max` that does not fall inside a UTF-8 character. */
function utf8Boundary(buf: Buffer, max: number): number {
  let cut = max;
  while (cut > max - 3 && cut > 0 && ((buf[cut] ?? 0) & 0xc0) === 0x80) cut--;
  return cut;
}

function capLine(bytes: Buffer, max: number): string {
  return `${bytes.subarray(0, utf8Boundary(bytes, max)).toString('utf8')}… [${bytes.length} bytes]`;
}

/**
 * A log file that survives its errors: after a failed write (ENOSPC, EIO, a vanished directory)
 * its output is dropped and counted, and the file is reopened after a backoff until a write
 * succeeds; the first line written then says how much was lost. Opened synchronously, so its
 * mode (0640 minus the umask) never depends on what else the process does meanwhile. A file
 * that is written but slower than the workers loses nothing: past FILE_ROOM_BYTES queued,
 * {@link room} tells its writers to wait for it.
 */
class FileSink implements Sink {
  private stream: fs.WriteStream | null = null;
  private sink: StreamSink | null = null;
  /** Bytes dropped while no stream could take them, not yet reported. */
  private lost = 0;
  /** Why the file cannot be written, while it cannot. */
  private failure: string | null = null;
  private retryDelay = RETRY_FIRST_MS;
  private retryTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Resolves the writers waiting for room; null while none waits. */
  private roomMade: (() => void) | null = null;
  private roomWanted: Promise<void> | null = null;
  private readonly waitWarning: RepeatedWarning;

  constructor(
    readonly path: string,
    private readonly report: (message: string) => void,
  ) {
    this.waitWarning = new RepeatedWarning(
      report,
      (n) => `${path} is slower than the workers' output: they wait for it${n > 1 ? ` (${n} times)` : ''}`,
      WAIT_WARNING_MS,
    );
    this.open();
  }

  /**
   * Null while the file has room; else what a writer waits for before it writes more: the
   * file's queue drained, or the file replaced, failed (its output is then dropped) or closed.
   */
  room(): Promise<void> | null {
    if (this.roomWanted) return this.roomWanted;
    if (!this.stream || this.stream.writableLength < FILE_ROOM_BYTES) return null;
    this.waitWarning.note();
    this.roomWanted = new Promise<void>((resolve) => {
      this.roomMade = resolve;
    });
    return this.roomWanted;
  }

  /** The writers waiting for room go on. */
  private makeRoom(): void {
    const made = this.roomMade;
    this.roomMade = null;
    this.roomWanted = null;
    made?.();
  }

  write(text: string): void {
    if (!this.sink) {
      this.lost += Buffer.byteLength(text);
      return;
    }
    this.sink.write(text, this.failure ? () => this.recovered() : undefined);
  }

  /** logrotate moved the file away: what is queued still goes to the old one, the rest to a new one. */
  reopen(): void {
    this.stream?.end();
    this.stream = null;
    this.sink = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
    this.makeRoom();
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stream?.end();
    this.stream = null;
    this.sink = null;
    this.makeRoom();
  }

  private open(): void {
    let fd: number;
    try {
      fd = fs.openSync(this.path, 'a', 0o640);
    } catch (err) {
      this.failed(err);
      return;
    }
    const stream = fs.createWriteStream(this.path, { fd });
    this.stream = stream;
    stream.on('drain', () => {
      if (this.stream === stream) this.makeRoom();
    });
    // An error of a stream already replaced (a late write callback) is not this one's.
    this.sink = new StreamSink(
      stream,
      this.path,
      (err) => {
        if (this.stream === stream) this.failed(err);
      },
      FILE_MAX_QUEUED_BYTES,
    );
    if (this.failure && this.lost > 0) {
      const lost = this.lost;
      this.lost = 0;
      this.sink.flushNotice(`it could not be written (${this.failure})`, lost, () => this.recovered());
    }
  }

  /** Closes the current stream, counting what it still held as lost. */
  private drop(): void {
    if (this.sink) this.lost += this.sink.droppedBytes;
    this.stream?.destroy();
    this.stream = null;
    this.sink = null;
    this.makeRoom();
  }

  private failed(err: unknown): void {
    if (this.closed) return;
    this.drop();
    if (this.failure === null) {
      this.failure = errorMessage(err);
      this.report(`cannot write ${this.path}: ${this.failure}; dropping its output and retrying`);
    } else {
      this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    }
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.closed) this.open();
    }, this.retryDelay);
    this.retryTimer.unref();
  }

  private recovered(): void {
    if (this.failure === null) return;
    this.failure = null;
    this.retryDelay = RETRY_FIRST_MS;
    this.report(`${this.path} can be written again`);
  }
}
