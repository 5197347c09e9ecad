/** `extends`: finding the base file (path or package path), reading the chain, merging it. */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { type Problem, validateLayer } from './diagnostics';
import { liftOptionsBlock } from './options-block';
import { readConfigFile } from './read-file';
import { isPlainObject, type Values } from './values';

type ExtendsResult = { ok: true; file: string } | { ok: false; message: string };

/**
 * `./x`, `../x` and `/x` resolve against the directory of the file that contains `extends`.
 * Anything else is tried as a package path first (`@company/config/base.yaml`, resolved
 * from that file's location), then as a path relative to that file's directory.
 */
function resolveExtends(spec: string, fromFile: string): ExtendsResult {
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

function realpathOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

export interface Layer {
  file: string;
  values: Values;
}

/** Reads `entry` and everything it extends. Returns the layers entry-first. */
export function readChain(
  entry: string,
  problems: Problem[],
  invalidKeys: Set<string>,
): { layers: Layer[]; complete: boolean } {
  const layers: Layer[] = [];
  const seen: string[] = [];
  const chain: string[] = [];
  let file = entry;
  for (;;) {
    const real = realpathOr(file);
    if (seen.includes(real)) {
      problems.push({
        source: chain[chain.length - 1]!,
        key: 'extends',
        message: `circular extends: ${[...chain, file].join(' -> ')}`,
      });
      return { layers, complete: false };
    }
    seen.push(real);
    chain.push(file);
    const read = readConfigFile(file);
    if (!read.ok) {
      problems.push({ source: file, message: read.message });
      return { layers, complete: false };
    }
    const values = validateLayer(read.data, file, (_key, p) => p, problems, invalidKeys);
    liftOptionsBlock(read.data, values, file, problems);
    const ext = values.extends;
    delete values.extends;
    layers.push({ file, values });
    if (invalidKeys.has('extends')) return { layers, complete: false };
    if (typeof ext !== 'string') return { layers, complete: true };
    const next = resolveExtends(ext, file);
    if (!next.ok) {
      problems.push({ source: file, key: 'extends', message: next.message });
      return { layers, complete: false };
    }
    file = next.file;
  }
}

/** Plain objects merge deeply; arrays and scalars of `over` replace those of `base`. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out: Values = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = Object.hasOwn(out, k) ? deepMerge(out[k], v) : v;
  }
  return out;
}
