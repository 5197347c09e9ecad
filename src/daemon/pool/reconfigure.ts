import { diffConfig } from '../../config/key-effect';
import type { Config } from '../../config/schema';
import type { UpstreamChange } from '../../ipc/protocol';

/**
 * What a reloaded config needs, as a pure diff of two configs: which keys cannot change while
 * the daemon runs, which need new workers (a zero-downtime restart), which only change how
 * workers are treated from now on, and the scaling and renaming to do.
 */
export interface ReconfigurePlan {
  /** Keys a running daemon cannot change (they name its own files and sockets). */
  fixed: (keyof Config)[];
  /** Keys whose change means new worker processes. */
  restart: (keyof Config)[];
  /** Keys that apply from now on, without touching the workers. */
  tune: (keyof Config)[];
  rename: { from: string; to: string } | null;
  workers: { from: number; to: number } | null;
  standby: { from: number; to: number } | null;
  /** The socket naming changed: the next generation is published under new names. */
  socketNaming: boolean;
}

/** The plan for going from `prev` to `next`, by the effect of each changed key (config/key-effect.ts). */
export function planReconfigure(prev: Config, next: Config): ReconfigurePlan {
  const changed = diffConfig(prev, next);
  return {
    fixed: changed.fixed,
    restart: changed.restart,
    tune: changed.tune,
    rename: prev.name !== next.name ? { from: prev.name, to: next.name } : null,
    workers: prev.workers !== next.workers ? { from: prev.workers, to: next.workers } : null,
    standby: prev.standby !== next.standby ? { from: prev.standby, to: next.standby } : null,
    socketNaming: prev.socketFile !== next.socketFile,
  };
}

/** What nginx's upstream must add and remove when the published paths go from `before` to `after`; null when nothing. */
export function upstreamChange(name: string, before: string[], after: string[]): UpstreamChange | null {
  const add = after.filter((p) => !before.includes(p));
  const remove = before.filter((p) => !after.includes(p));
  if (add.length + remove.length === 0) return null;
  return { upstream: name.replace(/[^A-Za-z0-9_]/g, '_'), add, remove };
}
