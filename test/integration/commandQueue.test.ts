/**
 * Issue 9, item 5 on a Redis cluster (2 gateways): COMMAND_QUEUE_MAX refuses commands with 503
 * and Retry-After before queueing them, on the seed API and on /mcp, counts the refusals, and
 * every command answered 202 gets exactly one result once a worker runs.
 */
import Redis from 'ioredis';
import { issueToken } from '../../shared/auth';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { postInitialize } from '../helpers/mcpHttp';
import { spawnRole } from '../helpers/processes';
import { openSseClient, sendCommand, type SseClient } from '../helpers/sseClient';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'queue-test-secret-0123456789abcdef';
const QUEUE_MAX = 25;
const SENT = 30;

let cluster: TestCluster;
let client: SseClient | undefined;

beforeAll(async () => {
  // No worker at first: the queue only fills.
  cluster = await startCluster('queue', {
    gateways: 2,
    workers: 0,
    jwtSecret: SECRET,
    env: { COMMAND_QUEUE_MAX: String(QUEUE_MAX), MAX_INFLIGHT_PER_TOKEN: '1000' },
  });
}, 60_000);

afterAll(async () => {
  client?.close();
  await cluster?.stop();
});

test('past COMMAND_QUEUE_MAX: 503 with Retry-After; every 202 gets exactly one result', async () => {
  const [gatewayA, gatewayB] = cluster.gateways;
  const token = issueToken(SECRET, { type: 'team', sub: 'busy', ttl: '1h' });
  client = await openSseClient(gatewayA.url, token);
  const connectionId = client.connectionId;

  const answers = await Promise.all(
    Array.from({ length: SENT }, (_, i) =>
      sendCommand(i % 2 ? gatewayB.url : gatewayA.url, token, connectionId, {
        method: 'tools/call',
        params: { name: 'list_projects', arguments: {} },
        id: i,
      }),
    ),
  );
  const accepted = answers.filter((a) => a.status === 202).map((a) => a.body.requestId!);
  const refused = answers.filter((a) => a.status === 503);
  expect(accepted).toHaveLength(QUEUE_MAX);
  expect(refused).toHaveLength(SENT - QUEUE_MAX);
  for (const r of refused) {
    expect(r.body.error).toEqual({
      code: 'queue_full',
      message: expect.stringMatching(/COMMAND_QUEUE_MAX/),
    });
  }
  const retry = await fetch(`${gatewayB.url}/mcp/sse/send`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ connectionId, message: { method: 'ping' } }),
  });
  expect(retry.status).toBe(503);
  expect(retry.headers.get('retry-after')).toMatch(/^\d+$/);

  // Streamable HTTP: refused the same way, as a JSON-RPC error with the HTTP status.
  const mcp = await postInitialize(gatewayA.url, token, {
    Accept: 'application/json, text/event-stream',
  });
  expect(mcp.status).toBe(503);
  expect(mcp.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(await mcp.json()).toMatchObject({
    jsonrpc: '2.0',
    error: { code: -32000, message: expect.stringMatching(/COMMAND_QUEUE_MAX/) },
  });

  // Nothing refused was queued.
  const redis = new Redis(cluster.redis.url);
  try {
    expect(await redis.xlen(`${cluster.env.REDIS_PREFIX}cmd`)).toBe(QUEUE_MAX);

    // A worker drains the queue: one final event per accepted command, none twice.
    await spawnRole('worker', { ...cluster.env, POD_ID: 'worker-late' });
    const finals = () =>
      client!.events.filter((e) => e.event === 'tool-result' || e.event === 'mcp-error');
    await waitFor(() => finals().length >= QUEUE_MAX, 20_000, 'every accepted command answered');
    await waitFor(
      async () => (await redis.xlen(`${cluster.env.REDIS_PREFIX}cmd`)) === 0,
      10_000,
      'queue empty',
    );
    const perRequest = new Map<string, number>();
    for (const e of finals()) {
      const id = e.json.requestId as string;
      perRequest.set(id, (perRequest.get(id) ?? 0) + 1);
    }
    expect([...perRequest.keys()].sort()).toEqual([...accepted].sort());
    expect([...perRequest.values()].every((n) => n === 1)).toBe(true);
  } finally {
    redis.disconnect();
  }

  // The refusals are counted: 5 on the seed API + the ping + the initialize.
  let counted = 0;
  for (const gateway of [gatewayA, gatewayB]) {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    for (const m of text.matchAll(
      /^mcpgw_commands_refused_total\{[^}]*reason="queue_full"[^}]*\} (\d+)/gm,
    )) {
      counted += Number(m[1]);
    }
  }
  expect(counted).toBe(SENT - QUEUE_MAX + 2);
}, 90_000);
