/**
 * The process managers under test, each started in its own directory of the run and stopped
 * without leaving a process behind: nodesockd (the built CLI, a snapshot of dist/), pm2 in
 * cluster mode with a private PM2_HOME, and node:cluster (bench/apps/cluster-primary.js).
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort, prepareSocketDir, probe, waitFor } from './nginx';
import { type Child, type Run, sweep } from './run';

export interface Timing {
  /** Wall time from spawning the command to its exit. */
  ms: number;
  ok: boolean;
  output: string;
  /** When it started, in ms since the load started (under load only). */
  atMs?: number;
}

export interface Env {
  run: Run;
  /** The snapshot of the package: dist/, package.json, node_modules -> the repo's. */
  pkgDir: string;
  appsDir: string;
  keepaliveSeconds: number;
}

/** A running backend: what nginx proxies to, how to restart it, how to stop it. */
export interface Backend {
  upstreams: string[];
  /** The manager's own process: nodesockd's daemon, pm2's daemon. */
  managerPid?: number;
  restart(): Promise<Timing>;
  /** The manager's cheapest CLI round trip (`status`, `pm2 ping`): the fixed cost of any command. */
  ping(): Promise<Timing>;
  stop(): Promise<string[]>;
  log(): string;
}

/** Runs `node <args>` to completion and times it. */
export async function timed(
  run: Run,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  forCleanup = false,
): Promise<Timing> {
  const start = performance.now();
  const child = run.spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env }, forCleanup);
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.proc.stdout!.on('data', collect);
  child.proc.stderr!.on('data', collect);
  const exit = await child.exited;
  return { ms: performance.now() - start, ok: exit.code === 0, output: output.trim() };
}

/**
 * The app's own boot time, measured like a restart: from spawning `node app.js` (standalone,
 * on 127.0.0.1 with a free port) to its "listening" line.
 */
export async function bootTime(run: Run, script: string): Promise<number> {
  const start = performance.now();
  const child = run.spawn(process.execPath, [script], {
    stdio: ['ignore', 'pipe', 'ignore'],
    cwd: path.dirname(script),
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0' },
  });
  const ms = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.proc.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('listening')) resolve(performance.now() - start);
    });
    void child.exited.then((e) =>
      reject(new Error(`${script} exited (${e.code ?? e.signal}) before listening`)),
    );
  });
  await child.stop('SIGKILL', 1000);
  return ms;
}

function readLog(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * nodesockd with `workers` workers (default 2), run as `dist/cli/bin.js daemon -c <generated config>`;
 * `extra.config` adds keys to that config (e.g. `listen: "127.0.0.1:8080"`, its own TCP front:
 * SPEC §6), `extra.env` is the daemon's environment.
 */
export async function startNodesockd(
  env: Env,
  dir: string,
  script: string,
  workers = 2,
  extra: { config?: Record<string, unknown>; env?: NodeJS.ProcessEnv; node?: string } = {},
): Promise<Backend> {
  const { run } = env;
  const bin = path.join(env.pkgDir, 'dist/cli/bin.js');
  const tmpDir = path.join(dir, 'run');
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o711);
  prepareSocketDir(tmpDir);
  const keepaliveMs = env.keepaliveSeconds * 1000;
  const config = {
    script,
    tmpDir: 'run',
    name: 'app',
    workers,
    // Must equal nginx's upstream keepalive_timeout (SPEC §4.3, docs/config.md).
    upstreamKeepaliveTimeout: keepaliveMs,
    // A drain under load ends with the last Connection: close; idle upstream connections end
    // when nginx drops them, after keepalive_timeout. Leave room for both.
    shutdownTimeout: keepaliveMs + 10_000,
    killTimeout: 2000,
    ...extra.config,
  };
  const configFile = path.join(dir, 'nodesockd.json');
  fs.writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  const logFile = path.join(dir, 'daemon.log');
  const logFd = fs.openSync(logFile, 'a');
  // The daemon (and so its workers) on `extra.node`; the CLI calls below use this process's node.
  const daemon = run.spawn(extra.node ?? process.execPath, [bin, 'daemon', '-c', configFile], {
    cwd: dir,
    stdio: ['ignore', logFd, logFd],
    env: extra.env ?? process.env,
  });
  fs.closeSync(logFd);
  const graceMs = config.shutdownTimeout + config.killTimeout + 2000;
  const unhook = run.onCleanup('nodesockd daemon', async () => {
    await daemon.stop('SIGTERM', graceMs);
  });
  const cli = (...args: string[]) => timed(run, [bin, ...args, '-c', configFile]);
  try {
    await waitFor(
      `nodesockd: ${workers} workers online`,
      async () => {
        if (daemon.proc.exitCode !== null) throw new Error('the daemon exited');
        const s = await cli('status', '--json');
        if (!s.ok) return false;
        const status = JSON.parse(s.output) as { workers: Array<{ slot: number | null; state: string }> };
        return status.workers.filter((w) => w.slot !== null && w.state === 'online').length >= workers;
      },
      30_000,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- daemon log ---\n${readLog(logFile)}`);
  }
  return {
    upstreams: Array.from({ length: workers }, (_, slot) => `unix:${path.join(tmpDir, `app.${slot}.sock`)}`),
    managerPid: daemon.proc.pid,
    restart: () => cli('restart'),
    ping: () => cli('status'),
    stop: async () => {
      await daemon.stop('SIGTERM', graceMs);
      unhook();
      // Workers are detached from the daemon; anything it failed to stop carries LISTEN_ON.
      return sweep(`${dir}/`);
    },
    log: () => readLog(logFile),
  };
}

export const PM2_APP = 'nsd-bench';

export function pm2Bin(root: string): string {
  return path.join(root, 'node_modules/pm2/bin/pm2');
}

export function pm2Version(root: string): string {
  try {
    return (
      JSON.parse(fs.readFileSync(path.join(root, 'node_modules/pm2/package.json'), 'utf8')) as {
        version: string;
      }
    ).version;
  } catch {
    return 'not installed';
  }
}

/** pm2 cluster mode, `instances` instances of the app on a loopback TCP port, PM2_HOME inside the run. */
export async function startPm2(
  env: Env,
  dir: string,
  script: string,
  repoRoot: string,
  instances = 2,
): Promise<Backend> {
  const { run } = env;
  const home = path.join(dir, 'home');
  fs.mkdirSync(home, { recursive: true });
  const port = await freePort();
  const ecosystem = {
    apps: [
      {
        name: PM2_APP,
        script,
        exec_mode: 'cluster',
        instances,
        env: { PORT: String(port) },
        out_file: path.join(dir, 'app.out.log'),
        error_file: path.join(dir, 'app.err.log'),
        merge_logs: true,
      },
    ],
  };
  const ecosystemFile = path.join(dir, 'ecosystem.config.json');
  fs.writeFileSync(ecosystemFile, `${JSON.stringify(ecosystem, null, 2)}\n`);
  const pm2Env = { ...process.env, PM2_HOME: home };
  const pm2 = (...args: string[]) => timed(run, [pm2Bin(repoRoot), ...args], pm2Env);
  const kill = async (): Promise<string[]> => {
    await timed(run, [pm2Bin(repoRoot), 'kill'], pm2Env, true);
    // pm2 names its daemon after PM2_HOME without a trailing slash: sweep the whole dir.
    return sweep(`${dir}/`);
  };
  const unhook = run.onCleanup('pm2 kill', async () => {
    await kill();
  });
  const started = await pm2('start', ecosystemFile);
  if (!started.ok) throw new Error(`pm2 start failed:\n${started.output}`);
  await waitFor('pm2: the app to answer', async () => (await probe(port)) === 200, 30_000);
  // pm2's daemon (God) is also the cluster master, which accepts connections for the instances.
  const godPid = Number(fs.readFileSync(path.join(home, 'pm2.pid'), 'utf8').trim());
  return {
    upstreams: [`127.0.0.1:${port}`],
    managerPid: Number.isInteger(godPid) && godPid > 0 ? godPid : undefined,
    restart: () => pm2('reload', PM2_APP),
    ping: () => pm2('ping'),
    stop: async () => {
      const left = await kill();
      unhook();
      return left;
    },
    log: () => readLog(path.join(home, 'pm2.log')) + readLog(path.join(dir, 'app.err.log')),
  };
}

/**
 * The app with no manager: `workers` processes of `node app.js`, each on its own UNIX socket
 * (`LISTEN_ON`, in a SETGID socket directory as nodesockd's) or its own loopback TCP port
 * (`PORT`). The limit nodesockd's data path is measured against. It has no restart.
 */
export async function startStandalone(
  env: Env,
  dir: string,
  script: string,
  workers: number,
  transport: 'unix' | 'tcp',
  /** Each process in its own session (setsid), as nodesockd starts its workers. */
  ownSession = false,
): Promise<Backend> {
  const { run } = env;
  const sockDir = path.join(dir, 'run');
  prepareSocketDir(sockDir);
  const upstreams: string[] = [];
  const children: Child[] = [];
  for (let i = 0; i < workers; i++) {
    const sock = path.join(sockDir, `app.${i}.sock`);
    const port = transport === 'tcp' ? await freePort() : 0;
    const listenEnv = transport === 'unix' ? { LISTEN_ON: sock } : { PORT: String(port) };
    const child = run.spawn(process.execPath, [script], {
      cwd: path.dirname(script),
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: ownSession,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...listenEnv },
    });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.proc.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('listening')) resolve();
      });
      void child.exited.then((e) =>
        reject(new Error(`${script} exited (${e.code ?? e.signal}) before listening`)),
      );
    });
    child.proc.stdout!.resume();
    if (transport === 'unix') {
      // nginx's workers (nobody, the directory's group) need write access to connect, as the
      // daemon's umask 007 gives them on nodesockd's sockets.
      fs.chmodSync(sock, 0o770);
      upstreams.push(`unix:${sock}`);
    } else {
      upstreams.push(`127.0.0.1:${port}`);
    }
  }
  const noRestart = async (): Promise<Timing> => ({ ms: Number.NaN, ok: false, output: 'no manager' });
  return {
    upstreams,
    restart: noRestart,
    ping: noRestart,
    stop: async () => {
      await Promise.all(children.map((c) => c.stop('SIGTERM', 2000)));
      return sweep(`${dir}/`);
    },
    log: () => '',
  };
}

/** VmRSS of a process in kB, from /proc/<pid>/status; NaN when it is gone. */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** node:cluster: bench/apps/cluster-primary.js forking the app; a restart is a worker swap over IPC. */
export async function startCluster(
  env: Env,
  dir: string,
  script: string,
  workers: number,
  swapGraceMs: number,
): Promise<Backend & { port: number }> {
  const { run } = env;
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const logFile = path.join(dir, 'cluster.log');
  const logFd = fs.openSync(logFile, 'a');
  const primary = run.spawn(process.execPath, [path.join(env.appsDir, 'cluster-primary.js')], {
    cwd: dir,
    // Its own session, as a primary started by an init system is (see bench/README.md, Scheduling).
    detached: true,
    stdio: ['ignore', logFd, logFd, 'ipc'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      APP_SCRIPT: script,
      WORKERS: String(workers),
      PORT: String(port),
      SWAP_GRACE_MS: String(swapGraceMs),
    },
  });
  fs.closeSync(logFd);
  const unhook = run.onCleanup('node:cluster primary', async () => {
    await primary.stop('SIGTERM', 3000);
  });
  const log = () => {
    try {
      return fs.readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  try {
    await waitFor('node:cluster: the app to answer', async () => {
      if (primary.proc.exitCode !== null) throw new Error(`the primary exited:\n${log()}`);
      return (await probe(port)) === 200;
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- log ---\n${log()}`);
  }
  const swap = (): Promise<Timing> => {
    const start = performance.now();
    return new Promise((resolve) => {
      const onMessage = (message: unknown) => {
        primary.proc.off('message', onMessage);
        const m = message as { swapped?: number; error?: string };
        resolve({ ms: performance.now() - start, ok: m.error === undefined, output: m.error ?? '' });
      };
      primary.proc.on('message', onMessage);
      primary.proc.send('swap');
    });
  };
  return {
    port,
    upstreams: [`127.0.0.1:${port}`],
    managerPid: primary.proc.pid,
    restart: swap,
    ping: swap,
    stop: async () => {
      // SIGTERM ends the primary; its workers see the IPC channel close and exit with it.
      await primary.stop('SIGTERM', 3000);
      unhook();
      return sweep(`${dir}/`);
    },
    log,
  };
}
