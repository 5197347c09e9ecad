/**
 * In the worker, through the preload: a handle sent over the IPC channel must hold a socket or a
 * FIFO. Node's receiving end (the daemon) aborts the whole process on any other descriptor it is
 * sent (a regular file, /dev/null, a tty wrapped in a Pipe: stream_wrap.cc's CHECK), and never
 * closes a directory's; the daemon cannot refuse what arrives on the channel. So the sending end
 * refuses it: `process.send(message, handle)` throws a one-line error to the app, before
 * anything is written. The handover's moves and the app's own sockets pass.
 */
import fs from 'node:fs';

type Send = (this: unknown, ...args: unknown[]) => unknown;

/** The descriptor of what `process.send` accepts as a handle: a net.Socket/Server, a raw TCP/Pipe wrap, a dgram.Socket. */
function descriptorOf(handle: object): number | undefined {
  const direct = (handle as { fd?: unknown }).fd;
  if (typeof direct === 'number') return direct;
  const wrapped = (handle as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (typeof wrapped === 'number') return wrapped;
  // dgram.Socket keeps its handle in a symbol-keyed state.
  for (const key of Object.getOwnPropertySymbols(handle)) {
    const fd = ((handle as Record<symbol, unknown>)[key] as { handle?: { fd?: unknown } } | undefined)?.handle
      ?.fd;
    if (typeof fd === 'number') return fd;
  }
  return undefined;
}

function kind(stats: fs.Stats): string {
  if (stats.isFile()) return 'a regular file';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isCharacterDevice()) return 'a character device (a tty, /dev/null)';
  if (stats.isBlockDevice()) return 'a block device';
  return 'not a socket';
}

/** Throws when the handle's descriptor is neither a socket nor a FIFO. */
export function checkSentHandle(handle: unknown): void {
  if (handle === null || typeof handle !== 'object') return;
  const fd = descriptorOf(handle);
  if (fd === undefined || fd < 0) return; // Node itself refuses or sends nothing
  let stats: fs.Stats;
  try {
    stats = fs.fstatSync(fd);
  } catch {
    return; // a closed descriptor: Node's own send fails with EBADF
  }
  if (stats.isSocket() || stats.isFIFO()) return;
  const err = new TypeError(
    `nodesockd: process.send() refused a handle whose descriptor ${fd} is ${kind(stats)}: only a socket or a FIFO can be sent to the daemon (any other kills the receiving Node process)`,
  );
  (err as NodeJS.ErrnoException).code = 'ERR_NODESOCKD_HANDLE_NOT_SOCKET';
  throw err;
}

/**
 * Guards `process._send`, the one path under `process.send` that writes a handle to the channel
 * (Node's queued handles go through it too). A process without a channel is left alone.
 */
export function installSendHandleGuard(): void {
  const target = process as unknown as { _send?: Send };
  const original = target._send;
  if (typeof original !== 'function') return;
  target._send = function guardedSend(this: unknown, ...args: unknown[]) {
    checkSentHandle(args[1]);
    return original.apply(this, args);
  };
}
