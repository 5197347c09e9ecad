/**
 * Validation of one layer (a file, or the command line) and the problem lines: one per
 * problem, `<file or 'command line'>: <key>: <message>`, with suggestions for misspelt keys.
 */
import type * as z from '../zod';
import { fileConfigSchema, OPTIONS_BLOCK_KEYS } from './schema';
import type { Values } from './values';

// Defined with ConfigError, which needs no zod (the quick paths of the CLI use both).
export { COMMAND_LINE } from './errors';

export interface Problem {
  /** A file path, 'command line', or '' for problems that belong to neither. */
  source: string;
  key?: string;
  message: string;
}

export const formatProblem = (p: Problem): string =>
  [p.source, p.key, p.message].filter((part) => part !== undefined && part !== '').join(': ');

const KNOWN_KEYS = Object.keys(fileConfigSchema.shape);
const SHAPE = fileConfigSchema.shape as Record<string, z.ZodMiniType>;

function formatIssuePath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const part of p) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function valueAt(root: unknown, p: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const part of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[part];
  }
  return cur;
}

function describeValue(v: unknown): string | undefined {
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') {
    const s = JSON.stringify(v);
    return s.length > 60 ? `${s.slice(0, 57)}..."` : s;
  }
  return undefined;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function suggestKey(key: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const exact = candidates.find((k) => norm(k) === norm(key));
  if (exact) return exact;
  let best: string | undefined;
  let bestDist = 3;
  for (const k of candidates) {
    const d = levenshtein(norm(k), norm(key));
    if (d < bestDist) {
      best = k;
      bestDist = d;
    }
  }
  return best && key.length > 3 ? best : undefined;
}

const OPTIONS_KEYS: readonly string[] = OPTIONS_BLOCK_KEYS;

/** The problem for an unknown key at `parent` (the top level, or `options`), with a hint. */
function unknownKey(parent: readonly PropertyKey[], key: string): { key: string; message: string } {
  const where = formatIssuePath([...parent, key]);
  if (parent.length === 0) {
    const hint = suggestKey(key, KNOWN_KEYS);
    return { key: where, message: `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}` };
  }
  if (KNOWN_KEYS.includes(key)) {
    return {
      key: where,
      message: `unknown key "${key}" in options (options holds only ${OPTIONS_KEYS.join(', ')}): write it at the top level`,
    };
  }
  const hint = suggestKey(key, OPTIONS_KEYS);
  return {
    key: where,
    message: `unknown key "${key}" in options${hint ? ` (did you mean "options.${hint}"?)` : ''}`,
  };
}

/**
 * Validates one layer (a file, or the command line) with fileConfigSchema. Problems go to
 * `problems`; the returned values are those that are valid on their own, so that the rest
 * of the configuration can still be checked and every problem reported in one go.
 */
export function validateLayer(
  raw: Values,
  source: string,
  label: (key: string, issuePath: string) => string,
  problems: Problem[],
  invalidKeys: Set<string>,
): Values {
  const result = fileConfigSchema.safeParse(raw);
  if (result.success) return result.data as Values;
  for (const issue of result.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push({ source, ...unknownKey(issue.path, key) });
      continue;
    }
    const top = issue.path.length > 0 ? String(issue.path[0]) : '';
    if (top) invalidKeys.add(top);
    // A bad `options.stdout` makes `stdout` invalid too (options-block.ts lifts it there).
    if (top === 'options' && issue.path.length > 1) invalidKeys.add(String(issue.path[1]));
    const got = describeValue(valueAt(raw, issue.path));
    problems.push({
      source,
      key: label(top || '(top level)', formatIssuePath(issue.path) || '(top level)'),
      message: got === undefined ? issue.message : `${issue.message} (got ${got})`,
    });
  }
  const salvaged: Values = {};
  for (const [key, v] of Object.entries(raw)) {
    if (!Object.hasOwn(SHAPE, key)) continue;
    const r = SHAPE[key]!.safeParse(v);
    if (r.success && r.data !== undefined) salvaged[key] = r.data;
  }
  return salvaged;
}
