import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { accountName, groupId } from '../accounts';
import type { Config } from '../config/schema';
import type { DirFinding } from '../daemon/tmpdir';
import type { NginxUser } from './nginx-user';

/**
 * Whether nginx's user can reach the sockets, as the kernel decides it (docs/permissions.md):
 * search permission on every directory from / to tmpDir, and write permission on each socket
 * (connect() needs it). The sockets that exist are checked as they are; before the daemon has
 * made any, the ones it will make (the directory's group when it has the SETGID bit, else this
 * user's; the mode the umask leaves). Owner, then group, then other bits, as the kernel reads
 * them; ACLs are not read. One finding at most for the path and one for the sockets.
 */
interface Account {
  /** `nginx's user www-data (uid 33, groups www-data; the user line of …)`. */
  label: string;
  uid: number;
  gids: number[];
  /** The group to give tmpDir (a name, or a gid). */
  group: string;
}

type Owned = Pick<fs.Stats, 'uid' | 'gid' | 'mode'>;

function ids(flag: string, user: string): number[] {
  return execFileSync('id', [flag, user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    .trim()
    .split(/\s+/)
    .map(Number);
}

/** The account of nginx's workers, or the one-line reason it is unknown. */
function account(nginx: NginxUser): Account | string {
  let uid: number;
  let gids: number[];
  let primary: number | undefined;
  const numeric = /^(\d+)(?::(\d+(?:,\d+)*))?$/.exec(nginx.user);
  if (numeric) {
    uid = Number(numeric[1]);
    gids = numeric[2]?.split(',').map(Number) ?? [];
    primary = gids[0];
  } else {
    try {
      uid = ids('-u', nginx.user)[0]!;
      gids = ids('-G', nginx.user);
      primary = ids('-g', nginx.user)[0];
    } catch {
      return (
        `nginx's user ${nginx.user} (${nginx.source}) does not exist on this host; for an nginx ` +
        'elsewhere (another container), give its ids: --nginx-user uid:gid (e.g. 101:101)'
      );
    }
    // nginx's workers take the group of the user line (by default the one named like the user).
    const named = groupId(nginx.group ?? nginx.user);
    if (named !== null) {
      gids = [named, ...gids.filter((g) => g !== named)];
      primary = named;
    }
  }
  const groups = gids.map((g) => accountName('/etc/group', g)).join(',') || 'none';
  const who = numeric ? `uid ${uid}` : `${nginx.user} (uid ${uid}`;
  return {
    label: `nginx's user ${who}${numeric ? ' (' : ', '}groups ${groups}; ${nginx.source})`,
    uid,
    gids,
    group: primary === undefined ? '<nginx group>' : accountName('/etc/group', primary),
  };
}

/** rwx bits of `a` on a file: the owner's, else the group's, else the others' (as the kernel). */
function bits(file: Owned, a: Account): number {
  if (file.uid === a.uid) return (file.mode >> 6) & 7;
  if (a.gids.includes(file.gid)) return (file.mode >> 3) & 7;
  return file.mode & 7;
}

function describe(file: Owned): string {
  const mode = (file.mode & 0o7777).toString(8).padStart(4, '0');
  return `mode ${mode}, ${accountName('/etc/passwd', file.uid)}:${accountName('/etc/group', file.gid)}`;
}

/** `/`, `/run`, `/run/app`: every directory nginx passes through to reach `dir`. */
function ancestors(dir: string): string[] {
  const parts = dir.split(path.sep).filter(Boolean);
  return ['/', ...parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`)];
}

export function checkNginxAccess(nginx: NginxUser, config: Config): DirFinding[] {
  const a = account(nginx);
  if (typeof a === 'string') return [{ level: 'error', message: a }];
  if (a.uid === 0) return [];
  let dir: string;
  try {
    dir = fs.realpathSync(config.tmpDir);
  } catch {
    return []; // tmpdir.ts says that it does not exist
  }
  const error = (message: string): DirFinding[] => [{ level: 'error', message }];
  const regroup = `chgrp ${a.group} ${config.tmpDir} && chmod 2750 ${config.tmpDir}`;
  for (const step of ancestors(dir)) {
    const stat = fs.statSync(step);
    if (bits(stat, a) & 1) continue;
    const fix = step === dir ? regroup : `chmod ${a.gids.includes(stat.gid) ? 'g' : 'o'}+x ${step}`;
    return error(
      `${a.label} cannot enter ${step} (${describe(stat)}), so nginx cannot reach the sockets in ` +
        `${config.tmpDir} (502, "13: Permission denied"); run: ${fix}`,
    );
  }
  const published = Array.from({ length: config.workers }, (_, i) =>
    path.join(config.tmpDir, config.socketFile.replace('{worker}', String(i))),
  ).filter((p) => fs.existsSync(p));
  for (const link of published) {
    const socket = fs.statSync(link);
    if (bits(socket, a) & 2) continue;
    const fix = a.gids.includes(socket.gid)
      ? `the umask leaves no group write: set umask: "007", then nodesockd restart`
      : `${regroup}, then nodesockd restart (new sockets take the directory's group)`;
    return error(`${a.label} cannot connect to ${link} (${describe(socket)}); run: ${fix}`);
  }
  if (published.length > 0) return [];
  // No socket yet: the ones the daemon will make.
  const stat = fs.statSync(dir);
  const setgid = (stat.mode & 0o2000) !== 0;
  const future: Owned = {
    uid: process.geteuid?.() ?? -1,
    gid: setgid ? stat.gid : (process.getegid?.() ?? -1),
    mode: 0o777 & ~config.umask,
  };
  if (bits(future, a) & 2) return [];
  const why = setgid ? "the directory's group" : "this user's group: tmpDir has no SETGID bit";
  return error(
    `${a.label} will not be able to connect to the sockets made in ${config.tmpDir}: they get ` +
      `${describe(future)} (${why}); run: ${regroup}`,
  );
}
