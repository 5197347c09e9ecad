/**
 * SO_REUSEPORT for a thread pool's front: the front's `listen()` calls get `reusePort: true`,
 * so that each worker thread can bind the same port and accept its clients itself (the kernel
 * spreads new connections over the listening sockets; nothing is relayed for a thread's share).
 * Node.js has `reusePort` from 22.12 and 23.1 (Linux and a few BSDs).
 */
import type net from 'node:net';

/** Whether this Node.js knows `listen({ reusePort })` (older ones ignore the option silently). */
export function reusePortSupported(version: string = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major === 22) return minor >= 12;
  if (major === 23) return minor >= 1;
  return major > 23;
}

function toNumber(x: unknown): number | false {
  const n = Number(x);
  return typeof x !== 'boolean' && x !== null && x !== '' && n >= 0 ? n : false;
}

/**
 * A `listen()` argument list with `reusePort: true` added when it binds a TCP port, or null
 * when it binds something else (a UNIX socket path, a handle, a file descriptor).
 */
export function reusePortArgs(args: unknown[]): unknown[] | null {
  const [first] = args;
  const callback = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
  if (typeof first === 'object' && first !== null) {
    const o = first as Record<string, unknown>;
    if ('path' in o || 'fd' in o || '_handle' in o || typeof o.listen === 'function') return null;
    if (!('port' in o)) return null;
    return [{ ...o, reusePort: true }, ...args.slice(1)];
  }
  if (typeof first === 'string' && toNumber(first) === false) return null; // a pipe name
  const options: Record<string, unknown> = { reusePort: true };
  options.port = typeof first === 'function' || first === undefined || first === null ? 0 : first;
  if (typeof args[1] === 'string') options.host = args[1];
  const backlog = toNumber(args.length > 1 && args[1]) || toNumber(args.length > 2 && args[2]);
  if (backlog !== false) options.backlog = backlog;
  return callback ? [options, callback] : [options];
}

/** What the front knows of its server's SO_REUSEPORT. */
export interface ReusePortListen {
  /** Whether the `listen()` that made the server listen asked for it. */
  used(): boolean;
  /** Whether this patch saw a `listen()` call at all (one made before it was installed, or still in its DNS lookup then, was not seen). */
  seen(): boolean;
  /**
   * Listens again on the same TCP address, with SO_REUSEPORT: for a server whose `listen()`
   * came before the proxy. Its listening socket is swapped, not closed as the app sees it (no
   * `'close'`; `'listening'` comes again). Connections the kernel had queued for the old socket
   * and nobody accepted yet are reset. `onFail` gets the error when the address is taken
   * meanwhile; the server then listens again as before, without SO_REUSEPORT.
   */
  relisten(address: net.AddressInfo, onFail: (err: Error) => void): void;
}

/** Makes `server.listen()` ask for SO_REUSEPORT on TCP ports. */
export function listenWithReusePort(server: net.Server): ReusePortListen {
  let used = false;
  let seen = false;
  const original = server.listen;
  const patched = function (this: net.Server, ...args: unknown[]): net.Server {
    const withFlag = reusePortArgs(args);
    seen = true;
    used = withFlag !== null;
    return Reflect.apply(original, this, withFlag ?? args) as net.Server;
  };
  Object.defineProperty(server, 'listen', { value: patched, configurable: true, writable: true });
  const listenAgain = (address: net.AddressInfo, reusePort: boolean): void => {
    // The one internal used: Node.js's listening handle, closed without closing the server.
    const handle = Reflect.get(server, '_handle') as { close(): void } | null;
    Reflect.set(server, '_handle', null);
    handle?.close();
    used = reusePort;
    seen = true;
    Reflect.apply(original, server, [{ host: address.address, port: address.port, reusePort }]);
  };
  return {
    used: () => used,
    seen: () => seen,
    relisten: (address, onFail) => {
      const onError = (err: Error): void => {
        onFail(err);
        listenAgain(address, false);
      };
      server.once('error', onError);
      listenAgain(address, true);
      // listen() reports a failure on a next tick, before the check phase.
      setImmediate(() => server.removeListener('error', onError));
    },
  };
}
