import net from 'node:net';
import { LineFramer } from './framing';
import type { Reply, Request } from './protocol';

type RequestBody = Request extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

export class IpcError extends Error {}

/**
 * Sends one request to the daemon and waits for its reply. The connection is closed
 * afterwards; commands are rare enough that a connection each is the simple, robust choice.
 */
export function request<T = unknown>(
  ipcPath: string,
  body: RequestBody,
  options: { timeoutMs?: number } = {},
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const id = 1;
    const socket = net.connect(ipcPath);
    const framer = new LineFramer();
    let settled = false;
    const finish = (err: Error | null, value?: T) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value as T);
    };
    const timer = options.timeoutMs
      ? setTimeout(
          () => finish(new IpcError(`the daemon did not answer within ${options.timeoutMs} ms`)),
          options.timeoutMs,
        )
      : undefined;
    socket.on('connect', () => socket.write(`${JSON.stringify({ ...body, id })}\n`));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        finish(new IpcError(`no daemon is running at ${ipcPath} (${err.code})`));
      } else if (err.code === 'EACCES') {
        finish(new IpcError(`permission denied on ${ipcPath}: run as the daemon's user`));
      } else {
        finish(new IpcError(`control socket ${ipcPath}: ${err.message}`));
      }
    });
    socket.on('close', () => finish(new IpcError('the daemon closed the connection before replying')));
    socket.on('data', (chunk) => {
      let frames: string[];
      try {
        frames = framer.push(chunk);
      } catch (err) {
        finish(err as Error);
        return;
      }
      for (const frame of frames) {
        let reply: Reply;
        try {
          reply = JSON.parse(frame) as Reply;
        } catch {
          finish(new IpcError('the daemon sent a malformed reply'));
          return;
        }
        if (reply.ok && reply.id === id) finish(null, reply.data as T);
        else if (!reply.ok) finish(new IpcError(reply.error));
      }
    });
  });
}

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
