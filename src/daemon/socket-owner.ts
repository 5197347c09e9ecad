import fs from 'node:fs';
import { listPids } from './proc';

/**
 * Which process listens on a UNIX socket path, from /proc (Linux): the listening socket's inode
 * in /proc/net/unix, then the process of this user holding it among its descriptors. Used when
 * the state file is stale (it could not be written): a worker socket in tmpDir that answers
 * still leads to the worker behind it (its environment says what it is); and for the one-daemon
 * lock whose file went with tmpDir, which its daemon still holds (daemon/instance-lock.ts).
 */

/** Set in /proc/net/unix's Flags column for a listening socket (__SO_ACCEPTCON). */
const ACCEPTING = 0x10000;

/**
 * The inodes of the listening sockets bound at a path `bound` accepts. The kernel lists a
 * socket under the path it was bound to for as long as it is open, also once its file is gone.
 */
function listeningInodes(bound: (path: string) => boolean): Set<string> {
  const inodes = new Set<string>();
  let text: string;
  try {
    text = fs.readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return inodes;
  }
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path (the path may hold spaces).
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8 || !bound(fields.slice(7).join(' '))) continue;
    if (Number.parseInt(fields[3] ?? '0', 16) & ACCEPTING) inodes.add(fields[6] ?? '');
  }
  return inodes;
}

/** Whether the initial environment of `pid` holds every `NAME=value` of `wanted`. */
function environmentHas(pid: string, wanted: string[]): boolean {
  try {
    const entries = new Set(fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0'));
    return wanted.every((entry) => entries.has(entry));
  } catch {
    return false;
  }
}

function holdsSocket(pid: string, inodes: Set<string>): boolean {
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => {
    try {
      const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      return target.startsWith('socket:[') && inodes.has(target.slice(8, -1));
    } catch {
      return false;
    }
  });
}

/**
 * The pid of the one process of this user that listens on `socketPath` and was started with
 * every variable of `env` (a worker's id and socket), or null (none, several, or no /proc).
 */
export function socketOwner(socketPath: string, env: Record<string, string>): number | null {
  const wanted = Object.entries(env).map(([name, value]) => `${name}=${value}`);
  const owners = holders(
    listeningInodes((bound) => bound === socketPath),
    (pid) => environmentHas(pid, wanted),
  );
  return owners.length === 1 ? (owners[0] ?? null) : null;
}

/**
 * The processes of this user, other than this one, that hold a listening socket bound at a
 * path `bound` accepts, whether or not its file still exists; sockets in `except` (inodes, as
 * {@link socketInodeOfFd} gives them: one this process shares with another) do not count.
 */
export function boundListenerHolders(bound: (path: string) => boolean, except: Set<string>): number[] {
  const inodes = listeningInodes(bound);
  for (const inode of except) inodes.delete(inode);
  return holders(inodes, (pid) => Number(pid) !== process.pid);
}

/** The kernel's inode of the socket open as `fd` in this process, or null. */
export function socketInodeOfFd(fd: number): string | null {
  try {
    const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    return target.startsWith('socket:[') ? target.slice(8, -1) : null;
  } catch {
    return null;
  }
}

/** The pids of this user's processes that `also` accepts and that hold one of `inodes`. */
function holders(inodes: Set<string>, also: (pid: string) => boolean): number[] {
  if (inodes.size === 0) return [];
  const uid = process.getuid?.();
  const found: number[] = [];
  for (const pid of listPids()) {
    try {
      if (uid !== undefined && fs.statSync(`/proc/${pid}`).uid !== uid) continue;
    } catch {
      continue;
    }
    if (also(pid) && holdsSocket(pid, inodes)) found.push(Number(pid));
  }
  return found;
}
