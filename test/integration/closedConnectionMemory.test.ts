/**
 * Issue 9 item 1 on a real cluster (a gateway and a worker process, one Redis): the history of
 * a closed connection goes when its resume window ends, not HISTORY_TTL_S later. Many short
 * connections each get a sizeable list_projects result and close; after the window their keys
 * are gone (counted with SCAN under the test's prefix) and Redis's used_memory is back near
 * where it started, while a connection that stays open keeps its history. The same for MCP:
 * request streams whose replies were delivered, and an ended session's streams, go within
 * seconds, not MCP_STREAM_TTL_S.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import Redis from 'ioredis';
import { issueToken } from '../../shared/auth';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { callTool, openSseClient, type SseClient } from '../helpers/sseClient';
import { waitFor } from '../../devSupport/waitFor';

jest.setTimeout(120_000);

const SECRET = 'closed-memory-secret-0123456789abcdef';
const team = issueToken(SECRET, { type: 'team', sub: 'team-1', ttl: '1h' });
const SHORT_CONNECTIONS = 30;
/** Resume window: untouched for max(3 x 200, 1500) ms, dropped by the next sweep. */
const WINDOW_MS = 1500 + 200;

let cluster: TestCluster;
let admin: Redis;
let prefix: string;
/** Closed at the end whatever happens (an EventSource left open reconnects forever). */
const clients: SseClient[] = [];

beforeAll(async () => {
  cluster = await startCluster('closed-memory', {
    gateways: 1,
    workers: 1,
    jwtSecret: SECRET,
    env: { RESUME_GRACE_MS: '1500', CLEANUP_INTERVAL_MS: '200', HEARTBEAT_INTERVAL_MS: '60000' },
  });
  prefix = cluster.env.REDIS_PREFIX;
  admin = new Redis(cluster.redis.url, { maxRetriesPerRequest: null });
});

afterAll(async () => {
  for (const client of clients) client.close();
  admin?.disconnect();
  await cluster?.stop();
});

async function keysMatching(pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}${pattern}`, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}

async function usedMemory(): Promise<number> {
  const info = await admin.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)![1]);
}

test('closed connections’ histories go with their resume window, and Redis memory with them', async () => {
  const gateway = cluster.gateways[0].url;
  // A backlog whose list is sizeable: 50 projects (one page) with 2,000-character descriptions.
  const owner = await openSseClient(gateway, team);
  clients.push(owner);
  for (let i = 0; i < 50; i += 1) {
    const created = await callTool(gateway, team, owner, 'create_project', {
      name: `Project ${i}`,
      description: `${i}`.padEnd(2000, '.'),
    });
    expect(created.event).toBe('tool-result');
  }
  const ownList = await callTool(gateway, team, owner, 'list_projects');
  const resultBytes = ownList.data.length;
  expect(resultBytes).toBeGreaterThan(100_000);
  const ownTopic = `${prefix}h:conn:${owner.connectionId}`;
  await waitFor(async () => (await keysMatching('done:*')).length >= 51, 5000, 'done keys');
  const baseline = await usedMemory();

  const shortIds: string[] = [];
  for (let i = 0; i < SHORT_CONNECTIONS; i += 1) {
    const client = await openSseClient(gateway, team);
    clients.push(client);
    shortIds.push(client.connectionId);
    const listed = await callTool(gateway, team, client, 'list_projects');
    expect(listed.event).toBe('tool-result');
    client.close();
  }
  const histories = async () =>
    (await keysMatching('h:conn:*')).filter((k) => shortIds.some((id) => k.endsWith(id)));
  const metas = async () =>
    (await keysMatching('hm:conn:*')).filter((k) => shortIds.some((id) => k.endsWith(id)));
  const peak = await usedMemory();
  const held = await histories();
  expect(held.length).toBeGreaterThan(SHORT_CONNECTIONS / 2); // the earliest may be gone already
  const sample = Number(await admin.call('MEMORY', 'USAGE', held[held.length - 1]));
  expect(sample).toBeGreaterThan(resultBytes * 0.9);
  expect(await admin.xlen(held[held.length - 1])).toBe(1); // its result (the welcome is local)
  const grown = peak - baseline;
  expect(grown).toBeGreaterThan(held.length * resultBytes * 0.5);

  // After the window: every history and its meta gone, memory back near the baseline.
  await waitFor(async () => (await histories()).length === 0, WINDOW_MS + 10_000, 'histories gone');
  expect(await metas()).toEqual([]);
  await waitFor(
    async () => (await usedMemory()) - baseline < Math.max(grown * 0.1, 1_000_000),
    10_000,
    'used_memory back near the baseline',
  );
  // The open connection keeps its history, with the long TTL.
  expect(await admin.exists(ownTopic)).toBe(1);
  expect(await admin.pttl(ownTopic)).toBeGreaterThan(60_000);
  owner.close();
});

test('MCP request streams that delivered their replies, and an ended session’s streams, go within seconds', async () => {
  const transport = new StreamableHTTPClientTransport(new URL(`${cluster.gateways[0].url}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${team}` } },
  });
  const client = new Client({ name: 'spent-streams', version: '1.0.0' });
  await client.connect(transport);
  const sessionId = transport.sessionId!;
  for (let i = 0; i < 5; i += 1) await client.callTool({ name: 'list_projects', arguments: {} });
  const streams = () => keysMatching(`h:mcp:${sessionId}:*`);
  expect((await streams()).length).toBeGreaterThanOrEqual(5);
  // Each delivered stream keeps its history 10 s (SPENT_STREAM_TTL_MS), not 300 s.
  await waitFor(
    async () => {
      const ttls = await Promise.all((await streams()).map((key) => admin.pttl(key)));
      return ttls.every((ttl) => ttl <= 10_000);
    },
    5000,
    'delivered streams capped',
  );
  await transport.terminateSession();
  await client.close();
  await waitFor(
    async () =>
      (await streams()).length === 0 && (await keysMatching(`hm:mcp:${sessionId}:*`)).length === 0,
    20_000,
    'MCP stream histories gone',
  );
});
