/**
 * The thread pool's byte relay: a client connection piped to its worker's UNIX socket (no
 * loopback TCP hop), after a small header that carries the client's address.
 */
import net from 'node:net';
import { hopHeader } from './protocol.js';
import type { ProxySocketAddressInfo } from './types.js';

/**
 * Connects to `hopPath` and pipes `client` both ways, after `head` (what the front already read
 * of it) if any. Resolves once connected; rejects (leaving `client` untouched, so another worker
 * can take it) when the connect fails.
 */
export function relay(
  client: net.Socket,
  hopPath: string,
  info: ProxySocketAddressInfo,
  head: Buffer | null = null,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const upstream = net.connect(hopPath);
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
      upstream.write(hopHeader(info));
      if (head) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
      resolve();
    });
  });
}
