import fs from 'node:fs';
import type { LoadedConfig } from '../config/load';
import { titleName } from '../config/name';
import { registerDaemon } from '../daemon-registry';
import { formatAddress } from '../fronts/address';
import { DevServer } from '../fronts/dev-server';
import { type InheritedSocket, takeInheritedSockets } from '../fronts/inherited-sockets';
import { TcpFront } from '../fronts/tcp-front';
import { hasTls, readTlsMaterial, TlsDistributor } from '../fronts/tls-material';
import type { DaemonStatus, HandoverResult, HealthReport, UpstreamChange } from '../ipc/protocol';
import { IpcServer } from '../ipc/server';
import { errorMessage, Logger } from '../log';
import { daemonStdio, internalErrorReporter } from '../stdio';
import { SerialQueue } from '../supervise/serial-queue';
import { VERSION } from '../version';
import { type CommandHandlers, dispatch, workerChannelUpgrade } from './commands';
import { checkHealth } from './health';
import { InstanceLock } from './instance-lock';
import { lazy } from './lazy';
import { DaemonLock } from './lock';
import { Messenger } from './messaging/messenger';
import type { Metrics } from './metrics';
import { WorkerOutput } from './output';
import { Supervisor } from './pool/supervisor';
import { Publisher } from './publisher';
import { canConnect, socketInode as inodeOf, probeSocket } from './socket-probe';
import { StateFile } from './state-file';
import { inspectIpcDir, inspectTmpDir } from './tmpdir';
import { TmpDirWatch } from './tmpdir-watch';
import {
  checkSuccessorConfig,
  isNewerVersion,
  startSuccessor,
  underSupervisor,
  waitForPredecessor,
} from './upgrade-handover';
import { channelGarbageFilter } from './worker/internal-messages';
import { isServing } from './worker/worker-state';

/** How often the daemon checks that tmpDir and its control socket are still there (tmpdir-watch.ts). */
const TMPDIR_WATCH_MS = 2000;

export interface DaemonOptions {
  debug?: boolean;
  /** Loads the config again the way the daemon was started (same file, same command line). */
  reload?: () => LoadedConfig;
}

type Teardown = { name: string; run: (workers: 'drain' | 'detach') => unknown };

/**
 * The long-running process: owns the locks, the control socket, the pool and the dev server,
 * and turns signals and control requests into pool commands.
 *
 * `start()` brings the parts up in order and registers how to take each down; `close()` is
 * the one way down (SIGTERM, terminate, a handover): it runs those steps in reverse, each on
 * its own, so one that fails (an unwritable tmpDir) cannot stop the others. `workers:
 * 'drain'` stops the workers; `'detach'` leaves them running for the next daemon to adopt.
 */
export class Daemon {
  private readonly teardown: Teardown[] = [];
  private closing: Promise<void> | null = null;
  private end: (code: number) => void = () => {};
  /** Settles with the exit code once the daemon has closed itself (terminate, a handover). */
  readonly ended = new Promise<number>((resolve) => {
    this.end = resolve;
  });
  /** Reloads run one at a time, so two SIGHUPs cannot interleave their diffs. */
  private readonly reloads = new SerialQueue();
  private supervisor!: Supervisor;
  private messenger!: Messenger;
  private devServer: DevServer | null = null;
  private front: TcpFront | null = null;
  private frontTls: TlsDistributor | null = null;
  private metrics: Metrics | null = null;
  private ipc!: IpcServer;
  private stateFile!: StateFile;
  private output!: WorkerOutput;
  private ipcWatch: NodeJS.Timeout | null = null;
  private ipcIno: number | null = null;
  private instanceLock: InstanceLock | null = null;
  private tmpDirWatch: TmpDirWatch | null = null;
  private detachedState: ReturnType<Supervisor['detach']> | null = null;
  readonly startedAt = Date.now();
  readonly log: Logger;

  private constructor(
    private readonly loaded: LoadedConfig,
    private readonly options: DaemonOptions,
  ) {
    // First: the stdio sinks' 'error' listeners, before anything writes (src/stdio.ts).
    this.log = new Logger('', options.debug ? 'debug' : 'info', daemonStdio().stderr);
  }

  /** Starts a daemon; resolves once it serves its control socket and has started the workers. */
  static async start(loaded: LoadedConfig, options: DaemonOptions = {}): Promise<Daemon> {
    const daemon = new Daemon(loaded, options);
    try {
      await daemon.bringUp();
    } catch (err) {
      // Whatever failed, the workers it adopted keep serving (and the state file naming them
      // stays) for the next daemon: a failed start never stops the app. Workers of its own it
      // starts only once nothing more can fail.
      const adopted = daemon.supervisor?.listWorkers().length ?? 0;
      if (adopted > 0)
        daemon.log.error(
          `cannot start: ${errorMessage(err)}; the ${adopted} adopted worker(s) keep serving for the next daemon`,
        );
      await daemon.close({ workers: 'detach' });
      // Bound before its close was registered (that comes after the workers'): close it here.
      if (!daemon.teardown.some((step) => step.name === 'listen front')) await daemon.front?.close();
      throw err;
    }
    return daemon;
  }

  private get config() {
    return this.loaded.config;
  }

  private onTeardown(name: string, run: Teardown['run']): void {
    this.teardown.push({ name, run });
  }

  private async bringUp(): Promise<void> {
    const { config } = this;
    const log = this.log;
    process.umask(config.umask);
    checkTmpDir(config.tmpDir, config.ipcFile);
    process.title = `${titleName(config.name)} nodesockd daemon`;
    // Read (and removed from the environment the workers get) before anything else.
    const inherited = takeInheritedSockets();
    for (const problem of inherited.problems) log.warn(`listen: ${problem}`);
    await waitForPredecessor(log);

    const instance = await InstanceLock.acquire(config.ipcFile, log);
    this.instanceLock = instance;
    this.onTeardown('instance lock', () => instance.release());
    const lock = DaemonLock.acquire(config.ipcFile);
    this.onTeardown('lock file', () => lock.release());
    await claimIpcFile(config.ipcFile);

    this.output = new WorkerOutput(config.outputPrefix, config.stdout, config.stderr, (m) => log.warn(m));
    this.onTeardown('worker output', () => this.output.close());

    this.stateFile = new StateFile(`${config.ipcFile}.state`, log);
    this.onTeardown('state file', (workers) => {
      this.stateFile.stop();
      // Detached before the workers' step ran (a failed start): the file still names them.
      if (workers === 'drain') this.stateFile.remove();
      else if (this.detachedState) {
        const state = this.detachedState;
        this.stateFile.save(() => state);
        this.stateFile.stop();
      }
    });

    let ready = false;
    const publisher = new Publisher(config.tmpDir, config.socketFile, log, config.symlinks);
    this.supervisor = new Supervisor({
      config,
      publisher,
      output: this.output,
      log,
      canConnect,
      onChange: () => {
        if (ready && !this.closing) this.stateFile.schedule(() => this.supervisor.snapshot());
        // Hear what new workers send on their own (sendAppMessage, v1 'restart').
        if (ready) this.messenger?.watchAll();
        // A worker that now serves gets the sockets of `accept: "workers"` entries.
        this.front?.offerListeners();
      },
      onRestart: (ms, ok) => this.metrics?.observeRestart(ms, ok),
    });
    // Everything that can refuse the start comes before the adoption: a daemon that took the
    // workers over and then failed would leave them with no supervisor.
    await this.bindFront(inherited);

    const previous = this.stateFile.read();
    if (previous.problem) log.warn(previous.problem);
    let adopted = previous.state ? await this.supervisor.adopt(previous.state) : 0;
    if (adopted > 0)
      log.info(`adopted ${adopted} worker(s) of the previous daemon (pid ${previous.state?.daemonPid})`);
    const known = () => new Set(this.supervisor.listWorkers().map(({ worker }) => worker.socketPath));
    const listed = known();
    const unlisted = (await publisher.cleanStale()).filter((f) => !listed.has(f));
    // A state file that could not be written before the last daemon died misses workers that
    // still serve: found by their sockets, they are adopted too rather than left unsupervised.
    const found = await this.supervisor.adoptUnlisted(unlisted, previous.state);
    if (found > 0)
      log.warn(`adopted ${found} running worker(s) the state file did not list (it was out of date)`);
    adopted += found;
    const adoptedSockets = known();
    for (const file of unlisted.filter((f) => !adoptedSockets.has(f))) {
      log.warn(`${file} is still served by a process nodesockd does not know; leaving it alone`);
    }
    this.stateFile.save(() => this.supervisor.snapshot());
    ready = true;
    this.messenger = new Messenger(
      () => this.supervisor.listWorkers(),
      log,
      () => this.supervisor.restart({ suspended: false }),
    );
    this.messenger.watchAll();

    const handlers = this.commandHandlers();
    this.ipc = new IpcServer(
      config.ipcFile,
      (request) => dispatch(handlers, request),
      log,
      workerChannelUpgrade((id, pid, connection) => this.supervisor.attachWorkerChannel(id, pid, connection)),
    );
    await this.ipc.listen();
    this.ipcIno = inodeOf(config.ipcFile);
    this.onTeardown('control socket', async () => {
      if (this.ipcWatch) clearInterval(this.ipcWatch);
      await this.ipc.close();
      if (inodeOf(config.ipcFile) === this.ipcIno) fs.rmSync(config.ipcFile, { force: true });
    });
    try {
      const { name, ipcFile, cwd } = config;
      const entry = { name, version: VERSION, ipcFile, cwd, configFiles: this.loaded.files };
      this.onTeardown('daemon registry', registerDaemon({ ...entry, startedAt: this.startedAt }));
    } catch (err) {
      log.warn(`\`nodesockd ls\` will not list this daemon: ${errorMessage(err)}`);
    }
    this.tmpDirWatch = new TmpDirWatch({
      tmpDir: config.tmpDir,
      log,
      ipcBound: () => inodeOf(config.ipcFile) === this.ipcIno,
      rebindIpc: async () => {
        await this.ipc.rebind();
        this.ipcIno = inodeOf(config.ipcFile);
      },
      saveState: () => this.stateFile.save(() => this.supervisor.snapshot()),
      servingSockets: () => this.supervisor.servingSockets(),
      restartWorkers: () =>
        this.supervisor.isRunning
          ? this.supervisor.restart({ suspended: this.supervisor.isSuspended })
          : null,
    });
    const watch = this.tmpDirWatch;
    this.ipcWatch = setInterval(() => {
      if (!this.closing) void watch.check();
    }, TMPDIR_WATCH_MS);
    this.ipcWatch.unref();

    this.onTeardown('workers', async (workers) => {
      if (workers === 'detach') this.detachedState = this.supervisor.detach();
      else await this.supervisor.close();
    });

    if (config.metrics !== false) {
      const { Metrics, metricsAddress } = lazy.metrics();
      const address = metricsAddress(config.metrics, config.tmpDir);
      const metrics = new Metrics(
        {
          status: () => ({ ...this.supervisor.status(), handovers: this.supervisor.handover.totals }),
          health: () => this.health(),
          eventLoopDelay: (id) =>
            this.supervisor.listWorkers().find((w) => w.worker.id === id)?.worker.eventLoopDelay ?? null,
        },
        log,
      );
      this.metrics = metrics;
      this.onTeardown('metrics', () => metrics.close());
      try {
        log.info(`metrics on ${await metrics.listen(address)}`);
      } catch (err) {
        // The workers matter more than their metrics: say why and carry on.
        log.error(`metrics: cannot listen on ${config.metrics}: ${errorMessage(err)}`);
      }
    }

    // Closed before the workers drain: no new connection goes to a worker being stopped.
    const front = this.front;
    if (front) this.onTeardown('listen front', () => front.close());

    if (config.devServer !== false) {
      const dev = new DevServer(config.devServer, () => this.supervisor.servingSockets(), log);
      this.devServer = dev;
      // Closed first: its kept-alive connections would otherwise hold draining workers.
      this.onTeardown('dev server', () => dev.close());
    }

    log.info(
      `nodesockd ${VERSION} daemon (pid ${process.pid}) for ${config.script}; control socket ${config.ipcFile}`,
    );
    if (this.devServer) {
      try {
        await this.devServer.listen();
      } catch (err) {
        log.error(errorMessage(err));
      }
    }
    if (adopted > 0) {
      this.supervisor.fillMissing().catch((err: unknown) => log.error(errorMessage(err)));
    } else {
      this.supervisor.start().then(
        ({ workers }) => log.info(`${workers} worker(s) online`),
        (err: unknown) => log.error(errorMessage(err)),
      );
    }
  }

  /** Reads the TLS files and binds (or takes over) the `listen` addresses; throws what stops a start. */
  private async bindFront(inherited: ReturnType<typeof takeInheritedSockets>): Promise<void> {
    const { config, log } = this;
    if (config.listen.length === 0) {
      closeUnused(inherited.sockets, log);
      return;
    }
    if (hasTls(config.listen)) {
      const material = readTlsMaterial(config.listen);
      for (const warning of material.warnings) log.warn(warning);
      this.frontTls = new TlsDistributor(material, config.debug);
    }
    const front = new TcpFront({
      addresses: config.listen,
      targets: () =>
        this.supervisor
          .listWorkers()
          .filter(({ role, worker }) => role === 'serving' && isServing(worker.state))
          .sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0))
          .map(({ worker, slot }) => ({
            id: worker.id,
            slot: slot ?? 0,
            child: worker.childProcess,
            socketPath: worker.socketPath,
          })),
      slots: () => this.supervisor.currentConfig.workers,
      sticky: () => this.supervisor.currentConfig.sticky,
      inherited: inherited.sockets,
      log,
      tls: this.frontTls,
      onStalled: (id, why) => this.supervisor.replaceStalled(id, why),
    });
    this.front = front;
    await front.listen();
  }

  /** Takes everything down in the reverse order it came up; idempotent. */
  close(opts: { workers: 'drain' | 'detach' }): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      for (const step of [...this.teardown].reverse()) {
        try {
          await step.run(opts.workers);
        } catch (err) {
          this.log.error(`while closing (${step.name}): ${errorMessage(err)}`);
        }
      }
    })();
    return this.closing;
  }

  /** Reopens the log files, so logrotate can move them away (SIGUSR1, SIGUSR2). */
  reopenLogs(): void {
    this.output.reopen();
  }

  get isClosing(): boolean {
    return this.closing !== null;
  }

  status(): DaemonStatus {
    return {
      version: VERSION,
      pid: process.pid,
      name: this.supervisor.currentConfig.name,
      startedAt: this.startedAt,
      running: this.supervisor.isRunning,
      suspended: this.supervisor.isSuspended,
      ipcFile: this.config.ipcFile,
      devServer: this.devServer ? `http://127.0.0.1:${this.devServer.address()}` : null,
      front: this.front
        ? {
            addresses: this.front.addressesBound(),
            handedOut: this.front.counts(),
            relayed: this.front.relayed(),
            waiting: this.front.waitingCount,
            totals: this.front.totalCounts(),
            stalled: this.front.stalled(),
            tls: this.frontTls?.certificates() ?? this.front.addressesBound().map(() => null),
          }
        : null,
      problems: [this.tmpDirWatch?.problem ?? null, this.stateFile.problem].filter(
        (p): p is string => p !== null,
      ),
      ...this.supervisor.status(),
      handovers: { ...this.supervisor.handover.totals },
    };
  }

  /** `health` and the metrics listener's `/readyz` (daemon/health.ts). */
  /**
   * One health check at a time, shared by every caller that asks meanwhile (`health`,
   * `/readyz`): each check connects to every slot's socket, so a flood of probes (pipelined
   * on one connection) must not become a flood of connections.
   */
  health(): Promise<HealthReport> {
    if (this.healthInFlight) return this.healthInFlight;
    const s = this.supervisor;
    const check = checkHealth(
      { running: s.isRunning, ...s.status() },
      { closing: this.isClosing, canConnect },
    );
    this.healthInFlight = check;
    const clear = () => {
      this.healthInFlight = null;
    };
    check.then(clear, clear);
    return check;
  }
  private healthInFlight: Promise<HealthReport> | null = null;

  private commandHandlers(): CommandHandlers {
    const s = this.supervisor;
    return {
      status: () => this.status(),
      health: () => this.health(),
      config: () => ({ config: s.currentConfig, files: this.loaded.files }),
      start: (data) => s.start(data),
      restart: (data) => s.restart(data),
      stop: () => s.stop(),
      resume: () => s.resume(),
      'send-msg': (data) => this.messenger.sendMessage(data),
      'send-req': (data) => this.messenger.request(data),
      reload: () => this.reload(),
      logs: (data) => ({ pid: process.pid, ...this.output.history.read(data ?? {}) }),
      'set-workers': (data) => s.setWorkers(data.count),
      'set-standby': (data) => s.setStandby(data.count),
      handover: (data) => this.handOver(data.version),
      terminate: () => {
        // Reply first: the client waits for the pid to disappear.
        setImmediate(() => void this.close({ workers: 'drain' }).then(() => this.end(0)));
        const { shutdownTimeout, killTimeout } = this.supervisor.currentConfig;
        return { pid: process.pid, supervised: underSupervisor(), drainMs: shutdownTimeout + killTimeout };
      },
    };
  }

  /** Re-reads the config; reloads are serialised so two SIGHUPs cannot interleave their diffs. */
  reload(): Promise<{ actions: string[]; nginx?: UpstreamChange }> {
    return this.reloads.run(async () => {
      if (!this.options.reload) throw new Error('this daemon was started without a config to reload');
      const next = this.options.reload();
      // The certificates first: a bad file fails the whole reload, and the workers keep the old ones.
      let material: ReturnType<typeof readTlsMaterial> | null = null;
      try {
        if (this.frontTls) material = readTlsMaterial(next.config.listen);
      } catch (err) {
        throw new Error(`${errorMessage(err)}; nothing reloaded, the workers keep the current certificates`);
      }
      this.output.check(next.config);
      let { actions, nginx } = await this.supervisor.reconfigure(
        next.config,
        new Publisher(next.config.tmpDir, next.config.socketFile, this.log, next.config.symlinks),
      );
      this.output.configure(next.config.outputPrefix, next.config.stdout, next.config.stderr);
      if (this.frontTls && material) {
        this.frontTls.update(material);
        for (const warning of material.warnings) this.log.warn(warning);
        const entries = next.config.listen.filter((e) => e.tls).map((e) => formatAddress(e));
        actions = [
          ...actions.filter((a) => a !== 'no change'),
          `TLS certificates re-read (${entries.join(', ')})`,
        ];
      }
      this.loaded.files = next.files;
      process.title = `${titleName(this.supervisor.currentConfig.name)} nodesockd daemon`;
      this.log.info(`reloaded ${next.files.join(', ') || 'config'}: ${actions.join('; ')}`);
      return { actions, ...(nginx ? { nginx } : {}) };
    });
  }

  /**
   * restart --upgrade (upgrade-handover.ts): when the CLI is newer, make sure the installed
   * nodesockd can load this daemon's config, then let go of the workers and make way for a
   * daemon of that version, which adopts them.
   */
  private handOver(version: string): HandoverResult {
    if (!isNewerVersion(version)) return { handover: false, version: VERSION, pid: process.pid };
    if (this.closing) throw new Error('the daemon is shutting down');
    checkSuccessorConfig();
    this.log.info(`handing the workers over to nodesockd ${version}`);
    void (async () => {
      // After this reply has been written.
      await new Promise((resolve) => setImmediate(resolve));
      startSuccessor(
        this.front?.listeningFds() ?? [],
        (fd) => this.instanceLock?.passOn(fd) ?? null,
        this.log,
      );
      await this.close({ workers: 'detach' });
      this.end(0);
    })();
    return { handover: true, version: VERSION, pid: process.pid };
  }
}

/**
 * What `daemon --check-config` checks beyond loading the config (the pre-check of `restart
 * --upgrade`): the files a start reads, so a successor never adopts the workers and then fails
 * on them. The `listen` addresses are not tried: the running daemon holds them.
 */
export function checkStartable(config: LoadedConfig['config']): void {
  if (hasTls(config.listen)) readTlsMaterial(config.listen);
}

/**
 * Runs a daemon in this process until SIGTERM/SIGINT or `terminate` has drained it, or a
 * handover has let go of it; resolves with the exit code (the caller exits: the one exit site).
 */
export async function runDaemon(loaded: LoadedConfig, options: DaemonOptions = {}): Promise<number> {
  const daemon = await Daemon.start(loaded, options);
  const log = daemon.log;
  // A supervisor must outlive its own bugs: report them (never re-entering the report, never
  // to a sink that failed) and keep the workers served.
  const internalError = internalErrorReporter(
    (message) => log.error(message),
    channelGarbageFilter((line) => log.warn(line)),
  );
  process.on('uncaughtException', internalError);
  process.on('unhandledRejection', internalError);
  return new Promise<number>((resolve) => {
    void daemon.ended.then(resolve);
    const onSignal = (signal: NodeJS.Signals) => {
      if (daemon.isClosing) {
        log.warn(`${signal} again: still draining (send SIGKILL to stop at once)`);
        return;
      }
      log.info(`${signal}: draining workers and exiting`);
      void daemon.close({ workers: 'drain' }).then(() => {
        log.info('bye');
        resolve(0);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // The default SIGHUP action would kill the daemon and leave the workers unmanaged.
    process.on('SIGHUP', () => {
      daemon
        .reload()
        .catch((err: unknown) =>
          log.error(`SIGHUP: reload failed, keeping the current config: ${errorMessage(err)}`),
        );
    });
    // SIGUSR1 would open Node's inspector (code execution for any local user): reopen logs instead.
    for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) {
      process.on(signal, () => {
        daemon.reopenLogs();
        log.info(`${signal}: log files reopened`);
      });
    }
  });
}

/** Listening sockets passed to a daemon whose config has no `listen`: closed, said once each. */
function closeUnused(sockets: InheritedSocket[], log: Logger): void {
  for (const socket of sockets) {
    log.warn(
      `listen: fd ${socket.fd} was passed (${socket.from}) but the config has no listen entry; closing it`,
    );
    try {
      fs.closeSync(socket.fd);
    } catch {
      // Not open after all.
    }
  }
}

/** tmpDir (and the control socket's directory) must exist, be ours and writable by nobody else (daemon/tmpdir.ts). */
function checkTmpDir(dir: string, ipcFile: string): void {
  const problem = [...inspectTmpDir(dir), ...inspectIpcDir(ipcFile, dir)].find((f) => f.level === 'error');
  if (problem) throw new Error(problem.message);
}

/** A live control socket means another daemon owns the app. */
async function claimIpcFile(ipcFile: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(ipcFile);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new Error(`${ipcFile} exists and is not a socket; refusing to replace it`);
  if ((await probeSocket(ipcFile)) === 'alive') {
    throw new Error(`another nodesockd daemon is already running on ${ipcFile}`);
  }
  fs.rmSync(ipcFile, { force: true });
}
