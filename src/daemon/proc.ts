import fs from 'node:fs';

/** Facts about a process by pid, from signals and /proc (Linux first). */

/**
 * Whether a process runs: it exists (EPERM: it does, it just is not ours to signal) and is not a
 * zombie. A zombie has exited and holds nothing (no file, socket or lock); it only waits for its
 * parent to reap it, which a parent that never waits (a deploy script's `execSync`, a container's
 * PID 1 that reaps nothing) never does, while `kill(pid, 0)` keeps succeeding.
 */
/** The pids of every process this one can see in /proc (none when /proc cannot be read). */
export function listPids(): string[] {
  try {
    return fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = processState(pid);
  return state !== 'Z' && state !== 'X';
}

/**
 * Whether a process is stopped (SIGSTOP, SIGTSTP: state T; a debugger's stop: t). It holds its
 * sockets, and the kernel still completes connections into their listen backlog, but nothing
 * accepts them until it is continued.
 */
export function isStopped(pid: number): boolean {
  const state = processState(pid);
  return state === 'T' || state === 't';
}

/** The state letter of a process (R, S, D, T, Z, X, …) from /proc, or null where /proc has none. */
function processState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) || null;
  } catch {
    return null;
  }
}

/**
 * Waits until the process `pid` has exited (a zombie has; a pid reused by another process has
 * too: its start time differs). Resolves false if it still runs after `deadlineMs`.
 */
export async function waitForExit(pid: number, deadlineMs: number, stepMs = 100): Promise<boolean> {
  const ticks = processStartTicks(pid);
  const deadline = Date.now() + deadlineMs;
  while (isAlive(pid) && (ticks === null || processStartTicks(pid) === ticks)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  return true;
}

/** The start time of a process in clock ticks since boot, to tell it from a reused pid. */
export function processStartTicks(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Linux reports CPU time in clock ticks; USER_HZ is 100 on every mainstream architecture. */
const TICKS_PER_SECOND = 100;

export interface ProcStats {
  rssBytes: number;
  cpuSeconds: number;
}

/** Memory and CPU of a process from /proc, or null where /proc has no answer (gone, not Linux). */
export function readProcStats(pid: number): ProcStats | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces and parentheses; the rest starts after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? Number.NaN);
    if (!Number.isFinite(utime) || !Number.isFinite(rssKb)) return null;
    return { rssBytes: rssKb * 1024, cpuSeconds: (utime + stime) / TICKS_PER_SECOND };
  } catch {
    return null;
  }
}
