import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema';

export interface Finding {
  level: 'error' | 'warning';
  message: string;
}

/** What `nodesockd check` reports about a config and the directories it names (SPEC §4.10). */
export function checkSetup(config: Config): Finding[] {
  const findings: Finding[] = [];
  const error = (message: string) => findings.push({ level: 'error', message });
  const warn = (message: string) => findings.push({ level: 'warning', message });

  if (!fs.existsSync(config.script)) error(`script ${config.script} does not exist`);
  if (!isDir(config.cwd)) error(`cwd ${config.cwd} is not a directory`);
  if (!isDir(path.dirname(config.ipcFile)))
    error(`the directory of ipcFile ${config.ipcFile} does not exist`);

  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(config.tmpDir);
  } catch {
    error(`tmpDir ${config.tmpDir} does not exist (create it: see docs/permissions.md)`);
  }
  if (stat && !stat.isDirectory()) error(`tmpDir ${config.tmpDir} is not a directory`);
  if (stat?.isDirectory()) {
    try {
      fs.accessSync(config.tmpDir, fs.constants.W_OK | fs.constants.X_OK);
    } catch {
      error(`tmpDir ${config.tmpDir} is not writable by this user`);
    }
    const mode = stat.mode & 0o7777;
    const octal = mode.toString(8).padStart(4, '0');
    if (mode & 0o002) {
      warn(
        `tmpDir ${config.tmpDir} is world-writable (mode ${octal}): anyone could replace the sockets; use 2750`,
      );
    } else if (mode & 0o005) {
      warn(
        `tmpDir ${config.tmpDir} is accessible to others (mode ${octal}); only the nginx group needs it: use 2750`,
      );
    }
    if (!(mode & 0o2000)) {
      warn(
        `tmpDir ${config.tmpDir} has no SETGID bit (mode ${octal}): sockets get the app user's group, ` +
          "so nginx can reach them only if it is in that group (chgrp the dir to nginx's group and chmod g+s)",
      );
    }
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
