/**
 * The worker side of a pool (Socketnaut's ServiceAgent): wraps the app's own server in a
 * worker thread or a process worker, tells the front where it listens, takes the connections
 * the front sends (relayed over a UNIX socket, or, in a process worker, as handed-over
 * handles), answers `requestProxySocketAddressInfo()` locally, and drains when asked to.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import type http from 'node:http';
import type https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { isMainThread, parentPort, threadId } from 'node:worker_threads';
import { acceptHandoffs } from './handoff.js';
import { describeError, type LogRecord, PoolLogger, SyslogLevel } from './log.js';
import {
  type FrontToWorker,
  isFrontToWorker,
  MSG_CONFIG,
  MSG_DRAIN,
  MSG_LISTENING,
  MSG_LOAD,
  MSG_LOG,
  POOL_CHILD_ENV,
  POOL_PROXY_PROTOCOL_ENV,
  readHopHeader,
  type WorkerToFront,
} from './protocol.js';
import { type ProxyProtocolVersion, proxyHeader } from './proxy-protocol.js';
import { type ProxySocketAddressInfo, socketAddressInfo } from './types.js';

export interface ServiceAgentOptions {
  /** The app's server: `http`, `https`, `net` or `tls`. The app still calls `listen()` (usually port 0 on 127.0.0.1). */
  server: http.Server | https.Server | net.Server | tls.Server;
}

/** How the agent talks to its front: a thread's parentPort or a process's IPC channel. */
interface Channel {
  kind: 'thread' | 'process';
  send(message: WorkerToFront): void;
  onMessage(listener: (message: FrontToWorker) => void): void;
}

function threadChannel(): Channel | null {
  const port = parentPort;
  if (isMainThread || port === null) return null;
  return {
    kind: 'thread',
    send: (message) => port.postMessage(message),
    onMessage: (listener) => {
      port.on('message', (m: unknown) => {
        if (isFrontToWorker(m)) listener(m);
      });
      // As in Socketnaut: the worker lives as long as its server, not its port.
      port.unref();
    },
  };
}

function processChannel(): Channel | null {
  if (process.env[POOL_CHILD_ENV] !== '1' || typeof process.send !== 'function') return null;
  return {
    kind: 'process',
    send: (message) => {
      try {
        process.send?.(message);
      } catch {
        // The front is gone; 'disconnect' ends this worker.
      }
    },
    onMessage: (listener) => {
      process.on('message', (m: unknown) => {
        if (isFrontToWorker(m)) listener(m);
      });
      process.channel?.unref();
    },
  };
}

function tlsParent(socket: net.Socket): net.Socket | undefined {
  const parent = (socket as net.Socket & { _parent?: unknown })._parent;
  return parent instanceof net.Socket ? parent : undefined;
}

let hopCounter = 0;

function hopPath(): string {
  hopCounter += 1;
  const name = `nsd-pool-${process.pid}-${threadId}-${hopCounter}-${Math.random().toString(36).slice(2, 8)}.sock`;
  return path.join(os.tmpdir(), name);
}

export class ServiceAgent extends EventEmitter {
  /** The app's server, as given. */
  readonly server: net.Server;
  /** The server's address once it listens (`server.address()`). */
  addressInfo?: string | net.AddressInfo | null;
  /** `Thread: N` or `Process: PID`. */
  readonly agentDescription: string;
  /** This worker's logger (default WARN); records go to the front's log handler. */
  readonly log: PoolLogger;

  readonly #channel: Channel;
  readonly #infos = new WeakMap<net.Socket, ProxySocketAddressInfo>();
  readonly #open = new Set<net.Socket>();
  readonly #hop: net.Server;
  readonly #hopPath: string;
  #proxyProtocol: ProxyProtocolVersion | null = null;
  #stopHandoffs: (() => void) | null = null;
  #draining = false;
  #loadTimer: NodeJS.Timeout | null = null;

  constructor(channel: Channel, options: ServiceAgentOptions) {
    super();
    if (!options || !(options.server instanceof net.Server)) {
      throw new Error('createServiceAgent: options.server must be a net.Server (http, https, net or tls)');
    }
    this.server = options.server;
    this.#channel = channel;
    this.agentDescription = channel.kind === 'thread' ? `Thread: ${threadId}` : `Process: ${process.pid}`;
    this.log = new PoolLogger(SyslogLevel.WARN, (record: LogRecord) =>
      this.#channel.send({ type: MSG_LOG, record }),
    );
    if (channel.kind === 'process') {
      const pp = process.env[POOL_PROXY_PROTOCOL_ENV];
      this.#proxyProtocol = pp === 'v1' || pp === 'v2' ? pp : null;
      this.#stopHandoffs = acceptHandoffs((socket, meta) => {
        this.#deliver(socket, (meta as ProxySocketAddressInfo | null) ?? socketAddressInfo(socket));
      });
      process.once('disconnect', () => this.#drain(5000));
    }
    channel.onMessage((message) => {
      if (message.type === MSG_CONFIG) this.#proxyProtocol = message.proxyProtocol;
      else if (message.type === MSG_DRAIN) this.#drain(message.timeoutMs);
    });

    this.#hopPath = hopPath();
    this.#hop = net.createServer((socket) => this.#onRelayed(socket));
    this.#hop.on('error', (err) => this.log.error(`relay socket: ${describeError(err)}`));
    this.#hop.listen({ path: this.#hopPath, backlog: 1024 });
    this.#hop.unref();

    const hopListening = new Promise<void>((resolve) => this.#hop.once('listening', () => resolve()));
    const serverListening = new Promise<void>((resolve) => {
      if (this.server.listening) resolve();
      else this.server.once('listening', () => resolve());
    });
    void Promise.all([hopListening, serverListening]).then(() => this.#reportListening());
  }

  /**
   * The client connection behind `socket` (a request's `req.socket`, a net/tls server's
   * connection): `remote` is the client, `local` the front's listening address. Answered
   * locally, correct under concurrency and for servers on UNIX sockets.
   */
  requestProxySocketAddressInfo = async (socket: net.Socket): Promise<ProxySocketAddressInfo> => {
    const info = this.#infos.get(socket) ?? this.#infos.get(tlsParent(socket) ?? socket);
    if (info) return info;
    throw new Error('requestProxySocketAddressInfo: this socket did not come through the pool front');
  };

  #reportListening(): void {
    this.addressInfo = this.server.address();
    let connect: net.SocketConnectOpts | null = null;
    if (typeof this.addressInfo === 'string') connect = { path: this.addressInfo };
    else if (this.addressInfo?.port)
      connect = { port: this.addressInfo.port, host: this.addressInfo.address };
    this.log.debug(`${this.agentDescription} is listening on ${JSON.stringify(this.addressInfo)}.`);
    this.#channel.send({ type: MSG_LISTENING, connect, hop: this.#hopPath });
  }

  #onRelayed(socket: net.Socket): void {
    socket.on('error', () => {
      // The front closed it; the app's server sees 'close'.
    });
    readHopHeader(socket).then(
      (info) => this.#deliver(socket, info),
      (err: unknown) => {
        this.log.debug(`relayed connection dropped: ${describeError(err)}`);
        socket.destroy();
      },
    );
  }

  /** Gives a connection to the app's server, as if its own listener had accepted it. */
  #deliver(socket: net.Socket, info: ProxySocketAddressInfo): void {
    if (this.#draining) {
      socket.destroy();
      return;
    }
    this.#infos.set(socket, info);
    this.#open.add(socket);
    socket.once('close', () => {
      this.#open.delete(socket);
      this.#loadChanged();
    });
    this.#loadChanged();
    if (this.#proxyProtocol) socket.unshift(proxyHeader(this.#proxyProtocol, info));
    this.server.emit('connection', socket);
  }

  /** Process workers report their open connections to the front (it cannot see them). */
  #loadChanged(): void {
    if (this.#channel.kind !== 'process' || this.#loadTimer) return;
    this.#loadTimer = setTimeout(() => {
      this.#loadTimer = null;
      this.#channel.send({ type: MSG_LOAD, connections: this.#open.size });
    }, 5);
    this.#loadTimer.unref();
  }

  /** Stop accepting, let in-flight work finish (idle keep-alive connections are closed), then exit. */
  #drain(timeoutMs: number): void {
    if (this.#draining) return;
    this.#draining = true;
    this.#stopHandoffs?.();
    this.#hop.close();
    fs.rm(this.#hopPath, { force: true }, () => {});
    const server = this.server as net.Server & { closeIdleConnections?: () => void };
    if (server.listening) server.close();
    const closeIdle = (): void => server.closeIdleConnections?.();
    closeIdle();
    const started = Date.now();
    const timer = setInterval(() => {
      closeIdle();
      if (this.#open.size === 0 || Date.now() - started >= timeoutMs) {
        clearInterval(timer);
        this.log.debug(`${this.agentDescription}: exit after drain.`);
        // Let the last log record and replies leave before the thread or process ends.
        setImmediate(() => process.exit(0));
      }
    }, 20);
  }
}

let created: ServiceAgent | null = null;

/**
 * Creates the agent of this worker (once per worker). Throws in the main thread of a process
 * that is not a pool's process worker.
 */
export function createServiceAgent(options: ServiceAgentOptions): ServiceAgent {
  if (created) {
    throw new Error(
      `A ServiceAgent has already been instantiated for ${isMainThread ? `process ${process.pid}` : `Worker thread ${threadId}`}.`,
    );
  }
  const channel = threadChannel() ?? processChannel();
  if (!channel) {
    throw new Error(
      `createServiceAgent: not in a pool worker (the MessagePort for Worker thread ${threadId} is null and this is not a process worker)`,
    );
  }
  created = new ServiceAgent(channel, options);
  return created;
}
