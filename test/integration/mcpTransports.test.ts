/**
 * Issue 5: real MCP clients on the scaled cluster. Two gateway processes behind a round-robin
 * proxy that sends every HTTP request to the other pod, two worker processes, real Redis; the
 * SDK's own Client over Streamable HTTP and over the legacy HTTP+SSE transport.
 * Processes run the compiled dist/ (make builds it).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import Redis from 'ioredis';
import { issueToken } from '../../shared/auth';
import type { TokenType } from '../../shared/types';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { initializeSession } from '../helpers/mcpHttp';
import type { SpawnedProcess } from '../helpers/processes';
import type { ProvidedRedis } from '../../devSupport/redis';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/roundRobinProxy';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'mcp-transports-secret-0123456789abcdef';
const token = (type: TokenType, sub = `${type}-1`) => issueToken(SECRET, { type, sub, ttl: '1h' });
const TEAM = token('team');

let cluster: TestCluster;
let redis: ProvidedRedis;
let env: Record<string, string>;
let gateways: SpawnedProcess[] = [];
let proxy: RoundRobinProxy;
const clients: Client[] = [];

beforeAll(async () => {
  cluster = await startCluster('mcp', {
    gateways: 2,
    workers: 2,
    jwtSecret: SECRET,
    env: {
      HEARTBEAT_INTERVAL_MS: '1000',
      CLEANUP_INTERVAL_MS: '500',
      CLAIM_IDLE_MS: '1000',
      ALLOWED_ORIGINS: 'http://allowed.example',
    },
  });
  ({ redis, env, gateways } = cluster);
  proxy = await startRoundRobinProxy(gateways.map((g) => g.url));
}, 60_000);

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
});

afterAll(async () => {
  await proxy?.close();
  await cluster?.stop();
});

const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

async function streamableClient(
  url = `${proxy.url}/mcp`,
  t = TEAM,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: bearer(t) },
    reconnectionOptions: {
      initialReconnectionDelay: 300,
      maxReconnectionDelay: 2000,
      reconnectionDelayGrowFactor: 1.5,
      maxRetries: 5,
    },
  });
  const client = new Client({ name: 'cluster-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return { client, transport };
}

async function call(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError).toBeFalsy();
  return result.structuredContent as Record<string, unknown>;
}

/** Every backlog tool, through whichever pod each request lands on. */
async function exerciseBacklog(client: Client): Promise<void> {
  const { tools } = await client.listTools();
  expect(tools.map((t) => t.name).sort()).toEqual(
    [
      'add_actor',
      'add_child_feature',
      'add_feature_to_story',
      'add_story_to_actor',
      'create_project',
      'get_project_tree',
      'get_story_tree',
      'list_projects',
      'simulate_work',
      'update_story',
    ].sort(),
  );
  const project = await call(client, 'create_project', { name: 'mcp-cluster' });
  const actor = await call(client, 'add_actor', { projectId: project.id, name: 'Customer' });
  const story = await call(client, 'add_story_to_actor', { actorId: actor.id, title: 'Pay' });
  await call(client, 'update_story', { storyId: story.id, status: 'in_progress' });
  const feature = await call(client, 'add_feature_to_story', { storyId: story.id, title: 'Card' });
  await call(client, 'add_child_feature', { parentFeatureId: feature.id, title: 'Visa' });
  const storyTree = await call(client, 'get_story_tree', { storyId: story.id });
  expect(JSON.stringify(storyTree)).toContain('Visa');
  const tree = await call(client, 'get_project_tree', { projectId: project.id });
  expect(JSON.stringify(tree)).toContain('in_progress');
  const listed = await call(client, 'list_projects');
  expect(JSON.stringify(listed)).toContain(String(project.id));

  const progress: number[] = [];
  const work = (await client.callTool(
    { name: 'simulate_work', arguments: { steps: 3, delayMs: 50 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  )) as CallToolResult;
  expect(work.structuredContent).toMatchObject({ completedSteps: 3, cancelled: false });
  expect(progress.length).toBeGreaterThanOrEqual(1);
  expect(progress[0]).toBe(1);
}

test('Streamable HTTP: the SDK client uses every tool through alternating pods, then ends the session', async () => {
  const { client, transport } = await streamableClient();
  await exerciseBacklog(client);
  const used = new Set(proxy.log.map((r) => r.target));
  expect(used).toEqual(new Set([0, 1]));

  const sessionId = transport.sessionId!;
  await transport.terminateSession();
  for (let i = 0; i < 2; i++) {
    // Both pods refuse it now.
    const res = await fetch(`${proxy.url}/mcp`, {
      method: 'POST',
      headers: {
        ...bearer(TEAM),
        'Content-Type': 'application/json',
        Accept: 'application/json, text/event-stream',
        'Mcp-Session-Id': sessionId,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/list' }),
    });
    expect(res.status).toBe(404);
  }
});

test('legacy HTTP+SSE: the SDK client over SSEClientTransport, POSTs landing on the other pod', async () => {
  const transport = new SSEClientTransport(new URL(`${proxy.url}/sse`), {
    requestInit: { headers: bearer(TEAM) },
  });
  const client = new Client({ name: 'legacy-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  await exerciseBacklog(client);
});

test('HTTP rules through the proxy: 409, Origin, protocol version, subject, session header', async () => {
  const sessionId = await initializeSession(proxy.url, TEAM);
  const headers = { ...bearer(TEAM), Accept: 'text/event-stream', 'Mcp-Session-Id': sessionId };
  const first = new AbortController();
  const held = await fetch(`${gateways[0].url}/mcp`, { headers, signal: first.signal });
  expect(held.status).toBe(200);
  const second = await fetch(`${gateways[1].url}/mcp`, { headers });
  expect(second.status).toBe(409);
  const viaProxy = await fetch(`${proxy.url}/mcp`, { headers });
  expect(viaProxy.status).toBe(409);
  first.abort();

  const post = (extra: Record<string, string>) =>
    fetch(`${proxy.url}/mcp`, {
      method: 'POST',
      headers: {
        ...bearer(TEAM),
        'Content-Type': 'application/json',
        Accept: 'application/json, text/event-stream',
        'Mcp-Session-Id': sessionId,
        ...extra,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    });
  expect((await post({ Origin: 'http://evil.example' })).status).toBe(403);
  expect((await post({ 'MCP-Protocol-Version': '2099-01-01' })).status).toBe(400);
  expect((await post({ Authorization: `Bearer ${token('team', 'someone-else')}` })).status).toBe(
    404,
  );
  expect((await post({ 'Mcp-Session-Id': '' })).status).toBe(400);
  const ok = await post({ 'MCP-Protocol-Version': '2025-11-25', Origin: 'http://allowed.example' });
  expect(ok.status).toBe(200);
  expect(await ok.text()).toContain('"result"');
});

test('notifications/cancelled, posted to another pod, aborts the call on whichever worker runs it', async () => {
  const { client } = await streamableClient();
  const controller = new AbortController();
  const call = client.callTool(
    { name: 'simulate_work', arguments: { steps: 20, delayMs: 500 } },
    undefined,
    { signal: controller.signal, onprogress: () => controller.abort('enough') },
  );
  await expect(call).rejects.toThrow();
  const cancelled = () => proxy.log.find((r) => r.body.includes('notifications/cancelled'));
  await waitFor(() => cancelled() !== undefined, 5000, 'the cancel POST');
  const cancelPost = cancelled()!;
  const callPost = [...proxy.log].reverse().find((r) => r.body.includes('"steps":20'))!;
  expect(cancelPost.target).not.toBe(callPost.target);

  // The worker ends the call's stream with a `cancelled` event long before its 10 s of work.
  const admin = new Redis(redis.url);
  try {
    await waitFor(
      async () => {
        const keys = await admin.keys(`${env.REDIS_PREFIX}h:mcp:*`);
        for (const key of keys) {
          const entries = await admin.xrange(key, '-', '+');
          if (entries.some(([, fields]) => fields[1] === 'cancelled')) return true;
        }
        return false;
      },
      5000,
      'a cancelled event',
    );
  } finally {
    admin.disconnect();
  }
});

/** SSE events of a fetch response body, as they arrive: id, event name, data. */
async function* sseEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<{ id: string; data: string }> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
      const lines = buffered.slice(0, end).split('\n');
      buffered = buffered.slice(end + 2);
      const field = (name: string) =>
        lines
          .filter((l) => l.startsWith(`${name}:`))
          .map((l) => l.slice(name.length + 1).trimStart())
          .join('\n');
      const data = field('data');
      if (data !== '') yield { id: field('id'), data };
    }
  }
}

test('a POST stream cut mid-call, its pod alive, resumes on the other pod: each progress once, then the result', async () => {
  const [a, b] = gateways;
  const sessionId = await initializeSession(a.url, TEAM);
  const headers = {
    ...bearer(TEAM),
    'Content-Type': 'application/json',
    Accept: 'application/json, text/event-stream',
    'Mcp-Session-Id': sessionId,
    'MCP-Protocol-Version': '2025-11-25',
  };
  const steps = 6;
  const aborted = new AbortController();
  const post = await fetch(`${a.url}/mcp`, {
    method: 'POST',
    headers,
    signal: aborted.signal,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: {
        name: 'simulate_work',
        arguments: { steps, delayMs: 300 },
        _meta: { progressToken: 'p' },
      },
    }),
  });
  expect(post.status).toBe(200);
  // Read up to the first progress notification, then drop the connection (pod A keeps running).
  // The session set no log level: the tool's log messages come too, and are skipped.
  const progress: number[] = [];
  let lastId = '';
  for await (const event of sseEvents(post.body!)) {
    const message = JSON.parse(event.data) as { method?: string; params?: { progress?: number } };
    if (message.method !== 'notifications/progress') continue;
    progress.push(message.params!.progress!);
    lastId = event.id;
    break;
  }
  aborted.abort();
  expect(progress).toEqual([1]);

  const resumed = await fetch(`${b.url}/mcp`, {
    headers: { ...headers, 'Last-Event-ID': lastId },
  });
  expect(resumed.status).toBe(200);
  let result: { completedSteps?: number } | undefined;
  for await (const event of sseEvents(resumed.body!)) {
    const message = JSON.parse(event.data) as {
      method?: string;
      params?: { progress?: number };
      result?: { structuredContent?: { completedSteps?: number } };
    };
    if (message.result) {
      result = message.result.structuredContent;
      break;
    }
    if (message.method === 'notifications/progress') progress.push(message.params!.progress!);
  }
  // Replayed what the cut connection missed, then the live rest: none lost, none twice.
  expect(progress).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
  expect(result).toMatchObject({ completedSteps: steps });
}, 30_000);

test('SIGKILL of the pod streaming a response mid-call: the client resumes on the other pod', async () => {
  const { client } = await streamableClient();
  const progress: number[] = [];
  let firstProgress!: () => void;
  const started = new Promise<void>((resolve) => (firstProgress = resolve));
  const work = client.callTool(
    { name: 'simulate_work', arguments: { steps: 8, delayMs: 400 } },
    undefined,
    {
      onprogress: (p) => {
        progress.push(p.progress);
        firstProgress();
      },
      timeout: 30_000,
    },
  );
  await started;
  const streaming = [...proxy.log].reverse().find((r) => r.body.includes('"simulate_work"'));
  expect(streaming).toBeDefined();
  const victim = gateways[streaming!.target];
  await victim.kill('SIGKILL');

  const result = (await work) as CallToolResult;
  expect(result.structuredContent).toMatchObject({ completedSteps: 8, cancelled: false });
  // Replayed from history on the other pod: nothing missed, nothing twice.
  expect(progress).toEqual([...new Set(progress)].sort((a, b) => a - b));
  // The request stream was resumed by id (not the session's standalone `get_` stream).
  const resumed = proxy.log.filter(
    (r) => r.method === 'GET' && r.lastEventId !== undefined && !r.lastEventId.startsWith('get_'),
  );
  expect(resumed.length).toBeGreaterThan(0);
  expect(resumed.every((r) => r.target !== streaming!.target)).toBe(true);
}, 60_000);
