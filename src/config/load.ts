/**
 * Loading the configuration (SPEC §3): gathering the files (discover.ts, read-file.ts,
 * extends.ts) and the command line into one set of values, validated layer by layer
 * (diagnostics.ts), then defaulted and path-resolved into a `Config`.
 *
 * Precedence is command line > config file(s) > defaults (configSchema). Every problem found is collected
 * before a single ConfigError is thrown, each as `<file or 'command line'>: <key>: <message>`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { COMMAND_LINE, formatProblem, type Problem, validateLayer } from './diagnostics';
import { findConfigFile, LOOKED_FOR, logicalCwd } from './discover';
import { ConfigError } from './errors';
import { deepMerge, readChain } from './extends';
import {
  type Config,
  configSchema,
  DEFAULT_ENV,
  DEFAULTS,
  DEV_SERVER_DEFAULT_PORT,
  PATH_KEYS,
  type ResolvedKey,
} from './schema';
import type { Values } from './values';

export { CONFIG_FILE_NAMES, findConfigFile, logicalCwd } from './discover';
export { ConfigError } from './errors';
export { deepMerge } from './extends';

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
}

export interface LoadedConfig {
  config: Config;
  /** Absolute paths of the files read: the entry file first, then the files it extends, in order. */
  files: string[];
  /** Directory relative paths were resolved against: the entry file's, else the (logical) cwd. */
  baseDir: string;
  /** Top-level key -> where its value came from: an absolute file path, 'command line' or 'default'. */
  origins: Record<string, string>;
}

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
/**
 * Length of a worker id, which replaces `{worker}` in a worker's unique socket name. Worker
 * ids are `w` and 8 hex digits (src/daemon/worker.ts).
 */
export const WORKER_ID_LENGTH = 9;

const OPTION_NAMES: Record<keyof CliOverrides, string> = {
  script: '--script',
  listenVar: '--listen-var',
  tmpDir: '--tmp-dir',
  socketFile: '--socket-file',
  ipcFile: '--ipc-file',
  workers: '--workers',
  env: '--env',
  outputPrefix: '--output-prefix',
  devServer: '--dev-server',
};

// ---------------------------------------------------------------------------------------
// Command line

function cliLayer(o: CliOverrides): Values {
  const raw: Values = {};
  for (const key of ['script', 'listenVar', 'tmpDir', 'socketFile', 'ipcFile', 'outputPrefix'] as const) {
    if (o[key] !== undefined) raw[key] = o[key];
  }
  if (o.workers !== undefined) {
    const w = o.workers;
    // '3' -> 3; anything that is not a decimal number stays a string so validation reports it.
    raw.workers = typeof w === 'string' && /^\s*[+-]?\d+(\.\d+)?\s*$/.test(w) ? Number(w) : w;
  }
  // commander gives [] for a repeatable option that was not used: treat it as absent.
  if (o.env !== undefined && o.env.length > 0) raw.env = o.env;
  if (o.devServer !== undefined) {
    const d = o.devServer;
    if (typeof d === 'string' && /^\s*\d+\s*$/.test(d)) raw.devServer = Number(d);
    else if (d === 'true') raw.devServer = true;
    else if (d === 'false') raw.devServer = false;
    else raw.devServer = d;
  }
  return raw;
}

// ---------------------------------------------------------------------------------------
// Gathering: files + command line, merged, not yet defaulted or resolved

interface Gathered {
  problems: Problem[];
  /** Loading stopped early (no file, unreadable file, broken extends): skip whole-config checks. */
  incomplete: boolean;
  /** Merged values from the files and the command line (no defaults, paths as written). */
  values: Values;
  origins: Record<string, string>;
  files: string[];
  entry?: string;
  baseDir: string;
  invalidKeys: Set<string>;
}

interface GatherOptions {
  configPath?: string;
  overrides?: CliOverrides;
  cwd?: string;
  requireConfigFile?: boolean;
  /** What to suggest when no config file is found. */
  noFileHint: string;
}

function gather(opts: GatherOptions): Gathered {
  const cwd = opts.cwd !== undefined ? path.resolve(opts.cwd) : logicalCwd();
  const overrides = opts.overrides ?? {};
  const problems: Problem[] = [];
  const invalidKeys = new Set<string>();
  let incomplete = false;

  let entry: string | undefined;
  if (opts.configPath !== undefined) {
    if (opts.configPath === '') {
      problems.push({
        source: COMMAND_LINE,
        key: '--config',
        message: 'the config file path must not be empty',
      });
      incomplete = true;
    } else {
      const given = path.resolve(cwd, opts.configPath);
      if (fs.statSync(given, { throwIfNoEntry: false })?.isDirectory()) {
        entry = findConfigFile(given);
        if (!entry) {
          problems.push({
            source: given,
            message: `is a directory and holds no config file (looked for ${LOOKED_FOR})`,
          });
          incomplete = true;
        }
      } else {
        entry = given;
      }
    }
  } else {
    entry = findConfigFile(cwd);
    const v1Usage =
      !opts.requireConfigFile && overrides.script !== undefined && overrides.tmpDir !== undefined;
    if (!entry && !v1Usage) {
      problems.push({
        source: '',
        message: `no config file found in ${cwd} (looked for ${LOOKED_FOR}); ${opts.noFileHint}`,
      });
      incomplete = true;
    }
  }

  const baseDir = entry ? path.dirname(entry) : cwd;
  const values: Values = {};
  const origins: Record<string, string> = {};
  const files: string[] = [];

  if (entry) {
    const { layers, complete } = readChain(entry, problems, invalidKeys);
    if (!complete) incomplete = true;
    // Base files are merged under the files that extend them.
    for (const layer of [...layers].reverse()) {
      for (const [k, v] of Object.entries(layer.values)) {
        values[k] = deepMerge(values[k], v);
        origins[k] = layer.file;
      }
    }
    files.push(...layers.map((l) => l.file));
  }

  const cliRaw = cliLayer(overrides);
  const cli = validateLayer(
    cliRaw,
    COMMAND_LINE,
    (key) => OPTION_NAMES[key as keyof CliOverrides] ?? `--${key}`,
    problems,
    invalidKeys,
  );
  if (cli.devServer === true && typeof values.devServer === 'number') {
    // A bare --dev-server turns the server on, on the file's port when it gives one.
    cli.devServer = values.devServer;
  }
  for (const [k, v] of Object.entries(cli)) {
    values[k] = v;
    origins[k] = COMMAND_LINE;
  }

  return { problems, incomplete, values, origins, files, entry, baseDir, invalidKeys };
}

/**
 * The env list for workers. The base set (DEFAULT_ENV: PATH, HOME, LANG, TZ, NODE_ENV, …) is
 * ALWAYS passed, also when the config gives its own `env`: the user's entries are added to it,
 * not substituted for it, because a worker without PATH or HOME breaks in surprising ways.
 * Entries are `NAME` (copied from the daemon's environment) or `NAME=value`. One entry per
 * name: the user's last entry for a name wins over earlier ones and over the base set.
 */
function effectiveEnv(user: string[] | undefined): string[] {
  const byName = new Map<string, string>();
  for (const entry of [...(user ?? []), ...DEFAULT_ENV]) {
    const name = entry.split('=', 1)[0]!;
    if (!byName.has(name)) byName.set(name, entry);
  }
  // Re-apply the user's entries so that the last one for a name wins (Map keeps first position).
  for (const entry of user ?? []) byName.set(entry.split('=', 1)[0]!, entry);
  return [...byName.values()];
}

const nameSocket = (tmpDir: string, socketFile: string) =>
  path.join(tmpDir, socketFile.replaceAll('{worker}', 'x'.repeat(WORKER_ID_LENGTH)));

/**
 * Loads the effective configuration. Relative paths, in the files and on the command line,
 * resolve against the entry config file's directory, or against the logical cwd (opts.cwd)
 * when there is no config file. Throws ConfigError listing every problem found.
 */
export function loadConfig(
  opts: { configPath?: string; overrides?: CliOverrides; cwd?: string; requireConfigFile?: boolean } = {},
): LoadedConfig {
  const g = gather({ ...opts, noFileHint: 'pass --config <file>, or --script <file> and --tmp-dir <dir>' });
  const { problems, values, baseDir } = g;
  const where = g.entry ?? COMMAND_LINE;

  if (!g.incomplete) {
    for (const key of ['script', 'tmpDir'] as const) {
      if (values[key] === undefined && !g.invalidKeys.has(key)) {
        const option = OPTION_NAMES[key];
        problems.push({
          source: where,
          key,
          message: `${key} is required: set "${key}" in ${g.entry ? 'the config file' : 'a config file'} or pass ${option}`,
        });
      }
    }
  }

  const paths: Partial<Record<(typeof PATH_KEYS)[number], string>> = {};
  for (const key of PATH_KEYS) {
    const v = values[key];
    if (typeof v === 'string' && !g.invalidKeys.has(key)) paths[key] = path.resolve(baseDir, v);
  }
  const { script, tmpDir } = paths;
  const socketFile = (values.socketFile as string | undefined) ?? DEFAULTS.socketFile;
  const ipcValue = (values.ipcFile as string | undefined) ?? DEFAULTS.ipcFile;
  const ipcFile = path.isAbsolute(ipcValue)
    ? path.normalize(ipcValue)
    : tmpDir !== undefined
      ? path.resolve(tmpDir, ipcValue)
      : undefined;

  if (tmpDir !== undefined && !g.invalidKeys.has('socketFile')) {
    const longest = nameSocket(tmpDir, socketFile);
    const bytes = Buffer.byteLength(longest);
    if (bytes > MAX_SOCKET_PATH_BYTES) {
      problems.push({
        source: g.origins.tmpDir ?? where,
        key: 'tmpDir',
        message:
          `worker socket paths would be ${bytes} bytes long with socketFile "${socketFile}" ` +
          `(such as ${longest}, with a ${WORKER_ID_LENGTH}-character worker id), over the ` +
          `${MAX_SOCKET_PATH_BYTES}-byte limit for UNIX socket paths: use a shorter tmpDir or socketFile`,
      });
    }
  }
  if (ipcFile !== undefined && !g.invalidKeys.has('ipcFile')) {
    const bytes = Buffer.byteLength(ipcFile);
    if (bytes > MAX_SOCKET_PATH_BYTES) {
      problems.push({
        source: g.origins.ipcFile ?? g.origins.tmpDir ?? where,
        key: 'ipcFile',
        message: `the IPC socket path ${ipcFile} is ${bytes} bytes long, over the ${MAX_SOCKET_PATH_BYTES}-byte limit for UNIX socket paths`,
      });
    }
  }

  if (problems.length > 0) throw new ConfigError(problems.map(formatProblem));
  if (script === undefined || tmpDir === undefined || ipcFile === undefined) {
    // Unreachable: a missing or invalid value has been reported above.
    throw new ConfigError(`${where}: the configuration is incomplete`);
  }

  const resolved: Pick<Config, ResolvedKey> = {
    script,
    cwd: paths.cwd ?? baseDir,
    tmpDir,
    ipcFile,
    env: effectiveEnv(values.env as string[] | undefined),
    ...(paths.stdout !== undefined ? { stdout: paths.stdout } : {}),
    ...(paths.stderr !== undefined ? { stderr: paths.stderr } : {}),
  };
  // Every value has been validated already; this applies the defaults of configSchema.
  const parsed = configSchema.safeParse({
    ...values,
    ...(values.devServer === true ? { devServer: DEV_SERVER_DEFAULT_PORT } : {}),
    ...resolved,
  });
  if (!parsed.success) {
    // Unreachable: a value that fails here has failed its layer's validation first.
    throw new ConfigError(`${where}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  const config = parsed.data;

  const origins: Record<string, string> = {};
  for (const key of Object.keys(config)) origins[key] = g.origins[key] ?? 'default';
  return { config, files: g.files, baseDir, origins };
}

/**
 * Where a client command finds the daemon's control socket. `--ipc-file` wins (resolved
 * against the cwd); otherwise the config (--config or discovered) gives ipcFile, resolved
 * against tmpDir. Only problems that affect that path are fatal here: a config file edited
 * into an invalid state elsewhere must not stop `status` or `terminate` from reaching a
 * daemon that is still running with its old, valid configuration.
 */
export function resolveIpcPath(opts: { configPath?: string; ipcFile?: string; cwd?: string } = {}): string {
  if (opts.ipcFile !== undefined) {
    if (opts.ipcFile === '') {
      throw new ConfigError(`${COMMAND_LINE}: --ipc-file: the IPC file path must not be empty`);
    }
    const cwd = opts.cwd !== undefined ? path.resolve(opts.cwd) : logicalCwd();
    return path.resolve(cwd, opts.ipcFile);
  }
  const g = gather({
    configPath: opts.configPath,
    cwd: opts.cwd,
    requireConfigFile: true,
    noFileHint: 'pass --config <file> or --ipc-file <path>',
  });
  const relevant = new Set(['tmpDir', 'ipcFile', 'extends', '--config']);
  const fatal = g.problems.filter((p) => p.key === undefined || relevant.has(p.key));
  if (fatal.length > 0) throw new ConfigError(fatal.map(formatProblem));
  const ipc = (g.values.ipcFile as string | undefined) ?? DEFAULTS.ipcFile;
  if (path.isAbsolute(ipc)) return path.normalize(ipc);
  if (typeof g.values.tmpDir !== 'string') {
    throw new ConfigError(
      formatProblem({
        source: g.entry ?? COMMAND_LINE,
        key: 'tmpDir',
        message:
          'tmpDir is required to find the IPC file: set "tmpDir" in the config file, or pass --ipc-file <path>',
      }),
    );
  }
  return path.resolve(g.baseDir, g.values.tmpDir, ipc);
}
