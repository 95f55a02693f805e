/**
 * Issue 10 (and issue 9 items 4 and 10): what holds when a gateway dies, by SIGKILL or SIGTERM.
 * Real gateway and worker processes on a real Redis, behind the round-robin proxy; the MCP SDK
 * clients with their default reconnection; raw fetch and `eventsource` for the other streams.
 * Processes run the compiled dist/ (make builds it).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import Redis from 'ioredis';
import { issueToken } from '../../shared/auth';
import type { ConnectionRecord } from '../../shared/engine/engine';
import { RedisEngine } from '../../shared/engine/redis';
import { silentLogger } from '../../shared/logger';
import { STANDALONE_STREAM, mcpNames } from '../../shared/mcpTransports';
import { MCP_EVENTS } from '../../shared/protocol';
import type { TokenType } from '../../shared/types';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { initializeSession } from '../helpers/mcpHttp';
import { spawnRole, type SpawnedProcess } from '../helpers/processes';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/roundRobinProxy';
import { scrapeMetric } from '../helpers/scrape';
import { openSseClient } from '../helpers/sseClient';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'pod-death-secret-0123456789abcdef0123';
const MAX_PER_TOKEN = 3;
const RESUME_GRACE_MS = 5000;
const token = (type: TokenType, sub: string, ttl = '1h') => issueToken(SECRET, { type, sub, ttl });
const MASTER = token('master', 'pod-death-admin');

let cluster: TestCluster;
let admin: Redis;
/** Publishes as a worker does: to a session's stream topic, with history. */
let publisher: RedisEngine;
let prefix: string;
let spawned = 0;
const proxies: RoundRobinProxy[] = [];
const clients: Client[] = [];
const aborts: AbortController[] = [];

beforeAll(async () => {
  cluster = await startCluster('poddeath', {
    gateways: 0,
    workers: 1,
    jwtSecret: SECRET,
    env: {
      HEARTBEAT_INTERVAL_MS: '1000',
      CLEANUP_INTERVAL_MS: '500',
      CLAIM_IDLE_MS: '1000',
      RESUME_GRACE_MS: String(RESUME_GRACE_MS),
      MAX_CONNECTIONS_PER_TOKEN: String(MAX_PER_TOKEN),
      DRAIN_WINDOW_MS: '200',
    },
  });
  prefix = cluster.env.REDIS_PREFIX;
  admin = new Redis(cluster.redis.url);
  publisher = new RedisEngine({
    url: cluster.redis.url,
    prefix,
    historyMaxLen: 100,
    historyTtlS: 60,
    logger: silentLogger(),
  });
  await publisher.start();
}, 60_000);

afterEach(async () => {
  for (const controller of aborts.splice(0)) controller.abort();
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

afterAll(async () => {
  await publisher?.close();
  admin?.disconnect();
  await cluster?.stop();
});

const podIds = new Map<SpawnedProcess, string>();

/** Fresh gateway processes for one test (each test kills some). */
function gatewaysFor(count: number, env: Record<string, string> = {}): Promise<SpawnedProcess[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const podId = `gateway-${++spawned}`;
      const gateway = await spawnRole('gateway', { ...cluster.env, ...env, POD_ID: podId });
      podIds.set(gateway, podId);
      return gateway;
    }),
  );
}

async function proxyOver(gateways: SpawnedProcess[]): Promise<RoundRobinProxy> {
  const proxy = await startRoundRobinProxy(gateways.map((g) => g.url));
  proxies.push(proxy);
  return proxy;
}

const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

async function stats(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/mcp/sse/stats`, { headers: bearer(MASTER) });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

/** An open SSE response read in the background: its text so far, and when it ended. */
interface RawStream {
  status: number;
  headers: Headers;
  text(): string;
  ended: Promise<void>;
  abort(): void;
}

async function openRaw(url: string, init: RequestInit = {}): Promise<RawStream> {
  const controller = new AbortController();
  aborts.push(controller);
  const res = await fetch(url, { ...init, signal: controller.signal });
  let text = '';
  const ended = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) text += decoder.decode(chunk as Uint8Array);
    } catch {
      // aborted or cut: ended all the same
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    text: () => text,
    ended,
    abort: () => controller.abort(),
  };
}

function standaloneGet(url: string, t: string, sessionId: string): Promise<RawStream> {
  return openRaw(`${url}/mcp`, {
    headers: { ...bearer(t), Accept: 'text/event-stream', 'Mcp-Session-Id': sessionId },
  });
}

/** GET /sse; resolves with the stream and its session id (from the `endpoint` event). */
async function legacyStream(
  url: string,
  t: string,
): Promise<{ raw: RawStream; sessionId: string }> {
  const raw = await openRaw(`${url}/sse`, {
    headers: { ...bearer(t), Accept: 'text/event-stream' },
  });
  if (raw.status !== 200) return { raw, sessionId: '' };
  await waitFor(() => /sessionId=([0-9a-f]{32})/.test(raw.text()), 5000, 'the endpoint event');
  return { raw, sessionId: /sessionId=([0-9a-f]{32})/.exec(raw.text())![1] };
}

function notification(text: string): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    method: 'notifications/message',
    params: { level: 'info', data: text },
  });
}

test('the SDK client keeps its GET stream across a SIGKILL and a SIGTERM of the pod holding it', async () => {
  // Production keep-alive (15 s): the lock's own TTL (45 s) would outlast the client's retries.
  const gateways = await gatewaysFor(3, { HEARTBEAT_INTERVAL_MS: '15000' });
  const proxy = await proxyOver(gateways);
  // Default reconnection options: two attempts, spaced by the server's retry: field.
  const transport = new StreamableHTTPClientTransport(new URL(`${proxy.url}/mcp`), {
    requestInit: { headers: bearer(token('team', 'sdk-holder')) },
  });
  const client = new Client({ name: 'pod-death', version: '1.0.0' });
  const received: string[] = [];
  const errors: string[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    received.push(String(n.params.data));
  });
  client.onerror = (err) => errors.push(err.message);
  await client.connect(transport);
  clients.push(client);
  const sessionId = transport.sessionId!;
  const topic = mcpNames.streamTopic(sessionId, STANDALONE_STREAM);
  const lockKey = `${prefix}kv:${mcpNames.standaloneLockKey(sessionId)}`;

  const holder = async (after: number): Promise<number> => {
    await waitFor(
      () => proxy.log.some((r, i) => i >= after && r.method === 'GET' && r.path === '/mcp'),
      15_000,
      'the GET stream open',
    );
    await waitFor(async () => (await admin.exists(lockKey)) === 1, 5000, 'the lock taken');
    const gets = proxy.log.filter((r, i) => i >= after && r.method === 'GET');
    const lock = (await admin.get(lockKey))!;
    const pod = lock.slice(0, lock.indexOf(' '));
    const index = gateways.findIndex((g) => podIds.get(g) === pod);
    expect(gets.length).toBeGreaterThan(0);
    return index;
  };

  // SIGKILL the pod holding the GET stream; a notification published meanwhile arrives once.
  const first = await holder(0);
  await publisher.publish(topic, MCP_EVENTS.notification, notification('before'), {
    historyTtlMs: 60_000,
  });
  await waitFor(() => received.length === 1, 5000, 'the first notification');
  let mark = proxy.log.length;
  await gateways[first].kill('SIGKILL');
  await publisher.publish(topic, MCP_EVENTS.notification, notification('after-kill'), {
    historyTtlMs: 60_000,
  });
  await waitFor(() => received.includes('after-kill'), 15_000, 'the notification after SIGKILL');
  const second = await holder(mark);
  expect(second).not.toBe(first);

  // SIGTERM the new holder: its lock is released before it exits; the reopen succeeds at once.
  mark = proxy.log.length;
  const started = Date.now();
  await gateways[second].kill('SIGTERM');
  await publisher.publish(topic, MCP_EVENTS.notification, notification('after-term'), {
    historyTtlMs: 60_000,
  });
  await waitFor(() => received.includes('after-term'), 15_000, 'the notification after SIGTERM');
  const third = await holder(mark);
  expect([first, second]).not.toContain(third);
  expect(Date.now() - started).toBeLessThan(10_000);

  // Nothing lost, nothing twice; the stream is still held and the session still works.
  expect(received).toEqual(['before', 'after-kill', 'after-term']);
  expect(errors.filter((e) => e.includes('Maximum reconnection attempts'))).toEqual([]);
  await client.listTools();
}, 60_000);

test('legacy SSE: /messages answers 404 once the stream’s pod is gone, and the client reconnects', async () => {
  const t = token('team', 'legacy-death');
  let [survivor] = await gatewaysFor(1);
  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    const [fresh] = await gatewaysFor(1);
    const pair = [survivor, fresh];
    const proxy = await proxyOver(pair);
    const connect = async () => {
      const client = new Client({ name: 'legacy-death', version: '1.0.0' });
      await client.connect(
        new SSEClientTransport(new URL(`${proxy.url}/sse`), {
          requestInit: { headers: bearer(t) },
        }),
      );
      clients.push(client);
      return client;
    };
    const client = await connect();
    await client.listTools();
    const stream = [...proxy.log].reverse().find((r) => r.method === 'GET' && r.path === '/sse')!;
    const messages = [...proxy.log].reverse().find((r) => r.path.startsWith('/messages'))!;
    const victim = pair[stream.target];
    const started = Date.now();
    await victim.kill(signal);
    const post = async () =>
      (
        await fetch(`${proxy.url}${messages.path}`, {
          method: 'POST',
          headers: { ...bearer(t), 'Content-Type': 'application/json' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }),
        })
      ).status;
    // SIGTERM: at once. SIGKILL: once the cleanup sweep finds the stream's pod gone.
    if (signal === 'SIGTERM') expect(await post()).toBe(404);
    else await waitFor(async () => (await post()) === 404, 5000, '404 on /messages');
    expect(Date.now() - started).toBeLessThan(signal === 'SIGTERM' ? 2000 : 5000);
    await expect(client.listTools()).rejects.toThrow(/404/);

    // A new connection lands on the surviving pod and works.
    const again = await connect();
    expect((await again.listTools()).tools.length).toBeGreaterThan(0);
    survivor = pair.find((g) => g !== victim)!;
  }
  await survivor.kill('SIGTERM');
}, 60_000);

test('a legacy session is not kept alive by POSTs alone once its stream is gone', async () => {
  const [gateway] = await gatewaysFor(1);
  const t = token('team', 'legacy-slide');
  const { raw, sessionId } = await legacyStream(gateway.url, t);
  expect(raw.status).toBe(200);
  const sessionKey = `${prefix}kv:${mcpNames.sessionKey(sessionId)}`;
  const ttlBefore = await admin.pttl(sessionKey);
  await fetch(`${gateway.url}/messages?sessionId=${sessionId}`, {
    method: 'POST',
    headers: { ...bearer(t), 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  // The POST did not restart the TTL (only the stream's keep-alive ticks do).
  expect(await admin.pttl(sessionKey)).toBeLessThanOrEqual(ttlBefore);
  raw.abort();
  await waitFor(async () => (await admin.exists(sessionKey)) === 0, 3000, 'the session gone');
  await gateway.kill('SIGTERM');
});

test('stats count open streams by transport; closed ones leave at once, a dead pod’s within the sweep', async () => {
  const [p, q] = await gatewaysFor(2);
  const zero = async () => {
    const s = await stats(q.url);
    return s.totalConnections === 0 && s.resumableConnections === 0;
  };
  await waitFor(zero, RESUME_GRACE_MS + 3000, 'no stream left by earlier tests');
  const t = token('team', 'stats-1');
  const onP = await openSseClient(p.url, t);
  const onQ = await openSseClient(q.url, token('readonly', 'stats-2'));
  const sessionId = await initializeSession(p.url, t);
  const standalone = await standaloneGet(p.url, t, sessionId);
  expect(standalone.status).toBe(200);
  const legacy = await legacyStream(p.url, token('master', 'stats-3'));

  expect(await stats(q.url)).toMatchObject({
    totalConnections: 4,
    connectionsByType: { master: 1, team: 2, readonly: 1 },
    connectionsByTransport: { seed: 2, 'streamable-http': 1, 'legacy-sse': 1 },
    resumableConnections: 0,
  });
  // /metrics agrees, pod by pod and by transport.
  const metric = (url: string, labels = '') => scrapeMetric(url, 'mcpgw_connections_open', labels);
  expect((await metric(p.url)) + (await metric(q.url))).toBe(4);
  expect(await metric(p.url, 'transport="streamable-http"')).toBe(1);
  expect(await metric(p.url, 'transport="legacy-sse"')).toBe(1);
  expect(await metric(q.url, 'transport="seed"')).toBe(1);

  // A normal close: gone from the open counts at once, resumable apart.
  onQ.close();
  await waitFor(
    async () => {
      const s = await stats(p.url);
      return s.totalConnections === 3 && s.resumableConnections === 1;
    },
    1000,
    'the closed stream counted as resumable only',
  );
  expect(await metric(q.url)).toBe(0);

  // SIGKILL: within the sweep, none of the dead pod's streams count as open; its seed stream
  // waits to be resumed until the window ends.
  await p.kill('SIGKILL');
  onP.close();
  await waitFor(
    async () => {
      const s = await stats(q.url);
      return s.totalConnections === 0 && s.resumableConnections === 2;
    },
    3000,
    'the dead pod’s streams no longer open',
  );
  expect((await stats(q.url)).connectionsByTransport).toEqual({
    seed: 0,
    'streamable-http': 0,
    'legacy-sse': 0,
  });
  await waitFor(
    async () => (await stats(q.url)).resumableConnections === 0,
    RESUME_GRACE_MS + 3000,
    'the resume window over',
  );
  void legacy;
  await q.kill('SIGTERM');
}, 60_000);

test('after a SIGTERM no key of the dead pod’s streams is left in Redis', async () => {
  const [r] = await gatewaysFor(1);
  const t = token('team', 'sigterm-keys');
  const seed = await openSseClient(r.url, t);
  const sessionId = await initializeSession(r.url, t);
  const standalone = await standaloneGet(r.url, t, sessionId);
  expect(standalone.status).toBe(200);
  const legacy = await legacyStream(r.url, t);
  const pod = podIds.get(r)!;
  const lockKey = `${prefix}kv:${mcpNames.standaloneLockKey(sessionId)}`;
  const legacyKey = `${prefix}kv:${mcpNames.sessionKey(legacy.sessionId)}`;
  const aliveKey = `${prefix}kv:${mcpNames.podAliveKey(pod)}`;
  for (const key of [lockKey, legacyKey, aliveKey]) expect(await admin.exists(key)).toBe(1);

  expect(await r.kill('SIGTERM')).toBe(0);
  await Promise.all([standalone.ended, legacy.raw.ended]);
  seed.close();

  const keys = await admin.keys(`${prefix}*`);
  for (const key of [lockKey, legacyKey, aliveKey]) expect(keys).not.toContain(key);
  // No registry entry of the pod counts as open; no open stream of the sub is counted.
  const records = Object.entries(await admin.hgetall(`${prefix}conns`)).map(
    ([id, json]) => [id, JSON.parse(json) as ConnectionRecord] as const,
  );
  const open = new Set(await admin.zrange(`${prefix}conns:seen`, 0, -1));
  const resumable = new Set(await admin.zrange(`${prefix}conns:closed`, 0, -1));
  const ofPod = records.filter(([, record]) => record.podId === pod);
  expect(ofPod.filter(([id]) => open.has(id))).toEqual([]);
  // What is left is the seed connection, resumable (the sweep drops it after the window).
  expect(ofPod.map(([id]) => id)).toEqual([seed.connectionId]);
  expect(resumable.has(seed.connectionId)).toBe(true);
  expect(await admin.hget(`${prefix}conns:subs`, 'sigterm-keys')).toBeNull();
}, 30_000);

test('MAX_CONNECTIONS_PER_TOKEN counts every stream kind of one sub across pods (429)', async () => {
  const [a, b] = await gatewaysFor(2);
  const sub = 'limited';
  const t = token('team', sub);
  const seed = await openSseClient(a.url, t);
  const legacy = await legacyStream(b.url, t);
  const sessionId = await initializeSession(a.url, t);
  const standalone = await standaloneGet(a.url, t, sessionId);
  expect([legacy.raw.status, standalone.status]).toEqual([200, 200]);

  // A 4th stream of any kind, on either pod, is refused before it opens.
  const seedRefused = await fetch(`${b.url}/mcp/sse`, { headers: bearer(t) });
  expect(seedRefused.status).toBe(429);
  expect(seedRefused.headers.get('retry-after')).not.toBeNull();
  expect(((await seedRefused.json()) as { error: { code: string } }).error.code).toBe(
    'too_many_connections',
  );
  const legacyRefused = await fetch(`${a.url}/sse`, { headers: bearer(t) });
  expect(legacyRefused.status).toBe(429);
  expect(legacyRefused.headers.get('retry-after')).not.toBeNull();
  const listTools = (id: number, accept: string, session = sessionId) =>
    fetch(`${b.url}/mcp`, {
      method: 'POST',
      headers: {
        ...bearer(t),
        'Content-Type': 'application/json',
        Accept: accept,
        'Mcp-Session-Id': session,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' }),
    });
  const postRefused = await listTools(7, 'application/json, text/event-stream');
  expect(postRefused.status).toBe(429);
  expect(postRefused.headers.get('retry-after')).not.toBeNull();
  expect(await postRefused.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 } });
  // A JSON answer is no stream: not limited.
  const json = await listTools(8, 'application/json');
  expect(json.status).toBe(200);
  // The session's verdict comes first: an unknown one is 404, at the limit too.
  const unknownSession = '0'.repeat(32);
  const both = await listTools(9, 'application/json, text/event-stream', unknownSession);
  expect(both.status).toBe(404);
  // Another sub is not affected.
  const other = await openSseClient(b.url, token('team', 'not-limited'));
  other.close();

  // Closing one frees a place.
  legacy.raw.abort();
  await waitFor(
    async () => (await admin.hget(`${prefix}conns:subs`, sub)) === '2',
    3000,
    'a place freed',
  );
  // A POST stream listed while its session was looked up, then refused, keeps no place.
  const lost = await listTools(10, 'application/json, text/event-stream', unknownSession);
  expect(lost.status).toBe(404);
  await lost.text();
  await waitFor(
    async () => (await admin.hget(`${prefix}conns:subs`, sub)) === '2',
    3000,
    'the refused POST released its place',
  );
  const again = await legacyStream(b.url, t);
  expect(again.raw.status).toBe(200);
  seed.close();
  await Promise.all([a.kill('SIGTERM'), b.kill('SIGTERM')]);
}, 30_000);

test('streams of an expired token are closed at the sweep on every kind, saying why', async () => {
  const [g] = await gatewaysFor(1);
  const t = token('team', 'expiring', '3s');
  const expiresAt = Date.now() + 3000;
  // Two subs: one sub may hold MAX_PER_TOKEN (3) streams.
  const seed = await openSseClient(g.url, token('team', 'expiring-seed', '3s'));
  const sessionId = await initializeSession(g.url, t);
  const standalone = await standaloneGet(g.url, t, sessionId);
  const legacy = await legacyStream(g.url, t);
  const call = await openRaw(`${g.url}/mcp`, {
    method: 'POST',
    headers: {
      ...bearer(t),
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'Mcp-Session-Id': sessionId,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 3,
      method: 'tools/call',
      params: { name: 'simulate_work', arguments: { steps: 20, delayMs: 750 } },
    }),
  });
  expect([standalone.status, legacy.raw.status, call.status]).toEqual([200, 200, 200]);

  const status = await seed.next(
    (e) => e.event === 'connection-status' && e.json.status === 'token-expired',
    10_000,
  );
  expect(status).toBeDefined();
  await Promise.all([standalone.ended, legacy.raw.ended, call.ended]);
  // Closed at the first sweep (every 500 ms) after the expiry, not when the call finished.
  expect(Date.now() - expiresAt).toBeLessThan(3000);
  for (const stream of [standalone, legacy.raw, call]) {
    expect(stream.text()).toContain('token expired');
  }
  expect(call.text()).not.toContain('"completedSteps":20');
  seed.close();
  await waitFor(async () => (await stats(g.url)).totalConnections === 0, 3000, 'none open');
  await g.kill('SIGTERM');
}, 30_000);
