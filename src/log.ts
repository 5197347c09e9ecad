import { daemonStdio, type Sink } from './stdio';

/**
 * The daemon's own log: one line per event, with time and level, to the daemon's stderr through
 * its failure-proof sink (src/stdio.ts): a closed or stalled stderr costs lines, never CPU.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export class Logger {
  constructor(
    private readonly prefix: string,
    public threshold: LogLevel = 'info',
    private readonly sink: Sink = daemonStdio().stderr,
  ) {}

  child(prefix: string): Logger {
    return new Logger(`${this.prefix}${prefix}`, this.threshold, this.sink);
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
    this.sink.write(`${new Date().toISOString()} ${level.padEnd(5)} ${this.prefix}${msg}\n`);
  }
}

export { errorMessage } from './error-message';
