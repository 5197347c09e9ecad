/**
 * The original nodesockd v2 layout: an `options:` block holding `stdout`, `stderr`, the
 * timeouts, `maxStartAttempts` and `symlinks`. Each file's block is lifted into that file's
 * top-level keys, so it merges with `extends` and overrides like any key; a key given both
 * ways in one file is an error that names both places.
 */
import type { Problem } from './diagnostics';
import { isPlainObject, type Values } from './values';

/**
 * Moves the validated `values.options` entries up to `values`. `raw` is the file as read, so
 * that a key given both ways is found even when one of the two is invalid.
 */
export function liftOptionsBlock(raw: Values, values: Values, source: string, problems: Problem[]): void {
  const block = values.options;
  delete values.options;
  const written = isPlainObject(raw.options) ? raw.options : {};
  for (const key of Object.keys(written)) {
    if (Object.hasOwn(raw, key)) {
      problems.push({
        source,
        key: `options.${key}`,
        message: `${key} is given twice, as "${key}" at the top level and as "options.${key}": keep one of them`,
      });
    }
  }
  if (!isPlainObject(block)) return;
  for (const [key, value] of Object.entries(block)) {
    if (!Object.hasOwn(raw, key) && value !== undefined) values[key] = value;
  }
}
