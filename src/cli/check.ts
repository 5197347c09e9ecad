import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Config, ListenEntry } from '../config/schema';
import { type DirFinding, inspectIpcDir, inspectTmpDir } from '../daemon/tmpdir';
import { entryLabel, keyModeProblem, readTlsEntry } from '../fronts/tls-material';
import { request } from '../ipc/client';

export type Finding = DirFinding;

/** What `nodesockd check` reports about a config and the directories it names (SPEC §4.10). */
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
  return findings;
}

/**
 * What `check` says about the `listen` entries, one line each naming the entry: the host must
 * be an address of this host (bound on port 0 and closed); a port in use is a warning unless
 * this app's running daemon holds it; the TLS files must be readable PEM with the key matching
 * the certificate, and an expired certificate is a warning with its date; a key other users can
 * read is an error (every user) or a warning (its group).
 */
export async function checkListen(config: Config): Promise<Finding[]> {
  if (config.listen.length === 0) return [];
  const findings: Finding[] = [];
  const running = await request(config.ipcFile, 'status', undefined, { timeoutMs: 3_000 }).then(
    (status) => status.front?.addresses ?? [],
    () => null,
  );
  const daemonPorts = new Set((running ?? []).map((a) => Number(/:(\d+)$/.exec(a)?.[1])));
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
