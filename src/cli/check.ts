import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema';
import { type DirFinding, inspectIpcDir, inspectTmpDir } from '../daemon/tmpdir';

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

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
