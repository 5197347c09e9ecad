import type { Config } from '../../config/schema';

/**
 * What a reloaded config needs, as a pure diff of two configs: which keys cannot change while
 * the daemon runs, which need new workers (a zero-downtime restart), which only change how
 * workers are treated from now on, and the scaling and renaming to do.
 */
export interface ReconfigurePlan {
  /** Keys a running daemon cannot change (they name its own files and sockets). */
  fixed: string[];
  /** Keys whose change means new worker processes. */
  restart: string[];
  /** Keys that apply from now on, without touching the workers. */
  tune: string[];
  rename: { from: string; to: string } | null;
  workers: { from: number; to: number } | null;
  standby: { from: number; to: number } | null;
  /** The socket naming changed: the next generation is published under new names. */
  socketNaming: boolean;
}

type KeyEffect = 'restart' | 'tune' | 'fixed' | 'scale' | 'rename';

/** Every key of the config and what its change needs; a key missing here fails to compile. */
export const KEY_EFFECT = {
  script: 'restart',
  args: 'restart',
  nodeArgs: 'restart',
  cwd: 'restart',
  env: 'restart',
  listenVar: 'restart',
  socketFile: 'restart',
  readiness: 'restart',
  upstreamKeepaliveTimeout: 'restart',
  spawnTimeout: 'tune',
  onlineTimeout: 'tune',
  shutdownTimeout: 'tune',
  killTimeout: 'tune',
  maxStartAttempts: 'tune',
  workers: 'scale',
  standby: 'scale',
  name: 'rename',
  tmpDir: 'fixed',
  ipcFile: 'fixed',
  umask: 'fixed',
  devServer: 'fixed',
  stdout: 'fixed',
  stderr: 'fixed',
  outputPrefix: 'fixed',
} as const satisfies Record<keyof Config, KeyEffect>;

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function planReconfigure(prev: Config, next: Config): ReconfigurePlan {
  const changed = (Object.keys(KEY_EFFECT) as (keyof Config)[]).filter((k) => !same(prev[k], next[k]));
  const withEffect = (effect: KeyEffect) => changed.filter((k) => KEY_EFFECT[k] === effect);
  return {
    fixed: withEffect('fixed'),
    restart: withEffect('restart'),
    tune: withEffect('tune'),
    rename: prev.name !== next.name ? { from: prev.name, to: next.name } : null,
    workers: prev.workers !== next.workers ? { from: prev.workers, to: next.workers } : null,
    standby: prev.standby !== next.standby ? { from: prev.standby, to: next.standby } : null,
    socketNaming: prev.socketFile !== next.socketFile,
  };
}
