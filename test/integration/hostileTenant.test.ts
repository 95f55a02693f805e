/**
 * Issue 9, all at once: one token misbehaves in every way the limits cover (a backlog flood with
 * large descriptions and large list results, long calls past its in-flight allowance, more
 * streams of every kind than it may hold, trickled unauthenticated bodies) on a Redis cluster of
 * two gateways and two workers, while another user's EventSource stream and tool calls are
 * counted. The other user loses no event and its calls complete while the hostile calls still
 * run; Redis and the gateways stay bounded (figures read from Redis and /metrics).
 */
import net from 'node:net';
import Redis from 'ioredis';
import { issueToken } from '../../shared/auth';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { scrapeMetric } from '../helpers/scrape';
import { callTool, openSseClient, sendCommand, type SseClient } from '../helpers/sseClient';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'hostile-tenant-secret-0123456789abcdef';
const LIMITS = {
  MAX_CONNECTIONS_PER_TOKEN: 6,
  MAX_INFLIGHT_PER_TOKEN: 6,
  MAX_PROJECTS_PER_TOKEN: 40,
  HISTORY_MAX_BYTES: 1024 * 1024,
  EVENT_MAX_BYTES: 512 * 1024,
  REQUEST_TIMEOUT_MS: 2000,
};
const BROADCASTS = 40;
/**
 * 20 steps of 600 ms: they hold every worker slot the hostile token may have (3 per worker)
 * well past the other user's calls; its own later calls wait behind them.
 */
const LONG_CALL = { name: 'simulate_work', arguments: { steps: 20, delayMs: 600 } };

let cluster: TestCluster;
let redis: Redis;
const clients: SseClient[] = [];
const aborts: AbortController[] = [];
const sockets: net.Socket[] = [];

beforeAll(async () => {
  cluster = await startCluster('hostile', {
    gateways: 2,
    workers: 2,
    jwtSecret: SECRET,
    env: {
      ...Object.fromEntries(Object.entries(LIMITS).map(([k, v]) => [k, String(v)])),
      WORKER_CONCURRENCY: '4',
      WORKER_SLOTS_PER_TOKEN: '3',
      CLEANUP_INTERVAL_MS: '1000',
      RESUME_GRACE_MS: '3000',
    },
  });
  redis = new Redis(cluster.redis.url);
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  for (const a of aborts) a.abort();
  for (const s of sockets) s.destroy();
  redis?.disconnect();
  await cluster?.stop();
});

const usedMemory = async () =>
  Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? NaN);
const rss = (url: string) => scrapeMetric(url, 'mcpgw_process_resident_memory_bytes');

/** Sends until the gateway stops answering 429 (a client honouring the limit, but never idle). */
async function sendPersistently(
  url: string,
  token: string,
  connectionId: string,
  message: Record<string, unknown>,
): Promise<string> {
  for (;;) {
    const { status, body } = await sendCommand(url, token, connectionId, message);
    if (status === 202) return body.requestId!;
    if (status !== 429) throw new Error(`send: HTTP ${status} ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Opens a stream of one kind with fetch and leaves it open; resolves with the HTTP status. */
async function openStream(url: string, token: string): Promise<number> {
  const abort = new AbortController();
  aborts.push(abort);
  const res = await fetch(url, {
    headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' },
    signal: abort.signal,
  });
  if (res.status !== 200) await res.body?.cancel();
  return res.status;
}

/**
 * A raw socket that sends a POST with a bad token and trickles a 100 KB body; resolves once the
 * server closed it (or rejects when it is still open after `ms`).
 */
function trickle(port: number, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    sockets.push(socket);
    let answer = '';
    const timer = setInterval(() => socket.writable && socket.write('x'.repeat(100)), 100);
    const deadline = setTimeout(() => {
      clearInterval(timer);
      reject(new Error('the server kept a trickling unauthenticated socket open'));
    }, ms);
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(deadline);
      resolve(answer.split('\r\n')[0]);
    });
    socket.write(
      'POST /mcp/sse/send HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer not-a-token\r\n' +
        'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"connectionId":"',
    );
  });
}

test('one token misbehaving every way at once harms no other user, and stays bounded', async () => {
  const [gatewayA, gatewayB] = cluster.gateways;
  const hostileToken = issueToken(SECRET, { type: 'team', sub: 'mallory', ttl: '1h' });
  const victimToken = issueToken(SECRET, { type: 'team', sub: 'victor', ttl: '1h' });
  const masterToken = issueToken(SECRET, { type: 'master', sub: 'ops', ttl: '1h' });

  const memoryBefore = await usedMemory();
  const rssBefore = (await rss(gatewayA.url)) + (await rss(gatewayB.url));

  const victim = await openSseClient(gatewayB.url, victimToken);
  const hostile = await openSseClient(gatewayA.url, hostileToken);
  clients.push(victim, hostile);
  const hostileUrl = (i: number) => (i % 2 ? gatewayB.url : gatewayA.url);

  // ---- the hostile token, every attack at once ----

  // Long calls, from both gateways, far past the in-flight allowance.
  const longCalls = Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      sendCommand(hostileUrl(i), hostileToken, hostile.connectionId, {
        method: 'tools/call',
        params: LONG_CALL,
      }),
    ),
  );
  // A backlog flood: projects with the longest descriptions allowed, until the quota says no;
  // then large list results, each into its connection's history.
  const flood = (async () => {
    let quotaError: string | undefined;
    for (let i = 0; i < LIMITS.MAX_PROJECTS_PER_TOKEN + 5 && !quotaError; i++) {
      const requestId = await sendPersistently(hostileUrl(i), hostileToken, hostile.connectionId, {
        method: 'tools/call',
        params: {
          name: 'create_project',
          arguments: { name: `flood ${i}`, description: 'd'.repeat(2000) },
        },
      });
      const result = await hostile.next(
        (e) => e.json.requestId === requestId && e.json.metadata === undefined,
        30_000,
      );
      const text = JSON.stringify(result.json);
      if (result.event === 'mcp-error' || text.includes('"isError":true')) quotaError = text;
    }
    const lists: string[] = [];
    for (let i = 0; i < 12; i++) {
      lists.push(
        await sendPersistently(hostileUrl(i), hostileToken, hostile.connectionId, {
          method: 'tools/call',
          params: { name: 'list_projects', arguments: { limit: 100 } },
        }),
      );
    }
    await Promise.all(lists.map((id) => hostile.next((e) => e.json.requestId === id, 30_000)));
    return quotaError;
  })();
  // More streams of every kind, on both gateways, than the token may hold.
  const streams = Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      openStream(`${hostileUrl(i)}${i % 2 ? '/sse' : '/mcp/sse'}`, hostileToken),
    ),
  );
  // Unauthenticated sockets trickling bodies.
  const trickles = Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      trickle(i % 2 ? gatewayB.port : gatewayA.port, LIMITS.REQUEST_TIMEOUT_MS * 3),
    ),
  );

  // ---- meanwhile, the other user ----

  const broadcasts = (async () => {
    for (let seq = 1; seq <= BROADCASTS; seq++) {
      const res = await fetch(`${gatewayA.url}/mcp/sse/broadcast`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${masterToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ message: { type: 'mcp-notification', seq } }),
      });
      expect(res.status).toBe(202);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const victimCalls: string[] = [];
  for (let i = 0; i < 5; i++) {
    const created = await callTool(
      gatewayB.url,
      victimToken,
      victim,
      'create_project',
      { name: `victor ${i}` },
      30_000,
    );
    expect(created.event).toBe('tool-result');
    const listed = await callTool(gatewayA.url, victimToken, victim, 'list_projects', {}, 30_000);
    expect(listed.event).toBe('tool-result');
    victimCalls.push(created.json.requestId as string, listed.json.requestId as string);
  }
  // The victim's calls are done while the hostile long calls are still running.
  const accepted = (await longCalls).filter((r) => r.status === 202);
  const refused = (await longCalls).filter((r) => r.status === 429);
  expect(accepted.length).toBeGreaterThan(0);
  expect(accepted.length).toBeLessThanOrEqual(LIMITS.MAX_INFLIGHT_PER_TOKEN);
  expect(refused.length).toBeGreaterThan(0);
  for (const r of refused) expect(r.body.error?.code).toBe('inflight_limit');
  const longIds = new Set(accepted.map((r) => r.body.requestId));
  const finishedLong = hostile.events.filter(
    (e) => longIds.has(e.json.requestId as string) && e.json.metadata === undefined,
  );
  expect(finishedLong).toEqual([]);

  // Every broadcast reached the victim exactly once, in order.
  await broadcasts;
  await waitFor(
    () =>
      victim.named('mcp-notification').filter((e) => e.json.seq !== undefined).length >= BROADCASTS,
    15_000,
    'every broadcast at the victim',
  );
  const seqs = victim
    .named('mcp-notification')
    .map((e) => e.json.seq)
    .filter((s) => s !== undefined);
  expect(seqs).toEqual(Array.from({ length: BROADCASTS }, (_, i) => i + 1));
  expect(victim.named('mcp-error')).toEqual([]);

  // The stream limit held across kinds and gateways: the hostile token's first stream plus
  // MAX - 1 of these; the rest 429.
  const statuses = await streams;
  expect(statuses.filter((s) => s === 200)).toHaveLength(LIMITS.MAX_CONNECTIONS_PER_TOKEN - 1);
  expect(statuses.filter((s) => s === 429)).toHaveLength(
    10 - (LIMITS.MAX_CONNECTIONS_PER_TOKEN - 1),
  );

  // Trickling sockets were answered 401 and closed without the body.
  for (const status of await trickles) expect(status).toBe('HTTP/1.1 401 Unauthorized');

  // The backlog quota stopped the flood with a clear tool error.
  const quotaError = await flood;
  expect(quotaError).toMatch(/quota|at most/i);

  // Byte figures, from Redis and the gateways.
  const hostileHistory = Number(
    await redis.memory('USAGE', `${cluster.env.REDIS_PREFIX}h:conn:${hostile.connectionId}`),
  );
  const memoryAfter = await usedMemory();
  const rssAfter = (await rss(gatewayA.url)) + (await rss(gatewayB.url));
  console.log(
    `hostile tenant: Redis used_memory ${memoryBefore} -> ${memoryAfter} B; ` +
      `hostile history ${hostileHistory} B (cap ${LIMITS.HISTORY_MAX_BYTES}); ` +
      `gateways RSS ${Math.round(rssBefore / 1e6)} -> ${Math.round(rssAfter / 1e6)} MB`,
  );
  // The byte cap holds (plus the stream's own overhead), and Redis grew by about that cap and
  // the bounded backlog, not by what the hostile token asked for (12 lists of ~200 KB each).
  expect(hostileHistory).toBeLessThan(LIMITS.HISTORY_MAX_BYTES * 1.5);
  expect(memoryAfter - memoryBefore).toBeLessThan(8 * 1024 * 1024);
  expect(rssAfter - rssBefore).toBeLessThan(150 * 1024 * 1024);
  expect(victimCalls).toHaveLength(10);
}, 120_000);
