import type net from 'node:net';

/** The client connection as the pool's front saw it: `local` is the front's address, `remote` the client's. */
export interface ProxySocketAddressInfo {
  local: net.AddressInfo;
  remote: net.AddressInfo;
}

/** The address info of an accepted socket (empty strings and NaN where the platform gives none). */
export function socketAddressInfo(socket: net.Socket): ProxySocketAddressInfo {
  return {
    local: {
      address: socket.localAddress ?? '',
      family: socket.localFamily ?? '',
      port: socket.localPort ?? Number.NaN,
    },
    remote: {
      address: socket.remoteAddress ?? '',
      family: socket.remoteFamily ?? '',
      port: socket.remotePort ?? Number.NaN,
    },
  };
}
