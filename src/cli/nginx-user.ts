import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * Which user nginx runs its workers as, for `check` (docs/permissions.md#checking-nginxs-access):
 * `--nginx-user`, else the `user` line of `--nginx-conf`, else of `nginx -T` when nginx runs on
 * this host, else of /etc/nginx/nginx.conf; null when none of these exists (no nginx here: an
 * nginx in another container is named with `--nginx-user`).
 */
export interface NginxUser {
  /** A user name, or `uid[:gid[,gid…]]` for a user this host does not know. */
  user: string;
  /** The group of the `user` line (nginx's default: the group named like the user). */
  group: string | null;
  /** Where it was read, for the message. */
  source: string;
}

export const DEFAULT_NGINX_CONF = '/etc/nginx/nginx.conf';
/** nginx's compiled-in default when the config has no `user` line (and the master runs as root). */
const NGINX_DEFAULT_USER = 'nobody';

/** The `user` directive of a config text (`user name [group];`), comments ignored; null without one. */
export function userDirective(text: string): { user: string; group: string | null } | null {
  for (const raw of text.split('\n')) {
    const m = /^user\s+([^\s;]+)(?:\s+([^\s;]+))?\s*;/.exec(raw.replace(/#.*/, '').trim());
    if (m) return { user: m[1]!, group: m[2] ?? null };
  }
  return null;
}

function fromText(text: string, source: string): NginxUser {
  const found = userDirective(text);
  return found
    ? { ...found, source: `the user line of ${source}` }
    : { user: NGINX_DEFAULT_USER, group: null, source: `${source} has no user line: nginx's default` };
}

/** Whether an nginx process runs on this host (any user's; /proc shows every process's name). */
function nginxRuns(): boolean {
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return false;
  }
  return pids.some((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'nginx';
    } catch {
      return false;
    }
  });
}

/** `nginx -T`: the whole config, includes and all, or null when it cannot run or the test fails. */
function nginxDump(): string | null {
  try {
    return execFileSync('nginx', ['-T'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
  } catch {
    return null;
  }
}

export function findNginxUser(options: { nginxUser?: string; nginxConf?: string }): NginxUser | null {
  if (options.nginxUser !== undefined)
    return { user: options.nginxUser, group: null, source: '--nginx-user' };
  if (options.nginxConf !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(options.nginxConf, 'utf8');
    } catch (err) {
      throw new Error(
        `--nginx-conf ${options.nginxConf}: cannot read it (${(err as NodeJS.ErrnoException).code})`,
      );
    }
    return fromText(text, options.nginxConf);
  }
  const dump = nginxRuns() ? nginxDump() : null;
  if (dump !== null) return fromText(dump, '`nginx -T`');
  if (fs.existsSync(DEFAULT_NGINX_CONF)) {
    try {
      return fromText(fs.readFileSync(DEFAULT_NGINX_CONF, 'utf8'), DEFAULT_NGINX_CONF);
    } catch {
      return null;
    }
  }
  return null;
}
