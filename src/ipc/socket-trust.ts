/**
 * Whether a client may talk to the control socket at a path. A socket of this user is trusted
 * anywhere (no one else can make one). One of another user (the app user, for root's CLI; root)
 * only where that user's hold on the place is proven: every directory from it up to `/` owned
 * by root or that user, and writable by no one else (group or others, sticky bit or not).
 * Otherwise anyone who can write one of those directories could have put it there (a tmpDir in
 * /tmp removed, and its name taken by another user: red team 3, finding 4) and would read the
 * operator's commands and forge the daemon's answers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { accountName } from '../accounts';

/** Longest path a UNIX socket address holds (sun_path, with its NUL). */
const SUN_PATH_MAX = 107;

function who(uid: number): string {
  const name = accountName('/etc/passwd', uid);
  return name === String(uid) ? `uid ${uid}` : `${name} (uid ${uid})`;
}

/** Why `dir` does not prove that `owner` put the socket there, or null. */
function dirDoubt(dir: string, owner: number): string | null {
  const stat = fs.statSync(dir);
  if (stat.uid !== 0 && stat.uid !== owner) return `${dir} belongs to ${who(stat.uid)}`;
  const mode = stat.mode & 0o7777;
  if (mode & 0o022) return `${dir} can be written by other users (mode ${mode.toString(8).padStart(4, '0')})`;
  return null;
}

/**
 * The path to connect to (symlinks resolved, so none can be swapped after this check), or a
 * one-line error naming the socket, its owner, the directory that breaks the proof, and the fix.
 * A socket that is not there is left to the connect to report.
 */
export function trustedSocketPath(ipcPath: string, uid = process.getuid?.() ?? -1): string {
  let real: string;
  let stat: fs.Stats;
  try {
    real = fs.realpathSync(ipcPath);
    stat = fs.statSync(real);
  } catch {
    return ipcPath;
  }
  const target = Buffer.byteLength(real) <= SUN_PATH_MAX ? real : ipcPath;
  if (uid < 0 || stat.uid === uid) return target;
  for (let dir = path.dirname(real); ; dir = path.dirname(dir)) {
    const doubt = dirDoubt(dir, stat.uid);
    if (doubt) {
      throw new Error(
        `refusing the control socket ${ipcPath}: it belongs to ${who(stat.uid)}, and ${doubt}, so anyone could have put it there; ` +
          `keep tmpDir in a directory only root and the app user can write (/run/<app>, systemd RuntimeDirectory=), or run this command as ${accountName('/etc/passwd', stat.uid)}`,
      );
    }
    if (path.dirname(dir) === dir) return target;
  }
}
