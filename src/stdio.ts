/**
 * A process's stdout and stderr as sinks that can fail without taking the process with them: the
 * daemon's own, and the pool library's console (src/socketnaut/log-graph.ts).
 *
 * A write to a closed pipe fails with EPIPE; without an 'error' listener that becomes an
 * uncaughtException, whose report is written to the same broken stderr, and so on: a spin at
 * 100% CPU. A reader that stalls (a paused `| less`, a stuck log shipper) makes Node queue every
 * write in memory. So each sink listens for 'error' from the start, is dead after its first write
 * error (later writes are dropped, never retried on the broken fd), and keeps at most
 * MAX_QUEUED_BYTES queued: what does not fit is dropped and counted, and the count is written as
 * one notice line once the reader has caught up.
 */

/** What a sink holds in memory for a slow reader before it drops output. */
export const MAX_QUEUED_BYTES = 1024 * 1024;

/** The minimal stream a sink writes to: process.stdout, process.stderr, a socket. */
export interface WritableTarget {
  write(chunk: string, callback?: (err?: Error | null) => void): boolean;
  readonly writableLength: number;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'drain', listener: () => void): unknown;
}

/** Where a line of text goes: a stdio stream or a log file. Never throws. */
export interface Sink {
  write(text: string): void;
  /** A sink that loses nothing (a log file): null while it has room, else what to wait for. */
  room?(): Promise<void> | null;
}

/**
 * A stream that can fail or stall without harm: writes after a failure are dropped, and at most
 * `maxQueuedBytes` wait for a slow reader; what does not fit is dropped and counted, and the
 * count is written as one notice line once the reader has caught up.
 */
export class StreamSink implements Sink {
  private failed: Error | null = null;
  private dropped = 0;

  constructor(
    private readonly target: WritableTarget,
    readonly name: string,
    private readonly onFail: (err: Error) => void = () => {},
    private readonly maxQueuedBytes = MAX_QUEUED_BYTES,
  ) {
    target.on('error', (err) => this.fail(err));
    target.on('drain', () => this.flushNotice('it did not keep up'));
  }

  /** Whether a write has failed (EPIPE: the reader is gone): everything is dropped from then on. */
  get dead(): boolean {
    return this.failed !== null;
  }

  /** Bytes dropped and not yet reported in a notice (the queue of a failed stream included). */
  get droppedBytes(): number {
    return this.dropped + (this.failed ? this.target.writableLength : 0);
  }

  /** Queues `text`, or drops it (failed, or too much queued); `written` runs once the OS took it. */
  write(text: string, written?: () => void): void {
    const bytes = Buffer.byteLength(text);
    if (this.failed || this.target.writableLength + bytes > this.maxQueuedBytes) {
      this.dropped += bytes;
      return;
    }
    this.send(text, written);
  }

  /** Writes the count of bytes dropped so far (plus `more`), if any, as one line. */
  flushNotice(why: string, more = 0, written?: () => void): void {
    const count = this.dropped + more;
    if (this.failed || count === 0) return;
    this.dropped = 0;
    this.send(`nodesockd: ${count} bytes of output to ${this.name} dropped: ${why}\n`, written);
  }

  private send(text: string, done?: () => void): void {
    try {
      this.target.write(text, (err) => (err ? this.fail(err) : done?.()));
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    this.onFail(err);
  }
}

export interface DaemonStdio {
  stdout: StreamSink;
  stderr: StreamSink;
}

let installed: DaemonStdio | null = null;

/**
 * The daemon's stdio sinks, created (and their 'error' listeners installed) on the first call.
 * The daemon calls this first thing, before anything can write.
 */
export function daemonStdio(): DaemonStdio {
  installed ??= {
    stdout: new StreamSink(process.stdout, 'stdout'),
    stderr: new StreamSink(process.stderr, 'stderr'),
  };
  return installed;
}

/**
 * The stdio a successor daemon (restart --upgrade) should get: the streams that still work
 * are inherited, a dead one is replaced by /dev/null so the successor does not start on a
 * broken pipe.
 */
export function successorStdio(): ['ignore', 'inherit' | 'ignore', 'inherit' | 'ignore'] {
  const { stdout, stderr } = daemonStdio();
  return ['ignore', stdout.dead ? 'ignore' : 'inherit', stderr.dead ? 'ignore' : 'inherit'];
}

/**
 * An uncaughtException / unhandledRejection handler that cannot feed itself: a report that
 * throws (or fails again while being reported) is not reported again, and it only writes
 * through `report`, which writes through a sink that drops output once it has failed. An error
 * `known` takes (and says itself) is not reported.
 */
export function internalErrorReporter(
  report: (message: string) => void,
  known: (err: unknown) => boolean = () => false,
): (err: unknown) => void {
  let reporting = false;
  return (err) => {
    if (reporting) return;
    // Said its own way (once per interval, say), not as a bug with its stack.
    if (known(err)) return;
    reporting = true;
    try {
      const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
      report(`internal error (please report it): ${text}`);
    } catch {
      // Nowhere left to say it.
    } finally {
      reporting = false;
    }
  };
}
