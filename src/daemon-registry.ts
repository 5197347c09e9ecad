import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isAlive, processStartTicks } from './daemon/proc';

/** What a running daemon writes about itself for `nodesockd ls`. */
export interface RegistryEntry {
  pid: number;
  /** The process start time in clock ticks since boot: a reused pid is not this daemon. */
  startTicks: string | null;
  name: string;
  version: string;
  ipcFile: string;
  /** The config files it read (empty: command line only), and its working directory. */
  configFiles: string[];
  cwd: string;
  startedAt: number;
}

/** `dir`, made mode 0700 when missing; it must be a real directory of this user that only it can enter. */
function privateDir(dir: string, uid: number): string {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0)
    throw new Error(
      `the daemon registry ${dir} is not a directory of this user that only it can enter; remove it`,
    );
  return dir;
}

/**
 * This user's registry of daemons: `daemons` in `$XDG_RUNTIME_DIR/nodesockd` (emptied at logout
 * and boot), else in `<tmpdir>/nodesockd-<uid>` (the CLI's cache directory, cli/cache.ts). Both
 * levels must be directories of this user that nobody else can enter, or it is refused.
 */
export function registryDir(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  const uid = process.getuid?.() ?? 0;
  const base =
    runtime && path.isAbsolute(runtime)
      ? path.join(runtime, 'nodesockd')
      : path.join(os.tmpdir(), `nodesockd-${uid}`);
  return privateDir(path.join(privateDir(base, uid), 'daemons'), uid);
}

function entryFile(dir: string, pid: number): string {
  return path.join(dir, `${pid}.json`);
}

function isEntry(value: unknown): value is RegistryEntry {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Partial<RegistryEntry>;
  return (
    Number.isInteger(e.pid) &&
    typeof e.name === 'string' &&
    typeof e.ipcFile === 'string' &&
    Array.isArray(e.configFiles) &&
    typeof e.startedAt === 'number'
  );
}

/** The entry's daemon still runs: its pid is alive and started when the entry says. */
function isLive(entry: RegistryEntry): boolean {
  if (!isAlive(entry.pid)) return false;
  return entry.startTicks === null || processStartTicks(entry.pid) === entry.startTicks;
}

/**
 * The daemons of this user that run now, oldest first. The entry of one that is gone (a
 * SIGKILL, a crash, a reused pid) is removed; a file that is not an entry is left alone.
 */
export function listDaemons(dir = registryDir()): RegistryEntry[] {
  const entries: RegistryEntry[] = [];
  for (const name of fs.readdirSync(dir)) {
    if (!/^\d+\.json$/.test(name)) continue;
    const file = path.join(dir, name);
    let entry: unknown;
    try {
      entry = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      continue;
    }
    if (!isEntry(entry)) continue;
    if (isLive(entry)) entries.push(entry);
    else fs.rmSync(file, { force: true });
  }
  return entries.sort((a, b) => a.startedAt - b.startedAt);
}

/**
 * Adds this daemon to the registry (written whole: a temp file renamed) and returns what removes
 * it again, at the daemon's exit. Stale entries are cleaned on the way.
 */
export function registerDaemon(entry: Omit<RegistryEntry, 'pid' | 'startTicks'>): () => void {
  const dir = registryDir();
  listDaemons(dir);
  const file = entryFile(dir, process.pid);
  const temp = path.join(dir, `.${process.pid}.json.tmp`);
  const full: RegistryEntry = { pid: process.pid, startTicks: processStartTicks(process.pid), ...entry };
  fs.writeFileSync(temp, `${JSON.stringify(full)}\n`, { mode: 0o600 });
  fs.renameSync(temp, file);
  return () => fs.rmSync(file, { force: true });
}
