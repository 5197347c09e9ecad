import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ENV } from '../../ipc/worker-protocol';
import type { OutputTags, WorkerOutput } from '../output';
import { ErrorLine } from './error-line';
import type { WorkerProcess } from './worker-process';

/** How many stderr lines of a worker the daemon keeps for error reports. */
export const STDERR_TAIL_LINES = 20;
/** How much of one stderr line is kept there (a longer line is cut, with a marker). */
export const STDERR_TAIL_LINE_BYTES = 2048;
/** How many stdout lines of a worker the daemon keeps (for the listen hint's report). */
export const STDOUT_TAIL_LINES = 5;

/** Built beside the CLI bundle's folder (dist/cli/bin.js → dist/worker-preload.js). */
const PRELOAD = path.resolve(__dirname, '..', 'worker-preload.js');

export interface SpawnSpec {
  id: string;
  socketPath: string;
  /** The slot it is started for, or null for a standby. */
  slot: number | null;
  suspended: boolean;
  script: string;
  args: string[];
  nodeArgs: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  listenVar: string;
  appName: string;
  upstreamKeepaliveTimeout: number;
  /** `websocketCloseGrace` and `stopIdleTimeout` (ms). */
  websocketCloseGrace: number;
  stopIdleTimeout: number;
  /** The control socket, where the worker reconnects if this daemon dies. */
  ipcFile: string;
  /** What the preload does in the worker. */
  preload: { drain: boolean; reconnect: boolean };
  output: WorkerOutput;
  tags: OutputTags;
}

export interface SpawnedWorker {
  process: WorkerProcess;
  /** The process group it leads, or null. */
  processGroup: number | null;
  /** Its last stderr lines, oldest first. */
  lastStderr: () => string[];
  /** The line of its stderr that says why it died (error-line.ts), or null. */
  errorLine: () => string | null;
  /** Its last stdout lines, oldest first. */
  lastStdout: () => string[];
}

/** The environment a worker gets: the configured one plus the socket and identity variables. */
function workerEnvironment(spec: SpawnSpec): NodeJS.ProcessEnv {
  return {
    ...spec.env,
    // process.cwd() in the worker is the physical path; PWD keeps the logical one.
    PWD: spec.cwd,
    [spec.listenVar]: spec.socketPath,
    [ENV.socketPath]: spec.socketPath,
    [ENV.workerId]: spec.id,
    [ENV.workerIndex]: spec.slot === null ? '' : String(spec.slot),
    [ENV.suspended]: spec.suspended ? '1' : '',
    [ENV.appName]: spec.appName,
    [ENV.upstreamKeepalive]: String(spec.upstreamKeepaliveTimeout),
    [ENV.websocketCloseGrace]: String(spec.websocketCloseGrace),
    [ENV.stopIdleTimeout]: String(spec.stopIdleTimeout),
    [ENV.ipcFile]: spec.ipcFile,
    [ENV.preload]: (['drain', 'reconnect'] as const).filter((f) => spec.preload[f]).join(','),
  };
}

function preloadPath(): string | null {
  return fs.existsSync(PRELOAD) ? PRELOAD : null;
}

/**
 * Starts a worker: `node --require <preload> [nodeArgs] script [args]` in its own process
 * group (a Ctrl-C meant for the daemon must not hit it, it outlives the daemon, and a stop
 * can reach the helpers it starts), with stdout and stderr going to the worker output.
 */
export function spawnWorker(spec: SpawnSpec): SpawnedWorker {
  const preload = preloadPath();
  const child = spawn(
    process.execPath,
    [...(preload ? ['--require', preload] : []), ...spec.nodeArgs, spec.script, ...spec.args],
    {
      cwd: spec.cwd,
      env: workerEnvironment(spec),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
    },
  );
  const tail: string[] = [];
  const outTail: string[] = [];
  const errorLine = new ErrorLine();
  spec.output.attach(child.stdout, 'stdout', spec.tags, (line) => keep(outTail, line, STDOUT_TAIL_LINES));
  spec.output.attach(child.stderr, 'stderr', spec.tags, (line) => {
    keep(tail, line, STDERR_TAIL_LINES);
    errorLine.push(tail[tail.length - 1]!);
  });
  // detached: the worker leads a process group of its own, whose id is its pid.
  return {
    process: child,
    processGroup: child.pid ?? null,
    lastStderr: () => [...tail],
    errorLine: () => errorLine.line,
    lastStdout: () => [...outTail],
  };
}

function keep(tail: string[], line: string, max: number): void {
  tail.push(clip(line, STDERR_TAIL_LINE_BYTES));
  if (tail.length > max) tail.shift();
}

/** `text` cut to at most `max` UTF-16 units (a byte bound for the ASCII that logs mostly are). */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more characters]`;
}

/** NAME copies the daemon's value (when set); NAME=value sets it. */
export function workerEnv(entries: string[], from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq >= 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    else if (from[entry] !== undefined) env[entry] = from[entry];
  }
  return env;
}
