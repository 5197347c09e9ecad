import fs from 'node:fs';
import path from 'node:path';
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { logicalCwd } from '../config/discover';
import type { Config } from '../config/schema';
import { waitForExit } from '../daemon/proc';
import { type RequestArgs, request } from '../ipc/client';
import { APP_REQUEST_TIMEOUT_DEFAULT_MS, APP_REQUEST_TIMEOUT_MAX_MS } from '../ipc/limits';
import type { CommandName, ConfigReply, DaemonStatus } from '../ipc/protocol';
import { errorMessage } from '../log';
import { VERSION } from '../version';
import {
  type ClientOptions,
  commandFirst,
  exitAfterOutput,
  print,
  quietOnClosedStdout,
  reportError,
  say,
  terminalText,
} from './common';
import { completionScript, SHELLS, type Shell } from './completion';
import { formatStatus, resultLines, sentLines } from './format';
import { runHealth } from './health';
import { ipcPath } from './ipc-path';
import { lazy } from './lazy';
import { showLogs } from './logs';
import { runLs } from './ls';
import { showRecentLogs } from './recent-logs';
import { type ProgressSource, watch, withProgress } from './watch';

const collect = (value: string, previous?: string[]) => [...(previous ?? []), value];

function positiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError('must be a whole number of at least 1');
  return Number(value);
}

function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a whole number of 0 or more');
  return Number(value);
}

/** A whole number from `min` to `max` (the config's bounds of `workers`, `standby`). */
function intIn(min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max)
      throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    return Number(value);
  };
}

/** How long `terminate` waits beyond the daemon's own drain deadline before it gives up. */
const TERMINATE_MARGIN_MS = 30_000;

function requestTimeout(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > APP_REQUEST_TIMEOUT_MAX_MS)
    throw new InvalidArgumentError(
      `must be a whole number of milliseconds from 1 to ${APP_REQUEST_TIMEOUT_MAX_MS}`,
    );
  return n;
}

/** The optional `[json]` argument of send-msg/send-req: any JSON value, or undefined when absent. */
function jsonArgument(value: string | undefined): unknown {
  if (value === undefined) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(value) as unknown;
  } catch (err) {
    throw new Error(
      `the json argument is not valid JSON (${errorMessage(err)}); a string must be quoted, e.g. '"text"'`,
    );
  }
  try {
    JSON.stringify(data); // What sending it does: fails on data nested some thousands deep.
  } catch (err) {
    throw new Error(`the json argument cannot be sent (${errorMessage(err)}): it is nested too deeply`);
  }
  return data;
}

const SELECTOR_OPTION_HELP =
  'which workers: all (the serving ones, default), standby, every, slots like 0,2-3, id:<worker id>, pid:<pid>';

function reportFailures(failed: number, total: number): void {
  if (failed === 0) return;
  process.stderr.write(`nodesockd: ${failed} of ${total} worker(s) failed\n`);
  process.exitCode = 1;
}

function addClientOptions(cmd: Command): Command {
  return cmd
    .option(
      '-c, --config <file>',
      'config file (default: nodesockd.{yaml,yml,json} in the current directory)',
    )
    .option('-i, --ipc-file <path>', "the daemon's control socket (instead of reading the config)")
    .option('--ipc <path>', 'the same as --ipc-file (the original nodesockd v2 spelling)')
    .option('--debug', 'print stack traces of errors');
}

/** What the progress line of start, restart and set-workers reads (on a terminal only). */
function progressSource(target: string): ProgressSource {
  return {
    status: () => request(target, 'status', undefined, { timeoutMs: 5_000 }),
    onlineTimeoutMs: async () => {
      const { config } = await request(target, 'config', undefined, { timeoutMs: 5_000 });
      return (config as Partial<Config>).onlineTimeout ?? null;
    },
  };
}

/** A command that waits for workers to come online: on a terminal, its progress meanwhile. */
function requestWithProgress<K extends CommandName>(opts: ClientOptions, type: K, ...args: RequestArgs<K>) {
  const target = ipcPath(opts);
  return withProgress(type, () => request(target, type, ...args), progressSource(target));
}

export function buildProgram(): Command {
  const program = new Command('nodesockd')
    .description(
      'Run a Node.js app as a pool of workers behind nginx over UNIX sockets, with zero-downtime deploys.',
    )
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .enablePositionalOptions()
    // Client commands only: the daemon's own stdout has its EPIPE-safe sink (src/stdio.ts).
    .hook('preAction', (_program, command) => {
      if (command.name() !== 'daemon') quietOnClosedStdout();
    });

  program
    .command('daemon', { isDefault: true })
    .description('run the daemon in the foreground (also what a bare `nodesockd -c file` does)')
    .option('-c, --config <file>', 'config file; relative paths then resolve against its directory')
    .option('-s, --script <file>', "the app's main script")
    .option(
      '-l, --listen-var <name>',
      'environment variable that carries the socket path (default LISTEN_ON)',
    )
    .option('-t, --tmp-dir <dir>', 'directory for the sockets')
    .option(
      '-o, --socket-file <pattern>',
      'socket file name pattern with {worker} (default app.{worker}.sock)',
    )
    .option('-i, --ipc-file <path>', 'control socket, relative to tmpDir (default nodesockd.ipc)')
    .option('-w, --workers <n>', 'number of workers (default 1)')
    .option(
      '-e, --env <name>',
      'environment variable to pass to workers, NAME or NAME=value (repeatable)',
      collect,
    )
    .option('-p, --output-prefix <format>', 'prefix of worker output lines: {date} {worker} {instance} {id}')
    .addOption(
      new Option('-d, --dev-server [port]', 'serve HTTP on 127.0.0.1 (default port 8000) over the workers'),
    )
    .option('--no-dev-server', 'disable the dev server even if the config enables it')
    .option(
      '--listen <address>',
      'accept TCP here and hand connections to the workers: 8080, host:port, [v6]:port (repeatable)',
      collect,
    )
    .option('--debug', 'verbose daemon log and stack traces')
    .addOption(
      new Option(
        '--check-config',
        'load the config as the daemon would, print what is wrong, and exit',
      ).hideHelp(),
    )
    // As the default command, daemon receives any word that is not a command (`nodesockd statsu`);
    // let it through so it is reported as an unknown command, not as an argument of `daemon`.
    .allowExcessArguments()
    .action(async (opts: Record<string, unknown>, cmd: Command) => {
      const stray = cmd.args[0];
      if (stray !== undefined) {
        const commands = program.commands.map((c) => c.name());
        program.error(
          commands.includes(stray)
            ? `error: the command must come first: nodesockd ${stray} [options]`
            : `error: unknown command '${stray}' (commands: ${commands.join(', ')})`,
        );
      }
      const overrides = lazy.overrides().overridesFromOptions(opts);
      const load = () =>
        lazy.config().loadConfig({
          ...lazy.overrides().loadOptions(opts.config as string | undefined, overrides),
          scriptMustExist: true,
        });
      const loaded = load();
      if (opts.checkConfig === true) {
        lazy.daemon().checkStartable(loaded.config);
        console.log(`config OK: ${loaded.files.join(', ') || 'defaults and command line'}`);
        return;
      }
      // --debug is part of the config (`debug`), so `debug: true` in a file does the same.
      process.exit(await lazy.daemon().runDaemon(loaded, { debug: loaded.config.debug, reload: load }));
    });

  addClientOptions(program.command('start'))
    .description('start the workers (after stop)')
    .option('-s, --suspended', 'start them suspended: they accept requests but hold them until `resume`')
    .option('-m, --max-attempts <n>', 'attempts per worker (default maxStartAttempts)', positiveInt)
    .action(async (opts: ClientOptions & { suspended?: boolean; maxAttempts?: number }) => {
      const reply = await requestWithProgress(opts, 'start', {
        suspended: opts.suspended === true,
        maxAttempts: opts.maxAttempts,
      });
      say(reply.alreadyRunning ? 'workers are already running' : `${reply.workers} worker(s) online`);
    });

  addClientOptions(program.command('stop'))
    .description('gracefully stop all workers; the daemon keeps running')
    .action(async (opts: ClientOptions) => {
      const reply = await request(ipcPath(opts), 'stop');
      say(`stopped ${reply.stopped} worker(s)`);
    });

  addClientOptions(program.command('restart'))
    .description(
      'replace every worker with zero downtime; fails (and changes nothing) if the new ones do not come online',
    )
    .option('-s, --suspended', 'new workers hold requests until `resume` (for database migrations)')
    .option('-m, --max-attempts <n>', 'attempts per worker (default maxStartAttempts)', positiveInt)
    .option('-u, --upgrade', 'first hand the workers to a daemon of this (newer) nodesockd version')
    .option('--json', 'machine-readable output')
    .action(
      async (
        opts: ClientOptions & {
          suspended?: boolean;
          maxAttempts?: number;
          upgrade?: boolean;
          json?: boolean;
        },
      ) => {
        if (opts.upgrade && !(await lazy.upgrade().upgradeDaemon(ipcPath(opts), say))) {
          // As the original does: with nothing to upgrade, re-read the config, then restart.
          const reloaded = await request(ipcPath(opts), 'reload');
          say(`reloaded: ${reloaded.actions.join('; ')}`);
        }
        const reply = await requestWithProgress(opts, 'restart', {
          suspended: opts.suspended === true,
          maxAttempts: opts.maxAttempts,
        });
        if (opts.json) {
          say(JSON.stringify(reply));
          return;
        }
        const list = reply.workers.map((w) => `${w.slot}:${w.id}(${w.pid})`).join(' ');
        say(
          `generation ${reply.generation} serving: ${list}${opts.suspended ? ' (suspended: run `nodesockd resume`)' : ''}`,
        );
        const c = reply.connections;
        if (c && c.moved + c.busy + c.drained > 0) {
          say(
            `connections: ${c.moved} moved to the new workers, ${c.busy} busy (move as their responses end), ${c.drained} close the old way`,
          );
        }
      },
    );

  addClientOptions(program.command('resume'))
    .description('release suspended workers')
    .action(async (opts: ClientOptions) => {
      const reply = await request(ipcPath(opts), 'resume');
      say(`resumed ${reply.resumed} worker(s)`);
    });

  addClientOptions(program.command('reload'))
    .description(
      're-read the config and apply the smallest change (scale, rename or a zero-downtime restart)',
    )
    .action(async (opts: ClientOptions) => {
      const reply = await requestWithProgress(opts, 'reload');
      say(`reloaded: ${reply.actions.join('; ')}`);
      if (reply.nginx) say(lazy.generate().upstreamChangeText(reply.nginx));
    });

  addClientOptions(program.command('set-workers'))
    .description('change the number of workers until the next reload or daemon restart')
    .argument('<count>', 'number of workers (1-256)', intIn(1, 256))
    .action(async (count: number, opts: ClientOptions) => {
      const reply = await requestWithProgress(opts, 'set-workers', { count });
      say(`workers: ${reply.workers}`);
      if (reply.nginx) say(lazy.generate().upstreamChangeText(reply.nginx));
    });

  addClientOptions(program.command('set-standby'))
    .description('change the number of standby workers until the next reload or daemon restart')
    .argument('<count>', 'number of standby workers (0-64)', intIn(0, 64))
    .action(async (count: number, opts: ClientOptions) => {
      const reply = await request(ipcPath(opts), 'set-standby', { count });
      say(`standby: ${reply.standby}`);
    });

  addClientOptions(program.command('terminate'))
    .description('drain all workers and stop the daemon')
    .action(async (opts: ClientOptions) => {
      const { pid, supervised, drainMs } = await request(ipcPath(opts), 'terminate');
      // A daemon older than drainMs: its workers' default deadlines.
      const deadlineMs = (drainMs ?? 95_000) + TERMINATE_MARGIN_MS;
      if (!(await waitForExit(pid, deadlineMs))) {
        throw new Error(
          `daemon ${pid} still runs ${Math.round(deadlineMs / 1000)} s after terminate; see \`nodesockd logs\`, or stop it with kill -KILL ${pid}`,
        );
      }
      say(`daemon ${pid} stopped`);
      if (supervised) {
        console.log(
          'note: systemd will start it again (Restart=always); use `systemctl stop` to stop the app',
        );
      }
    });

  addClientOptions(program.command('send-msg'))
    .description("send an app message to workers (the library emits it as nodesockd's 'message' event)")
    .argument('<name>', 'message name')
    .argument('[json]', 'data: any JSON value (quote strings: \'"text"\')')
    .option('-w, --workers <selector>', SELECTOR_OPTION_HELP)
    .option('--json', 'machine-readable output')
    .action(async (name: string, json: string | undefined, opts: ClientOptions & { workers?: string }) => {
      const data = jsonArgument(json);
      const reply = await request(
        ipcPath(opts),
        'send-msg',
        { name, data, workers: opts.workers },
        { timeoutMs: 10_000 },
      );
      print(opts, reply, () => sentLines(reply));
      reportFailures(reply.failed.length, reply.sent.length + reply.failed.length);
    });

  addClientOptions(program.command('send'))
    .description(
      "v1: send a bare string to the workers' process.on('message') (send-msg sends name and data)",
    )
    .argument('<message>', 'the string')
    .option('-w, --workers <selector>', SELECTOR_OPTION_HELP)
    .option('--json', 'machine-readable output')
    .action(async (message: string, opts: ClientOptions & { workers?: string }) => {
      const reply = await request(
        ipcPath(opts),
        'send-msg',
        { name: message, raw: true, workers: opts.workers },
        { timeoutMs: 10_000 },
      );
      print(opts, reply, () => `sent to ${reply.sent.length} worker(s)`);
      reportFailures(reply.failed.length, reply.sent.length + reply.failed.length);
    });

  addClientOptions(program.command('send-req'))
    .description(
      "send an app request to workers and print each worker's reply (from its nodesockd.setRequestHandler())",
    )
    .argument('<name>', 'request name')
    .argument('[json]', 'data: any JSON value (quote strings: \'"text"\')')
    .option('-w, --workers <selector>', SELECTOR_OPTION_HELP)
    .option(
      '--timeout <ms>',
      `how long each worker has to reply (default ${APP_REQUEST_TIMEOUT_DEFAULT_MS}, at most ${APP_REQUEST_TIMEOUT_MAX_MS})`,
      requestTimeout,
    )
    .option('--json', 'machine-readable output')
    .action(
      async (
        name: string,
        json: string | undefined,
        opts: ClientOptions & { workers?: string; timeout?: number },
      ) => {
        const data = jsonArgument(json);
        const perWorker = opts.timeout ?? APP_REQUEST_TIMEOUT_DEFAULT_MS;
        const reply = await request(
          ipcPath(opts),
          'send-req',
          { name, data, workers: opts.workers, timeoutMs: opts.timeout },
          // The daemon answers once every worker has replied or timed out: give it that long, and more.
          { timeoutMs: perWorker + 10_000 },
        );
        print(opts, reply, () => resultLines(reply.results));
        reportFailures(reply.results.filter((r) => !r.ok).length, reply.results.length);
      },
    );

  addClientOptions(program.command('status'))
    .description('show the daemon and its workers')
    .option('--json', 'machine-readable output')
    .option('-w, --watch', 'redraw every second (on a terminal) until Ctrl-C')
    .option('-v, --verbose', 'also the last stderr lines of the last failed worker of each slot')
    .action(async (opts: ClientOptions & { watch?: boolean; verbose?: boolean }) => {
      const target = ipcPath(opts);
      const load = () => request(target, 'status', undefined, { timeoutMs: 10_000 });
      const human = (status: DaemonStatus) => formatStatus(status, Date.now(), { verbose: opts.verbose });
      if (opts.watch) await watch(load, human);
      const status = await load();
      print(opts, status, () => human(status));
    });

  addClientOptions(program.command('health'))
    .description(
      'exit 0 when every slot has a worker that accepts connections (suspended counts), 1 with the reason, 2 when no daemon answers',
    )
    .option('--json', 'machine-readable output')
    .action((opts: ClientOptions) => runHealth(() => ipcPath(opts), opts));

  program
    .command('ls')
    .description("list this user's nodesockd daemons on this host (every app), with their workers")
    .option('--json', 'machine-readable output')
    .option('--debug', 'print stack traces of errors')
    .action((opts: { json?: boolean }) => runLs(opts));

  addClientOptions(program.command('config'))
    .description('print the effective config and the files it came from')
    .option('--json', 'machine-readable output')
    .option('--local', "print what the files say now, not the running daemon's config")
    .action(async (opts: ClientOptions & { local?: boolean }) => {
      let reply: ConfigReply;
      if (opts.local) {
        const loaded = lazy.config().loadConfig(lazy.overrides().loadOptions(opts.config));
        reply = { config: loaded.config, files: loaded.files };
      } else {
        reply = await request(ipcPath(opts), 'config', undefined, { timeoutMs: 10_000 });
      }
      const shown = { ...(reply.config as Record<string, unknown>) };
      if (typeof shown.umask === 'number') shown.umask = shown.umask.toString(8).padStart(3, '0');
      reply = { ...reply, config: shown };
      print(opts, reply, () =>
        [
          lazy.yaml().stringify(reply.config).trimEnd(),
          '',
          reply.files.length > 0
            ? `# from: ${reply.files.join(', ')}`
            : '# from the command line and defaults',
        ].join('\n'),
      );
    });

  program
    .command('nginx')
    .description('print the nginx upstream block (and a server example) matching the config')
    .option('-c, --config <file>', 'config file (default: discovered in the current directory)')
    .option('--listen <address>', 'listen directive of the server example', '80')
    .option('--server-name <name>', 'server_name of the server example', '_')
    .option('--debug', 'print stack traces of errors')
    .action(async (opts: { config?: string; listen: string; serverName: string }) => {
      const { config } = lazy.config().loadConfig(lazy.overrides().loadOptions(opts.config));
      // The slots nginx needs now: the running daemon's (set-workers changes them until a reload).
      const running = await request(config.ipcFile, 'config', undefined, { timeoutMs: 3_000 }).catch(
        () => null,
      );
      const live = running?.config as Partial<Config> | undefined;
      const workersFrom =
        live?.workers !== undefined && live.workers !== config.workers
          ? `in the running daemon; the config file says ${config.workers}`
          : undefined;
      process.stdout.write(
        lazy.generate().nginxConfig(
          {
            ...config,
            workers: live?.workers ?? config.workers,
            socketFile: live?.socketFile ?? config.socketFile,
          },
          { listen: opts.listen, serverName: opts.serverName, workersFrom },
        ),
      );
    });

  program
    .command('systemd')
    .description(
      'print a systemd unit for this app that works with adoption and upgrades; with `listen` in the ' +
        'config, also the .socket unit that holds the listening sockets across daemon restarts',
    )
    .option('-c, --config <file>', 'config file (default: discovered in the current directory)')
    .option('--service', 'print only the .service unit')
    .option('--socket', 'print only the .socket unit (the config must have `listen`)')
    .option('--debug', 'print stack traces of errors')
    .addHelpText(
      'after',
      '\nWith `listen`, the output is the .service unit, then the .socket unit, each headed by the\n' +
        'file to save it as; --service and --socket print one of them, for redirecting to a file.\n' +
        'Under socket activation systemd binds the addresses and passes them to the daemon\n' +
        '(LISTEN_FDS): a connection made while the daemon restarts, crashes or is upgraded waits in\n' +
        'the accept queue and is served by the next daemon.',
    )
    .action((opts: { config?: string; service?: boolean; socket?: boolean }) => {
      const loaded = lazy.config().loadConfig(lazy.overrides().loadOptions(opts.config));
      const configFile = loaded.files[0];
      // The app's own install, reached through the logical path (e.g. a `current` symlink), so
      // the unit runs whatever release `current` points at, not the one it was generated from.
      const local = [loaded.config.cwd, logicalCwd()]
        .map((dir) => path.join(dir, 'node_modules', '.bin', 'nodesockd'))
        .find((p) => fs.existsSync(p));
      const binPath = local ?? path.resolve(process.argv[1] ?? 'nodesockd');
      const generate = lazy.generate();
      const service = generate.systemdUnit(loaded.config, { binPath, configFile });
      const socket = generate.systemdSocketUnit(loaded.config);
      if (opts.socket && opts.service)
        program.error('error: --service and --socket: give one of them, or neither for both');
      if (opts.socket) {
        if (socket) process.stdout.write(socket);
        else
          program.error('error: --socket: the config has no `listen` addresses, so there is no socket unit');
      } else if (opts.service || !socket) {
        process.stdout.write(service);
      } else {
        const unit = generate.systemdUnitName(loaded.config);
        process.stdout.write(
          `# ---- /etc/systemd/system/${unit}.service ----\n${service}\n# ---- /etc/systemd/system/${unit}.socket ----\n${socket}`,
        );
      }
    });

  addClientOptions(program.command('check'))
    .description('validate the config and the permissions of tmpDir; print what is wrong')
    .option('--json', 'machine-readable output')
    .option('--nginx-user <user>', 'the user nginx runs as: a name, or uid:gid for an nginx elsewhere')
    .option(
      '--nginx-conf <file>',
      'the nginx config whose `user` line says it (default: `nginx -T`, /etc/nginx/nginx.conf)',
    )
    .action(async (opts: ClientOptions & { nginxUser?: string; nginxConf?: string }) => {
      const loaded = lazy.config().loadConfig(lazy.overrides().loadOptions(opts.config));
      const check = lazy.check();
      const running = await check.runningDaemon(loaded.config);
      const findings = [
        ...check.checkSetup(loaded.config),
        ...check.checkNginx(loaded.config, opts),
        ...(await check.checkPorts(loaded.config, running)),
        ...(await check.checkListen(loaded.config, running)),
      ];
      const errors = findings.filter((f) => f.level === 'error').length;
      const warnings = findings.length - errors;
      print(opts, { files: loaded.files, findings }, () =>
        [
          `config valid (${loaded.files.join(', ') || 'no file'})`,
          ...findings.map((f) => `${f.level}: ${f.message}`),
          errors + warnings === 0 ? 'setup OK' : `${errors} error(s), ${warnings} warning(s)`,
        ].join('\n'),
      );
      if (findings.some((f) => f.level === 'error')) process.exitCode = 1;
    });

  addClientOptions(program.command('logs'))
    .description("print the workers' recent output, kept by the daemon (no setup needed); -f follows it")
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('--slot <n>', "only the lines of this slot's workers", nonNegativeInt)
    .option('-n, --lines <n>', 'lines of history to print first (default 50)', nonNegativeInt)
    .option('-t, --timestamps', 'start each line with the time the daemon received it')
    .option('--json', 'one JSON object per line: seq, time, slot, id, stream, text')
    .option(
      '--files',
      'read the configured log files (stdout/stderr) instead: a longer history, and no daemon needed',
    )
    .action(
      async (
        opts: ClientOptions & {
          follow?: boolean;
          slot?: number;
          lines?: number;
          timestamps?: boolean;
          files?: boolean;
        },
      ) => {
        const lines = opts.lines ?? 50;
        if (!opts.files) {
          let printed = false;
          const target = ipcPath(opts);
          try {
            await showRecentLogs(
              target,
              {
                follow: opts.follow === true,
                slot: opts.slot,
                lines,
                json: opts.json === true,
                timestamps: opts.timestamps === true,
              },
              (text) => {
                printed = true;
                say(text);
              },
              (message) => process.stderr.write(terminalText(`nodesockd: ${message}\n`)),
            );
            return;
          } catch (err) {
            // No daemon (or one older than the `logs` command): the files, when there are some.
            const message = errorMessage(err);
            if (printed || !/^no daemon is running|unknown request type/.test(message)) throw err;
            const { config } = lazy.config().loadConfig(lazy.overrides().loadOptions(opts.config));
            if (!config.stdout && !config.stderr) {
              throw new Error(
                message.startsWith('no daemon')
                  ? `${message}, and no log files (stdout/stderr) are configured to read instead`
                  : 'the running daemon is an older nodesockd that keeps no output for `logs`: upgrade it (restart --upgrade), or set stdout/stderr files',
              );
            }
          }
        }
        // The running daemon's config when it answers (its files are the ones written), else the files'.
        const running = await request(ipcPath(opts), 'config', undefined, { timeoutMs: 5_000 }).catch(
          () => null,
        );
        const config =
          (running?.config as Config | undefined) ??
          lazy.config().loadConfig(lazy.overrides().loadOptions(opts.config)).config;
        await showLogs(config, { follow: opts.follow === true, slot: opts.slot, lines }, say);
      },
    );

  program
    .command('completion')
    .description('print the shell completion script: eval "$(nodesockd completion bash)"')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .action((shell: Shell) => {
      process.stdout.write(completionScript(program, shell));
    });

  return program;
}

/** Runs the CLI; every failure becomes a one-line message and exit code 1. */
export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  try {
    const program = buildProgram();
    await program.parseAsync(
      commandFirst(
        argv,
        program.commands.map((c) => c.name()),
      ),
    );
  } catch (err) {
    reportError(err, debug);
    exitAfterOutput(1);
  }
}
