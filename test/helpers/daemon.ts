import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DaemonStatus } from '../../src/ipc/protocol';
import { waitFor } from './wait';

export const ROOT = path.resolve(__dirname, '../..');
export const BIN = path.join(ROOT, 'dist/cli/bin.js');
export const FIXTURES = path.join(ROOT, 'test/fixtures/apps');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A fresh directory for one test, removed by the returned cleanup. */
export function makeTempDir(prefix = 'nsd-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Runs the real CLI binary to completion. */
export function cli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; bin?: string } = {},
) {
  return new Promise<CliResult>((resolve) => {
    execFile(
      process.execPath,
      [options.bin ?? BIN, ...args],
      {
        cwd: options.cwd ?? ROOT,
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 60_000,
        // NODE_DEBUG=module output (the "what a command loads" tests) passes execFile's 1 MiB
        // default on Node 22, which would cut it short and kill the command.
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A real `nodesockd daemon` process, with its combined output captured. */
export class Daemon {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    args: string[],
    readonly ipcFile: string,
    options: { cwd?: string; env?: NodeJS.ProcessEnv; bin?: string } = {},
  ) {
    this.child = spawn(process.execPath, [options.bin ?? BIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer) => {
      this.output += chunk.toString();
      if (process.env.NSD_TEST_VERBOSE) process.stderr.write(chunk);
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  /** Starts a daemon and waits until `count` workers serve. */
  static async start(
    args: string[],
    ipcFile: string,
    options: { cwd?: string; env?: NodeJS.ProcessEnv; online?: number; bin?: string } = {},
  ): Promise<Daemon> {
    const daemon = new Daemon(args, ipcFile, options);
    const online = options.online ?? 1;
    try {
      await waitFor(`${online} worker(s) online`, async () => {
        if (daemon.child.exitCode !== null) throw new Error(`daemon exited: ${daemon.output}`);
        const s = await daemon.status().catch(() => undefined);
        return (
          s &&
          s.workers.filter((w) => w.slot !== null && (w.state === 'online' || w.state === 'suspended'))
            .length >= online
        );
      });
    } catch (err) {
      await daemon.kill();
      throw new Error(`${(err as Error).message}\n--- daemon output ---\n${daemon.output}`);
    }
    return daemon;
  }

  cli(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
    return cli([...args, '--ipc-file', this.ipcFile], options);
  }

  async status(): Promise<DaemonStatus> {
    const r = await this.cli(['status', '--json']);
    if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as DaemonStatus;
  }

  /** Pids of the workers currently published in a slot, by slot. */
  async slotPids(): Promise<number[]> {
    const s = await this.status();
    return s.workers
      .filter((w) => w.slot !== null)
      .sort((a, b) => a.slot! - b.slot!)
      .map((w) => w.pid!);
  }

  async waitOutput(pattern: RegExp, what = String(pattern)): Promise<void> {
    await waitFor(what, () => pattern.test(this.output));
  }

  /** SIGTERM and wait for a graceful exit. */
  stop(): Promise<Exit> {
    return signalAndWait(this.child, 'SIGTERM', this.exited);
  }

  async kill(): Promise<void> {
    await signalAndWait(this.child, 'SIGKILL', this.exited);
  }
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** Sends `signal` to a child that is still running, and waits for its exit. */
export function signalAndWait(
  child: ChildProcess,
  signal: NodeJS.Signals,
  exited: Promise<Exit>,
): Promise<Exit> {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  return exited;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills any process still alive from a test (workers are detached from the daemon). */
export function killAll(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}
