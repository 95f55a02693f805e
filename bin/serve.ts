import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestListener } from 'node:http';

/** Listens and resolves with the server and the port actually bound (PORT=0 picks a free one). */
export function listen(
  handler: RequestListener,
  port: number,
  host: string,
): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(handler);
  // SSE streams are long-lived: no request timeout; keep-alive above common LB idle timeouts.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve({ server, port: (server.address() as AddressInfo).port });
    });
  });
}

/** Stops accepting connections and closes idle keep-alive sockets. */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
