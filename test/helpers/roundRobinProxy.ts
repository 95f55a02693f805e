import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the proxy forwarded: where it went, and its body (to find a given call). */
export interface ProxiedRequest {
  method: string;
  path: string;
  /** Index of the target that answered (after skipping unreachable ones). */
  target: number;
  body: string;
  /** The Last-Event-ID header, when the request resumed a stream. */
  lastEventId?: string;
}

export interface RoundRobinProxy {
  url: string;
  /** Every request forwarded so far, oldest first. */
  log: ProxiedRequest[];
  close(): Promise<void>;
}

/**
 * A test load balancer with no stickiness at all: each HTTP request goes to the next target in
 * turn (with two targets: always the other pod than the previous request). A target that
 * refuses the connection (killed) is skipped for that request. Bodies are buffered (they are
 * small JSON-RPC messages); responses, SSE streams included, are piped as they come, and a
 * response cut by a dying target is cut for the client too.
 */
export async function startRoundRobinProxy(
  targets: string[],
  options: { defaultHeaders?: Record<string, string>; port?: number } = {},
): Promise<RoundRobinProxy> {
  if (targets.length === 0) throw new Error('startRoundRobinProxy: no targets');
  let next = 0;
  const log: ProxiedRequest[] = [];

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const first = next;
      next = (next + 1) % targets.length;
      forward(req, res, body, first, 0);
    });
  });

  function forward(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    body: Buffer,
    index: number,
    attempt: number,
  ): void {
    const target = new URL(targets[index]);
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        // defaultHeaders: what a remote connector adds (a configured Bearer token) when absent.
        headers: { ...options.defaultHeaders, ...req.headers, host: target.host },
        // A fresh connection per request: a killed target then refuses instead of resetting.
        agent: false,
      },
      (upRes) => {
        log.push({
          method: req.method ?? '',
          path: req.url ?? '',
          target: index,
          body: body.toString(),
          ...(typeof req.headers['last-event-id'] === 'string'
            ? { lastEventId: req.headers['last-event-id'] }
            : {}),
        });
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        res.flushHeaders();
        upRes.on('data', (chunk: Buffer) => res.write(chunk));
        upRes.on('end', () => res.end());
        upRes.on('error', () => res.destroy());
        upRes.on('aborted', () => res.destroy());
        res.on('close', () => upRes.destroy());
      },
    );
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) {
        res.destroy();
      } else if (err.code === 'ECONNREFUSED' && attempt + 1 < targets.length) {
        forward(req, res, body, (index + 1) % targets.length, attempt + 1);
      } else {
        res.writeHead(502).end();
      }
    });
    upstream.end(body);
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
