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
  const exposed = exposedParent(dir, `tmpDir ${dir}`);
  if (exposed) warn(exposed);
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
  const what = `the directory of ipcFile ${ipcFile}`;
  const unsafe = writableByOthers(dir, stat, uid, what);
  if (unsafe) return [{ level: 'error', message: unsafe }];
  const exposed = exposedParent(dir, what);
  return exposed ? [{ level: 'warning', message: exposed }] : [];
}

/**
 * The warning for a directory that lies in one other users can write (/tmp, /var/tmp, a shared
 * volume), sticky or not: once it is removed (a tmp cleaner, a reboot script), anyone can create
 * its name first, and the daemon's sockets and the CLI's control socket are theirs to serve.
 * Only the directory that holds it: a private directory between (mkdtemp's) is the operator's
 * choice, and the CLI's own check (ipc/socket-trust.ts) walks every level.
 */
function exposedParent(dir: string, what: string): string | null {
  let parent: string;
  let mode: number;
  try {
    parent = path.dirname(fs.realpathSync(dir));
    mode = fs.statSync(parent).mode & 0o7777;
  } catch {
    return null;
  }
  if (!(mode & 0o022)) return null;
  return (
    `${what} lies in ${parent}, which other users can write (mode ${octal(mode)}): if it is removed ` +
    `(a tmp cleaner, a reboot), anyone can create that name first and serve its sockets; use /run/<app> ` +
    `(systemd RuntimeDirectory=<app>) or a directory only root and the app user can write`
  );
}

/**
 * The error for an existing directory someone else can write (null when it is safe, or missing).
 * `retaken`: the daemon ran in it, so another owner took its name while it was gone.
 */
export function dirProblem(dir: string, uid = process.getuid?.() ?? -1, retaken = false): string | null {
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (!stat) return null;
  if (retaken && stat.uid !== uid && stat.uid !== 0) {
    return (
      `the directory ${dir} belongs to ${accountName('/etc/passwd', stat.uid)} (uid ${stat.uid}) now: another user took its name while it was gone; ` +
      `as root: rm -rf ${dir}, and keep it where only root and the app user can write (/run/<app>, see nodesockd check)`
    );
  }
  return writableByOthers(dir, stat, uid, `the directory ${dir}`);
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
