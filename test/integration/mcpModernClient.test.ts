/**
 * A real client of MCP revision 2026-07-28 (`@modelcontextprotocol/client` 2.x, the SDK the AI
 * SDK's and Mastra's MCP clients are built on) end to end through two gateway pods behind a
 * round-robin proxy (each request lands on the other pod), two workers serving an MCP server
 * module (MCP_SERVER_MODULE), real Redis: discovery, listing, a call with progress, a
 * list-changed notification through `subscriptions/listen`, and cancellation by aborting the
 * call (its stream closes).
 */
import path from 'node:path';
import {
  Client,
  StreamableHTTPClientTransport,
  type McpSubscription,
} from '@modelcontextprotocol/client';
import { issueToken } from '../../shared/auth';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/roundRobinProxy';
import { scrapeMetric } from '../helpers/scrape';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'modern-client-secret-0123456789abcdef';
const MODULE = path.resolve(__dirname, '../fixtures/modernClientServer.mjs');
const team = issueToken(SECRET, { type: 'team', sub: 'modern-team', ttl: '1h' });

let cluster: TestCluster;
let proxy: RoundRobinProxy;
const clients: Client[] = [];

beforeAll(async () => {
  cluster = await startCluster('modern-client', {
    gateways: 2,
    workers: 2,
    jwtSecret: SECRET,
    env: { MCP_SERVER_MODULE: MODULE, WORKER_CONCURRENCY: '4' },
  });
  proxy = await startRoundRobinProxy(cluster.gateways.map((g) => g.url));
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await proxy?.close();
  await cluster?.stop();
});

/** A client pinned to 2026-07-28, or probing as the AI SDK does ('auto'). */
async function connect(mode: 'auto' | { pin: string }): Promise<Client> {
  const client = new Client(
    { name: 'modern-client-test', version: '1.0.0' },
    { versionNegotiation: { mode } },
  );
  const transport = new StreamableHTTPClientTransport(new URL(`${proxy.url}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${team}` } },
  });
  await client.connect(transport);
  clients.push(client);
  return client;
}

async function cancelledCalls(): Promise<number> {
  const counts = await Promise.all(
    cluster.workers.map((w) =>
      scrapeMetric(w.url, 'mcpgw_commands_completed_total', 'outcome="cancelled"'),
    ),
  );
  return counts.reduce((a, b) => a + b, 0);
}

test('a probing client discovers the 2026-07-28 era and the module server behind the workers', async () => {
  const client = await connect('auto');
  expect(client.getProtocolEra()).toBe('modern');
  expect(client.getNegotiatedProtocolVersion()).toBe('2026-07-28');
  expect(client.getServerVersion()?.name).toBe('modern-client-fixture');
  expect(client.getServerCapabilities()?.tools).toBeDefined();
  const { tools } = await client.listTools();
  expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['count', 'add_tool']));
});

test('a call reports progress, then its result, through either pod', async () => {
  const client = await connect({ pin: '2026-07-28' });
  const progress: number[] = [];
  const result = await client.callTool(
    { name: 'count', arguments: { to: 3, delayMs: 20 } },
    { onprogress: (p) => progress.push(p.progress) },
  );
  expect(result.content).toEqual([{ type: 'text', text: 'counted to 3' }]);
  expect(progress).toEqual([1, 2, 3]);
});

test('subscriptions/listen delivers a list change made on a worker, whichever pod holds the stream', async () => {
  const listener = await connect({ pin: '2026-07-28' });
  const changes: string[] = [];
  listener.setNotificationHandler('notifications/tools/list_changed', (n) => {
    changes.push(n.method);
  });
  const subscription: McpSubscription = await listener.listen({ toolsListChanged: true });
  expect(subscription.honoredFilter.toolsListChanged).toBe(true);

  // Another client changes the server's tool list twice: with the proxy alternating, one of the
  // two calls lands on the pod that does not hold the listen stream.
  const caller = await connect({ pin: '2026-07-28' });
  for (const expected of [1, 2]) {
    const added = await caller.callTool({ name: 'add_tool', arguments: {} });
    expect(added.isError).toBeFalsy();
    await waitFor(
      () => changes.length >= expected,
      10_000,
      `list-changed notification ${expected}`,
    );
  }
  const targets = (needle: string) =>
    new Set(proxy.log.filter((r) => r.body.includes(needle)).map((r) => r.target));
  expect(targets('"add_tool"').size).toBe(2);
  expect(targets('subscriptions/listen').size).toBe(1);
  expect(changes).toEqual(['notifications/tools/list_changed', 'notifications/tools/list_changed']);

  await subscription.close();
  expect(await subscription.closed).toBe('local');
});

test('aborting a call closes its stream and cancels it on the worker', async () => {
  const client = await connect({ pin: '2026-07-28' });
  const before = await cancelledCalls();
  const abort = new AbortController();
  const progress: number[] = [];
  const call = client.callTool(
    { name: 'count', arguments: { to: 100, delayMs: 200 } },
    { signal: abort.signal, onprogress: (p) => progress.push(p.progress) },
  );
  const outcome = call.then(
    () => 'finished',
    () => 'aborted',
  );
  // Running on a worker (a first progress report came back), then abandoned by the client.
  await waitFor(() => progress.length >= 1, 10_000, 'a first progress report');
  abort.abort();
  expect(await outcome).toBe('aborted');
  await waitFor(
    async () => (await cancelledCalls()) > before,
    10_000,
    'a cancelled call on a worker',
  );
});
