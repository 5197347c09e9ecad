import http from 'node:http';
import { httpRequest } from './http';

export interface Load {
  /** Requests answered 200 so far. */
  readonly ok: () => number;
  /** Stops the clients and returns the failures (non-200 answers and connection errors). */
  stop(): Promise<{ ok: number; failed: string[] }>;
}

/**
 * Keeps `concurrency` keep-alive clients busy through nginx, alternating GET and POST, until
 * stopped. POST matters: nginx does not retry it on another upstream, so a lost POST shows.
 */
export function startLoad(port: number, concurrency = 4, maxMs = 120_000): Load {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let stopped = false;
  // Bounded even if a test fails before it calls stop().
  const deadline = setTimeout(() => {
    stopped = true;
  }, maxMs);
  deadline.unref();
  let ok = 0;
  const failed: string[] = [];
  const clients = Promise.all(
    Array.from({ length: concurrency }, async (_, n) => {
      for (let i = 0; !stopped; i++) {
        const post = (i + n) % 2 === 0;
        try {
          const res = await httpRequest(
            { port },
            post ? { method: 'POST', body: `payload ${n}/${i}`, agent } : { agent },
          );
          if (res.status === 200) ok++;
          else failed.push(`${post ? 'POST' : 'GET'} HTTP ${res.status}`);
        } catch (err) {
          failed.push(`${post ? 'POST' : 'GET'} ${(err as Error).message}`);
        }
      }
    }),
  );
  return {
    ok: () => ok,
    async stop() {
      stopped = true;
      clearTimeout(deadline);
      await clients;
      agent.destroy();
      return { ok, failed };
    },
  };
}
