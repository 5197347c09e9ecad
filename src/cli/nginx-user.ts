import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { listPids } from '../daemon/proc';

/**
 * Which user nginx runs its workers as, for `check` (docs/permissions.md#what-check-proves):
 * `--nginx-user`, else the `user` line of `--nginx-conf`, else of `nginx -T` for the nginx that
 * runs on this host (with its own `-p`/`-c`), else of /etc/nginx/nginx.conf; null when none of
 * these exists (no nginx here: an nginx in another container is named with `--nginx-user`).
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

/** A running nginx master: its binary and the `-p`/`-c`/`-e` options it was started with. */
interface Master {
  bin: string;
  args: string[];
}

/**
 * The nginx masters running on this host (any user's: /proc shows every process's name; the
 * master's process title keeps its command line: `nginx: master process nginx -c /etc/…`).
 */
function runningMasters(): Master[] {
  const masters: Master[] = [];
  for (const pid of listPids()) {
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'nginx') continue;
      const title = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (!title.startsWith('nginx: master process')) continue;
      const args = ['-p', '-c', '-e'].flatMap((flag) => {
        const m = new RegExp(`\\s${flag}\\s+(\\S+)`).exec(title);
        return m ? [flag, m[1]!] : [];
      });
      let bin = 'nginx';
      try {
        bin = fs.readlinkSync(`/proc/${pid}/exe`);
      } catch {
        // Another user's process: the nginx on PATH.
      }
      masters.push({ bin, args });
    } catch {
      // Gone meanwhile.
    }
  }
  return masters;
}

/** `nginx -T`: the whole config, includes and all, or null when it cannot run or the test fails. */
function nginxDump(master: Master): string | null {
  try {
    return execFileSync(master.bin, ['-T', ...master.args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
  } catch {
    return null;
  }
}

/**
 * The running nginx that serves this app: the one whose config names `tmpDir`, else the only
 * one; null when none runs, none can be read, or several run and none names it.
 */
function runningNginx(tmpDir: string): NginxUser | null {
  const dumps = runningMasters().flatMap((master) => {
    const text = nginxDump(master);
    return text === null ? [] : [{ master, text }];
  });
  const serving = dumps.find((d) => d.text.includes(tmpDir)) ?? (dumps.length === 1 ? dumps[0] : undefined);
  if (!serving) return null;
  return fromText(
    serving.text,
    `\`nginx -T${serving.master.args.map((a) => ` ${a}`).join('')}\` (the running nginx)`,
  );
}

export function findNginxUser(
  options: { nginxUser?: string; nginxConf?: string },
  tmpDir: string,
): NginxUser | null {
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
  const running = runningNginx(tmpDir);
  if (running) return running;
  if (fs.existsSync(DEFAULT_NGINX_CONF)) {
    try {
      return fromText(fs.readFileSync(DEFAULT_NGINX_CONF, 'utf8'), DEFAULT_NGINX_CONF);
    } catch {
      return null;
    }
  }
  return null;
}
