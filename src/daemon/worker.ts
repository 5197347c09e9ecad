import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import {
  ENV,
  isBrokenMessage,
  isInflightMessage,
  MSG_ONLINE,
  MSG_RESUME,
  MSG_SHUTDOWN,
} from '../ipc/worker-protocol';
import type { Logger } from '../log';
import { AdoptedProcess } from './adopted-process';
import type { WorkerOutput } from './output';
import { canConnect } from './socket-probe';
import { canTransition, type WorkerState } from './worker-state';

const STDERR_TAIL_LINES = 20;
const READINESS_POLL_MS = 50;
/** Built next to the CLI bundle (dist/worker-preload.js); see src/worker/preload.ts. */
const PRELOAD = path.resolve(__dirname, '..', 'worker-preload.js');

export interface WorkerSpawnOptions {
  /** The slot it is started for, or null for a standby. */
  slot: number | null;
  instance: number;
  generation: number;
  suspended: boolean;
  script: string;
  args: string[];
  nodeArgs: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  listenVar: string;
  appName: string;
  socketPathFor: (id: string) => string;
  spawnTimeout: number;
  upstreamKeepaliveTimeout: number;
  /** The control socket, where the worker's library reconnects if this daemon dies. */
  ipcFile: string;
  /** 'connect': also consider the worker online once its socket accepts a connection. */
  readiness: 'message' | 'connect';
  output: WorkerOutput;
  log: Logger;
}

/** A worker of an earlier daemon, as recorded in the state file and found alive. */
export interface AdoptionRecord {
  id: string;
  pid: number;
  socketPath: string;
  suspended: boolean;
  startedAt: number;
  generation: number;
}

/** What a worker process looks like to its handle: a ChildProcess, or an AdoptedProcess. */
type WorkerProcess = EventEmitter & {
  readonly pid?: number | undefined;
  readonly connected: boolean;
  send(message: string, callback?: (err: Error | null) => void): boolean;
  kill(signal: NodeJS.Signals): boolean;
};

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Ids start with a letter so a unique socket name never looks like a slot's published name. */
export function newWorkerId(): string {
  return `w${randomBytes(4).toString('hex')}`;
}

export function describeExit(exit: ExitInfo): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  // An adopted worker is not our child: how it ended cannot be known.
  return exit.code === null ? 'exited (status unknown)' : `exited with code ${exit.code}`;
}

/**
 * One worker process: spawns it, tracks its state (see worker-state.ts), and drains it.
 * Emits 'state' (from, to) and 'exit' (ExitInfo).
 */
export class WorkerHandle extends EventEmitter {
  readonly id: string;
  readonly socketPath: string;
  /** Its slot; null for a standby until it is promoted. */
  slot: number | null;
  readonly generation: number;
  readonly startedAt: number;
  /** Started by an earlier daemon and taken over (SPEC §4.8). */
  readonly adopted: AdoptedProcess | null;
  spawnedSuspended: boolean;
  state: WorkerState = 'starting';
  since = Date.now();
  /** When it came online (or was adopted); null before. */
  onlineAt: number | null = null;
  inflight: number | null = null;
  brokenReason: string | null = null;
  exitInfo: ExitInfo | null = null;
  private readonly child: WorkerProcess;
  private readonly stderrTail: string[] = [];
  private readonly log: Logger;
  private spawnError: Error | null = null;
  /** It sent 'online' itself, so it speaks the message protocol ('shutdown' included). */
  private saidOnline = false;
  private readonly readiness: 'message' | 'connect';

  constructor(opts: WorkerSpawnOptions, adopt?: AdoptionRecord) {
    super();
    this.id = adopt?.id ?? newWorkerId();
    this.startedAt = adopt?.startedAt ?? Date.now();
    this.slot = opts.slot;
    this.generation = opts.generation;
    this.spawnedSuspended = opts.suspended;
    this.readiness = opts.readiness;
    this.socketPath = adopt?.socketPath ?? opts.socketPathFor(this.id);
    this.log = opts.log.child(
      `worker ${this.id} (${opts.slot === null ? 'standby' : `slot ${opts.slot}`}): `,
    );
    if (adopt) {
      const adopted = new AdoptedProcess(adopt.pid);
      this.adopted = adopted;
      this.child = adopted;
      this.state = adopt.suspended ? 'suspended' : 'online';
      this.onlineAt = Date.now();
      this.spawnedSuspended = adopt.suspended;
      adopted.on('exit', () => this.onExit({ code: null, signal: null }));
      adopted.on('message', (message) => this.onMessage(message));
      return;
    }
    this.adopted = null;
    const env: NodeJS.ProcessEnv = {
      ...opts.env,
      // process.cwd() in the worker is the physical path; PWD keeps the logical one.
      PWD: opts.cwd,
      [opts.listenVar]: this.socketPath,
      [ENV.socketPath]: this.socketPath,
      [ENV.workerId]: this.id,
      [ENV.workerIndex]: opts.slot === null ? '' : String(opts.slot),
      [ENV.suspended]: opts.suspended ? '1' : '',
      [ENV.appName]: opts.appName,
      [ENV.upstreamKeepalive]: String(opts.upstreamKeepaliveTimeout),
      [ENV.ipcFile]: opts.ipcFile,
    };
    const preload = fs.existsSync(PRELOAD) ? ['--require', PRELOAD] : [];
    const child = spawn(process.execPath, [...preload, ...opts.nodeArgs, opts.script, ...opts.args], {
      cwd: opts.cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // Its own process group: a Ctrl-C meant for the daemon must not hit the workers,
      // and the workers keep serving if the daemon dies (SPEC §4.8).
      detached: true,
    });
    this.child = child;
    const tags = {
      worker: opts.slot === null ? 'standby' : String(opts.slot),
      instance: opts.instance,
      id: this.id,
    };
    opts.output.attach(child.stdout, 'stdout', tags);
    opts.output.attach(child.stderr, 'stderr', tags, (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
    });
    this.child.on('error', (err) => {
      this.spawnError = err;
      this.log.error(`cannot start: ${err.message}`);
      // A failed spawn emits no 'exit'; finish the lifecycle here.
      if (this.child.pid === undefined) {
        clearTimeout(spawnTimer);
        this.onExit({ code: null, signal: null });
      }
    });
    const spawnTimer = setTimeout(() => {
      this.spawnError = new Error(`no spawn event within ${opts.spawnTimeout} ms`);
      this.signal('SIGKILL');
    }, opts.spawnTimeout);
    this.child.once('spawn', () => clearTimeout(spawnTimer));
    this.child.on('exit', (code, signal) => {
      clearTimeout(spawnTimer);
      this.onExit({ code, signal });
    });
    this.child.on('message', (message) => this.onMessage(message));
    if (opts.readiness === 'connect') this.pollReadiness();
    this.child.on('disconnect', () => this.log.debug('IPC channel closed'));
  }

  get pid(): number | null {
    return this.child.pid ?? null;
  }

  /** The last lines the worker wrote to stderr, for error reports. */
  lastStderr(): string[] {
    return [...this.stderrTail];
  }

  /** Why this worker stopped, with its last stderr lines, for a command's error reply. */
  failureReport(what: string): string {
    const tail = this.lastStderr();
    const head = `worker ${this.id} ${this.slot === null ? '(standby)' : `for slot ${this.slot}`} ${what}`;
    return tail.length > 0 ? `${head}; its last stderr lines:\n  ${tail.join('\n  ')}` : head;
  }

  /** Resolves when the worker reports online; rejects with the reason it never will. */
  waitOnline(timeoutMs: number): Promise<void> {
    if (this.state === 'online' || this.state === 'suspended') return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.off('state', onState);
      };
      const onState = (_from: WorkerState, to: WorkerState) => {
        if (to === 'online' || to === 'suspended') {
          cleanup();
          resolve();
        } else if (to === 'exited') {
          cleanup();
          const why = this.spawnError
            ? `could not be started: ${this.spawnError.message}`
            : `${describeExit(this.exitInfo ?? { code: null, signal: null })} before reporting online`;
          reject(new Error(this.failureReport(why)));
        } else if (to === 'draining') {
          cleanup();
          reject(
            new Error(
              this.failureReport(
                this.brokenReason
                  ? `reported broken: ${this.brokenReason}`
                  : 'was stopped before it came online',
              ),
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(this.failureReport(`did not report online within ${timeoutMs} ms`)));
      }, timeoutMs);
      this.on('state', onState);
    });
  }

  resume(): void {
    if (this.state !== 'suspended') return;
    if (!this.send(MSG_RESUME)) {
      this.log.warn('cannot tell it to resume: no channel to it (adopted, and not using the library)');
    }
    this.transition('online');
  }

  /**
   * Asks the worker to finish its requests and exit; escalates to SIGTERM after
   * shutdownTimeout and SIGKILL after a further killTimeout. Resolves once it has exited.
   */
  drain(shutdownTimeout: number, killTimeout: number): Promise<void> {
    const exited = new Promise<void>((resolve) => {
      if (this.state === 'exited') resolve();
      else this.once('exit', () => resolve());
    });
    if (this.state === 'exited' || this.state === 'draining') return exited;
    this.transition('draining');
    // An app seen online only by connecting to it may not listen for 'shutdown'; SIGTERM is
    // the conventional stop request such apps handle.
    const speaksIpc = this.readiness === 'message' || this.saidOnline;
    if (!speaksIpc || !this.send(MSG_SHUTDOWN)) this.signal('SIGTERM');
    const term = setTimeout(() => {
      this.log.warn(`still running ${shutdownTimeout} ms after shutdown; sending SIGTERM`);
      this.signal('SIGTERM');
      const kill = setTimeout(() => {
        this.log.warn(`still running ${killTimeout} ms after SIGTERM; sending SIGKILL`);
        this.signal('SIGKILL');
      }, killTimeout);
      this.once('exit', () => clearTimeout(kill));
    }, shutdownTimeout);
    this.once('exit', () => clearTimeout(term));
    return exited;
  }

  /**
   * Stops a worker that never came online: it has no requests to finish, so SIGTERM at once
   * and SIGKILL after killTimeout. Resolves once it has exited.
   */
  abort(killTimeout: number): Promise<void> {
    const exited = new Promise<void>((resolve) => {
      if (this.state === 'exited') resolve();
      else this.once('exit', () => resolve());
    });
    if (this.state === 'exited') return exited;
    if (this.state !== 'draining') this.transition('draining');
    this.signal('SIGTERM');
    const kill = setTimeout(() => this.signal('SIGKILL'), killTimeout);
    this.once('exit', () => clearTimeout(kill));
    return exited;
  }

  /** For apps that listen but never call process.send('online') (SPEC §5.1). */
  private pollReadiness(): void {
    const poll = async () => {
      if (this.state !== 'starting') return;
      if (await canConnect(this.socketPath)) {
        if (this.state === 'starting') this.transition(this.spawnedSuspended ? 'suspended' : 'online');
        return;
      }
      setTimeout(() => void poll(), READINESS_POLL_MS);
    };
    setTimeout(() => void poll(), READINESS_POLL_MS);
  }

  private signal(sig: NodeJS.Signals): void {
    if (this.state === 'exited' || this.child.pid === undefined) return;
    try {
      this.child.kill(sig);
    } catch {
      // Already gone: 'exit' follows.
    }
  }

  /** Closes the channel to the worker and stops watching it; the process keeps running. */
  detach(): void {
    const child = this.child as WorkerProcess & { disconnect?: () => void; unref?: () => void };
    try {
      if (child.connected) child.disconnect?.();
    } catch {
      // Already disconnected.
    }
    child.unref?.();
    this.adopted?.release();
  }

  /** Sends any message over the worker's IPC channel; false when the channel is gone. */
  send(message: unknown): boolean {
    if (!this.child.connected) return false;
    try {
      this.child.send(message as string, (err: Error | null) => {
        if (err) this.log.debug(`could not send a message: ${err.message}`);
      });
      return true;
    } catch {
      return false;
    }
  }

  private onMessage(message: unknown): void {
    if (message === MSG_ONLINE) {
      this.saidOnline = true;
      if (this.state === 'starting') this.transition(this.spawnedSuspended ? 'suspended' : 'online');
    } else if (isBrokenMessage(message)) {
      this.brokenReason = message.reason;
      this.log.warn(`reported broken: ${message.reason}`);
      this.emit('broken', message.reason);
    } else if (isInflightMessage(message)) {
      this.inflight = message.count;
    }
    // Anything else is the app's own business (or app messaging, see 'message' listeners).
    else this.emit('message', message);
  }

  private onExit(exit: ExitInfo): void {
    if (this.state === 'exited') return;
    this.exitInfo = exit;
    this.transition('exited');
    this.emit('exit', exit);
  }

  private transition(to: WorkerState): void {
    const from = this.state;
    if (!canTransition(from, to)) {
      this.log.debug(`ignored transition ${from} -> ${to}`);
      return;
    }
    this.state = to;
    this.since = Date.now();
    if ((to === 'online' || to === 'suspended') && this.onlineAt === null) this.onlineAt = this.since;
    this.log.debug(`${from} -> ${to}`);
    this.emit('state', from, to);
  }
}
