/**
 * File descriptors the daemon inherited without close-on-exec (a shell's `40>file`, a harness's
 * or a supervisor's stray pipe) would pass on to every worker it spawns and stay open for as
 * long as any of them runs: a pipe whose reader never sees its end, a file never let go. At
 * start the daemon closes every such descriptor above stderr, except the listening sockets it
 * was given (`LISTEN_FDS`, a predecessor's handover).
 *
 * Only descriptors without O_CLOEXEC are touched: Node and libuv open every descriptor of their
 * own with it (event loop, io_uring, signal pipe, IPC channel), so what is left was inherited.
 * Node also marks the low inherited ones close-on-exec itself at start (below 20 on Linux here):
 * those never reach a worker, and the daemon keeps its own copy (see docs/operations.md).
 * Linux only (/proc/self/fdinfo); elsewhere nothing is closed.
 */
import fs from 'node:fs';

const O_CLOEXEC = 0o2000000;

export interface ClosedFd {
  fd: number;
  /** What it was (`pipe:[123]`, a path), when /proc said. */
  target: string;
}

/** The inherited descriptors above 2 without close-on-exec, and not in `keep`. */
export function strayFds(keep: ReadonlySet<number>, proc = '/proc/self'): ClosedFd[] {
  let names: string[];
  try {
    names = fs.readdirSync(`${proc}/fd`);
  } catch {
    return [];
  }
  const stray: ClosedFd[] = [];
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= 2 || keep.has(fd)) continue;
    try {
      const flags = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`${proc}/fdinfo/${fd}`, 'utf8'))?.[1];
      // Unreadable flags: not ours to judge (the directory's own descriptor is gone by now).
      if (flags === undefined || (Number.parseInt(flags, 8) & O_CLOEXEC) !== 0) continue;
      let target = '';
      try {
        target = fs.readlinkSync(`${proc}/fd/${fd}`);
      } catch {
        // Closed meanwhile, or not a link: closing it is still right.
      }
      stray.push({ fd, target });
    } catch {
      // Gone between the listing and now.
    }
  }
  return stray;
}

/** Closes {@link strayFds}; returns what it closed. Never throws. */
export function closeStrayFds(keep: ReadonlySet<number>): ClosedFd[] {
  const closed: ClosedFd[] = [];
  for (const stray of strayFds(keep)) {
    try {
      fs.closeSync(stray.fd);
      closed.push(stray);
    } catch {
      // Already closed.
    }
  }
  return closed;
}
