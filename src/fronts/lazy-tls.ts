/**
 * `node:tls`, loaded on first use by the daemon: one whose `listen` has no TLS entry never
 * loads it (about 2 MB of its memory). The worker side loads it the same way (tls-receiver.ts).
 */
import type tlsTypes from 'node:tls';

let loaded: typeof tlsTypes | undefined;

export function lazyTls(): typeof tlsTypes {
  loaded ??= require('node:tls') as typeof tlsTypes;
  return loaded;
}
