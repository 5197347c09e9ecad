/**
 * Socketnaut's logging graph, as far as a program rewires it: `logger` → `formatter` →
 * `consoleHandler`, joined with streams-logger's node API (`connect`/`disconnect`, and
 * `setLevel` on the handler). A streams-logger node (a `RotatingFileHandler`, a `Formatter`, a
 * `Filter`) can be connected where Socketnaut allowed it: it is written to through its stream,
 * with streams-logger's record (`LogContext`: the level's name, the message, the time…), so the
 * pool speaks its API without depending on it. The console goes through EPIPE-safe sinks: a
 * closed stdout or stderr drops the pool's lines instead of taking the process down.
 */
import { Writable } from 'node:stream';
import { StreamSink } from '../stdio.js';
import { formatRecord, type LogRecord, SyslogLevel } from './log-record.js';

const ACCEPT = Symbol('nodesockd.pool.log.accept');

/** One of the pool's own nodes (`formatter`, `consoleHandler`). */
export interface LocalNode {
  [ACCEPT](record: LogRecord, message: string): void;
}
/** A streams-logger node: what it is given is written to its (object-mode) stream. */
export interface StreamNode {
  _stream: Writable;
}
export type LogNode = LocalNode | StreamNode;

/** The record as streams-logger's nodes take it (its `LogContext`). */
export interface LogContext {
  message: string;
  name: string;
  level: string;
  isotime: string;
  hostname: string;
  pid: number;
  threadid: number;
}

function isLocal(node: unknown): node is LocalNode {
  return (typeof node === 'object' || typeof node === 'function') && node !== null && ACCEPT in node;
}

function isStreamNode(node: unknown): node is StreamNode {
  return (
    typeof node === 'object' &&
    node !== null &&
    '_stream' in node &&
    (node as { _stream: unknown })._stream instanceof Writable
  );
}

function toContext(record: LogRecord, message: string): LogContext {
  return {
    message,
    name: 'nodesockd',
    level: record.levelName,
    isotime: record.isotime,
    hostname: record.hostname,
    pid: record.pid,
    threadid: record.threadId,
  };
}

/** The nodes one node sends its records to. */
export class LogLinks {
  readonly #name: string;
  #nodes: LogNode[] = [];

  constructor(name: string, nodes: LogNode[] = []) {
    this.#name = name;
    this.add(nodes);
  }

  add(nodes: unknown[]): void {
    for (const node of nodes) {
      if (!isLocal(node) && !isStreamNode(node))
        throw new Error(
          `${this.#name}.connect: expected a streams-logger node or one of the pool's (formatter, consoleHandler), got ${typeof node}`,
        );
      if (!this.#nodes.includes(node)) this.#nodes.push(node);
    }
  }

  remove(nodes: unknown[]): void {
    this.#nodes = this.#nodes.filter((n) => !nodes.includes(n));
  }

  /** Gives `record` (with `message`, formatted or not) to every node; a failing node is skipped. */
  deliver(record: LogRecord, message: string): void {
    for (const node of this.#nodes) {
      try {
        if (isLocal(node)) node[ACCEPT](record, message);
        else if (!node._stream.destroyed && !node._stream.writableEnded)
          node._stream.write(toContext(record, message));
      } catch {
        // A broken handler must not break the proxy.
      }
    }
  }
}

/** A node that sends records on: `connect`/`disconnect` as streams-logger's nodes have them. */
export class LogSource {
  protected readonly links: LogLinks;

  constructor(name: string, nodes: LogNode[]) {
    this.links = new LogLinks(name, nodes);
  }

  /** Sends records to these nodes too: the pool's own, or streams-logger nodes. */
  connect(...nodes: LogNode[]): this {
    this.links.add(nodes);
    return this;
  }

  /** Stops sending records to these nodes. */
  disconnect(...nodes: LogNode[]): this {
    this.links.remove(nodes);
    return this;
  }
}

/** Socketnaut's `formatter`: `<LEVEL> isotime hostname pid - message` lines, to `consoleHandler` at first. */
export class Formatter extends LogSource implements LocalNode {
  [ACCEPT](record: LogRecord): void {
    this.links.deliver(record, formatRecord(record));
  }
}

let sinks: { stdout: StreamSink; stderr: StreamSink } | null = null;

/** ERROR and worse to stderr, the rest to stdout, if this handler's level lets the record through. */
function writeConsole(record: LogRecord, line: string): void {
  if (record.level > consoleHandler.level) return;
  // Made on the first line: a program that never logs keeps its stdio as it was.
  sinks ??= {
    stdout: new StreamSink(process.stdout, 'stdout'),
    stderr: new StreamSink(process.stderr, 'stderr'),
  };
  (record.level <= SyslogLevel.ERROR ? sinks.stderr : sinks.stdout).write(line);
}

/** Socketnaut's `consoleHandler` (level DEBUG); also a handler function for `log.setHandler`. */
export interface ConsoleHandler extends LocalNode {
  (record: LogRecord): void;
  level: SyslogLevel;
  setLevel(level: SyslogLevel): void;
}

export const consoleHandler: ConsoleHandler = Object.assign(
  (record: LogRecord): void => writeConsole(record, formatRecord(record)),
  {
    level: SyslogLevel.DEBUG,
    setLevel(level: SyslogLevel): void {
      consoleHandler.level = level;
    },
    [ACCEPT]: (record: LogRecord, message: string): void => writeConsole(record, message),
  },
);

export const formatter = new Formatter('formatter', [consoleHandler]);
