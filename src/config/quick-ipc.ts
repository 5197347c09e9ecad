/**
 * The control socket's path read from the config files alone, for the commands that only talk
 * to the daemon (`status`, `restart`, …): `tmpDir`, `ipcFile` and `extends` of each file in the
 * chain, nothing else, and no zod. A JSON file is parsed as it is; a YAML file's three keys can
 * come from a `KeyCache` keyed on the file's text, so that the yaml package loads only for a
 * text not seen before. This is the happy path only: whenever anything is unusual (no file, a
 * file that does not read or parse, one of the three keys of the wrong type, a broken or
 * circular `extends`, no tmpDir), it returns undefined and the caller does the full, validating
 * load (src/cli/ipc-path.ts), which reports the problem in its usual words.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_IPC_FILE, findConfigFile } from './discover';
import { parseConfigText, readConfigText } from './read-file';
import { realpathOr, resolveExtends } from './resolve-extends';
import type { Values } from './values';

/** What locates the control socket in one file: its keys that are set (non-empty strings). */
export interface LocatingKeys {
  tmpDir?: string;
  ipcFile?: string;
  extends?: string;
}

const LOCATING_KEYS = ['tmpDir', 'ipcFile', 'extends'] as const;

/** A memo of a YAML text's locating keys (a pure function of the text). */
export interface KeyCache {
  get(text: string): LocatingKeys | undefined;
  set(text: string, keys: LocatingKeys): void;
}

/** The locating keys of a parsed file, or undefined when one is not a non-empty string. */
function locatingKeys(data: Values): LocatingKeys | undefined {
  const out: LocatingKeys = {};
  for (const key of LOCATING_KEYS) {
    if (!Object.hasOwn(data, key)) continue;
    const value = data[key];
    if (typeof value !== 'string' || value === '') return undefined;
    out[key] = value;
  }
  return out;
}

function readKeys(file: string, cache: KeyCache | undefined): LocatingKeys | undefined {
  const read = readConfigText(file);
  if (!read.ok) return undefined;
  const yaml = path.extname(file).toLowerCase() !== '.json';
  if (yaml) {
    const hit = cache?.get(read.text);
    if (hit !== undefined) return hit;
  }
  const parsed = parseConfigText(file, read.text);
  if (!parsed.ok) return undefined;
  const keys = locatingKeys(parsed.data);
  if (keys !== undefined && yaml) cache?.set(read.text, keys);
  return keys;
}

/**
 * The absolute path of the control socket as the full load (`gather` in load.ts) would give it
 * for `--config` (or discovery in `cwd`), or undefined when the full load must decide.
 */
export function quickIpcPath(
  opts: { configPath?: string; cwd: string },
  cache?: KeyCache,
): string | undefined {
  let entry: string | undefined;
  if (opts.configPath !== undefined) {
    if (opts.configPath === '') return undefined;
    const given = path.resolve(opts.cwd, opts.configPath);
    entry = fs.statSync(given, { throwIfNoEntry: false })?.isDirectory() ? findConfigFile(given) : given;
  } else {
    entry = findConfigFile(opts.cwd);
  }
  if (entry === undefined) return undefined;

  // Entry first: a key set in a file wins over the files it extends.
  const merged: LocatingKeys = {};
  const seen = new Set<string>();
  let file = entry;
  for (;;) {
    const real = realpathOr(file);
    if (seen.has(real)) return undefined;
    seen.add(real);
    const keys = readKeys(file, cache);
    if (keys === undefined) return undefined;
    merged.tmpDir ??= keys.tmpDir;
    merged.ipcFile ??= keys.ipcFile;
    if (keys.extends === undefined) break;
    const next = resolveExtends(keys.extends, file);
    if (!next.ok) return undefined;
    file = next.file;
  }
  const ipc = merged.ipcFile ?? DEFAULT_IPC_FILE;
  if (path.isAbsolute(ipc)) return path.normalize(ipc);
  if (merged.tmpDir === undefined) return undefined;
  return path.resolve(path.dirname(entry), merged.tmpDir, ipc);
}
