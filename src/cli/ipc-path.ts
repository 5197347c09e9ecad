/** How a client command finds the daemon's control socket: `--ipc-file`, or the config. */
import path from 'node:path';
import { COMMAND_LINE, formatProblem } from '../config/diagnostics';
import { ConfigError, gather, logicalCwd } from '../config/load';
import { DEFAULTS } from '../config/schema';
import { OPTION_NAMES } from './overrides';

/**
 * `--ipc-file` wins (resolved against the cwd); otherwise the config (--config or discovered)
 * gives ipcFile, resolved against tmpDir. Only problems that affect that path are fatal here:
 * a config file edited into an invalid state elsewhere must not stop `status` or `terminate`
 * from reaching a daemon that is still running with its old, valid configuration.
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
    commandLine: { values: {}, labels: { config: OPTION_NAMES.config } },
    cwd: opts.cwd,
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
