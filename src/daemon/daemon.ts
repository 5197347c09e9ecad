import { spawn } from 'node:child_process';
import fs from 'node:fs';
import semver from 'semver';
import type { LoadedConfig } from '../config/load';
import { DevServer } from '../fronts/dev-server';
import { probeSocket } from '../ipc/client';
import type { DaemonStatus, Request } from '../ipc/protocol';
import { IpcServer } from '../ipc/server';
import { errorMessage, Logger } from '../log';
import { VERSION } from '../version';
import { DaemonLock } from './lock';
import { Messenger } from './messaging';
import { WorkerOutput } from './output';
import { Publisher } from './publisher';
import { StateFile } from './state-file';
import { daemonStdio, internalErrorReporter, successorStdio } from './stdio';
import { Supervisor } from './supervisor';
import { inspectIpcDir, inspectTmpDir } from './tmpdir';

export class DaemonStartError extends Error {}

/**
 * Whether a supervisor starts this daemon again when it exits (the unit of `nodesockd systemd`
 * says so with NODESOCKD_SUPERVISED=1). A handover then just exits; without one, the daemon
 * starts its successor itself. Declared rather than guessed: a wrong guess either leaves no
 * daemon or starts two.
 */
function underSupervisor(): boolean {
  return process.env.NODESOCKD_SUPERVISED === '1';
}

export interface DaemonOptions {
  debug?: boolean;
  /** Loads the config again the way the daemon was started (same file, same command line). */
  reload?: () => LoadedConfig;
}

/** Keys a running daemon cannot change: they name its own files and sockets. */
const FIXED_KEYS = ['tmpDir', 'ipcFile', 'umask', 'devServer', 'stdout', 'stderr', 'outputPrefix'] as const;

/**
 * The long-running process: owns the control socket, the supervisor and the dev server, and
 * turns signals and control requests into supervisor calls. Resolves when it has shut down.
 */
export async function runDaemon(loaded: LoadedConfig, options: DaemonOptions = {}): Promise<void> {
  const { config } = loaded;
  // First: the stdio sinks' 'error' listeners, before anything writes (daemon/stdio.ts).
  const log = new Logger('', options.debug ? 'debug' : 'info', daemonStdio().stderr);
  const startedAt = Date.now();

  process.umask(config.umask);
  checkTmpDir(config.tmpDir, config.ipcFile);
  // The title (in /proc/<pid>/cmdline) is how the lock recognises a live daemon.
  process.title = `${config.name} nodesockd daemon`;
  let lock: DaemonLock;
  try {
    lock = DaemonLock.acquire(config.ipcFile);
  } catch (err) {
    throw new DaemonStartError(errorMessage(err));
  }
  try {
    await claimIpcFile(config.ipcFile);
  } catch (err) {
    lock.release();
    throw err;
  }

  const publisher = new Publisher(config.tmpDir, config.socketFile, log);
  const output = new WorkerOutput(config.outputPrefix, config.stdout, config.stderr);
  const supervisor = new Supervisor(config, publisher, output, log);
  const stateFile = new StateFile(`${config.ipcFile}.state`);
  const previous = stateFile.read();
  if (previous.problem) log.warn(previous.problem);
  const adopted = previous.state ? await supervisor.adopt(previous.state) : 0;
  if (adopted > 0)
    log.info(`adopted ${adopted} worker(s) of the previous daemon (pid ${previous.state?.daemonPid})`);
  const leftovers = await publisher.cleanStale();
  const adoptedSockets = new Set(supervisor.listWorkers().map(({ worker }) => worker.socketPath));
  for (const file of leftovers.filter((f) => !adoptedSockets.has(f))) {
    log.warn(`${file} is still served by a process nodesockd does not know; leaving it alone`);
  }
  supervisor.onChange = () => stateFile.schedule(() => supervisor.snapshot());
  stateFile.write(supervisor.snapshot());
  const messenger = new Messenger(() => supervisor.listWorkers(), log);
  const devServer =
    config.devServer === false
      ? null
      : new DevServer(config.devServer, () => supervisor.servingSockets(), log);

  const status = (): DaemonStatus => ({
    version: VERSION,
    pid: process.pid,
    name: supervisor.currentConfig.name,
    startedAt,
    running: supervisor.isRunning,
    suspended: supervisor.isSuspended,
    ipcFile: config.ipcFile,
    devServer: devServer ? `http://127.0.0.1:${devServer.address()}` : null,
    ...supervisor.status(),
  });

  const handle = async (request: Request): Promise<unknown> => {
    switch (request.type) {
      case 'status':
        return status();
      case 'config':
        return { config: supervisor.currentConfig, files: loaded.files };
      case 'start':
        return supervisor.start(request.data);
      case 'restart':
        return supervisor.restart(request.data);
      case 'stop':
        return supervisor.stop();
      case 'resume':
        return supervisor.resume();
      case 'send-msg':
        return messenger.sendMessage(request.data);
      case 'send-req':
        return messenger.request(request.data);
      case 'reload':
        return reload();
      case 'set-workers':
        return supervisor.setWorkers(request.data.count);
      case 'set-standby':
        return supervisor.setStandby(request.data.count);
      case 'worker-hello':
        throw new Error('worker-hello is handled by the control socket');
      case 'handover':
        return handOver(request.data.version);
      case 'terminate':
        // Reply first: the client waits for the pid to disappear.
        setImmediate(() => void shutdown('terminate').then(() => process.exit(0)));
        return { pid: process.pid, supervised: underSupervisor() };
    }
  };

  /**
   * restart --upgrade (SPEC §4.9): when the CLI is newer, let go of the workers and make way
   * for a daemon running the installed version, which adopts them. Under systemd (the unit of
   * `nodesockd systemd`: Restart=always, KillMode=process) exiting is enough; elsewhere the
   * replacement is started here, with the same command line.
   */
  const handOver = (version: string): { handover: boolean; version: string; pid: number } => {
    const newer = semver.valid(version) !== null && semver.gt(version, VERSION);
    if (!newer) return { handover: false, version: VERSION, pid: process.pid };
    if (shuttingDown) throw new Error('the daemon is shutting down');
    log.info(`handing the workers over to nodesockd ${version}`);
    shuttingDown = (async () => {
      // After this reply has been written.
      await new Promise((resolve) => setImmediate(resolve));
      await devServer?.close();
      stateFile.write(supervisor.detach());
      await ipc.close();
      fs.rmSync(config.ipcFile, { force: true });
      lock.release();
      output.close();
      if (!underSupervisor()) {
        const next = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
          detached: true,
          stdio: successorStdio(),
        });
        next.unref();
        log.info(`started the new daemon (pid ${next.pid}); exiting`);
      } else {
        log.info('exiting; the supervisor starts the new daemon (NODESOCKD_SUPERVISED=1)');
      }
    })();
    void shuttingDown.then(() => process.exit(0));
    return { handover: true, version: VERSION, pid: process.pid };
  };

  // Reloads are serialised so two SIGHUPs cannot interleave their diffs.
  let reloading: Promise<unknown> = Promise.resolve();
  const reload = (): Promise<{ actions: string[] }> => {
    const run = reloading.then(async () => {
      if (!options.reload) throw new Error('this daemon was started without a config to reload');
      const next = options.reload();
      const current = supervisor.currentConfig;
      const fixed = FIXED_KEYS.filter((k) => JSON.stringify(next.config[k]) !== JSON.stringify(current[k]));
      if (fixed.length > 0) {
        throw new Error(
          `cannot change ${fixed.join(', ')} while the daemon runs; restart the daemon to apply`,
        );
      }
      const actions = await supervisor.reconfigure(
        next.config,
        new Publisher(next.config.tmpDir, next.config.socketFile, log),
      );
      loaded.files = next.files;
      process.title = `${supervisor.currentConfig.name} nodesockd daemon`;
      log.info(`reloaded ${next.files.join(', ') || 'config'}: ${actions.join('; ')}`);
      return { actions };
    });
    reloading = run.catch(() => undefined);
    return run;
  };

  const ipc = new IpcServer(config.ipcFile, handle, log, (id, pid, socket) =>
    supervisor.attachWorkerChannel(id, pid, socket),
  );
  await ipc.listen();

  let shuttingDown: Promise<void> | null = null;
  const shutdown = (why: string): Promise<void> => {
    if (shuttingDown) return shuttingDown;
    log.info(`${why}: draining workers and exiting`);
    shuttingDown = (async () => {
      // The dev server first: its kept-alive connections would otherwise hold draining workers.
      await devServer?.close();
      await supervisor.stop();
      await ipc.close();
      fs.rmSync(config.ipcFile, { force: true });
      supervisor.onChange = () => {};
      stateFile.remove();
      lock.release();
      output.close();
      log.info('bye');
    })();
    return shuttingDown;
  };

  const done = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      if (shuttingDown) {
        log.warn(`${signal} again: still draining (send SIGKILL to stop at once)`);
        return;
      }
      void shutdown(signal).then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  // The default SIGHUP action would kill the daemon and leave the workers unmanaged.
  process.on('SIGHUP', () => {
    reload().catch((err: unknown) =>
      log.error(`SIGHUP: reload failed, keeping the current config: ${errorMessage(err)}`),
    );
  });
  // SIGUSR1 too (nginx's reopen signal): its default would open Node's inspector to every local user.
  for (const signal of ['SIGUSR2', 'SIGUSR1'] as const) {
    process.on(signal, () => {
      output.reopen();
      log.info(`${signal}: log files reopened`);
    });
  }
  // A supervisor must outlive its own bugs: report them and keep the workers served.
  const internalError = internalErrorReporter((message) => log.error(message));
  process.on('uncaughtException', internalError);
  process.on('unhandledRejection', internalError);

  log.info(
    `nodesockd ${VERSION} daemon (pid ${process.pid}) for ${config.script}; control socket ${config.ipcFile}`,
  );
  if (devServer) {
    try {
      await devServer.listen();
    } catch (err) {
      log.error(errorMessage(err));
    }
  }
  if (adopted > 0) {
    supervisor.fillMissing().catch((err: unknown) => log.error(errorMessage(err)));
  } else {
    supervisor.start().then(
      ({ workers }) => log.info(`${workers} worker(s) online`),
      (err: unknown) => log.error(errorMessage(err)),
    );
  }
  await done;
}

/** Refuses a tmpDir (or ipcFile directory) that others could write (daemon/tmpdir.ts). */
function checkTmpDir(dir: string, ipcFile: string): void {
  const problem = [...inspectTmpDir(dir), ...inspectIpcDir(ipcFile, dir)].find((f) => f.level === 'error');
  if (problem) throw new DaemonStartError(problem.message);
}

/** One daemon per app (SPEC §4.7): a live control socket means another daemon owns the app. */
async function claimIpcFile(ipcFile: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(ipcFile);
  } catch {
    return;
  }
  if (!stat.isSocket())
    throw new DaemonStartError(`${ipcFile} exists and is not a socket; refusing to replace it`);
  if ((await probeSocket(ipcFile)) === 'alive') {
    throw new DaemonStartError(`another nodesockd daemon is already running on ${ipcFile}`);
  }
  fs.rmSync(ipcFile, { force: true });
}
