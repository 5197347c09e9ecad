/**
 * In the worker: ends TLS on connections the daemon's front hands over from a `listen` entry
 * with `tls` (front-receiver.ts calls it), so the crypto work spreads over the workers and an
 * unchanged plain-HTTP app serves HTTPS. The PEM material comes from the daemon
 * (fronts/tls-material.ts) as an internal IPC message; a reload sends new material, which is
 * used for new connections while open ones keep theirs.
 *
 * The handshake runs in a `tls.Server` that never listens (one per entry and ALPN list): it
 * gives the handshake timeout and the client-error event of Node's own servers. Once the
 * handshake is done, the decrypted socket is emitted on the app's server: `'connection'` on a
 * plain server (http, http2, net), `'secureConnection'` on a TLS one (https, a secure http2
 * server), whose own certificate is then not used.
 *
 * ALPN: `h2` for an HTTP/2 server (`h2` and `http/1.1` with `allowHTTP1` where Node's HTTP/1
 * fallback works for it), a TLS server's own protocols, else `http/1.1`.
 *
 * `node:tls` costs a worker ~10 ms to load: it is loaded when the first material arrives.
 */
import type net from 'node:net';
import type tlsTypes from 'node:tls';
import { isTlsMaterialMessage, type TlsMaterialMessage, type TlsPem } from '../ipc/worker-protocol';
import { injectConnection } from '../net/inject';

type Tls = typeof tlsTypes;

/** The app's server for a connection at the moment its handshake is done (it may have been replaced). */
type FindServer = () => net.Server | undefined;

export class TlsTerminator {
  private tls: Tls | null = null;
  private entries: (TlsPem | null)[] = [];
  private debug = false;
  /** Handshake servers by entry index and ALPN list. */
  private readonly servers = new Map<string, { entry: number; server: tlsTypes.Server }>();

  /** Listens for the daemon's material; an 'internalMessage' listener keeps no worker alive. */
  install(): void {
    process.on('internalMessage', (message: unknown) => {
      if (isTlsMaterialMessage(message)) this.update(message);
    });
  }

  /** New material: messages on one channel arrive in order, so the last one is the daemon's current. */
  update(message: TlsMaterialMessage): void {
    const tls = this.load();
    const next = [...message.entries];
    for (const [index, pem] of next.entries()) {
      if (!pem) continue;
      try {
        // The daemon checked it; a failure here keeps the entry's previous material.
        tls.createSecureContext(contextOptions(pem));
      } catch (err) {
        process.stderr.write(
          `nodesockd: cannot use the new TLS material of listen entry ${index}, keeping the previous one: ${err instanceof Error ? err.message : String(err)}\n`,
        );
        next[index] = this.entries[index] ?? null;
      }
    }
    this.entries = next;
    this.debug = message.debug;
    for (const { entry, server } of this.servers.values()) {
      const pem = this.entries[entry];
      if (pem) server.setSecureContext(contextOptions(pem));
    }
  }

  /**
   * Ends TLS on `socket` (from listen entry `entry`); `appServer` decides the ALPN offer.
   * Throws (the daemon then gives the connection to another worker) without the material.
   */
  accept(socket: net.Socket, entry: number, appServer: net.Server, findServer: FindServer): void {
    const pem = this.entries[entry];
    if (!pem || !this.tls) throw new Error(`no TLS material yet for listen entry ${entry}`);
    const tls = this.tls;
    const alpn = alpnFor(tls, appServer);
    const key = `${entry}\n${alpn.join(',')}`;
    let handshake = this.servers.get(key)?.server;
    if (!handshake) {
      handshake = tls.createServer({
        ...contextOptions(pem),
        ...(alpn.length > 0 ? { ALPNProtocols: alpn } : {}),
      });
      handshake.on('secureConnection', (secure: tlsTypes.TLSSocket) => deliver(secure, findServer, tls));
      handshake.on('tlsClientError', (err: Error, secure: tlsTypes.TLSSocket) => {
        if (this.debug) {
          const from = `${secure.remoteAddress ?? '?'}:${secure.remotePort ?? '?'}`;
          const why = err.message.replace(/\s+/g, ' ').trim();
          process.stderr.write(`nodesockd: TLS handshake from ${from} failed: ${why}\n`);
        }
        secure.destroy();
      });
      this.servers.set(key, { entry, server: handshake });
    }
    // The client may reset before the TLS socket takes the handle over.
    socket.on('error', () => undefined);
    handshake.emit('connection', socket);
  }

  private load(): Tls {
    if (!this.tls) this.tls = require('node:tls') as Tls;
    return this.tls;
  }
}

function contextOptions(pem: TlsPem): tlsTypes.SecureContextOptions {
  return { key: pem.key, cert: pem.cert, ...(pem.ca !== undefined ? { ca: pem.ca } : {}) };
}

/** A decrypted connection to the app's server; closed when no server listens any more. */
function deliver(secure: tlsTypes.TLSSocket, findServer: FindServer, tls: Tls): void {
  const server = findServer();
  if (!server) {
    secure.destroy();
    return;
  }
  // A client without ALPN h2 would reach a fallback that throws in the worker: close it instead.
  if (
    !(server instanceof tls.Server) &&
    secure.alpnProtocol !== 'h2' &&
    isHttp2Server(server) &&
    http1Fallback(server) === 'broken'
  ) {
    secure.destroy();
    return;
  }
  // The socket is the app server's now, as if that server had accepted it: http2's HTTP/1.1
  // fallback (allowHTTP1) sets up its request classes on `socket.server`.
  (secure as { server?: unknown }).server = server;
  injectConnection(server, secure, server instanceof tls.Server ? 'secureConnection' : 'connection');
}

/** The protocols to offer for the app's server (see the file comment). */
function alpnFor(tls: Tls, server: net.Server): string[] {
  if (server instanceof tls.Server) {
    return decodeAlpn((server as { ALPNProtocols?: unknown }).ALPNProtocols);
  }
  if (isHttp2Server(server)) return http1Fallback(server) === 'usable' ? ['h2', 'http/1.1'] : ['h2'];
  return ['http/1.1'];
}

/** Without loading node:http2: an app that made an HTTP/2 server has it loaded already. */
function isHttp2Server(server: net.Server): boolean {
  for (let p: unknown = Object.getPrototypeOf(server); p; p = Object.getPrototypeOf(p)) {
    const name = (p as { constructor?: { name?: unknown } }).constructor?.name;
    if (name === 'Http2Server' || name === 'Http2SecureServer') return true;
  }
  return false;
}

/**
 * Whether a plain HTTP/2 server (`http2.createServer`) serves HTTP/1.1 on a TLS socket: it was
 * made with `allowHTTP1` (kept by Node under Symbol(options)) and Node set up the HTTP/1
 * classes for it (Node 20 and 22 do; Node 24 does only for `createSecureServer`, and its
 * fallback would throw in the worker).
 */
function http1Fallback(server: net.Server): 'none' | 'usable' | 'broken' {
  const symbol = Object.getOwnPropertySymbols(server).find((s) => s.description === 'options');
  const options = symbol ? (server as unknown as Record<symbol, unknown>)[symbol] : undefined;
  if (typeof options !== 'object' || options === null) return 'none';
  const o = options as {
    allowHTTP1?: unknown;
    Http1IncomingMessage?: unknown;
    Http1ServerResponse?: unknown;
  };
  if (o.allowHTTP1 !== true) return 'none';
  return typeof o.Http1IncomingMessage === 'function' && typeof o.Http1ServerResponse === 'function'
    ? 'usable'
    : 'broken';
}

/** A TLS server's ALPN list: Node keeps it in wire format (length-prefixed names). */
function decodeAlpn(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  if (!Buffer.isBuffer(value)) return [];
  const names: string[] = [];
  for (let i = 0; i < value.length; ) {
    const length = value[i]!;
    names.push(value.subarray(i + 1, i + 1 + length).toString('latin1'));
    i += 1 + length;
  }
  return names;
}
