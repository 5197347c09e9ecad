import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { type Config, DEFAULT_ENV, type ListenEntry } from '../config/schema';
import { lazy } from '../daemon/lazy';
import { type DirFinding, inspectIpcDir, inspectTmpDir } from '../daemon/tmpdir';
import { entryLabel, keyModeProblem, readTlsEntry } from '../fronts/tls-material';
import { request } from '../ipc/client';
import type { DaemonStatus } from '../ipc/protocol';
import { checkNginxAccess } from './nginx-access';
import { findNginxUser } from './nginx-user';

export type Finding = DirFinding;

/** What `nodesockd check` reports about a config and the directories it names (docs/permissions.md). */
export function checkSetup(config: Config): Finding[] {
  const findings: Finding[] = [];
  const error = (message: string) => findings.push({ level: 'error', message });
  const warn = (message: string) => findings.push({ level: 'warning', message });

  if (!fs.existsSync(config.script)) error(`script ${config.script} does not exist`);
  if (!isDir(config.cwd)) error(`cwd ${config.cwd} is not a directory`);
  findings.push(...inspectIpcDir(config.ipcFile, config.tmpDir), ...inspectTmpDir(config.tmpDir));
  for (const key of ['stdout', 'stderr'] as const) {
    const file = config[key];
    if (file && !isDir(path.dirname(file))) error(`the directory of ${key} ${file} does not exist`);
  }
  if (config.umask & 0o060) {
    warn(
      `umask ${config.umask.toString(8).padStart(3, '0')} removes group read/write: nginx cannot connect to the sockets`,
    );
  }
  for (const entry of config.env) {
    if (!entry.includes('=') && !DEFAULT_ENV.includes(entry) && process.env[entry] === undefined) {
      warn(
        `env ${entry} is not set in this environment: workers get it only if the daemon's environment has it; set it there, or write ${entry}=value in env`,
      );
    }
  }
  if (config.shutdownTimeout <= config.upstreamKeepaliveTimeout) {
    const which = config.handover
      ? 'and those a restart cannot move'
      : 'and every restart: handover is false';
    warn(
      `shutdownTimeout (${config.shutdownTimeout} ms) is not above upstreamKeepaliveTimeout (${config.upstreamKeepaliveTimeout} ms): ` +
        `a worker that drains the old way (stop, terminate, fewer workers, ${which}) can be cut by SIGTERM ` +
        `while nginx may still use its connections; raise shutdownTimeout above ${config.upstreamKeepaliveTimeout} (docs/lifecycle.md#draining-and-escalation)`,
    );
  }
  return findings;
}

/** Whether nginx's user (see nginx-user.ts) can reach the sockets; nothing when no nginx is known. */
export function checkNginx(config: Config, options: { nginxUser?: string; nginxConf?: string }): Finding[] {
  const nginx = findNginxUser(options, config.tmpDir);
  return nginx ? checkNginxAccess(nginx, config) : [];
}

/** The status of this app's running daemon, or null when none answers. */
export function runningDaemon(config: Config): Promise<DaemonStatus | null> {
  return request(config.ipcFile, 'status', undefined, { timeoutMs: 3_000 }).catch(() => null);
}

/**
 * The dev server's and the metrics' TCP ports, bound and closed: one the daemon cannot bind is a
 * warning (the daemon logs it and runs without that listener). Not checked while this app's
 * daemon runs: it holds them itself.
 */
export async function checkPorts(config: Config, running: DaemonStatus | null): Promise<Finding[]> {
  if (running) return [];
  const ports: { what: string; host: string; port: number }[] = [];
  if (config.devServer !== false)
    ports.push({ what: 'devServer', host: '127.0.0.1', port: config.devServer });
  if (config.metrics !== false) {
    const address = lazy.metrics().metricsAddress(config.metrics, config.tmpDir);
    if ('port' in address) ports.push({ what: `metrics ${config.metrics}`, ...address });
  }
  const findings: Finding[] = [];
  for (const { what, host, port } of ports) {
    const err = await tryBind(host, port);
    if (!err) continue;
    const why = err.code === 'EADDRINUSE' ? `port ${port} is in use by another process` : err.message;
    findings.push({
      level: 'warning',
      message: `${what}: the daemon cannot listen on ${host}:${port} (${why}); it would run without it`,
    });
  }
  return findings;
}

/**
 * What `check` says about the `listen` entries, one line each naming the entry: the host must
 * be an address of this host (bound on port 0 and closed); a port in use is a warning unless
 * this app's running daemon holds it; the TLS files must be readable PEM with the key matching
 * the certificate, and an expired certificate is a warning with its date; a key other users can
 * read is an error (every user) or a warning (its group).
 */
export async function checkListen(config: Config, running: DaemonStatus | null): Promise<Finding[]> {
  if (config.listen.length === 0) return [];
  const findings: Finding[] = [];
  const daemonPorts = new Set((running?.front?.addresses ?? []).map((a) => Number(/:(\d+)$/.exec(a)?.[1])));
  for (const entry of config.listen) {
    const where = entryLabel(entry);
    const hostProblem = await tryBind(entry.host, 0);
    if (hostProblem) {
      findings.push({ level: 'error', message: `${where}: ${describeBindError(entry, hostProblem, true)}` });
    } else if (entry.port !== 0 && !daemonPorts.has(entry.port)) {
      const portProblem = await tryBind(entry.host, entry.port);
      if (portProblem) {
        const inUse = portProblem.code === 'EADDRINUSE';
        findings.push({
          level: inUse ? 'warning' : 'error',
          message: `${where}: ${describeBindError(entry, portProblem, false)}`,
        });
      }
    }
    if (entry.tls) {
      const reading = readTlsEntry({ ...entry, tls: entry.tls });
      for (const message of reading.errors) findings.push({ level: 'error', message });
      for (const message of reading.warnings) findings.push({ level: 'warning', message });
      const exposed = keyModeProblem({ ...entry, tls: entry.tls });
      if (exposed) findings.push(exposed);
    }
  }
  return findings;
}

function tryBind(host: string, port: number): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

function describeBindError(entry: ListenEntry, err: NodeJS.ErrnoException, hostOnly: boolean): string {
  switch (err.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return `host ${entry.host} does not resolve`;
    case 'EADDRNOTAVAIL':
      return `${entry.host} is not an address of this host`;
    case 'EADDRINUSE':
      return `port ${entry.port} is in use by another process (not this app's running daemon): the daemon cannot listen there while it is`;
    case 'EACCES':
      return hostOnly
        ? `cannot listen on ${entry.host}: permission denied`
        : `port ${entry.port} needs root or CAP_NET_BIND_SERVICE`;
    default:
      return `cannot listen on ${entry.host}${hostOnly ? '' : ` port ${entry.port}`}: ${err.message}`;
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
