/**
 * `nodesockd status` and `health` without commander, the commands an operator and a probe run
 * most: their plain forms (`-c`, `-i`/`--ipc-file`, `--ipc`, `--json`, `--debug`, before or
 * after the word `status` or `health`) are parsed with node:util's parseArgs, which costs nothing to load; commander and
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
import { runHealth } from './health';

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  'ipc-file': { type: 'string', short: 'i' },
  ipc: { type: 'string' },
  json: { type: 'boolean' },
  debug: { type: 'boolean' },
} as const;

/** The commands this path runs: `status`, and `health`, which a container probe runs every few seconds. */
const QUICK_COMMANDS = ['status', 'health'] as const;
type QuickCommand = (typeof QUICK_COMMANDS)[number];

/** The command and options of a plain `status`/`health` line, or null when the full CLI must read it. */
export function quickStatusOptions(argv: string[]): (ClientOptions & { command: QuickCommand }) | null {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({
      args: commandFirst(argv, QUICK_COMMANDS).slice(2),
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    });
  } catch {
    return null;
  }
  const { values, positionals } = parsed;
  const command = QUICK_COMMANDS.find((c) => c === positionals[0]);
  if (positionals.length !== 1 || command === undefined) return null;
  // An empty or option-like value is the full CLI's to judge (`-c --json`).
  for (const value of [values.config, values['ipc-file'], values.ipc]) {
    if (value !== undefined && (value === '' || value.startsWith('-'))) return null;
  }
  return {
    command,
    ...(values.config !== undefined ? { config: values.config } : {}),
    ...(values['ipc-file'] !== undefined ? { ipcFile: values['ipc-file'] } : {}),
    ...(values.ipc !== undefined ? { ipc: values.ipc } : {}),
    json: values.json === true,
    debug: values.debug === true,
  };
}

/**
 * Runs a plain `status` or `health`; false (nothing printed) when the full CLI must run it instead.
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
  if (opts.command === 'health') {
    await runHealth(() => target, opts);
    return true;
  }
  try {
    const status = await request(target, 'status', undefined, { timeoutMs: 10_000 });
    print(opts, status, () => formatStatus(status));
  } catch (err) {
    reportError(err, opts.debug === true);
    exitAfterOutput(1);
  }
  return true;
}
