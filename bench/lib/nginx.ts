/**
 * A real nginx in front of each contender, configured the way the README tells operators:
 * upstream keepalive, HTTP/1.1 to the upstream, `Connection ""`. As root its workers run as
 * nobody, so nodesockd's SETGID socket-directory model is exercised for real.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { type Child, type Run, sleep } from './run';

const CANDIDATES = [
  '/usr/sbin/nginx',
  '/usr/local/sbin/nginx',
  '/usr/local/nginx/sbin/nginx',
  '/usr/bin/nginx',
];

export const NGINX_BIN: string | undefined =
  CANDIDATES.find((p) => fs.existsSync(p)) ??
  (spawnSync('sh', ['-c', 'command -v nginx']).stdout?.toString().trim() || undefined);

export const isRoot = process.getuid?.() === 0;
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

/** The socket directory as the docs set it up: app user, nginx's group, SETGID, mode 2750. */
export function prepareSocketDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  if (isRoot) fs.chownSync(dir, 0, groupId(NGINX_GROUP));
  fs.chmodSync(dir, 0o2750);
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** One request; resolves with the status, or undefined when it could not be made. */
export function probe(port: number, method = 'GET'): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path: '/', agent: false, timeout: 2000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Polls `check` every 50 ms until it is true; throws after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export interface NginxOptions {
  /** `unix:/path` or `127.0.0.1:port` entries of the upstream. */
  upstreams: string[];
  keepaliveSeconds: number;
  /** Idle upstream connections each nginx worker caches (`keepalive N`). */
  keepaliveConnections: number;
  workerProcesses: number;
}

export class Nginx {
  private constructor(
    private readonly child: Child,
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(run: Run, dir: string, options: NginxOptions): Promise<Nginx> {
    if (!NGINX_BIN) throw new Error('nginx is not installed (apt-get install nginx)');
    fs.mkdirSync(dir, { recursive: true });
    fs.chmodSync(dir, 0o755);
    const temp = path.join(dir, 'temp');
    fs.mkdirSync(temp, { mode: 0o777 });
    fs.chmodSync(temp, 0o777);
    const port = await freePort();
    const conf = `${isRoot ? `user ${NGINX_USER} ${NGINX_GROUP};` : ''}
worker_processes ${options.workerProcesses};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${temp}/body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  upstream app {
${options.upstreams.map((s) => `    server ${s} max_fails=0;`).join('\n')}
    keepalive ${options.keepaliveConnections};
    keepalive_timeout ${options.keepaliveSeconds}s;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
      # Lets the wrk script count failures by method, nginx's own 502 pages included.
      add_header X-Method $request_method always;
    }
  }
}
`;
    const confFile = path.join(dir, 'nginx.conf');
    fs.writeFileSync(confFile, conf);
    const errorLog = path.join(dir, 'error.log');
    const child = run.spawn(NGINX_BIN, ['-p', dir, '-c', confFile, '-e', errorLog, '-g', 'daemon off;'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const nginx = new Nginx(child, port, dir);
    await waitFor('nginx to answer', async () => {
      if (child.proc.exitCode !== null) throw new Error(`nginx exited: ${nginx.errorLog()}`);
      return (await probe(port)) !== undefined;
    });
    return nginx;
  }

  errorLog(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** `[error]` lines of the error log, grouped by message with addresses and numbers stripped. */
  errorSummary(): Map<string, number> {
    const out = new Map<string, number>();
    for (const line of this.errorLog().split('\n')) {
      const m = /\[(error|crit|alert|emerg)\] \d+#\d+: (?:\*\d+ )?(.*?)(?:, client: .*)?$/.exec(line);
      if (!m) continue;
      const method = /request: "(\w+) /.exec(line)?.[1];
      const message = `${m[2]!
        .replace(/unix:\S+/g, 'unix:…')
        .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:…')
        .replace(/\s+$/, '')}${method ? ` [${method}]` : ''}`;
      out.set(message, (out.get(message) ?? 0) + 1);
    }
    return out;
  }

  /** Fast shutdown (the load has stopped): closes every connection, upstream ones included. */
  async stop(): Promise<void> {
    await this.child.stop('SIGTERM', 5000);
  }
}
