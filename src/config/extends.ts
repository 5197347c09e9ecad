/** `extends`: finding the base file (path or package path), reading the chain, merging it. */
import { type Problem, validateLayer } from './diagnostics';
import { liftOptionsBlock } from './options-block';
import { readConfigFile } from './read-file';
import { realpathOr, resolveExtends } from './resolve-extends';
import { isPlainObject, type Values } from './values';

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
