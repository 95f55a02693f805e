import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy on a free port of 127.0.0.1 whose upstream can be switched, standing in for a
 * load balancer in front of gateway pods: new connections go to the current upstream; existing
 * ones stay on theirs until either side closes, and a close on one side closes the other.
 */
export interface TestProxy {
  port: number;
  url: string;
  /** Routes new connections to this port from now on. */
  setUpstream(port: number): void;
  /** Connections currently piped. */
  readonly openConnections: number;
  close(): Promise<void>;
}

export async function startProxy(upstreamPort: number): Promise<TestProxy> {
  let upstream = upstreamPort;
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    const target = net.connect(upstream, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, target];
    pairs.add(pair);
    const closeBoth = () => {
      pairs.delete(pair);
      client.destroy();
      target.destroy();
    };
    client.on('error', closeBoth).on('close', closeBoth);
    target.on('error', closeBoth).on('close', closeBoth);
    client.pipe(target);
    target.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    setUpstream: (p) => {
      upstream = p;
    },
    get openConnections() {
      return pairs.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
