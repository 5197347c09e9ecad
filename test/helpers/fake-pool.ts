/**
 * A fake clock and fake worker processes for the policy suite: the pool's rules (backoff,
 * standby promotion, broken reports, scaling races) run in-process, with time advanced by
 * the test. The real-process suite beside it checks the same rules against real workers.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../../src/config/schema';
import { WorkerOutput } from '../../src/daemon/output';
import { Supervisor, type SupervisorDeps } from '../../src/daemon/pool/supervisor';
import { Publisher } from '../../src/daemon/publisher';
import type { SpawnedWorker, SpawnSpec } from '../../src/daemon/worker/spawn';
import { Logger } from '../../src/log';
import type { Clock, Timer } from '../../src/supervise/clock';

interface FakeTimer extends Timer {
  at: number;
  fn: () => void;
  seq: number;
  cancelled: boolean;
}

export class FakeClock implements Clock {
  private current = 1_000_000;
  private seq = 0;
  private timers: FakeTimer[] = [];

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer: FakeTimer = {
      at: this.current + Math.max(0, ms),
      fn,
      seq: this.seq++,
      cancelled: false,
      unref() {},
    };
    this.timers.push(timer);
    return timer;
  }

  clearTimeout(timer: Timer | null | undefined): void {
    if (timer) (timer as FakeTimer).cancelled = true;
  }

  /** Moves time forward by `ms`, firing every timer due on the way (and what they schedule). */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    for (;;) {
      await settle();
      this.timers = this.timers.filter((t) => !t.cancelled);
      const due = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.current = Math.max(this.current, due.at);
      due.fn();
    }
    this.current = target;
    await settle();
  }
}

/** Lets pending promise callbacks and immediates run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

let nextPid = 4_000_000;

/** A worker process that does what the test tells it to. */
export class FakeProcess extends EventEmitter {
  readonly pid = nextPid++;
  connected = true;
  readonly sent: unknown[] = [];
  readonly signals: NodeJS.Signals[] = [];
  exited = false;

  constructor(readonly spec: SpawnSpec) {
    super();
    queueMicrotask(() => this.emit('spawn'));
  }

  send(message: unknown): boolean {
    if (!this.connected) return false;
    this.sent.push(message);
    if (message === 'shutdown') queueMicrotask(() => this.exit(0, null));
    return true;
  }

  kill(signal: NodeJS.Signals): boolean {
    this.signals.push(signal);
    queueMicrotask(() => this.exit(null, signal));
    return true;
  }

  disconnect(): void {
    this.connected = false;
  }

  online(): void {
    this.emit('message', 'online');
  }

  broken(reason: string): void {
    this.emit('message', { type: 'nodesockd:broken', reason });
  }

  exit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    this.connected = false;
    this.emit('exit', code, signal);
  }
}

export interface FakePool {
  supervisor: Supervisor;
  clock: FakeClock;
  spawned: FakeProcess[];
  tmpDir: string;
  logs: string[];
  publisher: Publisher;
  /** The processes alive now. */
  alive(): FakeProcess[];
  cleanup(): void;
}

/**
 * A supervisor over fake processes. `behave` is called for each new process (after the
 * constructor returns): the default makes it report online at once.
 */
export function fakePool(
  config: Partial<Config>,
  behave: (proc: FakeProcess, clock: FakeClock) => void = (p) => queueMicrotask(() => p.online()),
  extra: Partial<SupervisorDeps> = {},
): FakePool {
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsd-policy-'));
  const clock = new FakeClock();
  const spawned: FakeProcess[] = [];
  const logs: string[] = [];
  const log = new Logger('', 'debug', { write: (line: string) => void logs.push(line) });
  const full: Config = {
    script: '/nonexistent/app.js',
    args: [],
    nodeArgs: [],
    cwd: tmpDir,
    name: 'app',
    tmpDir,
    socketFile: 'app.{worker}.sock',
    ipcFile: path.join(tmpDir, 'nodesockd.ipc'),
    listenVar: 'LISTEN_ON',
    workers: 1,
    standby: 0,
    readiness: 'message',
    env: [],
    outputPrefix: '',
    devServer: false,
    umask: 0o007,
    spawnTimeout: 5000,
    onlineTimeout: 30_000,
    shutdownTimeout: 90_000,
    killTimeout: 5000,
    upstreamKeepaliveTimeout: 60_000,
    maxStartAttempts: 1,
    symlinks: 'relative',
    debug: false,
    preload: { drain: true, reconnect: true },
    metrics: false,
    listen: [],
    sticky: false,
    handover: true,
    websocketCloseGrace: 1000,
    stopIdleTimeout: 3000,
    ...config,
  };
  const publisher = new Publisher(tmpDir, full.socketFile, log, full.symlinks);
  const supervisor = new Supervisor({
    config: full,
    publisher,
    output: new WorkerOutput(''),
    log,
    canConnect: () => Promise.resolve(true),
    clock,
    policy: { random: () => 0.999 },
    spawn: (spec): SpawnedWorker => {
      const proc = new FakeProcess(spec);
      spawned.push(proc);
      behave(proc, clock);
      return {
        process: proc,
        processGroup: null,
        lastStderr: () => [],
        errorLine: () => null,
        lastStdout: () => [],
      };
    },
    ...extra,
  });
  return {
    supervisor,
    clock,
    spawned,
    tmpDir,
    logs,
    publisher,
    alive: () => spawned.filter((p) => !p.exited),
    cleanup: () => fs.rmSync(tmpDir, { recursive: true, force: true }),
  };
}
