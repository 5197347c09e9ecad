/**
 * Listening sockets the `listen` front is given rather than binds: from the daemon this one
 * took over from (`restart --upgrade`, {@link HANDOVER_FDS_ENV}) or from systemd's socket
 * activation (`LISTEN_FDS`). Either way a connection that arrives while no daemon runs waits
 * in the kernel's accept queue rather than being refused. Read once at daemon start
 * ({@link takeInheritedSockets}); matched to the listen entries by address when the front
 * listens ({@link adoptInherited}); one that matches no entry is closed.
 */
import net from 'node:net';
import { errorMessage, type Logger } from '../log';
import { type Accepted, acceptRaw } from '../net/raw-accept';
import { plainAddress } from '../net/routing';
import { type FrontAddress, formatAddress } from './address';

/** The listening fds a predecessor passed on `restart --upgrade` ("3,4"). */
export const HANDOVER_FDS_ENV = 'NODESOCKD_LISTEN_FDS';
/** systemd's socket activation protocol (sd_listen_fds(3)): the first passed fd is 3. */
const SD_LISTEN_FDS_START = 3;

/** A listening socket this process was given rather than bound itself. */
export interface InheritedSocket {
  fd: number;
  from: 'systemd' | 'handover';
  /** systemd's FileDescriptorName=, when given. */
  name?: string;
}

/**
 * The listening sockets passed to this process, read once at daemon start: systemd's
 * (`LISTEN_FDS` when `LISTEN_PID` is this process) and a predecessor's ({@link HANDOVER_FDS_ENV}).
 * The variables are removed from `env` either way, so the workers do not inherit them.
 */
export function takeInheritedSockets(
  env: NodeJS.ProcessEnv = process.env,
  pid = process.pid,
): { sockets: InheritedSocket[]; problems: string[] } {
  const sockets: InheritedSocket[] = [];
  const problems: string[] = [];
  const { LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES } = env;
  const handover = env[HANDOVER_FDS_ENV];
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  delete env[HANDOVER_FDS_ENV];
  if (LISTEN_FDS !== undefined && LISTEN_PID === String(pid)) {
    const count = Number(LISTEN_FDS);
    if (!Number.isInteger(count) || count < 0) {
      problems.push(`LISTEN_FDS=${JSON.stringify(LISTEN_FDS)} is not a count of sockets; ignoring it`);
    } else {
      const names = LISTEN_FDNAMES?.split(':') ?? [];
      for (let i = 0; i < count; i++) {
        const name = names[i];
        sockets.push({ fd: SD_LISTEN_FDS_START + i, from: 'systemd', ...(name ? { name } : {}) });
      }
    }
  }
  if (handover !== undefined) {
    for (const part of handover.split(',').filter((p) => p !== '')) {
      const fd = Number(part);
      if (!Number.isInteger(fd) || fd < 3) {
        problems.push(`${HANDOVER_FDS_ENV}: ${JSON.stringify(part)} is not a file descriptor; ignoring it`);
      } else if (!sockets.some((s) => s.fd === fd)) {
        sockets.push({ fd, from: 'handover' });
      }
    }
  }
  return { sockets, problems };
}

/**
 * Which bound address serves which listen entry (entry index → index in `bound`): exact
 * addresses first; then an entry with port 0 takes a socket on its host (the port a
 * predecessor was given for it). Each entry and each socket is taken at most once.
 */
export function matchEntries(
  entries: readonly FrontAddress[],
  bound: readonly FrontAddress[],
): Map<number, number> {
  const taken = new Map<number, number>();
  const used = new Set<number>();
  for (const exact of [true, false]) {
    for (const [b, address] of bound.entries()) {
      if (used.has(b)) continue;
      const i = entries.findIndex(
        (e, n) =>
          !taken.has(n) &&
          plainAddress(e.host) === plainAddress(address.host) &&
          (exact ? e.port === address.port : e.port === 0),
      );
      if (i >= 0) {
        taken.set(i, b);
        used.add(b);
      }
    }
  }
  return taken;
}

/**
 * Listens on every inherited socket, then pairs them with the listen `entries` by address
 * ({@link matchEntries}); the servers taken, by entry index. Their connections go to `accept`
 * with their entry (bare handles, src/net/raw-accept.ts); one accepted before the match
 * waits for it. A socket that is not a listening TCP socket, or matches no entry, is said in
 * one line and closed (with what it accepted).
 */
export async function adoptInherited(
  sockets: readonly InheritedSocket[],
  entries: readonly FrontAddress[],
  accept: (connection: Accepted, entry: number) => void,
  log: Logger,
): Promise<Map<number, net.Server>> {
  const open: { socket: InheritedSocket; server: net.Server; address: FrontAddress }[] = [];
  /** Per listening server: its entry once matched; until then, the connections it accepted. */
  const entryOf = new Map<net.Server, number | Accepted[]>();
  /** `server` serves `entry` (what it accepted goes there), or none (closed, with what it accepted). */
  const settle = (server: net.Server, entry: number | null): void => {
    const waiting = entryOf.get(server);
    if (entry === null) {
      entryOf.delete(server);
      server.close();
    } else {
      entryOf.set(server, entry);
    }
    for (const connection of Array.isArray(waiting) ? waiting : []) {
      if (entry === null) connection.destroy();
      else accept(connection, entry);
    }
  };
  for (const socket of sockets) {
    const server = net.createServer();
    const label = inheritedLabel(socket);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd: socket.fd }, () => {
          entryOf.set(server, []);
          acceptRaw(server, (connection) => {
            const entry = entryOf.get(server);
            if (typeof entry === 'number') accept(connection, entry);
            else if (entry) entry.push(connection);
            else connection.destroy();
          });
          resolve();
        });
      });
    } catch (err) {
      log.warn(`listen: ${label} is not a listening TCP socket (${errorMessage(err)}); ignoring it`);
      server.close();
      continue;
    }
    const a = server.address();
    if (a === null || typeof a === 'string') {
      log.warn(`listen: ${label} is not a TCP socket; closing it`);
      settle(server, null);
      continue;
    }
    open.push({ socket, server, address: { host: a.address, port: a.port } });
  }
  const matched = matchEntries(
    entries,
    open.map((item) => item.address),
  );
  const taken = new Map<number, net.Server>();
  for (const [entry, b] of matched) {
    const server = open[b]?.server;
    if (!server) continue;
    taken.set(entry, server);
    settle(server, entry);
  }
  const used = new Set(matched.values());
  for (const [b, item] of open.entries()) {
    const label = inheritedLabel(item.socket);
    if (used.has(b)) {
      log.info(`listening on ${formatAddress(item.address)} (${label})`);
      continue;
    }
    if (item.socket.from === 'systemd') {
      log.warn(
        `listen: ${label} for ${formatAddress(item.address)} matches no listen entry (${entries.map(formatAddress).join(', ') || 'none'}); closing it`,
      );
    } else {
      log.info(`listen: ${formatAddress(item.address)} is no longer in the config; closing it`);
    }
    settle(item.server, null);
  }
  return taken;
}

function inheritedLabel(socket: InheritedSocket): string {
  return socket.from === 'systemd'
    ? `the socket systemd passed as fd ${socket.fd}${socket.name ? ` (${socket.name})` : ''}`
    : `the socket the previous daemon passed as fd ${socket.fd}`;
}
