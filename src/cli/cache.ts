/**
 * What makes a CLI call fast and is safe to lose, kept in a private per-user directory,
 * `os.tmpdir()/nodesockd-<uid>` (mode 0700): Node's compile cache (Node ≥ 22.1), and the
 * control-socket keys of the YAML config texts seen (quick-ipc.ts), so that `status` does not
 * load the yaml package for a config it has read before. The directory is used only when it is
 * a real directory owned by this user that nobody else can write into; otherwise nothing is
 * cached. Nothing here may fail a command: every error means "no cache".
 */
import fs from 'node:fs';
import Module from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { KeyCache, LocatingKeys } from '../config/quick-ipc';

/** The cache directory in `base`, created when missing; undefined when it is not safe to use. */
export function cacheDir(base = os.tmpdir()): string | undefined {
  try {
    const uid = process.getuid?.();
    if (uid === undefined) return undefined;
    const dir = path.join(base, `nodesockd-${uid}`);
    let st = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (st === undefined) {
      fs.mkdirSync(dir, { mode: 0o700 });
      st = fs.lstatSync(dir);
    }
    return st.isDirectory() && st.uid === uid && (st.mode & 0o077) === 0 ? dir : undefined;
  } catch {
    return undefined;
  }
}

type EnableCompileCache = (directory?: string) => unknown;

/**
 * Turns on Node's compile cache (V8 code for the modules loaded after this call) where Node has
 * it (≥ 22.1). NODE_COMPILE_CACHE, when set, has already turned it on in a directory of the
 * user's choice; NODE_DISABLE_COMPILE_CACHE turns it off (Node reads both itself).
 */
export function enableCompileCache(): void {
  try {
    const enable = (Module as unknown as { enableCompileCache?: EnableCompileCache }).enableCompileCache;
    if (typeof enable !== 'function' || process.env.NODE_COMPILE_CACHE) return;
    const dir = cacheDir();
    if (dir !== undefined) enable(path.join(dir, 'compile'));
  } catch {
    // No compile cache: the command runs as it would without one.
  }
}

const KEYS_FILE = 'config-keys.json';
const MAX_ENTRIES = 64;

interface KeyEntry {
  /** textHash() of the config text. */
  h: string;
  keys: LocatingKeys;
}

/** 53-bit string hash (cyrb53); two seeds give the key ~106 bits. Not for secrets, for a memo. */
function cyrb53(text: string, seed: number): string {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}

const textHash = (text: string): string => `${text.length}.${cyrb53(text, 1)}.${cyrb53(text, 2)}`;

function isEntry(v: unknown): v is KeyEntry {
  if (typeof v !== 'object' || v === null) return false;
  const { h, keys } = v as { h?: unknown; keys?: unknown };
  if (typeof h !== 'string' || typeof keys !== 'object' || keys === null) return false;
  return Object.entries(keys).every(
    ([k, value]) => ['tmpDir', 'ipcFile', 'extends'].includes(k) && typeof value === 'string' && value !== '',
  );
}

/** The YAML key memo, in the cache directory; undefined when there is none. */
export function yamlKeyCache(dir: string | undefined): KeyCache | undefined {
  if (dir === undefined) return undefined;
  const file = path.join(dir, KEYS_FILE);
  let entries: KeyEntry[] | undefined;
  const load = (): KeyEntry[] => {
    if (entries !== undefined) return entries;
    try {
      const data: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
      entries = Array.isArray(data) ? data.filter(isEntry) : [];
    } catch {
      entries = [];
    }
    return entries;
  };
  return {
    get(text) {
      const h = textHash(text);
      return load().find((e) => e.h === h)?.keys;
    },
    set(text, keys) {
      const h = textHash(text);
      const next = [{ h, keys }, ...load().filter((e) => e.h !== h)].slice(0, MAX_ENTRIES);
      entries = next;
      // Written aside, then renamed: a reader sees the old list or the new one, never half.
      const tmp = `${file}.${process.pid}.tmp`;
      try {
        fs.writeFileSync(tmp, JSON.stringify(next), { mode: 0o600 });
        fs.renameSync(tmp, file);
      } catch {
        try {
          fs.rmSync(tmp, { force: true });
        } catch {
          // Left for the next writer of this pid to replace.
        }
      }
    },
  };
}
