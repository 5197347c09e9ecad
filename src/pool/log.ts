/**
 * The pool's log (Socketnaut's `log`): syslog levels, `setLevel()`, and one replaceable handler.
 *
 * The main thread has one process-wide logger (`log`, default INFO) shared by every
 * ServiceProxy. A worker's agent has its own logger (default WARN) whose records go to the
 * main thread and are written by the main logger's handler. Nothing is logged on import.
 */
import os from 'node:os';
import { threadId } from 'node:worker_threads';

/** Syslog severities: a lower number is more severe. `Level` is the same enum. */
export enum SyslogLevel {
  EMERG = 0,
  ALERT = 1,
  CRIT = 2,
  ERROR = 3,
  WARN = 4,
  NOTICE = 5,
  INFO = 6,
  DEBUG = 7,
}

/** One log record, as a handler receives it. */
export interface LogRecord {
  level: SyslogLevel;
  /** `'INFO'`, `'ERROR'`, … */
  levelName: string;
  message: string;
  /** ISO time of the record. */
  isotime: string;
  hostname: string;
  pid: number;
  /** The thread that wrote it: 0 for the main thread. */
  threadId: number;
}

/** Writes a record somewhere. The default writes one line, ERROR and worse to stderr. */
export type LogHandler = (record: LogRecord) => void;

/** `<LEVEL> isotime hostname pid - message` (Socketnaut's line format), with the thread when not main. */
export function formatRecord(r: LogRecord): string {
  const thread = r.threadId === 0 ? '' : ` thread ${r.threadId}`;
  return `<${r.levelName}> ${r.isotime} ${r.hostname} ${r.pid}${thread} - ${r.message}\n`;
}

export const consoleHandler: LogHandler = (record) => {
  const line = formatRecord(record);
  try {
    if (record.level <= SyslogLevel.ERROR) process.stderr.write(line);
    else process.stdout.write(line);
  } catch {
    // A closed stdout or stderr must never take the service down.
  }
};

export function makeRecord(level: SyslogLevel, message: string): LogRecord {
  return {
    level,
    levelName: SyslogLevel[level],
    message,
    isotime: new Date().toISOString(),
    hostname: os.hostname(),
    pid: process.pid,
    threadId,
  };
}

function isLevel(value: unknown): value is SyslogLevel {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 7;
}

export class PoolLogger {
  #level: SyslogLevel;
  #handler: LogHandler;

  constructor(level: SyslogLevel, handler: LogHandler = consoleHandler) {
    this.#level = level;
    this.#handler = handler;
  }

  /** The most verbose level written. */
  get level(): SyslogLevel {
    return this.#level;
  }

  /** Sets the level; `undefined` keeps the current one (as Socketnaut's `setLevel(SyslogLevel[x])` idiom expects). */
  setLevel(level?: SyslogLevel): this {
    if (level === undefined) return this;
    if (!isLevel(level)) throw new Error(`log.setLevel: expected a SyslogLevel (0..7), got ${String(level)}`);
    this.#level = level;
    return this;
  }

  /** Replaces where records go (default: {@link consoleHandler}). */
  setHandler(handler: LogHandler): this {
    if (typeof handler !== 'function') throw new Error('log.setHandler: the handler must be a function');
    this.#handler = handler;
    return this;
  }

  get handler(): LogHandler {
    return this.#handler;
  }

  isEnabled(level: SyslogLevel): boolean {
    return level <= this.#level;
  }

  /** Writes a record that was already filtered elsewhere (a worker's record), skipping this level check. */
  write(record: LogRecord): void {
    try {
      this.#handler(record);
    } catch {
      // A failing handler must not break the proxy.
    }
  }

  log(level: SyslogLevel, message: string): void {
    if (level <= this.#level) this.write(makeRecord(level, message));
  }

  emerg(message: string): void {
    this.log(SyslogLevel.EMERG, message);
  }
  alert(message: string): void {
    this.log(SyslogLevel.ALERT, message);
  }
  crit(message: string): void {
    this.log(SyslogLevel.CRIT, message);
  }
  error(message: string): void {
    this.log(SyslogLevel.ERROR, message);
  }
  warn(message: string): void {
    this.log(SyslogLevel.WARN, message);
  }
  notice(message: string): void {
    this.log(SyslogLevel.NOTICE, message);
  }
  info(message: string): void {
    this.log(SyslogLevel.INFO, message);
  }
  debug(message: string): void {
    this.log(SyslogLevel.DEBUG, message);
  }
}

/** The main thread's logger, shared by every ServiceProxy of the process. `logger` is the same object. */
export const log = new PoolLogger(SyslogLevel.INFO);
export const logger = log;

export function describeError(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
