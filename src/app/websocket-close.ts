/**
 * WebSocket connections of a stopping worker (docs/lifecycle.md#websockets): they cannot move
 * to the successor (the app holds their state), so after `'shutdown'` the app has a grace to
 * close them itself; each one still open then gets a close frame with code 1012 (Service
 * Restart, RFC 6455 §7.4 and the IANA registry) from the worker, so clients reconnect at once
 * instead of seeing an abnormal closure (1006). The worker then waits, bounded, for the
 * client's close frame (the app's WebSocket library answers it and closes the socket) and ends
 * the connection.
 */
import type net from 'node:net';

/** A close frame from a server: FIN + opcode 8, unmasked, 2-byte payload 1012 (0x03F4). */
const CLOSE_1012 = Buffer.from([0x88, 0x02, 0x03, 0xf4]);
const SWITCHING = 'HTTP/1.1 101';

interface UpgradeRequest {
  headers: Record<string, string | string[] | undefined>;
}

type Write = net.Socket['write'];

export class WebSocketCloser {
  /** Sockets whose upgrade to WebSocket was accepted (the app wrote `101 Switching Protocols`). */
  readonly #open = new Set<net.Socket>();
  #closing = false;

  /** Called for every 'upgrade' before the app sees it. */
  track(req: UpgradeRequest, socket: net.Socket): void {
    const upgrade = req.headers.upgrade;
    if (typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket') return;
    const own = Object.hasOwn(socket, 'write') ? socket.write : undefined;
    const proto = Object.getPrototypeOf(socket) as { write: Write };
    const open = this.#open;
    // The app's first write on the raw socket is its handshake answer: 101 means it is a WebSocket now.
    socket.write = function firstWrite(this: net.Socket, ...args: Parameters<Write>) {
      if (own) socket.write = own;
      else delete (socket as { write?: Write }).write;
      const chunk = args[0];
      const head =
        typeof chunk === 'string'
          ? chunk.slice(0, 12)
          : Buffer.from(chunk as Uint8Array)
              .subarray(0, 12)
              .toString('latin1');
      if (head === SWITCHING && !socket.destroyed) {
        open.add(socket);
        socket.once('close', () => open.delete(socket));
      }
      return (own ?? proto.write).apply(this, args);
    } as Write;
  }

  /**
   * After `graceMs`, sends 1012 on every WebSocket still open and ends each once the client
   * answered, or after `answerMs`. Idempotent.
   */
  closeAfter(graceMs: number, answerMs: number): void {
    if (this.#closing) return;
    this.#closing = true;
    setTimeout(() => {
      for (const socket of this.#open) {
        if (socket.destroyed || !socket.writable) continue;
        socket.write(CLOSE_1012);
        const timer = setTimeout(() => socket.destroy(), answerMs);
        timer.unref();
        socket.once('close', () => clearTimeout(timer));
      }
    }, graceMs).unref();
  }
}
