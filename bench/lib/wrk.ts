/** wrk at saturation with the GET/POST script, and its one-line JSON report. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Run } from './run';

export const WRK_BIN: string | undefined =
  ['/usr/bin/wrk', '/usr/local/bin/wrk'].find((p) => fs.existsSync(p)) ??
  (spawnSync('sh', ['-c', 'command -v wrk']).stdout?.toString().trim() || undefined);

export const WRK_SCRIPT = path.join(__dirname, 'mixed-get-post.lua');

export interface WrkResult {
  requests: number;
  durationUs: number;
  /** Responses with a status > 399 (wrk's "Non-2xx or 3xx responses"). */
  status: number;
  connect: number;
  read: number;
  write: number;
  timeout: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  /** Status failures by method (from the X-Method header nginx adds). */
  failedGet: number;
  failedPost: number;
}

export interface WrkOptions {
  port: number;
  threads: number;
  connections: number;
  seconds: number;
  timeoutSeconds: number;
  /** `Connection: close` on every request: a new connection per request. */
  close?: boolean;
}

export function socketErrors(r: WrkResult): number {
  return r.connect + r.read + r.write + r.timeout;
}

export function failed(r: WrkResult): number {
  return r.status + socketErrors(r);
}

export async function runWrk(run: Run, o: WrkOptions): Promise<WrkResult> {
  if (!WRK_BIN) throw new Error('wrk is not installed (apt-get install wrk)');
  const child = run.spawn(
    WRK_BIN,
    [
      `-t${o.threads}`,
      `-c${o.connections}`,
      `-d${o.seconds}s`,
      `--timeout`,
      `${o.timeoutSeconds}s`,
      '-s',
      WRK_SCRIPT,
      `http://127.0.0.1:${o.port}/`,
      ...(o.close ? ['--', 'close'] : []),
    ],
    // Its own session (one scheduling group under autogroup), like nginx: the load generator
    // stands for remote clients and must not share a group with the app processes it loads.
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let out = '';
  child.proc.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.proc.stderr!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const exit = await child.exited;
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk gave no result (exit ${exit.code ?? exit.signal}):\n${out}`);
  const j = JSON.parse(line.slice('WRK_JSON '.length)) as Record<string, number>;
  const n = (key: string): number => j[key] ?? 0;
  return {
    requests: n('requests'),
    durationUs: n('duration_us'),
    status: n('status'),
    connect: n('connect'),
    read: n('read'),
    write: n('write'),
    timeout: n('timeout'),
    p50Us: n('p50_us'),
    p99Us: n('p99_us'),
    maxUs: n('max_us'),
    failedGet: n('failed_get'),
    failedPost: n('failed_post'),
  };
}
