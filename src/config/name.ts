/**
 * The app's `name` is any text (the original nodesockd's example is "nodesockd example"). Config
 * keeps it as written; these give the forms that are safe where it is used.
 */

const FALLBACK = 'app';

/**
 * For a process title and one-line displays: control characters (newlines, tabs, escapes)
 * become spaces, runs of white space one space, trimmed.
 */
export function titleName(name: string): string {
  const clean = name
    .replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return clean === '' ? FALLBACK : clean;
}

/**
 * For a file name (a systemd unit, a log file) or an identifier: letters, digits, `.`, `_`
 * and `-` only, everything else replaced by `-` (runs of them by one), never starting with
 * `.` or `-` (no hidden file, no option), at most 64 characters.
 */
export function fileName(name: string): string {
  const clean = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 64)
    .replace(/-+$/, '');
  return clean === '' ? FALLBACK : clean;
}
