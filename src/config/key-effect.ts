/**
 * What a running daemon does when a reload changes a key. One entry per Config key: a key
 * added to the schema without an entry here (or an entry for a key that does not exist) does
 * not compile.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Config } from './schema';

/**
 * - `restart`: what the workers run changed: a zero-downtime restart of every worker and standby.
 * - `tune`: only how the daemon treats workers from now on; running workers are untouched.
 * - `scale`: slots or standbys are added or removed.
 * - `rename`: the app's name, used from now on.
 * - `fixed`: the daemon's own files, sockets and process settings: a running daemon cannot
 *   change them, so the reload is refused.
 */
export type KeyEffect = 'restart' | 'tune' | 'scale' | 'rename' | 'fixed';

export const KEY_EFFECTS: readonly KeyEffect[] = ['restart', 'tune', 'scale', 'rename', 'fixed'];

export const KEY_EFFECT = {
  script: 'restart',
  args: 'restart',
  nodeArgs: 'restart',
  cwd: 'restart',
  name: 'rename',
  tmpDir: 'fixed',
  socketFile: 'restart',
  ipcFile: 'fixed',
  listenVar: 'restart',
  workers: 'scale',
  standby: 'scale',
  readiness: 'restart',
  env: 'restart',
  // Worker output from now on: the files are opened (and checked) at the reload, as SIGUSR2 reopens them.
  outputPrefix: 'tune',
  stdout: 'tune',
  stderr: 'tune',
  devServer: 'fixed',
  umask: 'fixed',
  spawnTimeout: 'tune',
  onlineTimeout: 'tune',
  shutdownTimeout: 'tune',
  killTimeout: 'tune',
  // Workers get it in their environment (NODESOCKD_UPSTREAM_KEEPALIVE_MS).
  upstreamKeepaliveTimeout: 'restart',
  maxStartAttempts: 'tune',
  // The publisher's link style; a daemon keeps the style it started with.
  symlinks: 'fixed',
  // The daemon's log level, set when it starts (the original reads it only at start too).
  debug: 'fixed',
  // The daemon's own listener, bound at start.
  metrics: 'fixed',
  // Workers get it in their environment (NODESOCKD_PRELOAD).
  preload: 'restart',
  // The daemon's listening sockets, bound at start.
  listen: 'fixed',
  // The front reads it for each new connection.
  sticky: 'tune',
  // Read by the daemon at each replacement.
  handover: 'tune',
  // Workers get them in their environment (NODESOCKD_WEBSOCKET_CLOSE_GRACE_MS, NODESOCKD_STOP_IDLE_TIMEOUT_MS).
  websocketCloseGrace: 'restart',
  stopIdleTimeout: 'restart',
} as const satisfies Record<keyof Config, KeyEffect>;

/** The keys of each effect, in KEY_EFFECT order. */
export function keysWithEffect(effect: KeyEffect): (keyof Config)[] {
  return (Object.keys(KEY_EFFECT) as (keyof Config)[]).filter((k) => KEY_EFFECT[k] === effect);
}

/**
 * The keys whose value differs between `prev` and `next` (lists and objects compared by
 * content; a key set on one side only differs), grouped by their effect.
 */
export function diffConfig(prev: Config, next: Config): Record<KeyEffect, (keyof Config)[]> {
  const out: Record<KeyEffect, (keyof Config)[]> = {
    restart: [],
    tune: [],
    scale: [],
    rename: [],
    fixed: [],
  };
  for (const key of Object.keys(KEY_EFFECT) as (keyof Config)[]) {
    if (!isDeepStrictEqual(prev[key], next[key])) out[KEY_EFFECT[key]].push(key);
  }
  return out;
}
