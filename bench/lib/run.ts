/**
 * One bench run's temp directory and processes, and the cleanup that leaves nothing behind:
 * not on success, not on failure, not on Ctrl-C.
 *
 * Every process the bench starts either is a tracked child or carries the run directory in its
 * command line or environment (nodesockd workers: LISTEN_ON; pm2's daemon and workers:
 * PM2_HOME), so a final sweep of /proc finds whatever a graceful stop missed, including
 * processes that left our process tree (detached nodesockd workers, the pm2 daemon).
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PREFIX = 'nsd-bench-';
const OWNER_FILE = 'owner.pid';
const MARKER_VAR = 'NSD_BENCH_RUN';

export class Aborted extends Error {
  constructor() {
    super('aborted');
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

import { isAlive } from '../../src/daemon/proc';

export { isAlive };

function readProc(pid: number, file: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'latin1');
  } catch {
    return '';
  }
}

function allPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

function parentOf(pid: number): number | undefined {
  // /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
  const stat = readProc(pid, 'stat');
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  const ppid = Number(stat.slice(close + 2).split(' ')[1]);
  return Number.isInteger(ppid) ? ppid : undefined;
}

function ancestorsOfSelf(): Set<number> {
  const out = new Set<number>();
  for (let pid: number | undefined = process.pid; pid && pid > 1 && !out.has(pid); pid = parentOf(pid)) {
    out.add(pid);
  }
  return out;
}

/**
 * SIGKILLs every process whose command line or environment mentions `marker`, and their
 * descendants (nginx's workers rewrite both). Never this process or its ancestors.
 * Returns the pids it killed, with their command lines.
 */
export function sweep(marker: string): string[] {
  const spare = ancestorsOfSelf();
  const pids = allPids();
  const parents = new Map(pids.map((pid) => [pid, parentOf(pid)]));
  const hit = new Set(
    pids.filter(
      (pid) =>
        !spare.has(pid) &&
        (readProc(pid, 'cmdline').includes(marker) || readProc(pid, 'environ').includes(marker)),
    ),
  );
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (ppid !== undefined && hit.has(ppid) && !hit.has(pid) && !spare.has(pid)) {
        hit.add(pid);
        grew = true;
      }
    }
  }
  const killed: string[] = [];
  for (const pid of hit) {
    const cmd = readProc(pid, 'cmdline').replaceAll('\0', ' ').trim();
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(`${pid} ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return killed;
}

/** Removes the temp dirs (and processes) of earlier runs whose bench process died unclean. */
export function reapStaleRuns(): string[] {
  const reaped: string[] = [];
  for (const name of fs.readdirSync(os.tmpdir())) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = path.join(os.tmpdir(), name);
    const owner = Number(readFile(path.join(dir, OWNER_FILE)));
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) continue;
    sweep(dir);
    fs.rmSync(dir, { recursive: true, force: true });
    reaped.push(dir);
  }
  return reaped;
}

function readFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process the run tracks, with a promise of its exit. */
export interface Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<Exited>;
  /** Signals it (if still running) and waits up to `graceMs` before SIGKILL. */
  stop(signal: NodeJS.Signals, graceMs: number): Promise<Exited>;
}

export class Run {
  readonly root: string;
  #aborted = false;
  #children = new Set<Child>();
  #cleanups: Array<{ what: string; fn: () => Promise<void> }> = [];
  #cleaning: Promise<string[]> | undefined;
  #sweeping = false;

  private constructor(root: string) {
    this.root = root;
  }

  /** A fresh run directory in the system temp dir, traversable by nginx's unprivileged workers. */
  static create(): Run {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), PREFIX));
    fs.chmodSync(root, 0o711);
    fs.writeFileSync(path.join(root, OWNER_FILE), `${process.pid}\n`);
    return new Run(root);
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  /** Throws Aborted once the run is being torn down, so the main flow stops starting things. */
  check(): void {
    if (this.#aborted) throw new Aborted();
  }

  /**
   * Spawns a tracked child. Once cleanup has begun only cleanup steps may spawn (`forCleanup`),
   * so the main flow cannot start anything the final sweep would miss.
   */
  spawn(command: string, args: string[], options: SpawnOptions = {}, forCleanup = false): Child {
    if (this.#aborted && !(forCleanup && this.#sweeping === false)) throw new Aborted();
    // The marker lets sweep() find it even after it rewrote its command line (process.title).
    const env = { ...(options.env ?? process.env), [MARKER_VAR]: this.root };
    const proc = spawn(command, args, { stdio: 'ignore', ...options, env });
    const exited = new Promise<Exited>((resolve) => {
      proc.once('exit', (code, signal) => resolve({ code, signal }));
      proc.once('error', () => resolve({ code: null, signal: null }));
    });
    const child: Child = {
      proc,
      exited,
      stop: async (signal, graceMs) => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        const result = await exited;
        clearTimeout(timer);
        return result;
      },
    };
    this.#children.add(child);
    void exited.then(() => this.#children.delete(child));
    return child;
  }

  /** Registers a graceful teardown step; steps run last-registered first. */
  onCleanup(what: string, fn: () => Promise<void>): () => void {
    const entry = { what, fn };
    this.#cleanups.push(entry);
    return () => {
      this.#cleanups = this.#cleanups.filter((e) => e !== entry);
    };
  }

  /**
   * Graceful steps (each bounded), then every tracked child, then a sweep for anything left
   * that mentions the run directory, then the directory itself. Idempotent. Returns what the
   * sweep had to kill (nothing, when every graceful stop did its job).
   */
  cleanup(): Promise<string[]> {
    this.#aborted = true;
    this.#cleaning ??= this.#cleanup();
    return this.#cleaning;
  }

  async #cleanup(): Promise<string[]> {
    for (const { what, fn } of this.#cleanups.splice(0).reverse()) {
      const timeout = sleep(20_000).then(() => {
        throw new Error('timed out');
      });
      await Promise.race([fn(), timeout]).catch((err: Error) =>
        console.error(`cleanup: ${what}: ${err.message}`),
      );
    }
    this.#sweeping = true;
    await Promise.all([...this.#children].map((c) => c.stop('SIGTERM', 3000)));
    const killed = sweep(this.root);
    if (killed.length > 0) await sleep(200);
    fs.rmSync(this.root, { recursive: true, force: true });
    return killed;
  }
}
