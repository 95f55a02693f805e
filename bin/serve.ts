import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestListener } from 'node:http';

/** Node checks request timeouts on this beat; a fraction of the timeout keeps it prompt. */
const MAX_CHECK_INTERVAL_MS = 30_000;

/**
 * Listens and resolves with the server and the port actually bound (PORT=0 picks a free one).
 * `requestTimeoutMs` bounds how long a client may take to send its headers and its body; it
 * ends once the request is received, so it never cuts an SSE stream (a response), however long.
 */
export function listen(
  handler: RequestListener,
  port: number,
  host: string,
  requestTimeoutMs: number,
): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(
    {
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
    server.listen(port, host, () => {
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
