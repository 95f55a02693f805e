/**
 * Issue 4, cancellation across processes: the worker running a seed-API tool call sees its
 * AbortSignal fire when the client sends notifications/cancelled through any gateway, and
 * when the client's connection ends and is not resumed within the grace period.
 */
import { issueToken } from '../../shared/auth';
import { startCluster, type TestCluster } from '../helpers/cluster';
import type { SpawnedProcess } from '../helpers/processes';
import { openSseClient, sendCommand, type SseClient } from '../helpers/sseClient';
import { scrapeMetric } from '../helpers/scrape';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'cancel-test-secret-0123456789abcdef';
const team = issueToken(SECRET, { type: 'team', sub: 'team-1', ttl: '1h' });
const REQUEST_CANCELLED = -32800;
/** 20 steps of 500 ms: ten seconds unless cancelled. */
const LONG_CALL = { name: 'simulate_work', arguments: { steps: 20, delayMs: 500 } };

let cluster: TestCluster;
let gatewayA: SpawnedProcess;
let gatewayB: SpawnedProcess;
let workers: SpawnedProcess[];
const clients: SseClient[] = [];

beforeAll(async () => {
  cluster = await startCluster('cancel', {
    gateways: 2,
    workers: 2,
    jwtSecret: SECRET,
    env: { CLEANUP_INTERVAL_MS: '200', RESUME_GRACE_MS: '500', WORKER_CONCURRENCY: '4' },
  });
  [gatewayA, gatewayB] = cluster.gateways;
  workers = cluster.workers;
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
});

async function startLongCall(): Promise<{ client: SseClient; requestId: string }> {
  const client = await openSseClient(gatewayA.url, team);
  clients.push(client);
  const { status, body } = await sendCommand(gatewayB.url, team, client.connectionId, {
    method: 'tools/call',
    params: LONG_CALL,
  });
  expect(status).toBe(202);
  const requestId = body.requestId!;
  await client.next((e) => e.json.requestId === requestId && e.json.metadata !== undefined);
  return { client, requestId };
}

/** Cancelled calls counted by both workers' /metrics. */
async function cancelledCalls(): Promise<number> {
  const counts = await Promise.all(
    workers.map((w) =>
      scrapeMetric(w.url, 'mcpgw_commands_completed_total', 'outcome="cancelled"'),
    ),
  );
  return counts.reduce((a, b) => a + b, 0);
}

test('notifications/cancelled posted to another gateway aborts the call on whichever worker runs it', async () => {
  const { client, requestId } = await startLongCall();
  const startedAt = Date.now();
  const cancel = await sendCommand(gatewayB.url, team, client.connectionId, {
    method: 'notifications/cancelled',
    params: { requestId, reason: 'user pressed stop' },
  });
  expect(cancel.status).toBe(202);
  const final = await client.next(
    (e) => e.json.requestId === requestId && e.event === 'mcp-error',
    8_000,
  );
  expect(final.json.error).toEqual({
    code: REQUEST_CANCELLED,
    message: 'Request cancelled: user pressed stop',
  });
  expect(Date.now() - startedAt).toBeLessThan(8_000); // long before its ten seconds
  expect(
    client.events.filter(
      (e) => e.event === 'tool-result' && e.json.requestId === requestId && e.json.result,
    ),
  ).toHaveLength(0);
});

test('a connection that ends and is not resumed within the grace period has its calls cancelled', async () => {
  const before = await cancelledCalls();
  const { client } = await startLongCall();
  client.close();
  // Grace 500 ms, swept every 200 ms: cancelled within about a second, not after ten.
  await waitFor(async () => (await cancelledCalls()) === before + 1, 8_000, 'call cancelled');
});
