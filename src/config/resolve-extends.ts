/** Where an `extends` value points: a path, or a file in an installed package (no zod, no yaml). */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export type ExtendsResult = { ok: true; file: string } | { ok: false; message: string };

/**
 * `./x`, `../x` and `/x` resolve against the directory of the file that contains `extends`.
 * Anything else is tried as a package path first (`@company/config/base.yaml`, resolved
 * from that file's location), then as a path relative to that file's directory.
 */
export function resolveExtends(spec: string, fromFile: string): ExtendsResult {
  const dir = path.dirname(fromFile);
  const exists = (p: string) => fs.statSync(p, { throwIfNoEntry: false }) !== undefined;
  if (spec.startsWith('.') || spec.startsWith('/')) {
    const file = path.resolve(dir, spec);
    return exists(file) ? { ok: true, file } : { ok: false, message: `file not found: ${file}` };
  }
  try {
    const resolved = createRequire(fromFile).resolve(spec);
    if (path.isAbsolute(resolved)) return { ok: true, file: resolved };
  } catch {
    // Not a package path: try it as a relative path below.
  }
  const file = path.resolve(dir, spec);
  if (exists(file)) return { ok: true, file };
  return {
    ok: false,
    message: `cannot find "${spec}": it is neither a file in an installed package nor an existing file (${file})`,
  };
}

export function realpathOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}
