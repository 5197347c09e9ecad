/**
 * `nodesockd status` without commander, the command an operator and a probe run most: its
 * plain forms (`-c`, `-i`/`--ipc-file`, `--ipc`, `--json`, `--debug`, before or after the word
 * `status`) are parsed with node:util's parseArgs, which costs nothing to load; commander and
 * the child_process module it requires cost more than the rest of the command on Node 20.
 *
 * Anything else — `--help`, `--watch`, an unknown or misspelt option, a config that needs the
 * full load to explain what is wrong with it — returns false, and the full CLI runs the
 * command with its own parsing and messages. So there is one set of words for every error but
 * the one this path has itself: the daemon's answer (or its absence), said as the full CLI says it.
 */
import { parseArgs } from 'node:util';
import { request } from '../ipc/client';
import { type ClientOptions, commandFirst, exitAfterOutput, print, quickTarget, reportError } from './common';
import { formatStatus } from './format';

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  'ipc-file': { type: 'string', short: 'i' },
  ipc: { type: 'string' },
  json: { type: 'boolean' },
  debug: { type: 'boolean' },
} as const;

/** The options of a plain `status` command line, or null when the full CLI must read it. */
export function quickStatusOptions(argv: string[]): ClientOptions | null {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({
      args: commandFirst(argv, ['status']).slice(2),
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    });
  } catch {
    return null;
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1 || positionals[0] !== 'status') return null;
  // An empty or option-like value is the full CLI's to judge (`-c --json`).
  for (const value of [values.config, values['ipc-file'], values.ipc]) {
    if (value !== undefined && (value === '' || value.startsWith('-'))) return null;
  }
  return {
    ...(values.config !== undefined ? { config: values.config } : {}),
    ...(values['ipc-file'] !== undefined ? { ipcFile: values['ipc-file'] } : {}),
    ...(values.ipc !== undefined ? { ipc: values.ipc } : {}),
    json: values.json === true,
    debug: values.debug === true,
  };
}

/**
 * Runs a plain `status`; false (nothing printed) when the full CLI must run it instead.
 * Resolves true once the command has printed its answer or the daemon's failure.
 */
export async function quickStatus(argv: string[]): Promise<boolean> {
  const opts = quickStatusOptions(argv);
  if (opts === null) return false;
  let target: string | undefined;
  try {
    target = quickTarget(opts);
  } catch {
    target = undefined;
  }
  // A config the quick reader cannot read, or options that disagree: the full CLI finds the
  // socket or says what is wrong, in its words.
  if (target === undefined) return false;
  try {
    const status = await request(target, 'status', undefined, { timeoutMs: 10_000 });
    print(opts, status, () => formatStatus(status));
  } catch (err) {
    reportError(err, opts.debug === true);
    exitAfterOutput(1);
  }
  return true;
}
