/**
 * What a relayed connection says of its peer: a thread worker gets its clients over a UNIX
 * socket, which has no address, so the app's server would see `req.socket.remoteAddress`
 * (Express's `req.ip`) as `undefined`. The agent sets the client's own address and port, and
 * the front's, on the socket, and on the TLS socket an `https`/`tls` server wraps around it.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { ProxySocketAddressInfo } from '../net/address-info.js';

const presented = new WeakMap<net.Socket, ProxySocketAddressInfo>();

/** `socket` reports `info`'s client as its remote end and the front's address as its local one. */
export function presentAs(socket: net.Socket, info: ProxySocketAddressInfo): void {
  presented.set(socket, info);
  const values: Record<string, string | number> = {
    remoteAddress: info.remote.address,
    remoteFamily: info.remote.family,
    remotePort: info.remote.port,
    localAddress: info.local.address,
    localFamily: info.local.family,
    localPort: info.local.port,
  };
  for (const [key, value] of Object.entries(values))
    Object.defineProperty(socket, key, { value, configurable: true, enumerable: false });
}

/**
 * A TLS server's sockets take the address of the relayed socket they wrap, before the app's
 * own `secureConnection` listeners (an `https` server's requests) run.
 */
export function presentTlsSockets(server: net.Server): void {
  if (!(server instanceof tls.Server)) return;
  server.prependListener('secureConnection', (socket: tls.TLSSocket) => {
    const parent = (socket as tls.TLSSocket & { _parent?: unknown })._parent;
    const info = parent instanceof net.Socket ? presented.get(parent) : undefined;
    if (info) presentAs(socket, info);
  });
}
