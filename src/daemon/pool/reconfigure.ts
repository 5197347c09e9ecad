import { diffConfig } from '../../config/key-effect';
import type { Config } from '../../config/schema';
import type { UpstreamChange } from '../../ipc/protocol';
import type { Publisher } from '../publisher';
import type { Scaling } from './scaling';

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

/** What applying a reloaded config needs of the pool (the Supervisor, in its command queue). */
export interface Reconfigurable {
  config(): Config;
  setConfig(config: Config): void;
  running(): boolean;
  scaling: Scaling;
  /** A new socket naming, used from the next generation on. */
  renameSockets(next: Publisher): void;
  /** The new socket naming now (nothing runs). */
  applyNaming(): void;
  /** A zero-downtime restart of the workers with the current config. */
  restart(): Promise<unknown>;
}

/**
 * Applies a reloaded config with the smallest change: scaling, a rename, or a zero-downtime
 * restart when what the workers run changed. Returns what it did, and what nginx's upstream
 * must now list; throws for a key a running daemon cannot change (nothing is applied then).
 */
export async function applyReconfigure(
  pool: Reconfigurable,
  next: Config,
  nextPublisher: Publisher,
): Promise<{ actions: string[]; nginx?: UpstreamChange }> {
  const prev = pool.config();
  const before = pool.scaling.publishedPaths();
  const plan = planReconfigure(prev, next);
  if (plan.fixed.length > 0) {
    throw new Error(
      `cannot change ${plan.fixed.join(', ')} while the daemon runs; restart the daemon to apply`,
    );
  }
  const actions: string[] = [];
  pool.setConfig({ ...next, workers: prev.workers, standby: prev.standby });
  if (plan.socketNaming) pool.renameSockets(nextPublisher);
  if (plan.rename) actions.push(`renamed ${plan.rename.from} -> ${plan.rename.to}`);
  if (plan.tune.length > 0) actions.push(`updated ${plan.tune.join(', ')}`);
  if (plan.workers) {
    await pool.scaling.setSlots(plan.workers.to);
    actions.push(`workers ${plan.workers.from} -> ${plan.workers.to}`);
  }
  if (plan.standby) {
    pool.scaling.setStandby(plan.standby.to);
    actions.push(`standby ${plan.standby.from} -> ${plan.standby.to}`);
  }
  if (plan.restart.length > 0) {
    if (pool.running()) {
      try {
        await pool.restart();
      } catch (err) {
        // The workers still run the previous config; crash replacements must too.
        const now = pool.config();
        pool.setConfig({ ...prev, workers: now.workers, standby: now.standby });
        throw err;
      }
      actions.push(`restarted the workers (changed: ${plan.restart.join(', ')})`);
    } else {
      pool.applyNaming();
      actions.push(`changed ${plan.restart.join(', ')} (applies at the next start)`);
    }
  }
  return { actions: actions.length > 0 ? actions : ['no change'], ...pool.scaling.upstreamChange(before) };
}
