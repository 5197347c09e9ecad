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
import path from 'node:path';
import type tls from 'node:tls';
import { isMainThread, parentPort, threadId } from 'node:worker_threads';
import { type ProxySocketAddressInfo, socketAddressInfo } from '../net/address-info.js';
import { acceptHandoffs } from '../net/handoff.js';
import { type ProxyProtocolVersion, proxyHeader } from '../net/proxy-protocol.js';
import { describeError, type LogRecord, PoolLogger, SyslogLevel } from './log.js';
import { presentAs, presentTlsSockets } from './peer-address.js';
import {
  type AcceptAddress,
  type FrontToWorker,
  type HandoffMeta,
  isFrontToWorker,
  MSG_ACCEPT,
  MSG_ACCEPTING,
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
import { POOL_RELAY_DIR_ENV, relayDir } from './relay-dir.js';

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

/**
 * Listening sockets each thread adds to the front port's SO_REUSEPORT group. The kernel
 * spreads new connections evenly over the group, the front's own socket included, so with n
 * threads the front (which relays) gets 1 in LISTENERS_PER_THREAD × n + 1 of them.
 */
const LISTENERS_PER_THREAD = 4;

/** A relay socket's path in the front's private directory. */
function hopPath(dir: string): string {
  hopCounter += 1;
  return path.join(dir, `${process.pid}-${threadId}-${hopCounter}.sock`);
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
  /** Each connection's address info; null: its own ends (read from the socket when asked). */
  readonly #infos = new WeakMap<net.Socket, ProxySocketAddressInfo | null>();
  readonly #open = new Set<net.Socket>();
  readonly #hop: net.Server;
  #hopPath = '';
  #proxyProtocol: ProxyProtocolVersion | null = null;
  /** Where the front wants this thread to accept clients itself (`reusePort`). */
  #accept: AcceptAddress | null = null;
  /** This thread's own listeners on the front's port, and the connections they accepted. */
  #direct: net.Server[] = [];
  readonly #directOpen = new Set<net.Socket>();
  /** The connections handed to this process, open ones and all (the front counts relayed ones itself). */
  readonly #handedOpen = new Set<net.Socket>();
  #received = 0;
  #listening = false;
  #stopHandoffs: (() => void) | null = null;
  #draining = false;
  #loadTimer: NodeJS.Timeout | null = null;
  #reportedDirect = false;

  constructor(channel: Channel, options: ServiceAgentOptions) {
    super();
    if (!options || !(options.server instanceof net.Server)) {
      throw new Error('createServiceAgent: options.server must be a net.Server (http, https, net or tls)');
    }
    this.server = options.server;
    presentTlsSockets(this.server);
    this.#channel = channel;
    this.agentDescription = channel.kind === 'thread' ? `Thread: ${threadId}` : `Process: ${process.pid}`;
    this.log = new PoolLogger(SyslogLevel.WARN, (record: LogRecord) =>
      this.#channel.send({ type: MSG_LOG, record }),
    );
    if (channel.kind === 'process') {
      const pp = process.env[POOL_PROXY_PROTOCOL_ENV];
      this.#proxyProtocol = pp === 'v1' || pp === 'v2' ? pp : null;
      this.#stopHandoffs = acceptHandoffs((socket, meta) => {
        const m = meta as HandoffMeta | null;
        // What the front read while the connection waited for a worker comes first.
        if (m?.head) socket.unshift(Buffer.from(m.head, 'base64'));
        this.#handedOpen.add(socket);
        socket.once('close', () => this.#handedOpen.delete(socket));
        // The descriptor is the front's: its ends are the client's and the front's.
        this.#deliver(socket, null);
        this.#received += 1;
      });
      process.once('disconnect', () => this.#drain(5000));
    }
    this.#hop = net.createServer((socket) => this.#onRelayed(socket));
    this.#hop.on('error', (err) => this.log.error(`relay socket: ${describeError(err)}`));
    this.#hop.unref();
    channel.onMessage((message) => {
      if (message.type === MSG_CONFIG) {
        this.#proxyProtocol = message.proxyProtocol;
        this.#accept = message.accept;
        this.#listenHop(message.relayDir);
      } else if (message.type === MSG_ACCEPT) {
        this.#accept = message.accept;
        this.#acceptDirectly();
      } else if (message.type === MSG_DRAIN) this.#drain(message.timeoutMs);
    });

    // A thread learns the front's relay directory from its first message; a process from its environment.
    if (channel.kind === 'process') this.#listenHop(process.env[POOL_RELAY_DIR_ENV] || relayDir());

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
   * locally, correct under concurrency and for servers on UNIX sockets. Resolves `undefined`
   * for a connection that did not come through the front (a health check on the worker's own
   * port), as Socketnaut does; the declared type is Socketnaut's, so its programs compile.
   */
  requestProxySocketAddressInfo = async (socket: net.Socket): Promise<ProxySocketAddressInfo> => {
    const own = this.#infos.has(socket) ? socket : (tlsParent(socket) ?? socket);
    let info = this.#infos.get(own);
    if (info === null) {
      info = socketAddressInfo(own);
      this.#infos.set(own, info);
    }
    return info as ProxySocketAddressInfo;
  };

  #listenHop(dir: string): void {
    if (this.#hopPath !== '') return;
    this.#hopPath = hopPath(dir);
    this.#hop.listen({ path: this.#hopPath, backlog: 1024 });
  }

  #reportListening(): void {
    this.addressInfo = this.server.address();
    let connect: net.SocketConnectOpts | null = null;
    if (typeof this.addressInfo === 'string') connect = { path: this.addressInfo };
    else if (this.addressInfo?.port)
      connect = { port: this.addressInfo.port, host: this.addressInfo.address };
    this.log.debug(`${this.agentDescription} is listening on ${JSON.stringify(this.addressInfo)}.`);
    this.#channel.send({ type: MSG_LISTENING, connect, hop: this.#hopPath });
    this.#listening = true;
    this.#acceptDirectly();
  }

  /**
   * Binds the front's port too (SO_REUSEPORT), once the app's server listens, and gives what it
   * accepts to the app's server; with no address, stops. The accepting socket takes the app
   * server's socket options, as if the app's own listener had accepted the connection.
   */
  #acceptDirectly(): void {
    for (const d of this.#direct.splice(0)) d.close();
    const accept = this.#accept;
    if (!accept || !this.#listening || this.#draining || this.#channel.kind !== 'thread') return;
    const app = this.server as net.Server & {
      noDelay?: unknown;
      keepAlive?: unknown;
      allowHalfOpen?: unknown;
    };
    const settings = {
      allowHalfOpen: app.allowHalfOpen === true,
      noDelay: app.noDelay === true,
      keepAlive: app.keepAlive === true,
    };
    // Node.js 20's types do not know reusePort yet; the front checked that this Node.js does.
    const options: net.ListenOptions & { reusePort: boolean } = {
      host: accept.host,
      port: accept.port,
      reusePort: true,
      backlog: 1024,
    };
    let pending = LISTENERS_PER_THREAD;
    let failed: string | null = null;
    const settled = (): void => {
      pending -= 1;
      if (pending > 0) return;
      if (failed !== null) {
        for (const d of this.#direct.splice(0)) d.close();
        this.#channel.send({ type: MSG_ACCEPTING, ok: false, error: failed });
        return;
      }
      this.log.debug(`${this.agentDescription} accepts on ${accept.host}:${accept.port} itself.`);
      this.#channel.send({ type: MSG_ACCEPTING, ok: true });
    };
    for (let i = 0; i < LISTENERS_PER_THREAD; i++) {
      const direct = net.createServer(settings, (socket) => {
        this.#directOpen.add(socket);
        socket.once('close', () => this.#directOpen.delete(socket));
        this.#deliver(socket, null);
      });
      this.#direct.push(direct);
      let bound = false;
      direct.on('error', (err) => {
        if (bound) {
          this.log.error(`listener on the front's port: ${describeError(err)}`);
          return;
        }
        bound = true;
        failed ??= describeError(err);
        settled();
      });
      direct.listen(options, () => {
        bound = true;
        settled();
      });
      direct.unref();
    }
  }

  #onRelayed(socket: net.Socket): void {
    socket.on('error', () => {
      // The front closed it; the app's server sees 'close'.
    });
    // Counted from now on: a drain waits for it, header or not.
    this.#track(socket);
    readHopHeader(socket).then(
      (info) => {
        presentAs(socket, info);
        this.#deliver(socket, info);
      },
      (err: unknown) => {
        this.log.debug(`relayed connection dropped: ${describeError(err)}`);
        socket.destroy();
      },
    );
  }

  #track(socket: net.Socket): void {
    if (this.#open.has(socket)) return;
    this.#open.add(socket);
    socket.once('close', () => {
      this.#open.delete(socket);
      this.#loadChanged();
    });
    this.#loadChanged();
  }

  /**
   * Gives a connection to the app's server, as if its own listener had accepted it. One that
   * reached this worker while it drains is served too (the front sent it before the drain,
   * or this thread accepted it while its listener was closing): its client is here.
   */
  #deliver(socket: net.Socket, info: ProxySocketAddressInfo | null): void {
    this.#infos.set(socket, info);
    this.#track(socket);
    if (this.#proxyProtocol)
      socket.unshift(proxyHeader(this.#proxyProtocol, info ?? socketAddressInfo(socket)));
    this.server.emit('connection', socket);
  }

  /**
   * Process workers report their open connections to the front (it cannot see them), thread
   * workers those they accepted themselves (the front counts what it relays).
   */
  #loadChanged(): void {
    if (this.#loadTimer) return;
    if (this.#channel.kind === 'thread' && this.#directOpen.size === 0 && !this.#reportedDirect) return;
    this.#loadTimer = setTimeout(() => {
      this.#loadTimer = null;
      const connections = this.#channel.kind === 'process' ? this.#handedOpen.size : this.#directOpen.size;
      this.#reportedDirect = this.#channel.kind === 'thread' && connections > 0;
      this.#channel.send({ type: MSG_LOAD, connections, received: this.#received });
    }, 5);
    this.#loadTimer.unref();
  }

  /**
   * Stop accepting, let in-flight work finish (idle keep-alive connections are closed), then
   * exit; at `timeoutMs` at the latest (null: when the work ends, however long it takes).
   */
  #drain(timeoutMs: number | null): void {
    if (this.#draining) return;
    this.#draining = true;
    this.log.debug(`${this.agentDescription}: draining.`);
    this.#stopHandoffs?.();
    // Stop listening on the front's port first: new clients go to the other threads. What
    // is in this listener's accept queue when it closes is reset by the kernel (unless
    // net.ipv4.tcp_migrate_req=1 moves it to the other threads' listeners), so it closes on
    // the check phase, right after a poll phase accepted all that had arrived.
    const direct = this.#direct.splice(0);
    if (direct.length > 0)
      setImmediate(() => {
        for (const d of direct) d.close();
      });
    // No new relayed connection can come once the path is gone. Those the front connected
    // before it asked for the drain wait in the relay socket's queue: they are still accepted
    // and served (the socket closes with the thread or process).
    fs.rm(this.#hopPath, { force: true }, () => {});
    const server = this.server as net.Server & { closeIdleConnections?: () => void };
    const closeIdle = (): void => server.closeIdleConnections?.();
    // On the check phase: a connection handed over just before the drain, whose request is
    // in the kernel, is read in this poll phase first, so it does not count as idle.
    setImmediate(() => {
      if (server.listening) server.close();
      closeIdle();
    });
    const started = Date.now();
    const timer = setInterval(() => {
      closeIdle();
      if (this.#open.size === 0 || (timeoutMs !== null && Date.now() - started >= timeoutMs)) {
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
