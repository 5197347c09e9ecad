import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import fs from 'node:fs';
import type { DaemonStatus } from '../../src/ipc/protocol';
import { BIN, cli, type Exit, signalAndWait } from './daemon';
import { waitFor } from './wait';

/**
 * A daemon started with stdio chosen by the test (closed pipes, a pipe nobody reads), unlike
 * `Daemon`, which always reads both. The caller owns the child's streams.
 */
export class RawDaemon {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    configFile: string,
    readonly ipcFile: string,
    stdio: StdioOptions,
    cwd?: string,
  ) {
    this.child = spawn(process.execPath, [BIN, 'daemon', '-c', configFile], { stdio, cwd });
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  cli(args: string[]) {
    return cli([...args, '--ipc-file', this.ipcFile]);
  }

  async status(): Promise<DaemonStatus> {
    const r = await this.cli(['status', '--json']);
    if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as DaemonStatus;
  }

  /** Waits until `count` slots are served; returns their pids by slot. */
  async online(count: number): Promise<number[]> {
    return waitFor(`${count} worker(s) online`, async () => {
      if (this.child.exitCode !== null) throw new Error(`daemon exited with ${this.child.exitCode}`);
      const s = await this.status();
      const serving = s.workers
        .filter((w) => w.slot !== null && w.state === 'online')
        .sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0));
      return serving.length >= count ? serving.map((w) => w.pid ?? -1) : null;
    });
  }

  /** Every worker pid the daemon knows, for the cleanup. */
  async workerPids(): Promise<number[]> {
    const s = await this.status().catch(() => undefined);
    return (s?.workers ?? []).map((w) => w.pid ?? -1).filter((p) => p > 0);
  }

  stop(): Promise<Exit> {
    return signalAndWait(this.child, 'SIGTERM', this.exited);
  }

  async kill(): Promise<void> {
    await signalAndWait(this.child, 'SIGKILL', this.exited);
  }
}

/** Peak resident memory of a process (VmHWM), in bytes. */
export function peakRss(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? Number.NaN) * 1024;
}

/** The TCP ports a process has a listening socket on (from its fds and /proc/net/tcp{,6}). */
export function listeningTcpPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address st ... inode: state 0A is LISTEN.
      if (f[3] === '0A' && f[9] && inodes.has(f[9]))
        ports.push(Number.parseInt(f[1]?.split(':')[1] ?? '', 16));
    }
  }
  return ports;
}
