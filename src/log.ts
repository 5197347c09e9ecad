/** The daemon's own log: one line per event, to stderr, with time and level. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export class Logger {
  constructor(
    private readonly prefix: string,
    public threshold: LogLevel = 'info',
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
  ) {}

  child(prefix: string): Logger {
    return new Logger(`${this.prefix}${prefix}`, this.threshold, this.write);
  }

  debug(msg: string): void {
    this.log('debug', msg);
  }
  info(msg: string): void {
    this.log('info', msg);
  }
  warn(msg: string): void {
    this.log('warn', msg);
  }
  error(msg: string): void {
    this.log('error', msg);
  }

  private log(level: LogLevel, msg: string): void {
    if (order[level] < order[this.threshold]) return;
    this.write(`${new Date().toISOString()} ${level.padEnd(5)} ${this.prefix}${msg}\n`);
  }
}

/** A one-line description of anything thrown, without a stack trace. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
