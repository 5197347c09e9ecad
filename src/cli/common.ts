/**
 * What every client command shares, and nothing that loads a package: finding the control
 * socket from the options, printing a reply, the one-line error, the exit, and the v2 order of
 * global options. Used by the full CLI (main.ts, with commander) and by the quick `status`
 * (quick-status.ts, without it).
 */
import path from 'node:path';
import { logicalCwd } from '../config/discover';
import { COMMAND_LINE, ConfigError } from '../config/errors';
import { quickIpcPath } from '../config/quick-ipc';
import { escapeControlChars } from '../ipc/framing';
import { errorMessage } from '../log';
import { cacheDir, yamlKeyCache } from './cache';

export interface ClientOptions {
  config?: string;
  ipcFile?: string;
  /** `--ipc <path>`, the original v2's name for `--ipc-file`. */
  ipc?: string;
  json?: boolean;
  debug?: boolean;
}

/** `--ipc-file`/`--ipc` (one name, two spellings): the path given, if any. */
export function ipcFileOption(opts: ClientOptions): string | undefined {
  if (opts.ipc !== undefined && opts.ipcFile !== undefined && opts.ipc !== opts.ipcFile) {
    throw new Error(`--ipc ${opts.ipc} and --ipc-file ${opts.ipcFile} disagree: give one of them`);
  }
  return opts.ipcFile ?? opts.ipc;
}

/**
 * The `--ipc-file` rule, in one place for every client command: a path given is resolved
 * against the cwd (the daemon's own `-i` is relative to tmpDir instead: config/load.ts), an
 * empty one is an error; undefined when none was given (the config then says where).
 */
export function givenIpcPath(ipcFile: string | undefined, cwd: string): string | undefined {
  if (ipcFile === undefined) return undefined;
  if (ipcFile === '')
    throw new ConfigError(`${COMMAND_LINE}: --ipc-file: the IPC file path must not be empty`);
  return path.resolve(cwd, ipcFile);
}

/**
 * The control socket from `--ipc-file` or from the quick config reader (quick-ipc.ts), without
 * loading a package; undefined when only the full config load can find it (ipc-path.ts's
 * ipcPath). Throws what is wrong with the options.
 */
export function quickTarget(opts: ClientOptions): string | undefined {
  const cwd = logicalCwd();
  return (
    givenIpcPath(ipcFileOption(opts), cwd) ??
    quickIpcPath({ configPath: opts.config, cwd }, yamlKeyCache(cacheDir()))
  );
}

/**
 * Text for the operator's terminal, where part of it came from a worker or the daemon (stderr
 * lines, log lines, names, errors): every control character but the newline and the tab is
 * escaped as `\uXXXX`, so nothing printed can clear the screen, set the title or the clipboard,
 * or fake a line. Every print site of the CLI passes its text through here.
 */
export function terminalText(text: string): string {
  return text.replace(/[^\n\t]+/g, escapeControlChars);
}

/** One line of output on stdout, through {@link terminalText}. */
export function say(line: string): void {
  process.stdout.write(`${terminalText(line)}\n`);
}

/**
 * `nodesockd logs | head`: once the reader has gone, the command ends quietly (exit 0), as a
 * filter does, instead of with an EPIPE stack.
 */
export function quietOnClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    reportError(err, false);
    process.exit(1);
  });
}

/** A reply as JSON (`--json`) or for a person. */
export function print(opts: ClientOptions, value: unknown, human: () => string): void {
  // JSON escapes C0 controls in strings but not DEL and C1: escaped here, it stays the same JSON.
  say(opts.json ? JSON.stringify(value, null, 2) : human());
}

/** A failed command's message: one line (a config's problems one per line), the stack with --debug. */
export function reportError(err: unknown, debug: boolean): void {
  if (err instanceof ConfigError) {
    const [first, ...more] = err.problems;
    process.stderr.write(
      terminalText(
        more.length === 0
          ? `nodesockd: ${first}\n`
          : `nodesockd: ${err.problems.length} config problems:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`,
      ),
    );
  } else {
    process.stderr.write(terminalText(`nodesockd: ${errorMessage(err)}\n`));
  }
  if (debug && err instanceof Error && err.stack) process.stderr.write(terminalText(`${err.stack}\n`));
}

/**
 * Exits once what was written has left: writes to a pipe whose reader is slow (a full pipe
 * buffer) are queued, and `process.exit` would drop them, the one-line error included. Exits
 * even if a handle (a half-open control connection) would keep the process alive.
 */
export function exitAfterOutput(code: number): void {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

/** Options every command takes that the original v2 also accepted before the command word. */
const GLOBAL_WITH_VALUE = new Set(['-c', '--config', '-i', '--ipc-file', '--ipc']);
const GLOBAL_FLAGS = new Set(['--debug']);

/**
 * `nodesockd -i x status` as `nodesockd status -i x`: leading global options (config, control
 * socket, --debug) followed by a command word move behind it. Without a command word after
 * them, argv is unchanged, so `nodesockd -c file` still runs the default command, `daemon`.
 */
export function commandFirst(argv: string[], commands: readonly string[]): string[] {
  const [node = '', bin = '', ...args] = argv;
  const leading: string[] = [];
  let i = 0;
  while (i < args.length) {
    const arg = args[i]!;
    const name = arg.startsWith('--') ? arg.split('=', 1)[0]! : arg;
    if (GLOBAL_FLAGS.has(arg) || (GLOBAL_WITH_VALUE.has(name) && arg.includes('='))) {
      leading.push(arg);
      i += 1;
    } else if (GLOBAL_WITH_VALUE.has(arg) && i + 1 < args.length) {
      leading.push(arg, args[i + 1]!);
      i += 2;
    } else break;
  }
  const command = args[i];
  if (leading.length === 0 || command === undefined || !commands.includes(command)) return argv;
  return [node, bin, command, ...leading, ...args.slice(i + 1)];
}
