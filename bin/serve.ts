import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestListener } from 'node:http';

/** Node checks request timeouts on this beat; a fraction of the timeout keeps it prompt. */
const MAX_CHECK_INTERVAL_MS = 30_000;

/** Where Linux keeps the cap on every listen(2) backlog. */
const SOMAXCONN_PATH = '/proc/sys/net/core/somaxconn';

/**
 * Listens and resolves with the server and the port actually bound (PORT=0 picks a free one).
 * `requestTimeoutMs` bounds how long a client may take to send its headers and its body; it
 * ends once the request is received, so it never cuts an SSE stream (a response), however long.
 * `backlog` is listen(2)'s (Node's default is 511). The handler's `serverOptions`, when it has
 * any, go to the server (the gateway's: requests built on Express's prototypes).
 */
export function listen(
  handler: RequestListener & { serverOptions?: http.ServerOptions },
  port: number,
  host: string,
  requestTimeoutMs: number,
  backlog?: number,
): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(
    {
      ...handler.serverOptions,
      requestTimeout: requestTimeoutMs,
      headersTimeout: requestTimeoutMs,
      connectionsCheckingInterval: Math.min(
        MAX_CHECK_INTERVAL_MS,
        Math.max(100, Math.floor(requestTimeoutMs / 4)),
      ),
    },
    handler,
  );
  // Keep-alive above common LB idle timeouts.
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, ...(backlog === undefined ? {} : { backlog }) }, () => {
      server.off('error', reject);
      resolve({ server, port: (server.address() as AddressInfo).port });
    });
  });
}

/** What requests still in flight at shutdown get before their connections are closed. */
const CLOSE_GRACE_MS = 1000;

/**
 * Stops accepting connections and closes idle keep-alive sockets; after CLOSE_GRACE_MS, the
 * rest too. Called once every stream was closed: what is left is a request still running or a
 * connection a client opened without sending a request yet (which Node counts as active, and
 * would otherwise keep the process up to REQUEST_TIMEOUT_MS).
 */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * Why the kernel will queue fewer connections than LISTEN_BACKLOG asks for (it silently caps
 * the backlog at net.core.somaxconn), or undefined when it will queue them all or cannot tell.
 */
export function backlogCapWarning(
  backlog: number,
  somaxconnPath = SOMAXCONN_PATH,
): string | undefined {
  let somaxconn: number;
  try {
    somaxconn = Number(readFileSync(somaxconnPath, 'utf8').trim());
  } catch {
    return undefined; // not Linux, or /proc hidden: nothing to compare with
  }
  if (!Number.isInteger(somaxconn) || backlog <= somaxconn) return undefined;
  return (
    `LISTEN_BACKLOG=${backlog} is above net.core.somaxconn=${somaxconn}: the kernel queues ` +
    `only ${somaxconn} connections; raise it (sysctl net.core.somaxconn, in Kubernetes the ` +
    `pod's securityContext.sysctls) or reconnect bursts after a pod's death will drop SYNs`
  );
}
