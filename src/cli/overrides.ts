/**
 * The command line's layer of the configuration: the daemon options that override config
 * keys, turned from what commander gives into the values a config file would hold, and the
 * option names that problem lines use for them.
 */
import { type CommandLine, type LoadOptions, logicalCwd } from '../config/load';

/** Raw values as commander gives them (strings mostly); every field optional. */
export interface CliOverrides {
  script?: string;
  listenVar?: string;
  tmpDir?: string;
  socketFile?: string;
  ipcFile?: string;
  workers?: string | number;
  env?: string[];
  outputPrefix?: string;
  /** true = on (the file's port if it gives one, else 8000); 'NNNN' or NNNN = that port; false = off. */
  devServer?: boolean | string | number;
  /** `--debug`: the same as `debug: true` in the config. */
  debug?: boolean;
  /** `--listen` (repeatable): the `listen` addresses, as written. */
  listen?: string[];
}

/** The option behind each key, and `config` for the config path. */
export const OPTION_NAMES: Readonly<Record<keyof CliOverrides | 'config', string>> = {
  config: '--config',
  script: '--script',
  listenVar: '--listen-var',
  tmpDir: '--tmp-dir',
  socketFile: '--socket-file',
  ipcFile: '--ipc-file',
  workers: '--workers',
  env: '--env',
  outputPrefix: '--output-prefix',
  devServer: '--dev-server',
  debug: '--debug',
  listen: '--listen',
};

/** What `nodesockd daemon` suggests when it finds no config file. */
export const DAEMON_NO_CONFIG_HINT = 'pass --config <file>, or --script <file> and --tmp-dir <dir>';

/** The overrides among the options commander parsed for `daemon`. */
export function overridesFromOptions(opts: Record<string, unknown>): CliOverrides {
  return {
    script: opts.script as string | undefined,
    listenVar: opts.listenVar as string | undefined,
    tmpDir: opts.tmpDir as string | undefined,
    socketFile: opts.socketFile as string | undefined,
    ipcFile: opts.ipcFile as string | undefined,
    workers: opts.workers as string | undefined,
    env: opts.env as string[] | undefined,
    outputPrefix: opts.outputPrefix as string | undefined,
    devServer: opts.devServer as boolean | string | undefined,
    debug: opts.debug === true ? true : undefined,
    listen: opts.listen as string[] | undefined,
  };
}

/** The command-line layer for loadConfig: values typed as in a file (validated there), and labels. */
export function cliLayer(o: CliOverrides): CommandLine {
  const values: Record<string, unknown> = {};
  for (const key of ['script', 'listenVar', 'tmpDir', 'socketFile', 'ipcFile', 'outputPrefix'] as const) {
    if (o[key] !== undefined) values[key] = o[key];
  }
  if (o.workers !== undefined) {
    const w = o.workers;
    // '3' -> 3; anything that is not a decimal number stays a string so validation reports it.
    values.workers = typeof w === 'string' && /^\s*[+-]?\d+(\.\d+)?\s*$/.test(w) ? Number(w) : w;
  }
  // commander gives [] for a repeatable option that was not used: treat it as absent.
  if (o.env !== undefined && o.env.length > 0) values.env = o.env;
  if (o.devServer !== undefined) {
    const d = o.devServer;
    if (typeof d === 'string' && /^\s*\d+\s*$/.test(d)) values.devServer = Number(d);
    else if (d === 'true') values.devServer = true;
    else if (d === 'false') values.devServer = false;
    else values.devServer = d;
  }
  // A bare port is a number, as in a file; anything else is validated as written.
  if (o.listen !== undefined && o.listen.length > 0)
    values.listen = o.listen.map((a) => (/^\s*\d+\s*$/.test(a) ? Number(a) : a));
  // A bare flag: present turns debug on, absent leaves the config's value.
  if (o.debug === true) values.debug = true;
  return { values, labels: OPTION_NAMES };
}

/**
 * loadConfig's options for a command given `--config <configPath>` (or none) and, for
 * `daemon`, the overrides; relative paths on the command line are taken from the logical cwd.
 */
export function loadOptions(configPath: string | undefined, overrides: CliOverrides = {}): LoadOptions {
  return {
    configPath,
    commandLine: cliLayer(overrides),
    cwd: logicalCwd(),
    noFileHint: DAEMON_NO_CONFIG_HINT,
  };
}
