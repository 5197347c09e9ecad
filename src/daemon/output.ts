import fs from 'node:fs';
import readline from 'node:readline';
import type { Readable } from 'node:stream';

export interface OutputTags {
  /** Slot index, or "standby"/"-" for a worker without a slot. */
  worker: string;
  /** How many workers the slot has had before this one. */
  instance: number;
  id: string;
}

type Sink = { write(line: string): void };

/**
 * Where worker stdout/stderr lines go: the configured files, else the daemon's own stdout and
 * stderr, each line prefixed with `outputPrefix` ({date}, {worker}, {instance}, {id}).
 */
export class WorkerOutput {
  private out: Sink;
  private err: Sink;
  private files: fs.WriteStream[] = [];

  constructor(
    private readonly prefix: string,
    private readonly stdoutFile?: string,
    private readonly stderrFile?: string,
  ) {
    [this.out, this.err] = this.open();
  }

  /** Reopens the log files, so logrotate can move them away (SIGUSR2). */
  reopen(): void {
    const old = this.files;
    [this.out, this.err] = this.open();
    for (const f of old) f.end();
  }

  attach(
    stream: Readable | null,
    kind: 'stdout' | 'stderr',
    tags: OutputTags,
    onLine?: (line: string) => void,
  ) {
    if (!stream) return;
    const lines = readline.createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    lines.on('line', (line) => {
      onLine?.(line);
      (kind === 'stdout' ? this.out : this.err).write(`${this.format(tags)}${line}\n`);
    });
    stream.on('error', () => lines.close());
  }

  close(): void {
    for (const f of this.files) f.end();
    this.files = [];
  }

  private format(tags: OutputTags): string {
    return this.prefix
      .replaceAll('{date}', new Date().toISOString())
      .replaceAll('{worker}', tags.worker)
      .replaceAll('{instance}', String(tags.instance))
      .replaceAll('{id}', tags.id);
  }

  private open(): [Sink, Sink] {
    this.files = [];
    const file = (path: string): Sink => {
      const stream = fs.createWriteStream(path, { flags: 'a', mode: 0o640 });
      // A full disk or a vanished directory must not take the daemon down with it.
      stream.on('error', (err) => process.stderr.write(`nodesockd: cannot write ${path}: ${err.message}\n`));
      this.files.push(stream);
      return stream;
    };
    const out = this.stdoutFile ? file(this.stdoutFile) : process.stdout;
    const err =
      this.stderrFile && this.stderrFile === this.stdoutFile
        ? out
        : this.stderrFile
          ? file(this.stderrFile)
          : process.stderr;
    return [out, err];
  }
}
