/**
 * What an HTTP/1 server knows of its connections, read from Node's own tracking (the
 * `ConnectionsList` every `http.Server` keeps (Node ≥ 18) for its timeouts and for
 * `closeIdleConnections()`): which connections are between two requests, and whether a
 * connection's descriptor is a plain UNIX or TCP socket that another process can take over.
 */
import type net from 'node:net';

interface Parser {
  socket: net.Socket | null;
}
interface ConnectionsList {
  all(): Parser[];
  idle(): Parser[];
}
/** The libuv stream under a socket: a UNIX socket is a `Pipe`, a TCP one `TCP`, TLS a `TLSWrap`. */
export interface RawHandle {
  readStart(): number;
  readStop(): number;
  close(callback?: () => void): void;
}

const listOf = new WeakMap<net.Server, symbol | null>();

function connections(server: net.Server): ConnectionsList | null {
  let key = listOf.get(server);
  if (key === undefined) {
    // Created by listen(): look it up once the server listens.
    key =
      Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections') ?? null;
    if (key === null) return null;
    listOf.set(server, key);
  }
  if (key === null) return null;
  const list = (server as unknown as Record<symbol, ConnectionsList | undefined>)[key];
  return list && typeof list.idle === 'function' ? list : null;
}

function socketsOf(parsers: Parser[]): net.Socket[] {
  const out: net.Socket[] = [];
  for (const parser of parsers) if (parser.socket) out.push(parser.socket);
  return out;
}

/** Every HTTP/1 connection of the server that has not been upgraded (empty for other servers). */
export function httpConnections(server: net.Server): net.Socket[] {
  return socketsOf(connections(server)?.all() ?? []);
}

/**
 * Connections whose parser is between two requests and that have no response in flight: not
 * one byte of a next request has been parsed, and nothing is owed to the client. A connection
 * that has read nothing yet counts too (Node's list treats a new connection as mid-request from
 * its start, so that `headersTimeout` covers a client that never sends one).
 */
export function idleConnections(server: net.Server): Set<net.Socket> {
  const list = connections(server);
  const idle = new Set<net.Socket>();
  if (list === null) return idle;
  for (const socket of socketsOf(list.idle())) if (!responseInFlight(socket)) idle.add(socket);
  for (const socket of socketsOf(list.all())) {
    if (socket.bytesRead === 0 && !responseInFlight(socket)) idle.add(socket);
  }
  return idle;
}

/** A response attached to the socket that has not been fully handed to it. */
export function responseInFlight(socket: net.Socket): boolean {
  const res = (socket as unknown as { _httpMessage?: { finished?: boolean } | null })._httpMessage;
  return res !== null && res !== undefined;
}

/** The socket's descriptor, when it is a plain UNIX or TCP socket (not TLS, not closed). */
export function plainHandle(socket: net.Socket): RawHandle | null {
  const handle = (socket as unknown as { _handle?: (RawHandle & object) | null })._handle;
  if (!handle || socket.destroyed) return null;
  const kind = handle.constructor?.name;
  return kind === 'Pipe' || kind === 'TCP' ? handle : null;
}
