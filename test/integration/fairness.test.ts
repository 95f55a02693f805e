/**
 * Issue 9, item 2 on the Redis cluster (2 gateways, 2 workers): one readonly token that fills
 * its in-flight allowance with long simulate_work calls cannot stall another user, and its
 * calls past MAX_INFLIGHT_PER_TOKEN are refused with 429 before anything is queued.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import Redis from 'ioredis';
import { issueToken } from '../../shared/auth';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { callTool, openSseClient, sendCommand, type SseClient } from '../helpers/sseClient';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'fairness-test-secret-0123456789abcdef';
const HOSTILE_CALLS = 16;
/** 20 steps of 500 ms: ten seconds each unless cancelled. */
const LONG_CALL = { name: 'simulate_work', arguments: { steps: 20, delayMs: 500 } };

let cluster: TestCluster;
const clients: SseClient[] = [];

beforeAll(async () => {
  cluster = await startCluster('fairness', {
    gateways: 2,
    workers: 2,
    jwtSecret: SECRET,
    env: {
      // 16 slots in all: enough for every hostile call if nothing kept some back.
      WORKER_CONCURRENCY: '8',
      WORKER_SLOTS_PER_TOKEN: '6',
      MAX_INFLIGHT_PER_TOKEN: String(HOSTILE_CALLS),
      CLAIM_IDLE_MS: '5000',
    },
  });
}, 60_000);

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

afterAll(async () => {
  await cluster?.stop();
});

test('a readonly token with 16 long calls in flight stalls no one else, and gets 429 past its limit', async () => {
  const [gatewayA, gatewayB] = cluster.gateways;
  const hostileToken = issueToken(SECRET, { type: 'readonly', sub: 'hostile', ttl: '1h' });
  const politeToken = issueToken(SECRET, { type: 'readonly', sub: 'polite', ttl: '1h' });
  const hostile = await openSseClient(gatewayA.url, hostileToken);
  const polite = await openSseClient(gatewayB.url, politeToken);
  clients.push(hostile, polite);

  const accepted = await Promise.all(
    Array.from({ length: HOSTILE_CALLS }, (_, i) =>
      sendCommand(i % 2 ? gatewayB.url : gatewayA.url, hostileToken, hostile.connectionId, {
        method: 'tools/call',
        params: LONG_CALL,
      }),
    ),
  );
  expect(accepted.map((r) => r.status)).toEqual(Array(HOSTILE_CALLS).fill(202));
  const hostileIds = accepted.map((r) => r.body.requestId as string);
  const started = () =>
    hostileIds.filter((id) => hostile.events.some((e) => e.json.requestId === id)).length;
  const finished = () =>
    hostileIds.filter((id) =>
      hostile.events.some(
        (e) =>
          e.json.requestId === id &&
          (e.event === 'mcp-error' || (e.event === 'tool-result' && !e.json.metadata)),
      ),
    ).length;
  // Every hostile command is in a worker's hands (running, or held behind the token's cap):
  // nothing is left in the stream for a worker to read but what comes next.
  const redis = new Redis(cluster.redis.url);
  try {
    await waitFor(
      async () => {
        const backlog = await commandGroup(redis, `${cluster.env.REDIS_PREFIX}cmd`);
        return backlog.pending === HOSTILE_CALLS && backlog.lag === 0;
      },
      15_000,
      'every hostile command delivered',
    );
  } finally {
    redis.disconnect();
  }
  // At most WORKER_SLOTS_PER_TOKEN run on each worker.
  await waitFor(() => started() >= 6, 10_000, 'hostile calls running');
  expect(started()).toBeLessThanOrEqual(12);

  // Past MAX_INFLIGHT_PER_TOKEN, on either gateway: 429 with Retry-After, nothing queued.
  for (const gateway of [gatewayA, gatewayB]) {
    const res = await fetch(`${gateway.url}/mcp/sse/send`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${hostileToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        connectionId: hostile.connectionId,
        message: { method: 'tools/call', params: LONG_CALL },
      }),
    });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('inflight_limit');
  }

  // The other user's calls complete while every hostile call is still running or waiting:
  // through the seed API on the other gateway...
  const listed = await callTool(gatewayB.url, politeToken, polite, 'list_projects', {}, 5000);
  expect(listed.event).toBe('tool-result');
  expect(finished()).toBe(0);
  // ...and through Streamable HTTP with the SDK client.
  const transport = new StreamableHTTPClientTransport(new URL(`${gatewayA.url}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${politeToken}` } },
  });
  const client = new Client({ name: 'polite', version: '1.0.0' });
  await client.connect(transport);
  try {
    const result = await client.callTool({ name: 'list_projects', arguments: {} });
    expect(result.isError).toBeFalsy();
    expect(finished()).toBe(0);
  } finally {
    await client.close();
  }

  // Clean up quickly: cancel the hostile calls (running ones abort; waiting ones follow).
  for (const requestId of hostileIds) {
    await sendCommand(gatewayA.url, hostileToken, hostile.connectionId, {
      method: 'notifications/cancelled',
      params: { requestId },
    });
  }
}, 90_000);

/** The workers group's pending count and lag (entries never delivered) from XINFO GROUPS. */
async function commandGroup(redis: Redis, key: string): Promise<{ pending: number; lag: number }> {
  const groups = (await redis.xinfo('GROUPS', key)) as unknown[][];
  for (const flat of groups) {
    const fields = new Map<string, unknown>();
    for (let i = 0; i < flat.length; i += 2) fields.set(String(flat[i]), flat[i + 1]);
    if (fields.get('name') === 'workers') {
      return { pending: Number(fields.get('pending')), lag: Number(fields.get('lag') ?? -1) };
    }
  }
  return { pending: 0, lag: -1 };
}
