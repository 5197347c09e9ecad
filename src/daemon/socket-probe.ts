import fs from 'node:fs';
import net from 'node:net';

/**
 * Whether a UNIX socket has a listener. Only a definite answer (refused, missing) counts as
 * dead: a timeout or any other error says "alive", because a live socket must never be unlinked.
 */
export function probeSocket(path: string, timeoutMs = 1000): Promise<'alive' | 'dead'> {
  return new Promise((resolve) => {
    const socket = net.connect(path);
    const done = (result: 'alive' | 'dead') => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done('alive'), timeoutMs);
    socket.on('connect', () => done('alive'));
    socket.on('error', (err: NodeJS.ErrnoException) =>
      done(
        err.code === 'ECONNREFUSED' || err.code === 'ENOENT' || err.code === 'ENOTSOCK' ? 'dead' : 'alive',
      ),
    );
  });
}

/** True only when a connection to the socket was actually established. */
export function canConnect(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(path);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => done(true));
    socket.on('error', () => done(false));
  });
}

/** The inode of the socket file at `file` (to tell it from one bound there since), or null. */
export function socketInode(file: string): number | null {
  try {
    const stat = fs.lstatSync(file);
    return stat.isSocket() ? stat.ino : null;
  } catch {
    return null;
  }
}
