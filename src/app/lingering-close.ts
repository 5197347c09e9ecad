/**
 * A connection a stopping or replaced worker closes (its last response said `Connection: close`)
 * is closed the lingering way: the FIN goes out after the response, and the descriptor is closed
 * only once the client has closed its side (or after {@link LINGER_MS}), as nginx's
 * `lingering_close` does. Node's server destroys the socket the moment its FIN is written; a
 * client still writing then gets EPIPE and loses the response waiting in its buffer. Node's own
 * HTTP client writes after every request body: `end(body)` leaves a zero-length buffer at the
 * end of its writev, which libuv sends in a later sendmsg, after the server may have read the
 * body, answered and closed (a request that got its answer, reported as failed).
 */
import type net from 'node:net';

/** How long a closing connection waits for the client's own close. */
const LINGER_MS = 2000;

const lingering = new WeakSet<net.Socket>();

function lingeringDestroySoon(this: net.Socket): void {
  if (this.writable) this.end();
  if (this.destroyed) return;
  // Reading goes on (the parser discards what follows); the client's FIN ends the socket
  // (net.Socket's autoDestroy once both sides have ended).
  const timer = setTimeout(() => this.destroy(), LINGER_MS);
  timer.unref();
  this.once('close', () => clearTimeout(timer));
}

/** From now on, Node's close after a last response lingers on this connection. */
export function lingerOnClose(socket: net.Socket | null | undefined): void {
  if (!socket || lingering.has(socket) || typeof socket.destroySoon !== 'function') return;
  lingering.add(socket);
  socket.destroySoon = lingeringDestroySoon;
}
