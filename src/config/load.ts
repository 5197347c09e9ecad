/**
 * Loading the configuration (docs/config.md): gathering the files (discover.ts, read-file.ts,
 * extends.ts) and the command line into one set of values, validated layer by layer
 * (diagnostics.ts), then defaulted and path-resolved into a `Config`.
 *
 * Precedence is command line > config file(s) > defaults (configSchema). Every problem found is collected
 * before a single ConfigError is thrown, each as `<file or 'command line'>: <key>: <message>`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WORKER_ID_LENGTH } from '../worker-id';
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
  DISCARD_OUTPUT,
  type ListenTls,
  PATH_KEYS,
  type ResolvedKey,
  stickyAcceptProblem,
} from './schema';
import type { Values } from './values';

export { CONFIG_FILE_NAMES, findConfigFile, logicalCwd } from './discover';
export { ConfigError } from './errors';
export { deepMerge } from './extends';

/**
 * The command line's layer, as plain values by config key (already turned into the types a
 * file would hold, e.g. `workers: 3`), and how to name each key in problem lines (`--workers`).
 * `labels.config` names the option that gave the config path. Built by src/cli/overrides.ts.
 */
export interface CommandLine {
  values: Values;
  labels: Readonly<Record<string, string>>;
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

export interface GatherOptions {
  configPath?: string;
  commandLine?: CommandLine;
  cwd?: string;
  requireConfigFile?: boolean;
  /** What to suggest when no config file is found. */
  noFileHint: string;
}

/**
 * Reads the config files (the given one, or the one discovery finds, and what it extends) and
 * the command line into one set of values, validated layer by layer but not yet defaulted,
 * resolved or checked as a whole.
 */
export function gather(opts: GatherOptions): Gathered {
  const cwd = opts.cwd !== undefined ? path.resolve(opts.cwd) : logicalCwd();
  const commandLine = opts.commandLine ?? { values: {}, labels: {} };
  const label = (key: string) => commandLine.labels[key] ?? key;
  const problems: Problem[] = [];
  const invalidKeys = new Set<string>();
  let incomplete = false;

  let entry: string | undefined;
  if (opts.configPath !== undefined) {
    if (opts.configPath === '') {
      problems.push({
        source: COMMAND_LINE,
        key: label('config'),
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
      !opts.requireConfigFile &&
      commandLine.values.script !== undefined &&
      commandLine.values.tmpDir !== undefined;
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

  const cli = validateLayer(commandLine.values, COMMAND_LINE, label, problems, invalidKeys);
  if (cli.devServer === true && typeof values.devServer === 'number') {
    // `true` over a port (a bare --dev-server over a file's port) turns the server on, on that port.
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

/**
 * The workers' output files: `null` discards (DISCARD_OUTPUT), and stderr goes to the stdout
 * file when only stdout is given, as in the original nodesockd. Unset: the daemon's own.
 */
function outputFiles(
  values: Values,
  paths: Partial<Record<(typeof PATH_KEYS)[number], string>>,
): Pick<Config, 'stdout' | 'stderr'> {
  const file = (key: 'stdout' | 'stderr') => (values[key] === null ? DISCARD_OUTPUT : paths[key]);
  const stdout = file('stdout');
  const stderr = values.stderr === undefined ? stdout : file('stderr');
  return {
    ...(stdout !== undefined ? { stdout } : {}),
    ...(stderr !== undefined ? { stderr } : {}),
  };
}

const nameSocket = (tmpDir: string, socketFile: string) =>
  path.join(tmpDir, socketFile.replaceAll('{worker}', 'x'.repeat(WORKER_ID_LENGTH)));

export interface LoadOptions {
  /** The config file (or a directory to discover it in), relative to `cwd`; else discovery in `cwd`. */
  configPath?: string;
  commandLine?: CommandLine;
  /** The logical cwd; default logicalCwd(). */
  cwd?: string;
  /** Without it, a command line that gives both script and tmpDir needs no file (the v1 usage). */
  requireConfigFile?: boolean;
  /** What to suggest when no config file is found. */
  noFileHint?: string;
  /**
   * `script` must name an existing file (for the daemon, which runs it). Other commands, such
   * as `check` and `nginx`, can load a config whose script is not there (yet).
   */
  scriptMustExist?: boolean;
}

function resolveTls(baseDir: string, tls: ListenTls): ListenTls {
  return {
    key: path.resolve(baseDir, tls.key),
    cert: path.resolve(baseDir, tls.cert),
    ...(tls.ca !== undefined ? { ca: path.resolve(baseDir, tls.ca) } : {}),
  };
}

/** Why `script` cannot be run as a file, or undefined when it can. */
function scriptFileProblem(script: string): string | undefined {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(script, { throwIfNoEntry: false });
  } catch (err) {
    return `cannot look at the script ${script}: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (st === undefined) return `the script ${script} does not exist`;
  if (!st.isFile())
    return `the script ${script} is not a file${st.isDirectory() ? ' (it is a directory)' : ''}`;
  return undefined;
}

/**
 * Loads the effective configuration. Relative paths, in the files and on the command line,
 * resolve against the entry config file's directory, or against the logical cwd (opts.cwd)
 * when there is no config file. Throws ConfigError listing every problem found.
 */
export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const g = gather({ ...opts, noFileHint: opts.noFileHint ?? 'give the path of a config file' });
  const { problems, values, baseDir } = g;
  const where = g.entry ?? COMMAND_LINE;

  if (!g.incomplete) {
    for (const key of ['script', 'tmpDir'] as const) {
      if (values[key] === undefined && !g.invalidKeys.has(key)) {
        const option = opts.commandLine?.labels[key];
        problems.push({
          source: where,
          key,
          message: `${key} is required: set "${key}" in ${g.entry ? 'the config file' : 'a config file'}${option ? ` or pass ${option}` : ''}`,
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

  if (opts.scriptMustExist && script !== undefined) {
    const problem = scriptFileProblem(script);
    const source = g.origins.script ?? where;
    const key = source === COMMAND_LINE ? (opts.commandLine?.labels.script ?? 'script') : 'script';
    if (problem) problems.push({ source, key, message: problem });
  }

  const stickyProblem = stickyAcceptProblem(values.listen, values.sticky);
  if (stickyProblem)
    problems.push({ source: g.origins.sticky ?? where, key: 'sticky', message: stickyProblem });

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
    ...outputFiles(values, paths),
  };
  // Every value has been validated already; this applies the defaults of configSchema.
  const { stdout: _stdout, stderr: _stderr, ...rest } = values;
  const parsed = configSchema.safeParse({
    ...rest,
    ...(values.devServer === true ? { devServer: DEV_SERVER_DEFAULT_PORT } : {}),
    ...resolved,
  });
  if (!parsed.success) {
    // Unreachable: a value that fails here has failed its layer's validation first.
    throw new ConfigError(`${where}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  const config = parsed.data;
  // The TLS files of `listen` entries are paths like the others: relative to the entry file's directory.
  config.listen = config.listen.map((entry) =>
    entry.tls ? { ...entry, tls: resolveTls(baseDir, entry.tls) } : entry,
  );

  const origins: Record<string, string> = {};
  for (const key of Object.keys(config)) origins[key] = g.origins[key] ?? 'default';
  return { config, files: g.files, baseDir, origins };
}
