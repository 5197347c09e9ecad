import fs from 'node:fs';
import net from 'node:net';
import { ConnectionCap } from '../connection-guard';
import { limits } from '../listener-limits';
import type { Logger } from '../log';
import { errorMessage } from '../log';
import { FrameConnection } from './connection';
import { encodeFrame, MAX_FRAME_BYTES } from './framing';
import {
  type CommandRequest,
  describeInvalidRequest,
  isWorkerHello,
  type Reply,
  requestSchema,
  type WorkerHello,
  type WorkerHelloReply,
} from './protocol';

/** Runs a command; what it resolves to is the reply's data, what it throws the reply's error. */
export type CommandHandler = (request: CommandRequest) => Promise<unknown>;

/**
 * Takes a connection over when its first frame is a {@link WorkerHello}: from then on the
 * connection is the worker's channel and no longer the server's. Throws to refuse it (the
 * server then replies with the error and closes the connection).
 */
export type UpgradeHandler = (hello: WorkerHello, connection: FrameConnection) => WorkerHelloReply;

const refuseUpgrades: UpgradeHandler = () => {
  throw new Error('this control socket takes no worker channels');
};

/**
 * The daemon's control socket. Nothing a peer sends can throw out of here: bad frames get an
 * error reply, a peer that vanishes just loses its replies.
 *
 * A new connection must send a complete first frame within `controlHandshakeMs`
 * (src/listener-limits.ts), or it is closed; such unidentified connections have their own cap,
 * at which the oldest is closed, so that a flood of silent ones cannot lock the CLI out. Once it
 * has sent a frame a connection has no idle timeout (a worker's link, a long command): it counts
 * towards a second cap, at which the oldest connection with no request under way is closed.
 */
export class IpcServer {
  private server: net.Server;
  private readonly connections = new Set<FrameConnection>();
  private readonly unidentified: ConnectionCap;
  private readonly identified: ConnectionCap;

  constructor(
    private readonly path: string,
    private readonly handle: CommandHandler,
    private readonly log: Logger,
    private readonly onUpgrade: UpgradeHandler = refuseUpgrades,
  ) {
    const { controlUnidentified, controlIdentified, warnIntervalMs } = limits();
    this.unidentified = new ConnectionCap(
      controlUnidentified,
      'control socket (connections yet to send a request)',
      log,
      warnIntervalMs,
    );
    this.identified = new ConnectionCap(controlIdentified, 'control socket', log, warnIntervalMs);
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Binds the socket readable and writable by its owner only (docs/permissions.md). */
  async listen(): Promise<void> {
    // bind() creates the file with the process umask; narrow it for that one synchronous call
    // (never across an await: files other code creates meanwhile would get it too) so the
    // nginx group never gets a window on the control socket.
    const listening = new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.once('listening', () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const previous = process.umask(0o077);
    try {
      this.server.listen(this.path);
    } finally {
      process.umask(previous);
    }
    await listening;
    fs.chmodSync(this.path, 0o600);
    this.server.on('error', (err) => this.log.error(`control socket: ${errorMessage(err)}`));
  }

  /**
   * Listens again on the path (its file was removed, e.g. with tmpDir): a new listener takes
   * the path, the old one stops accepting, and open connections carry on.
   */
  async rebind(): Promise<void> {
    // Closing a listener unlinks its path (libuv): close the old one before binding anew.
    this.server.close();
    this.server = net.createServer((socket) => this.accept(socket));
    fs.rmSync(this.path, { force: true });
    await this.listen();
  }

  /** Stops listening; open connections get their pending replies, then are closed. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const connection of this.connections) connection.end();
    const stragglers = setTimeout(() => {
      for (const connection of this.connections) connection.destroy();
    }, 1000);
    await closed;
    clearTimeout(stragglers);
  }

  private accept(socket: net.Socket): void {
    const connection = new FrameConnection(socket);
    if (!this.unidentified.admit(socket)) return;
    socket.setTimeout(limits().controlHandshakeMs, () => connection.destroy());
    this.connections.add(connection);
    connection.onClose((err) => {
      this.connections.delete(connection);
      if (err) this.log.debug(`control client: ${errorMessage(err)}`);
    });
    let first = true;
    let pending = 0;
    /** The first frame: no more deadline; a command connection counts towards the second cap. */
    let refused = false;
    const identify = (value: unknown): boolean => {
      if (!first) return false;
      first = false;
      this.unidentified.release(socket);
      socket.setTimeout(0);
      // A worker's link (its hello) leaves for the pool; a command connection counts here, and
      // is refused (closed, its request not run) when every other one has a request under way.
      if ((value as { type?: unknown } | null)?.type !== 'worker-hello')
        refused = !this.identified.admit(socket);
      return true;
    };
    const track = async (run: Promise<void>) => {
      this.identified.busy(socket, ++pending > 0);
      await run;
      this.identified.busy(socket, --pending > 0);
    };
    connection.setHandlers({
      frame: (value) => {
        const isFirst = identify(value);
        if (refused) return;
        void track(this.dispatch(connection, value, isFirst));
      },
      invalid: (reason) => {
        identify(null);
        this.reply(connection, { id: null, ok: false, error: reason });
      },
      overflow: (err) => this.reply(connection, { id: null, ok: false, error: err.message }),
    });
  }

  private async dispatch(connection: FrameConnection, value: unknown, first: boolean): Promise<void> {
    const parsed = requestSchema.safeParse(value);
    if (!parsed.success) {
      const id = typeof value === 'object' && value !== null ? (value as { id?: unknown }).id : undefined;
      this.reply(connection, {
        id: typeof id === 'number' ? id : null,
        ok: false,
        error: describeInvalidRequest(value, parsed.error),
      });
      return;
    }
    const request = parsed.data;
    this.log.debug(`control request ${request.type} #${request.id}`);
    if (isWorkerHello(request)) {
      this.upgrade(connection, request, first);
      return;
    }
    try {
      const data = await this.handle(request);
      this.reply(connection, { id: request.id, ok: true, data });
    } catch (err) {
      this.reply(connection, { id: request.id, ok: false, error: errorMessage(err) });
    }
  }

  /** Hands the connection to the upgrade handler; it is then no longer one of ours. */
  private upgrade(connection: FrameConnection, hello: WorkerHello, first: boolean): void {
    if (!first) {
      this.reply(connection, {
        id: hello.id,
        ok: false,
        error: `${hello.type} must be the first frame on a connection`,
      });
      return;
    }
    let data: WorkerHelloReply;
    try {
      // Synchronous, so that the frames behind the hello in the same chunk reach the new owner.
      data = this.onUpgrade(hello, connection);
    } catch (err) {
      this.reply(connection, { id: hello.id, ok: false, error: errorMessage(err) });
      connection.end();
      return;
    }
    this.connections.delete(connection);
    // The worker waits for this reply before it sends anything else on the connection.
    this.reply(connection, { id: hello.id, ok: true, data });
  }

  private reply(connection: FrameConnection, reply: Reply): void {
    // A client that gave up (Ctrl-C, CI job cancelled) must cost nothing but its reply.
    // A reply the client could not read (over the frame limit) becomes an error it can.
    const bytes = Buffer.byteLength(encodeFrame(reply));
    if (bytes > MAX_FRAME_BYTES) {
      this.log.warn(`control reply of ${bytes} bytes is over the frame limit; sent an error instead`);
      connection.send({
        id: reply.id,
        ok: false,
        error: `the reply (${bytes} bytes) is larger than the ${MAX_FRAME_BYTES}-byte frame limit`,
      });
      return;
    }
    connection.send(reply);
  }
}
