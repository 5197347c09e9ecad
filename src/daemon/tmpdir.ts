import fs from 'node:fs';
import path from 'node:path';
import { accountName } from '../accounts';

/**
 * Whether the directories the daemon writes its sockets, lock and state file into are safe:
 * one policy, used by the daemon at start (it refuses on an error) and by `nodesockd check`.
 *
 * The model (docs/permissions.md) is `2750 app:nginx`: only the app user creates, renames and
 * removes files; nginx's group traverses and connects. Anyone else who can write the directory
 * can replace a published socket, plant a state file the next daemon adopts, or a symlink at a
 * name the daemon is about to write. So group or other write permission is refused, with or
 * without the sticky bit (sticky stops removal, not planting a name before the daemon uses it),
 * and so is a directory owned by another user (its owner can chmod it back at any time).
 */
export interface DirFinding {
  level: 'error' | 'warning';
  message: string;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** The findings for `tmpDir`, as the user running this process (`uid`). */
export function inspectTmpDir(dir: string, uid = process.getuid?.() ?? -1): DirFinding[] {
  const findings: DirFinding[] = [];
  const error = (message: string) => findings.push({ level: 'error', message });
  const warn = (message: string) => findings.push({ level: 'warning', message });
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    error(
      `tmpDir ${dir} does not exist; create it: install -d -o <app user> -g <nginx group> -m 2750 ${dir} (see docs/permissions.md)`,
    );
    return findings;
  }
  if (!stat.isDirectory()) {
    error(`tmpDir ${dir} is not a directory`);
    return findings;
  }
  const mode = stat.mode & 0o7777;
  const unsafe = writableByOthers(dir, stat, uid);
  if (unsafe) error(unsafe);
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    error(`tmpDir ${dir} is not writable by this user (uid ${uid})`);
  }
  if (!unsafe && mode & 0o005) {
    warn(
      `tmpDir ${dir} is accessible to others (mode ${octal(mode)}); only the nginx group needs it: chmod o-rwx ${dir}`,
    );
  }
  if (!(mode & 0o2000)) {
    warn(
      `tmpDir ${dir} has no SETGID bit (mode ${octal(mode)}): sockets get the app user's group, ` +
        "so nginx can reach them only if it is in that group (chgrp the dir to nginx's group and chmod g+s)",
    );
  }
  return findings;
}

/**
 * The findings for the directory of `ipcFile` when it is not `tmpDir`: the lock and the state
 * file live next to the control socket, so the same write rule applies.
 */
export function inspectIpcDir(ipcFile: string, tmpDir: string, uid = process.getuid?.() ?? -1): DirFinding[] {
  const dir = path.dirname(ipcFile);
  if (path.resolve(dir) === path.resolve(tmpDir)) return [];
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    return [{ level: 'error', message: `the directory of ipcFile ${ipcFile} does not exist` }];
  }
  const unsafe = writableByOthers(dir, stat, uid, `the directory of ipcFile ${ipcFile}`);
  return unsafe ? [{ level: 'error', message: unsafe }] : [];
}

/** The error for an existing directory someone else can write (null when it is safe, or missing). */
export function dirProblem(dir: string, uid = process.getuid?.() ?? -1): string | null {
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  return stat ? writableByOthers(dir, stat, uid, `the directory ${dir}`) : null;
}

/** The error for a directory that someone other than `uid` (and root) can write, or null. */
function writableByOthers(dir: string, stat: fs.Stats, uid: number, what = `tmpDir ${dir}`): string | null {
  const mode = stat.mode & 0o7777;
  const who = [mode & 0o020 ? 'its group' : '', mode & 0o002 ? 'everyone' : ''].filter(Boolean).join(' and ');
  if (who) {
    const fix = mode & 0o002 ? 'g-w,o-w' : 'g-w';
    const sticky = mode & 0o1000 ? ' (the sticky bit does not prevent that)' : '';
    return (
      `${what} is writable by ${who} (mode ${octal(mode)}): they could replace the sockets or plant ` +
      `the state file${sticky}; run: chmod ${fix} ${dir}`
    );
  }
  if (stat.uid !== uid && stat.uid !== 0) {
    // As root, the fix is to run as the directory's owner, not to give the directory to root.
    const owner = accountName('/etc/passwd', stat.uid);
    const fix =
      uid === 0
        ? `run the daemon as its owner ${owner}, not as root (runuser -u ${owner} -- npx nodesockd daemon, or User=${owner} in its systemd unit, as nodesockd systemd run as root writes it)`
        : `run: chown ${uid} ${dir}`;
    return `${what} belongs to uid ${stat.uid}, not to this user (uid ${uid}) or root; ${fix}`;
  }
  return null;
}
