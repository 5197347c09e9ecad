/** Syslog levels, the pool's log record and its line format (Socketnaut's). */
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
