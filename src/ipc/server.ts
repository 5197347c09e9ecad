import fs from 'node:fs';
import net from 'node:net';
import type { Logger } from '../log';
import { errorMessage } from '../log';
import { encodeFrame, FrameTooLargeError, LineFramer } from './framing';
import { describeInvalidRequest, oneLine, type Reply, type Request, requestSchema } from './protocol';

export type RequestHandler = (request: Request) => Promise<unknown>;
/** Takes over a connection on which a worker introduced itself; false if it is unknown. */
export type WorkerHelloHandler = (workerId: string, pid: number, socket: net.Socket) => boolean;

/**
 * The daemon's control socket. Nothing a peer sends can throw out of here: bad frames get an
 * error reply, a peer that vanishes just loses its replies.
 */
export class IpcServer {
  private server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly path: string,
    private readonly handle: RequestHandler,
    private readonly log: Logger,
    private readonly onWorkerHello: WorkerHelloHandler = () => false,
  ) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Binds the socket readable and writable by its owner only (SPEC §4.10). */
  async listen(): Promise<void> {
    // bind() creates the file with the process umask; narrow it for that one call so the
    // nginx group never gets a window on the control socket.
    const previous = process.umask(0o077);
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(this.path, () => {
          this.server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(previous);
    }
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
    for (const socket of this.sockets) socket.end();
    const stragglers = setTimeout(() => {
      for (const socket of this.sockets) socket.destroy();
    }, 1000);
    await closed;
    clearTimeout(stragglers);
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    const framer = new LineFramer();
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', (err) => this.log.debug(`control client: ${errorMessage(err)}`));
    socket.on('data', (chunk) => {
      let frames: string[];
      try {
        frames = framer.push(chunk);
      } catch (err) {
        if (err instanceof FrameTooLargeError) {
          this.reply(socket, { id: null, ok: false, error: err.message });
          socket.end();
          return;
        }
        throw err;
      }
      for (const frame of frames) void this.dispatch(socket, frame);
    });
  }

  private async dispatch(socket: net.Socket, frame: string): Promise<void> {
    let value: unknown;
    try {
      value = JSON.parse(frame);
    } catch (err) {
      // V8 quotes the frame in its message: keep the reply's error on one line.
      this.reply(socket, { id: null, ok: false, error: oneLine(`invalid JSON: ${errorMessage(err)}`) });
      return;
    }
    const parsed = requestSchema.safeParse(value);
    if (!parsed.success) {
      const id = typeof value === 'object' && value !== null ? (value as { id?: unknown }).id : undefined;
      this.reply(socket, {
        id: typeof id === 'number' ? id : null,
        ok: false,
        error: describeInvalidRequest(value, parsed.error),
      });
      return;
    }
    const request = parsed.data;
    this.log.debug(`control request ${request.type} #${request.id}`);
    if (request.type === 'worker-hello') {
      // The worker waits for this reply before it sends anything else on the connection.
      socket.removeAllListeners('data');
      this.sockets.delete(socket);
      const { workerId, pid } = request.data;
      if (this.onWorkerHello(workerId, pid, socket)) {
        this.reply(socket, { id: request.id, ok: true, data: { adopted: true } });
      } else {
        this.reply(socket, { id: request.id, ok: false, error: `unknown worker ${workerId} (pid ${pid})` });
        socket.end();
      }
      return;
    }
    try {
      const data = await this.handle(request);
      this.reply(socket, { id: request.id, ok: true, data });
    } catch (err) {
      this.reply(socket, { id: request.id, ok: false, error: errorMessage(err) });
    }
  }

  private reply(socket: net.Socket, reply: Reply): void {
    // A client that gave up (Ctrl-C, CI job cancelled) must cost nothing but its reply.
    if (socket.destroyed || !socket.writable) return;
    socket.write(encodeFrame(reply));
  }
}
