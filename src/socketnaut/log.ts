/**
 * The pool's log (Socketnaut's `log`): syslog levels, `setLevel()`, and where records go.
 *
 * The main thread has one process-wide logger (`log`, default INFO) shared by every
 * ServiceProxy, wired as Socketnaut's is: `logger` → `formatter` → `consoleHandler`, which a
 * program may rewire with `connect`/`disconnect` (src/socketnaut/log-graph.ts), or replace with one
 * handler function (`setHandler`). A worker's agent has its own logger (default WARN) whose
 * records go to the main thread and through the main logger's graph. Nothing is logged on import.
 */
import { formatter, type LogNode, LogSource } from './log-graph.js';
import { type LogHandler, type LogRecord, makeRecord, SyslogLevel } from './log-record.js';

export type { ConsoleHandler, LogNode } from './log-graph.js';
export { consoleHandler, formatter } from './log-graph.js';
export { formatRecord, type LogHandler, type LogRecord, makeRecord, SyslogLevel } from './log-record.js';

function isLevel(value: unknown): value is SyslogLevel {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 7;
}

/** The level methods, in SyslogLevel's order (`emerg` is 0, `debug` 7): `log.warn('…')`. */
const LEVEL_METHODS = ['emerg', 'alert', 'crit', 'error', 'warn', 'notice', 'info', 'debug'] as const;
type LevelMethods = Record<(typeof LEVEL_METHODS)[number], (message: string) => void>;

// The level methods are made from LEVEL_METHODS below the class (one method, eight names).
export interface PoolLogger extends LevelMethods {}

// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the interface declares only the level methods defined below the class
export class PoolLogger extends LogSource {
  #level: SyslogLevel;
  #handler: LogHandler | null;
  readonly #toLinks: LogHandler = (record) => this.links.deliver(record, record.message);

  /** Records go to `handler` when given, else to the nodes connected (`nodes`, `connect()`). */
  constructor(level: SyslogLevel, handler: LogHandler | null = null, nodes: LogNode[] = []) {
    super('logger', nodes);
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

  /** Replaces where records go (default: the connected nodes, `formatter` → `consoleHandler`). */
  setHandler(handler: LogHandler): this {
    if (typeof handler !== 'function') throw new Error('log.setHandler: the handler must be a function');
    this.#handler = handler === this.#toLinks ? null : handler;
    return this;
  }

  /** Where records go now; `setHandler(previous)` puts it back. */
  get handler(): LogHandler {
    return this.#handler ?? this.#toLinks;
  }

  isEnabled(level: SyslogLevel): boolean {
    return level <= this.#level;
  }

  /** Writes a record that was already filtered elsewhere (a worker's record), skipping this level check. */
  write(record: LogRecord): void {
    try {
      this.handler(record);
    } catch {
      // A failing handler must not break the proxy.
    }
  }

  log(level: SyslogLevel, message: string): void {
    if (level <= this.#level) this.write(makeRecord(level, message));
  }
}

LEVEL_METHODS.forEach((name, level: SyslogLevel) => {
  Object.defineProperty(PoolLogger.prototype, name, {
    value(this: PoolLogger, message: string): void {
      this.log(level, message);
    },
    configurable: true,
    writable: true,
  });
});

/** The main thread's logger, shared by every ServiceProxy of the process. `logger` is the same object. */
export const log = new PoolLogger(SyslogLevel.INFO, null, [formatter]);
export const logger = log;

export function describeError(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
