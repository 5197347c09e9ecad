/** Finding the config file when no --config is given: the names looked for and the logical cwd. */
import fs from 'node:fs';
import path from 'node:path';

/** Names looked for, in this order, when no --config is given. */
export const CONFIG_FILE_NAMES = [
  'nodesockd.local.yaml',
  'nodesockd.local.yml',
  'nodesockd.local.json',
  '.nodesockd.local.yaml',
  '.nodesockd.local.yml',
  '.nodesockd.local.json',
  'nodesockd.yaml',
  'nodesockd.yml',
  'nodesockd.json',
  '.nodesockd.yaml',
  '.nodesockd.yml',
  '.nodesockd.json',
] as const;

/** The control socket's name in tmpDir when the config gives no ipcFile (schema.ts's default). */
export const DEFAULT_IPC_FILE = 'nodesockd.ipc';

/** CONFIG_FILE_NAMES, short, for error messages. */
export const LOOKED_FOR =
  'nodesockd.local.{yaml,yml,json}, .nodesockd.local.{yaml,yml,json}, nodesockd.{yaml,yml,json}, .nodesockd.{yaml,yml,json}';

/**
 * The current directory as the user sees it: `$PWD` when it names the same directory as
 * process.cwd() (so a symlinked release dir such as /srv/app/current keeps that path and a
 * restart picks up the new release), else process.cwd().
 */
export function logicalCwd(): string {
  const physical = process.cwd();
  const pwd = process.env.PWD;
  if (pwd && path.isAbsolute(pwd)) {
    try {
      if (fs.realpathSync(pwd) === physical) return path.normalize(pwd);
    } catch {
      // $PWD is stale or unreadable: fall back to the physical directory.
    }
  }
  return physical;
}

/** The first config file (CONFIG_FILE_NAMES order) that exists in `dir`, as `dir`-joined path. */
export function findConfigFile(dir: string): string | undefined {
  for (const name of CONFIG_FILE_NAMES) {
    const candidate = path.join(dir, name);
    const st = fs.statSync(candidate, { throwIfNoEntry: false });
    if (st && !st.isDirectory()) return candidate;
  }
  return undefined;
}
