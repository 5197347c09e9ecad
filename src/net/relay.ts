/**
 * A byte relay: a client connection piped to a worker's UNIX socket (no loopback TCP hop),
 * after `head` (what the caller writes first: the pool's hop header, bytes already read).
 */
import net from 'node:net';

/**
 * Connects to `path` and pipes `client` both ways, after `head` if any. Resolves once
 * connected; rejects (leaving `client` untouched, so another worker can take it) when the
 * connect fails.
 */
export function relay(client: net.Socket, path: string, head: Buffer | null = null): Promise<void> {
  return new Promise((resolve, reject) => {
    const upstream = net.connect(path);
    const onConnectError = (err: Error): void => {
      upstream.destroy();
      reject(err);
    };
    upstream.once('error', onConnectError);
    upstream.once('connect', () => {
      upstream.removeListener('error', onConnectError);
      upstream.on('error', () => upstream.destroy());
      if (client.destroyed) {
        upstream.destroy();
        resolve();
        return;
      }
      if (head) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
      resolve();
    });
  });
}
