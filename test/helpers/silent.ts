import net from 'node:net';

/** A connection that sends nothing; `closed` settles when the other side closes it. */
export function silent(
  target: { port: number } | { path: string },
): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect('port' in target ? { host: '127.0.0.1', port: target.port } : target);
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('connect', () => {
      socket.on('error', () => undefined);
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}
