import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { httpRequest } from './http';
import { waitFor } from './wait';

const CANDIDATES = [
  '/usr/sbin/nginx',
  '/usr/local/sbin/nginx',
  '/usr/local/nginx/sbin/nginx',
  '/usr/bin/nginx',
];

/** The nginx binary, or undefined when it is not installed (the nginx tests then skip, loudly). */
export const NGINX_BIN: string | undefined =
  CANDIDATES.find((p) => fs.existsSync(p)) ??
  (spawnSync('sh', ['-c', 'command -v nginx']).stdout?.toString().trim() || undefined);

/** nginx's upstream keepalive_timeout in the tests; configs pass it as upstreamKeepaliveTimeout. */
export const KEEPALIVE_SECONDS = 2;

export const isRoot = process.getuid?.() === 0;

/** The unprivileged user and group nginx's workers run as when the tests run as root. */
export const NGINX_USER = 'nobody';
export const NGINX_GROUP = fs.readFileSync('/etc/group', 'utf8').includes('\nnogroup:')
  ? 'nogroup'
  : 'nobody';

function groupId(name: string): number {
  const line = fs
    .readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no group ${name}`);
  return Number(line.split(':')[2]);
}

/**
 * Sets up tmpDir the way the docs tell operators to: owned by the app user, group of nginx,
 * SETGID, no access for others. As root the nginx workers run as nobody, so this is what
 * actually lets them reach the sockets.
 */
export function prepareSocketDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  if (isRoot) fs.chownSync(dir, 0, groupId(NGINX_GROUP));
  fs.chmodSync(dir, 0o2750);
  // nobody must be able to traverse the parents too.
  for (let p = path.dirname(dir); p !== '/'; p = path.dirname(p)) {
    const mode = fs.statSync(p).mode;
    if ((mode & 0o001) === 0) fs.chmodSync(p, (mode & 0o7777) | 0o001);
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

export interface NginxConfOptions {
  port: number;
  /** Upstream server addresses, e.g. `unix:/run/app/app.0.sock` or `127.0.0.1:3000`. */
  upstreams: string[];
  keepaliveConnections?: number;
  keepaliveSeconds?: number;
  workerProcesses?: number;
  workerConnections?: number;
  /** Extra directives for the proxied location. */
  locationExtra?: string;
  /** `max_fails` of each upstream server (default 0); null leaves it out (nginx's default, 1). */
  maxFails?: number | null;
  /** Extra directives for the upstream block (e.g. `keepalive_requests 100000;`). */
  upstreamExtra?: string;
  /** Extra directives for the server block (another location). */
  serverExtra?: string;
  /** A whole site (upstream and server, as `nodesockd nginx` prints it) instead of the one made here. */
  site?: string;
}

/**
 * Writes `<dir>/nginx.conf` the way the docs tell operators to proxy to nodesockd (upstream
 * keepalive, HTTP/1.1, `Connection ""`), with its pid, logs and temp files inside `dir`; as
 * root, nginx's workers run unprivileged. Returns the file's path. Shared with bench/.
 */
export function writeNginxConf(dir: string, o: NginxConfOptions): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o755);
  const temp = path.join(dir, 'temp');
  fs.mkdirSync(temp, { recursive: true, mode: 0o777 });
  fs.chmodSync(temp, 0o777);
  const conf = `${isRoot ? `user ${NGINX_USER} ${NGINX_GROUP};` : ''}
worker_processes ${o.workerProcesses ?? 1};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections ${o.workerConnections ?? 1024}; }
http {
  access_log off;
  client_body_temp_path ${temp}/body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
${
  o.site ??
  `  upstream app {
${o.upstreams.map((s) => `    server ${s}${o.maxFails === null ? '' : ` max_fails=${o.maxFails ?? 0}`};`).join('\n')}
    keepalive ${o.keepaliveConnections ?? 16};
    keepalive_timeout ${o.keepaliveSeconds ?? KEEPALIVE_SECONDS}s;${o.upstreamExtra ? `\n    ${o.upstreamExtra}` : ''}
  }
  server {
    listen 127.0.0.1:${o.port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;${o.locationExtra ? `\n      ${o.locationExtra}` : ''}
    }${o.serverExtra ? `\n    ${o.serverExtra}` : ''}
  }`
}
}
`;
  const file = path.join(dir, 'nginx.conf');
  fs.writeFileSync(file, conf);
  return file;
}

export class Nginx {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly dir: string,
    private readonly exited: Promise<void>,
  ) {}

  /** Starts a real nginx proxying to the given UNIX sockets with upstream keepalive. */
  static async start(
    dir: string,
    sockets: string[],
    options: Omit<NginxConfOptions, 'port' | 'upstreams'> & { port?: number } = {},
  ): Promise<Nginx> {
    if (!NGINX_BIN) throw new Error('nginx is not installed');
    const port = options.port ?? (await freePort());
    const conf = writeNginxConf(dir, { ...options, port, upstreams: sockets.map((s) => `unix:${s}`) });
    const child = spawn(
      NGINX_BIN,
      ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const nginx = new Nginx(child, port, dir, exited);
    await waitFor('nginx to listen', async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${nginx.errorLog()}`);
      return (await httpRequest({ port }).catch(() => undefined)) !== undefined;
    });
    return nginx;
  }

  /**
   * The UNIX sockets nginx's processes hold now (their inodes): its upstream connections to
   * the workers, and its own channels. The same set before and after a deploy means nginx
   * kept every upstream connection.
   */
  unixSocketInodes(): Set<string> {
    const unix = new Set(
      fs
        .readFileSync('/proc/net/unix', 'utf8')
        .split('\n')
        .slice(1)
        .map((line) => line.trim().split(/\s+/)[6])
        .filter((inode): inode is string => inode !== undefined),
    );
    const pids = [String(this.child.pid)];
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const ppid = /^PPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1];
        if (ppid === String(this.child.pid)) pids.push(entry);
      } catch {
        // Gone meanwhile.
      }
    }
    const held = new Set<string>();
    for (const pid of pids) {
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        try {
          const inode = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
          if (inode && unix.has(inode)) held.add(inode);
        } catch {
          // Closed meanwhile.
        }
      }
    }
    return held;
  }

  errorLog(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) this.child.kill('SIGQUIT');
    await this.exited;
  }
}
