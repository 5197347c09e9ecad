/**
 * A real nginx in front of each contender, configured the way the README tells operators:
 * upstream keepalive, HTTP/1.1 to the upstream, `Connection ""`. As root its workers run as
 * nobody, so nodesockd's SETGID socket-directory model is exercised for real.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
// Finding nginx, its unprivileged user and group, the SETGID socket directory and a free port
// are the same as in the tests: one harness for both.
import { freePort, NGINX_BIN, writeNginxConf } from '../../test/helpers/nginx';
import { type Child, type Run, sleep } from './run';

export { freePort, NGINX_BIN, prepareSocketDir } from '../../test/helpers/nginx';

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
  /**
   * Idle upstream connections each nginx worker caches (`keepalive N`); 0 = no upstream
   * keepalive: nginx closes each upstream connection after its response.
   */
  keepaliveConnections: number;
  workerProcesses: number;
  /** `max_fails` of the upstream servers (0); null leaves it out (nginx's default, 1). */
  maxFails?: number | null;
}

export class Nginx {
  private constructor(
    private readonly child: Child,
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(run: Run, dir: string, options: NginxOptions): Promise<Nginx> {
    if (!NGINX_BIN) throw new Error('nginx is not installed (apt-get install nginx)');
    const port = await freePort();
    const confFile = writeNginxConf(dir, {
      port,
      upstreams: options.upstreams,
      keepaliveConnections: Math.max(1, options.keepaliveConnections),
      keepaliveSeconds: options.keepaliveSeconds,
      workerProcesses: options.workerProcesses,
      maxFails: options.maxFails,
      workerConnections: 4096,
      // Lets the wrk script count failures by method, nginx's own 502 pages included.
      locationExtra: 'add_header X-Method $request_method always;',
    });
    if (options.keepaliveConnections === 0) {
      // nginx has no `keepalive 0`: without the directives it caches no upstream connection.
      const conf = fs.readFileSync(confFile, 'utf8').replace(/^\s*keepalive(_timeout)? \S+;\n/gm, '');
      fs.writeFileSync(confFile, conf);
    }
    const errorLog = path.join(dir, 'error.log');
    const child = run.spawn(NGINX_BIN, ['-p', dir, '-c', confFile, '-e', errorLog, '-g', 'daemon off;'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      // Its own session, as a daemonized nginx in production: with the kernel's autogroup
      // scheduling (kernel.sched_autogroup_enabled=1, processes in the root cpu cgroup) each
      // session is one scheduling group, and nginx sharing the bench's group with wrk got a
      // fraction of the CPU that depended on how many sessions the contender's workers used.
      detached: true,
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
