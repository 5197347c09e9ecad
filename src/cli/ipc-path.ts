/** How a client command finds the daemon's control socket: `--ipc-file`, or the config. */
import path from 'node:path';
import { logicalCwd } from '../config/discover';
import { COMMAND_LINE, ConfigError } from '../config/errors';
import { quickIpcPath } from '../config/quick-ipc';
import { cacheDir, yamlKeyCache } from './cache';
import { type ClientOptions, givenIpcPath, ipcFileOption } from './common';
import { lazy } from './lazy';

/** The control socket a client command talks to: `--ipc-file`/`--ipc`, or the config's. */
export function ipcPath(opts: ClientOptions): string {
  return resolveIpcPath({ configPath: opts.config, ipcFile: ipcFileOption(opts) });
}

/**
 * `--ipc-file` wins (resolved against the cwd); otherwise the config (--config or discovered)
 * gives ipcFile, resolved against tmpDir. Only problems that affect that path are fatal here:
 * a config file edited into an invalid state elsewhere must not stop `status` or `terminate`
 * from reaching a daemon that is still running with its old, valid configuration.
 *
 * The quick reader (quick-ipc.ts: no zod, YAML keys memoized) answers when the files are in
 * order; otherwise the full load below finds the same path or the problem to report.
 */
export function resolveIpcPath(opts: { configPath?: string; ipcFile?: string; cwd?: string } = {}): string {
  const cwd = opts.cwd !== undefined ? path.resolve(opts.cwd) : logicalCwd();
  const given = givenIpcPath(opts.ipcFile, cwd);
  if (given !== undefined) return given;
  return (
    quickIpcPath({ configPath: opts.configPath, cwd }, yamlKeyCache(cacheDir())) ??
    fullIpcPath(opts.configPath, cwd)
  );
}

/** resolveIpcPath from the validated config files (zod, yaml): the reference for the quick reader. */
export function fullIpcPath(configPath: string | undefined, cwd: string): string {
  const { gather } = lazy.config();
  const { formatProblem } = lazy.diagnostics();
  const { OPTION_NAMES } = lazy.overrides();
  const { DEFAULTS } = lazy.schema();
  const g = gather({
    configPath,
    commandLine: { values: {}, labels: { config: OPTION_NAMES.config } },
    cwd,
    requireConfigFile: true,
    noFileHint: 'pass --config <file> or --ipc-file <path>',
  });
  const relevant = new Set(['tmpDir', 'ipcFile', 'extends', OPTION_NAMES.config]);
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
