/**
 * What a pool's front and its workers say to each other: over the worker thread's
 * `parentPort`, or over a child process's IPC channel. Every message is an object whose
 * `type` starts with `nodesockd:pool:`, so an app's own messages on the same channel pass by.
 */
import type net from 'node:net';
import type { ProxySocketAddressInfo } from '../net/address-info.js';
import type { ProxyProtocolVersion } from '../net/proxy-protocol.js';
import { relay } from '../net/relay.js';
import type { LogRecord } from './log.js';

/** Set in a process worker's environment: the agent talks over the IPC channel. */
export const POOL_CHILD_ENV = 'NODESOCKD_POOL_CHILD';
/** The PROXY protocol version the agent writes in front of each connection ('' for none). */
export const POOL_PROXY_PROTOCOL_ENV = 'NODESOCKD_POOL_PROXY_PROTOCOL';

export const MSG_LISTENING = 'nodesockd:pool:listening';
export const MSG_LOG = 'nodesockd:pool:log';
export const MSG_DRAIN = 'nodesockd:pool:drain';
export const MSG_LOAD = 'nodesockd:pool:load';
export const MSG_CONFIG = 'nodesockd:pool:config';
export const MSG_ACCEPT = 'nodesockd:pool:accept';
export const MSG_ACCEPTING = 'nodesockd:pool:accepting';

/** The front's TCP address, which a thread worker binds too (SO_REUSEPORT) to accept clients itself. */
export interface AcceptAddress {
  host: string;
  port: number;
}

/** Worker → front: its server listens; connections may come (over `hop`, or as handles). */
export interface ListeningMessage {
  type: typeof MSG_LISTENING;
  /** How to reach the app's own server (Socketnaut's `socketConnectOpts`); null when it has no address. */
  connect: net.SocketConnectOpts | null;
  /** The worker's UNIX socket for relayed connections. */
  hop: string;
}
/** Worker → front: a log record the worker's own level let through. */
export interface LogMessage {
  type: typeof MSG_LOG;
  record: LogRecord;
}
/**
 * Worker → front: the connections the front does not see (a process worker's handed ones, a
 * thread's own accepted ones), and how many handoffs it had received by then, so the front
 * counts a handoff once whichever of its confirmation and this report comes first.
 */
export interface LoadMessage {
  type: typeof MSG_LOAD;
  connections: number;
  received: number;
}
/** Front → worker: stop accepting, finish what is in flight, exit; force the exit after `timeoutMs` (null: never). */
export interface DrainMessage {
  type: typeof MSG_DRAIN;
  timeoutMs: number | null;
}
/** Front → thread worker, first message: the options a thread cannot read from its environment. */
export interface ConfigMessage {
  type: typeof MSG_CONFIG;
  proxyProtocol: ProxyProtocolVersion | null;
  /** Where to accept clients directly (`reusePort`), when the front already listens there. */
  accept: AcceptAddress | null;
  /** The front's private directory for the relay socket (src/socketnaut/relay-dir.ts). */
  relayDir: string;
}
/** Front → thread worker: the front listens with SO_REUSEPORT at `accept`, bind it too (null: stop accepting there). */
export interface AcceptMessage {
  type: typeof MSG_ACCEPT;
  accept: AcceptAddress | null;
}
/** Thread worker → front: whether it accepts clients on the front's port itself (`error` when not). */
export interface AcceptingMessage {
  type: typeof MSG_ACCEPTING;
  ok: boolean;
  error?: string;
}

/** Front → process worker, with each handed-over connection: its address info, and what the front read of it while it waited (base64). */
export interface HandoffMeta {
  head?: string;
}

export type WorkerToFront = ListeningMessage | LogMessage | LoadMessage | AcceptingMessage;
export type FrontToWorker = DrainMessage | ConfigMessage | AcceptMessage;

function hasType(value: unknown): value is { type: unknown } {
  return typeof value === 'object' && value !== null && 'type' in value;
}

export function isWorkerToFront(value: unknown): value is WorkerToFront {
  return (
    hasType(value) &&
    (value.type === MSG_LISTENING ||
      value.type === MSG_LOG ||
      value.type === MSG_LOAD ||
      value.type === MSG_ACCEPTING)
  );
}

export function isFrontToWorker(value: unknown): value is FrontToWorker {
  return (
    hasType(value) && (value.type === MSG_DRAIN || value.type === MSG_CONFIG || value.type === MSG_ACCEPT)
  );
}

/**
 * The relay's own header on the worker's UNIX socket: a 4-byte length and the client's
 * address info as JSON, written by the front before the client's first byte.
 */
export function hopHeader(info: ProxySocketAddressInfo): Buffer {
  const json = Buffer.from(JSON.stringify(info), 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(json.length, 0);
  return Buffer.concat([head, json]);
}

/**
 * Relays `client` to a thread worker's relay socket (`hopPath`, src/net/relay.ts): its
 * {@link hopHeader} first, then `head` (what the front read while the connection waited), then
 * the client's bytes. Rejects, leaving `client` untouched, when the worker's socket does not answer.
 */
export async function relayToThread(
  client: net.Socket,
  hopPath: string,
  info: ProxySocketAddressInfo,
  head: Buffer | null = null,
): Promise<void> {
  const header = hopHeader(info);
  await relay(client, hopPath, { head: head ? Buffer.concat([header, head]) : header });
}

const MAX_HOP_HEADER = 4096;

/**
 * Reads a {@link hopHeader} off a relayed connection. The bytes after it stay buffered in the
 * socket, which is left as new (not flowing), so a server the socket is handed to reads them first.
 */
export function readHopHeader(socket: net.Socket): Promise<ProxySocketAddressInfo> {
  return new Promise((resolve, reject) => {
    let length = -1;
    const done = (err: Error | null, info?: ProxySocketAddressInfo): void => {
      socket.removeListener('readable', onReadable);
      socket.removeListener('error', onError);
      socket.removeListener('end', onEnd);
      if (err) reject(err);
      else {
        // Back to the state of a fresh socket: the next 'data' listener starts the flow.
        Reflect.set(socket, 'readableFlowing', null);
        resolve(info as ProxySocketAddressInfo);
      }
    };
    const onReadable = (): void => {
      if (length < 0) {
        const head = socket.read(4) as Buffer | null;
        if (head === null) return;
        length = head.readUInt32BE(0);
        if (length > MAX_HOP_HEADER) {
          done(new Error(`relay header of ${length} bytes is too long`));
          return;
        }
      }
      const body = socket.read(length) as Buffer | null;
      if (body === null) return;
      try {
        done(null, JSON.parse(body.toString('utf8')) as ProxySocketAddressInfo);
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)));
      }
    };
    const onError = (err: Error): void => done(err);
    const onEnd = (): void => done(new Error('the relayed connection ended before its header'));
    socket.on('readable', onReadable);
    socket.on('error', onError);
    socket.on('end', onEnd);
  });
}
