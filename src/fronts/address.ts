/** A TCP address of the `listen` front, and how every message writes one. */
export interface FrontAddress {
  host: string;
  port: number;
}

/** `127.0.0.1:8080`, `[::1]:8080`. */
export function formatAddress({ host, port }: FrontAddress): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
