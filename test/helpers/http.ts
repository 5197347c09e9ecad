import http from 'node:http';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type Target = { socketPath: string } | { port: number };

/** One HTTP request over a UNIX socket or to 127.0.0.1:port. */
export function httpRequest(
  target: Target,
  options: {
    path?: string;
    method?: string;
    body?: string;
    agent?: http.Agent;
    headers?: http.OutgoingHttpHeaders;
  } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...('socketPath' in target
          ? { socketPath: target.socketPath }
          : { host: '127.0.0.1', port: target.port }),
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        agent: options.agent ?? false,
        headers: options.headers,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export async function getJson<T = Record<string, unknown>>(target: Target, path = '/'): Promise<T> {
  const res = await httpRequest(target, { path });
  if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status}: ${res.body}`);
  return JSON.parse(res.body) as T;
}

/** `http.request` or `https.request`. */
type RequestFn = (
  options: http.RequestOptions,
  callback: (res: http.IncomingMessage) => void,
) => http.ClientRequest;

/**
 * One GET on a kept-alive agent to a UNIX socket: the JSON body, the headers, and the client's
 * socket (the same object: the same connection).
 */
export function getOn<T>(
  request: RequestFn,
  agent: http.Agent,
  socketPath: string,
): Promise<{ body: T; headers: http.IncomingHttpHeaders; socket: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, agent, path: '/' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ body: JSON.parse(text) as T, headers: res.headers, socket: req.socket }));
    });
    req.on('error', reject);
    req.end();
  });
}
