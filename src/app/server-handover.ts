/**
 * Connection handover for one HTTP server of a worker that is being replaced
 * (docs/lifecycle.md#connection-handover): at `'shutdown'`, every idle kept-alive connection
 * moves to the successor at once; a connection with a request in flight moves as soon as its
 * response has ended and its request was read to the end; one accepted after `'shutdown'` (a
 * client that resolved the old socket path a moment earlier) moves on arrival. What cannot
 * move stays here and closes the old way (`Connection: close` on its next response): TLS,
 * pipelined requests, a connection found mid-request at its boundary, a refused move; and
 * HTTP/2 sessions (GOAWAY).
 */
import type net from 'node:net';
import type { HandoverChannel, HandoverParticipant } from './handover-channel.js';
import { httpConnections, idleConnections, plainHandle, responseInFlight } from './http-connections.js';

interface Request {
  readonly complete: boolean;
  readonly socket: net.Socket | null;
  once(event: 'end', listener: () => void): unknown;
  push(chunk: unknown, encoding?: BufferEncoding): boolean;
  resume?(): unknown;
}
interface Response {
  readonly req?: Request;
  readonly writableEnded: boolean;
  end(...args: unknown[]): unknown;
}

/**
 * How long a response that ends before its request body has arrived is held back (so that
 * the client cannot send its next request before the old worker has read this one to the end).
 * Past it, the response goes out and its connection closes the old way.
 */
const BODY_WAIT_MS = 2000;

/** A connection whose next request had begun at this many boundaries closes the old way. */
const MAX_MISSES = 3;

export class ServerHandover implements HandoverParticipant {
  readonly #server: net.Server;
  readonly #channel: HandoverChannel;
  /** Leaves the channel (the server's guard was removed). */
  readonly unregister: () => void;
  /** Connections that close the old way. */
  readonly #stay = new WeakSet<net.Socket>();
  /** Connections whose descriptor is on its way to the successor. */
  readonly #moving = new WeakSet<net.Socket>();
  /** How often a connection's boundary was missed: its next request had begun (afterResponse). */
  readonly #misses = new WeakMap<net.Socket, number>();
  /** Responses whose end is held until their request is read (holdEnd, once each). */
  readonly #held = new WeakSet<object>();
  #active = false;

  /** The server's responses in flight (the guard's list). */
  readonly #inFlight: () => Iterable<Response>;

  /** How many HTTP/2 sessions the server has open: they cannot move, and close the old way (GOAWAY). */
  readonly #sessions: () => number;

  constructor(
    server: net.Server,
    channel: HandoverChannel,
    inFlight: () => Iterable<Response> = () => [],
    sessions: () => number = () => 0,
  ) {
    this.#server = server;
    this.#inFlight = inFlight;
    this.#sessions = sessions;
    this.#channel = channel;
    this.unregister = channel.register(this);
  }

  /** Handing over (the daemon named a successor, and 'shutdown' came). */
  get active(): boolean {
    return this.#active;
  }

  /** Whether the connection's next response keeps it alive (it is to move, not to close). */
  keepsAlive(socket: net.Socket | null): boolean {
    return this.#active && socket !== null && !this.#stay.has(socket) && plainHandle(socket) !== null;
  }

  /** A connection being moved: idle to the eye, but not to be swept. */
  isMoving(socket: net.Socket): boolean {
    return this.#moving.has(socket);
  }

  /** Every request, before the app sees it: a request behind another one's response is pipelined. */
  onRequest(socket: net.Socket | null, res: object): void {
    if (socket === null) return;
    const current = (socket as unknown as { _httpMessage?: object | null })._httpMessage;
    if (current && current !== res) this.#stay.add(socket);
  }

  /**
   * Starts the handover (the daemon named a successor). Resolves with how the connections open
   * now went: idle ones moved (or not), busy ones to follow.
   */
  async begin(): Promise<{ moved: number; busy: number; drained: number } | null> {
    if (this.#active) return null;
    this.#active = true;
    for (const res of this.#inFlight()) this.holdEnd(res);
    const idle = idleConnections(this.#server);
    let busy = 0;
    let drained = this.#sessions();
    const moves: Promise<boolean>[] = [];
    for (const socket of httpConnections(this.#server)) {
      if (socket.destroyed) continue;
      if (plainHandle(socket) === null || this.#stay.has(socket)) {
        this.#stay.add(socket);
        drained++;
      } else if (idle.has(socket)) moves.push(this.#move(socket));
      else {
        busy++;
        // Answered already, its body still arriving: it moves once the body has been read.
        const req = (socket as unknown as { parser?: { incoming?: Request | null } | null }).parser?.incoming;
        if (req && !req.complete && !responseInFlight(socket)) this.afterResponse(req);
      }
    }
    const results = await Promise.all(moves);
    const moved = results.filter(Boolean).length;
    return { moved, busy, drained: drained + results.length - moved };
  }

  /** A connection accepted after the handover began: nothing was read from it yet. */
  onConnection(socket: net.Socket): void {
    if (!this.#active) return;
    // Node's HTTP server set the connection up in its own 'connection' listener, which ran first.
    if (idleConnections(this.#server).has(socket)) void this.#move(socket);
  }

  /**
   * A response that ends while its request body is still arriving (an app that answers a POST
   * without reading it) is held back until the body has been read: until then the client cannot
   * send its next request, so none can reach this worker, and a response that closes the
   * connection cannot cut the upload short. Called for each response while handing over or
   * stopping, before the app can end it.
   */
  holdEnd(res: Response, stopping = false): void {
    const req = res.req;
    const socket = req?.socket ?? null;
    // Handing over: until the body is read the next request could reach this worker. Stopping:
    // a response that closes its connection before the body is read resets the upload (EPIPE).
    if (!(this.#active || stopping) || !req || req.complete || socket === null) return;
    if (this.#held.has(res)) return;
    this.#held.add(res);
    if (res.writableEnded) return;
    const stay = this.#stay;
    const end = res.end;
    // Deferred rather than corked: Node's end() uncorks the socket fully, whatever was corked.
    res.end = function heldEnd(this: Response, ...args: unknown[]) {
      delete (res as { end?: unknown }).end;
      if (req.complete || socket.destroyed) return end.apply(this, args);
      const push = req.push;
      let held = true;
      const release = (): void => {
        if (!held) return;
        held = false;
        clearTimeout(timer);
        delete (req as { push?: unknown }).push;
        socket.off('close', release);
        end.apply(res, args);
      };
      // The parser pushes null when the request's last byte is read (parserOnMessageComplete).
      req.push = function pushed(this: Request, chunk: unknown, encoding?: BufferEncoding) {
        const more = push.call(this, chunk, encoding);
        if (chunk === null) queueMicrotask(release);
        return more;
      };
      const timer = setTimeout(() => {
        stay.add(socket);
        release();
      }, BODY_WAIT_MS);
      timer.unref();
      socket.once('close', release);
      // The app answered without reading the body: read it to the end now, as Node would once
      // the response has gone out (a body nobody reads stops the connection at its buffer).
      req.resume?.();
      return res;
    };
  }

  /** A response closed: its connection moves once the request has been read to the end. */
  afterResponse(req: Request): void {
    const socket = req.socket;
    if (!this.#active || socket === null || socket.destroyed || this.#stay.has(socket)) return;
    if (this.#moving.has(socket)) return;
    const attempt = (): void => {
      if (socket.destroyed || this.#moving.has(socket) || this.#stay.has(socket)) return;
      if (responseInFlight(socket) || !idleConnections(this.#server).has(socket)) {
        // The next request began here before the boundary could be taken: a client sends it
        // right behind a body that was answered before it was read. That request is served
        // here (its response held until its body is read), and the connection moves after it;
        // one that misses its boundary again and again closes the old way.
        const misses = (this.#misses.get(socket) ?? 0) + 1;
        this.#misses.set(socket, misses);
        if (misses >= MAX_MISSES) this.#stay.add(socket);
        return;
      }
      void this.#move(socket);
    };
    if (req.complete) attempt();
    else req.once('end', attempt);
  }

  async #move(socket: net.Socket): Promise<boolean> {
    this.#moving.add(socket);
    const moved = await this.#channel.move(socket);
    this.#moving.delete(socket);
    if (!moved) this.#stay.add(socket);
    return moved;
  }
}
