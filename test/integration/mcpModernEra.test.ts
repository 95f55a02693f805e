/**
 * MCP 2026-07-28 on /mcp, stateless across pods, beside 2025-11-25 sessions: two gateway
 * processes, two workers, real Redis, raw fetch (what a 2026 client puts on the wire).
 *
 * The workers run in this process (real worker code over real Redis, as the conformance test
 * does), so their server can hold two test tools the backlog lacks: one that changes the tool
 * list (a list-changed notification emitted on a worker) and one that reports when its abort
 * signal fires (a request cancelled by closing its stream, seen on the worker running it).
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { issueToken } from '../../shared/auth';
import { loadConfig } from '../../shared/config';
import { RedisEngine } from '../../shared/engine/redis';
import { silentLogger } from '../../shared/logger';
import { createMetrics } from '../../shared/metrics';
import type { BacklogStore } from '../../worker/backlog/store';
import { createBacklogServer } from '../../worker/server/backlogServer';
import { createWorker, type Worker } from '../../worker/worker';
import { provideRedis, uniquePrefix, type ProvidedRedis } from '../../devSupport/redis';
import { initializeSession } from '../helpers/mcpHttp';
import { reapAll, spawnRole, type SpawnedProcess } from '../helpers/processes';

const SECRET = 'mcp-modern-era-secret-0123456789abcdef';
const VERSION = '2026-07-28';
const META_VERSION = 'io.modelcontextprotocol/protocolVersion';
const META_CAPABILITIES = 'io.modelcontextprotocol/clientCapabilities';
const META_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';
const META_SUBSCRIPTION = 'io.modelcontextprotocol/subscriptionId';
const MAX_STREAMS = 3;

const META = {
  [META_VERSION]: VERSION,
  'io.modelcontextprotocol/clientInfo': { name: 'modern-test', version: '1' },
  [META_CAPABILITIES]: {},
};

let redis: ProvidedRedis;
let gatewayA: SpawnedProcess;
let gatewayB: SpawnedProcess;
let env: Record<string, string>;
const workers: Worker[] = [];
const engines: RedisEngine[] = [];
let team: string;

/** Abort reasons seen by `await_abort` calls on the workers, by the call's `label` argument. */
const aborted = new Map<string, () => void>();
const abortSeen = (label: string) => new Promise<void>((resolve) => aborted.set(label, resolve));

/** The backlog server plus the test tools; its tool list changes, so it says so. */
function createTestServer(store: BacklogStore): McpServer {
  const server = createBacklogServer(store);
  server.server.registerCapabilities({ tools: { listChanged: true } });
  let added = 0;
  server.registerTool(
    'change_tool_list',
    { description: 'Test: adds a tool (the server then emits tools/list_changed)' },
    () => {
      added += 1;
      server.registerTool(`added_tool_${added}`, { description: 'Test: added' }, () => ({
        content: [{ type: 'text', text: 'added' }],
      }));
      return { content: [{ type: 'text', text: `added added_tool_${added}` }] };
    },
  );
  server.registerTool(
    'await_abort',
    {
      description: 'Test: sends one progress notification, then waits until cancelled',
      inputSchema: { label: z.string() },
    },
    async ({ label }, extra) => {
      const token = extra._meta?.progressToken;
      if (token !== undefined) {
        await extra.sendNotification({
          method: 'notifications/progress',
          params: { progressToken: token, progress: 0, message: 'waiting' },
        });
      }
      await new Promise<void>((resolve) => {
        extra.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      aborted.get(label)?.();
      return { content: [{ type: 'text', text: 'aborted' }] };
    },
  );
  server.registerTool(
    'regional',
    {
      description: 'Test: its region argument is mirrored into Mcp-Param-Region (SEP-2243)',
      inputSchema: { region: z.string().meta({ 'x-mcp-header': 'Region' }) },
    },
    ({ region }) => ({ content: [{ type: 'text', text: `in ${region}` }] }),
  );
  return server;
}

beforeAll(async () => {
  redis = await provideRedis();
  env = {
    REDIS_URL: redis.url,
    REDIS_PREFIX: uniquePrefix('modern'),
    JWT_SECRET: SECRET,
    HEARTBEAT_INTERVAL_MS: '1000',
    MAX_CONNECTIONS_PER_TOKEN: String(MAX_STREAMS),
    TOOL_TIMEOUT_MS: '60000',
  };
  [gatewayA, gatewayB] = await Promise.all([
    spawnRole('gateway', { ...env, POD_ID: 'gateway-a' }),
    spawnRole('gateway', { ...env, POD_ID: 'gateway-b' }),
  ]);
  for (const podId of ['worker-1', 'worker-2']) {
    const config = loadConfig({ ...env, POD_ID: podId, LOG_LEVEL: 'error' });
    const engine = new RedisEngine({
      url: redis.url,
      prefix: config.redisPrefix,
      historyMaxLen: config.historyMaxLen,
      historyTtlS: config.historyTtlS,
      logger: silentLogger(),
    });
    await engine.start();
    engines.push(engine);
    const worker = createWorker({
      config,
      engine,
      logger: silentLogger(),
      metrics: createMetrics('worker'),
      createMcpServer: createTestServer,
    });
    await worker.start();
    workers.push(worker);
  }
  team = issueToken(SECRET, { type: 'team', sub: 'modern-team', ttl: '1h' });
}, 60_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await Promise.all(engines.map((e) => e.close()));
  await reapAll();
  await redis?.stop();
});

// ---- raw 2026-07-28 requests ----

interface RpcOptions {
  id?: string | number;
  token?: string;
  /** Replace (or, undefined, drop) the standard headers a conforming client sends. */
  headers?: Record<string, string | undefined>;
  accept?: string;
  signal?: AbortSignal;
}

/** The headers a 2026-07-28 client sends for this request (SEP-2243). */
function standardHeaders(method: string, params: Record<string, unknown>): Record<string, string> {
  const headers: Record<string, string> = { 'MCP-Protocol-Version': VERSION, 'Mcp-Method': method };
  const name = method === 'resources/read' ? params.uri : params.name;
  if (
    ['tools/call', 'prompts/get', 'resources/read'].includes(method) &&
    typeof name === 'string'
  ) {
    headers['Mcp-Name'] = name;
  }
  return headers;
}

function post(
  gateway: SpawnedProcess,
  body: unknown,
  headers: Record<string, string | undefined>,
  options: RpcOptions = {},
): Promise<Response> {
  const all: Record<string, string> = {
    Authorization: `Bearer ${options.token ?? team}`,
    'Content-Type': 'application/json',
    Accept: options.accept ?? 'application/json, text/event-stream',
  };
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) all[name] = value;
  return fetch(`${gateway.url}/mcp`, {
    method: 'POST',
    headers: all,
    body: JSON.stringify(body),
    signal: options.signal,
  });
}

/** A 2026-07-28 request with a conforming envelope and headers (unless `options` alter them). */
function request(
  gateway: SpawnedProcess,
  method: string,
  params: Record<string, unknown> = {},
  options: RpcOptions = {},
): Promise<Response> {
  const withMeta = { ...params, _meta: { ...META, ...(params._meta as object | undefined) } };
  const headers = { ...standardHeaders(method, withMeta), ...options.headers };
  return post(
    gateway,
    { jsonrpc: '2.0', id: options.id ?? 1, method, params: withMeta },
    headers,
    options,
  );
}

/** A JSON-RPC message as received (its shape is what the tests check). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Message = Record<string, any>;

/** The JSON-RPC messages of an SSE body, as they arrive; `done` once the body ended. */
function sseMessages(res: Response): {
  messages: Message[];
  next(n: number): Promise<Message[]>;
  done: Promise<void>;
} {
  const messages: Message[] = [];
  const waiters: { n: number; resolve: (m: Message[]) => void }[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const done = (async () => {
    try {
      for (;;) {
        const { value, done: ended } = await reader.read();
        if (ended) break;
        buffer += decoder.decode(value, { stream: true });
        let split: number;
        while ((split = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, split);
          buffer = buffer.slice(split + 2);
          const data = frame
            .split('\n')
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).trim())
            .join('\n');
          if (data) messages.push(JSON.parse(data));
          for (const waiter of [...waiters]) {
            if (messages.length >= waiter.n) {
              waiters.splice(waiters.indexOf(waiter), 1);
              waiter.resolve(messages.slice(0, waiter.n));
            }
          }
        }
      }
    } catch {
      // aborted by the test
    }
  })();
  return {
    messages,
    done,
    next: (n) =>
      messages.length >= n
        ? Promise.resolve(messages.slice(0, n))
        : new Promise((resolve, reject) => {
            waiters.push({ n, resolve });
            void done.then(() =>
              reject(
                new Error(
                  `stream ended after ${messages.length} messages: ${JSON.stringify(messages)}`,
                ),
              ),
            );
          }),
  };
}

async function json(res: Response): Promise<Message> {
  const type = res.headers.get('content-type') ?? '';
  if (!type.includes('application/json')) {
    throw new Error(`expected JSON, got ${res.status} ${type}: ${await res.text()}`);
  }
  return (await res.json()) as Message;
}

// ---- tests ----

test("server/discover on either pod: versions of both eras, the server's own capabilities and identity, no session", async () => {
  for (const gateway of [gatewayA, gatewayB]) {
    const res = await request(gateway, 'server/discover', {}, { id: 'd1' });
    expect(res.status).toBe(200);
    expect(res.headers.get('mcp-session-id')).toBeNull();
    const body = await json(res);
    expect(body.id).toBe('d1');
    const { result } = body;
    expect(result.supportedVersions).toEqual(
      expect.arrayContaining(['2026-07-28', '2025-11-25', '2025-06-18', '2025-03-26']),
    );
    // The backlog server's capabilities as its McpServer declares them (tools, list changes).
    expect(result.capabilities.tools).toEqual({ listChanged: true });
    expect(result.capabilities.tasks).toBeUndefined();
    expect(typeof result.instructions).toBe('string');
    expect(result._meta[META_SERVER_INFO]).toEqual({ name: 'project-backlog', version: '0.1.0' });
    expect(result.resultType).toBe('complete');
    expect(result.ttlMs).toBeGreaterThanOrEqual(0);
    expect(['public', 'private']).toContain(result.cacheScope);
  }
});

test('a version this server does not serve: 400 -32022 listing the supported versions', async () => {
  const res = await request(
    gatewayA,
    'server/discover',
    { _meta: { [META_VERSION]: '2099-01-01' } },
    { id: 301, headers: { 'MCP-Protocol-Version': '2099-01-01' } },
  );
  expect(res.status).toBe(400);
  const body = await json(res);
  expect(body.id).toBe(301);
  expect(body.error.code).toBe(-32022);
  expect(body.error.data.requested).toBe('2099-01-01');
  expect(body.error.data.supported).toEqual(expect.arrayContaining(['2026-07-28', '2025-11-25']));
});

test.each([
  [
    'MCP-Protocol-Version differs from _meta',
    'server/discover',
    {},
    { 'MCP-Protocol-Version': '2025-11-25' },
  ],
  ['MCP-Protocol-Version missing', 'server/discover', {}, { 'MCP-Protocol-Version': undefined }],
  ['Mcp-Method differs from the body', 'tools/list', {}, { 'Mcp-Method': 'tools/call' }],
  ['Mcp-Method missing', 'tools/list', {}, { 'Mcp-Method': undefined }],
  [
    'Mcp-Name differs from params.name',
    'tools/call',
    { name: 'list_projects', arguments: {} },
    { 'Mcp-Name': 'create_project' },
  ],
  [
    'Mcp-Name missing',
    'tools/call',
    { name: 'list_projects', arguments: {} },
    { 'Mcp-Name': undefined },
  ],
  [
    'Mcp-Name badly encoded',
    'tools/call',
    { name: 'list_projects', arguments: {} },
    { 'Mcp-Name': '=?base64?%%%?=' },
  ],
])(
  'header mismatch (%s): 400 -32020, the request id kept',
  async (_case, method, params, headers) => {
    const res = await request(gatewayB, method, params, { id: 'h1', headers });
    expect(res.status).toBe(400);
    const body = await json(res);
    expect(body).toMatchObject({ jsonrpc: '2.0', id: 'h1', error: { code: -32020 } });
  },
);

test('an Mcp-Name in the base64 form is decoded before the comparison', async () => {
  const encoded = `=?base64?${Buffer.from('list_projects').toString('base64')}?=`;
  const res = await request(
    gatewayA,
    'tools/call',
    { name: 'list_projects', arguments: {} },
    {
      headers: { 'Mcp-Name': encoded },
    },
  );
  expect(res.status).toBe(200);
  expect((await json(res)).result.isError).toBeFalsy();
});

test('Mcp-Param-* headers are checked against the arguments a tool marks with x-mcp-header', async () => {
  const call = (headers: Record<string, string | undefined>) =>
    request(
      gatewayA,
      'tools/call',
      { name: 'regional', arguments: { region: 'eu-1' } },
      { id: 'r', headers },
    );
  const ok = await call({ 'Mcp-Param-Region': 'eu-1' });
  expect(ok.status).toBe(200);
  expect((await json(ok)).result.content).toEqual([{ type: 'text', text: 'in eu-1' }]);
  for (const headers of [{ 'Mcp-Param-Region': 'us-2' }, {}]) {
    const refused = await call(headers);
    expect(refused.status).toBe(400);
    expect(await json(refused)).toMatchObject({ id: 'r', error: { code: -32020 } });
  }
});

test.each([
  ['no _meta', { jsonrpc: '2.0', id: 102, method: 'server/discover', params: {} }],
  [
    '_meta without clientCapabilities',
    {
      jsonrpc: '2.0',
      id: 102,
      method: 'server/discover',
      params: { _meta: { [META_VERSION]: VERSION } },
    },
  ],
  [
    '_meta with a malformed clientInfo',
    {
      jsonrpc: '2.0',
      id: 102,
      method: 'server/discover',
      params: { _meta: { ...META, 'io.modelcontextprotocol/clientInfo': 'me' } },
    },
  ],
])('invalid envelope (%s): 400 -32602', async (_case, body) => {
  const res = await post(gatewayA, body, {
    'MCP-Protocol-Version': VERSION,
    'Mcp-Method': 'server/discover',
  });
  expect(res.status).toBe(400);
  expect(await json(res)).toMatchObject({ id: 102, error: { code: -32602 } });
});

test('a request without clientInfo is served (it is a SHOULD)', async () => {
  const meta = { [META_VERSION]: VERSION, [META_CAPABILITIES]: {} };
  const res = await post(
    gatewayB,
    { jsonrpc: '2.0', id: 105, method: 'server/discover', params: { _meta: meta } },
    { 'MCP-Protocol-Version': VERSION, 'Mcp-Method': 'server/discover' },
  );
  expect(res.status).toBe(200);
  expect((await json(res)).result.supportedVersions).toContain(VERSION);
});

test.each([
  'initialize',
  'ping',
  'logging/setLevel',
  'resources/subscribe',
  'resources/unsubscribe',
  'unknown/method',
])('%s in the 2026 era: 404 -32601, the id kept', async (method) => {
  const res = await request(gatewayA, method, {}, { id: 500 });
  expect(res.status).toBe(404);
  expect(await json(res)).toMatchObject({ id: 500, error: { code: -32601 } });
});

test("an error of the worker's server is the request's outcome: an unknown resource, -32602 naming its URI", async () => {
  const uri = 'backlog://projects/nothing-here';
  const res = await request(gatewayB, 'resources/read', { uri }, { id: 203 });
  expect(res.status).toBe(200);
  expect(await json(res)).toMatchObject({ id: 203, error: { code: -32602, data: { uri } } });
});

test('a batch holding a 2026 request: 400 -32600', async () => {
  const res = await post(
    gatewayA,
    [{ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: META } }],
    { 'MCP-Protocol-Version': VERSION },
  );
  expect(res.status).toBe(400);
  expect((await json(res)).error.code).toBe(-32600);
});

test('a 2026 request that is no JSON-RPC 2.0 request, or with an id too long to echo: 400 -32600', async () => {
  const headers = { 'MCP-Protocol-Version': VERSION, 'Mcp-Method': 'tools/list' };
  const old = await post(
    gatewayA,
    { jsonrpc: '1.0', id: 1, method: 'tools/list', params: { _meta: META } },
    headers,
  );
  expect(old.status).toBe(400);
  expect((await json(old)).error.code).toBe(-32600);
  const long = await post(
    gatewayA,
    { jsonrpc: '2.0', id: 'x'.repeat(10_000), method: 'tools/list', params: { _meta: META } },
    headers,
  );
  expect(long.status).toBe(400);
  const body = await json(long);
  expect(body.error.code).toBe(-32600);
  expect(body.id).toBeNull();
});

test('a 2026 notification is accepted (202) and ignored', async () => {
  const res = await post(
    gatewayB,
    { jsonrpc: '2.0', method: 'notifications/initialized', params: { _meta: META } },
    { 'MCP-Protocol-Version': VERSION, 'Mcp-Method': 'notifications/initialized' },
  );
  expect(res.status).toBe(202);
});

test('GET and DELETE /mcp in the 2026 era: 405', async () => {
  for (const method of ['GET', 'DELETE']) {
    const res = await fetch(`${gatewayA.url}/mcp`, {
      method,
      headers: {
        Authorization: `Bearer ${team}`,
        Accept: 'text/event-stream',
        'MCP-Protocol-Version': VERSION,
      },
    });
    expect(res.status).toBe(405);
    expect((await json(res)).error.code).toBe(-32000);
  }
});

test("tools/list carries caching hints and the token's permissions; 2025 lists carry no hints", async () => {
  const res = await request(gatewayA, 'tools/list', {}, { id: 7 });
  expect(res.status).toBe(200);
  const { result } = await json(res);
  expect(result.ttlMs).toBe(60_000);
  expect(result.cacheScope).toBe('private');
  expect(result.resultType).toBe('complete');
  const names = result.tools.map((tool: { name: string }) => tool.name);
  expect(names).toEqual(expect.arrayContaining(['create_project', 'simulate_work']));
  for (const tool of result.tools) expect(tool.execution).toBeUndefined();

  const readonly = issueToken(SECRET, { type: 'readonly', sub: 'modern-reader', ttl: '1h' });
  const limited = await json(await request(gatewayB, 'tools/list', {}, { token: readonly }));
  const readable = limited.result.tools.map((tool: { name: string }) => tool.name);
  expect(readable).toContain('list_projects');
  expect(readable).not.toContain('create_project');
  const refused = await json(
    await request(
      gatewayB,
      'tools/call',
      { name: 'create_project', arguments: { name: 'x' } },
      { token: readonly },
    ),
  );
  expect(refused.error.code).toBe(-32011);

  // The same server through a 2025 session on the other pod: no hints, no resultType.
  const sessionId = await initializeSession(gatewayB.url, team);
  const legacy = await fetch(`${gatewayA.url}/mcp`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${team}`,
      'Content-Type': 'application/json',
      Accept: 'application/json',
      'Mcp-Session-Id': sessionId,
      'MCP-Protocol-Version': '2025-11-25',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }),
  });
  expect(legacy.status).toBe(200);
  expect(legacy.headers.get('mcp-session-id')).toBe(sessionId);
  const legacyResult = (await json(legacy)).result;
  expect(legacyResult.tools.length).toBeGreaterThan(0);
  expect(legacyResult.ttlMs).toBeUndefined();
  expect(legacyResult.resultType).toBeUndefined();
});

test('a call with no notifications answers JSON; one with progress answers SSE: progress, then the result', async () => {
  const plain = await request(gatewayA, 'tools/call', {
    name: 'create_project',
    arguments: { name: 'Modern' },
  });
  expect(plain.status).toBe(200);
  const created = await json(plain);
  expect(created.result.isError).toBeFalsy();
  expect(created.result._meta[META_SERVER_INFO].name).toBe('project-backlog');

  const res = await request(
    gatewayB,
    'tools/call',
    {
      name: 'simulate_work',
      arguments: { steps: 3, delayMs: 50 },
      _meta: { progressToken: 'p1' },
    },
    { id: 'call-1' },
  );
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  expect(res.headers.get('mcp-session-id')).toBeNull();
  const stream = sseMessages(res);
  await stream.done;
  const progress = stream.messages.filter((m) => m.method === 'notifications/progress');
  expect(progress.map((m) => m.params.progress)).toEqual([1, 2, 3]);
  expect(progress[0].params.progressToken).toBe('p1');
  const last = stream.messages[stream.messages.length - 1];
  expect(last).toMatchObject({ id: 'call-1', result: { resultType: 'complete' } });
  expect(last.result.structuredContent).toMatchObject({ completedSteps: 3 });
});

test('subscriptions/listen: acknowledged first, then a list change emitted on a worker, while connected to the other pod', async () => {
  const controller = new AbortController();
  const res = await request(
    gatewayA,
    'subscriptions/listen',
    { notifications: { toolsListChanged: true } },
    {
      id: 'sub-1',
      signal: controller.signal,
    },
  );
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const stream = sseMessages(res);
  const [ack] = await stream.next(1);
  expect(ack).toMatchObject({
    method: 'notifications/subscriptions/acknowledged',
    params: { notifications: { toolsListChanged: true }, _meta: { [META_SUBSCRIPTION]: 'sub-1' } },
  });
  // A prompts-only listener (the backlog has no prompts): acknowledged with nothing, then ended.
  const narrow = sseMessages(
    await request(
      gatewayB,
      'subscriptions/listen',
      { notifications: { promptsListChanged: true } },
      { id: 'sub-2' },
    ),
  );
  await narrow.done;
  expect(narrow.messages).toEqual([
    expect.objectContaining({
      method: 'notifications/subscriptions/acknowledged',
      params: expect.objectContaining({ notifications: {} }),
    }),
    expect.objectContaining({
      id: 'sub-2',
      result: expect.objectContaining({ resultType: 'complete' }),
    }),
  ]);

  const changed = await json(
    await request(gatewayB, 'tools/call', { name: 'change_tool_list', arguments: {} }),
  );
  expect(changed.result.isError).toBeFalsy();
  const [, change] = await stream.next(2);
  expect(change).toMatchObject({
    jsonrpc: '2.0',
    method: 'notifications/tools/list_changed',
    params: { _meta: { [META_SUBSCRIPTION]: 'sub-1' } },
  });

  // A change caused through a 2025 session reaches the 2026 listen stream too.
  const sessionId = await initializeSession(gatewayB.url, team);
  const legacy = await fetch(`${gatewayB.url}/mcp`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${team}`,
      'Content-Type': 'application/json',
      Accept: 'application/json',
      'Mcp-Session-Id': sessionId,
      'MCP-Protocol-Version': '2025-11-25',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 9,
      method: 'tools/call',
      params: { name: 'change_tool_list', arguments: {} },
    }),
  });
  expect(legacy.status).toBe(200);
  const [, , again] = await stream.next(3);
  expect(again.method).toBe('notifications/tools/list_changed');
  controller.abort();
  await stream.done;
});

test('a quiet listen stream gets keep-alive comments (HEARTBEAT_INTERVAL_MS)', async () => {
  const controller = new AbortController();
  const res = await request(
    gatewayB,
    'subscriptions/listen',
    { notifications: { toolsListChanged: true } },
    { signal: controller.signal },
  );
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    while (!text.includes(': keep-alive')) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`listen stream ended: ${text}`);
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    controller.abort();
  }
  expect(text.indexOf('notifications/subscriptions/acknowledged')).toBeLessThan(
    text.indexOf(': keep-alive'),
  );
});

test('listen streams count toward MAX_CONNECTIONS_PER_TOKEN: the one over it gets 429', async () => {
  const token = issueToken(SECRET, { type: 'team', sub: 'modern-listener', ttl: '1h' });
  const controllers: AbortController[] = [];
  const open = async (gateway: SpawnedProcess) => {
    const controller = new AbortController();
    controllers.push(controller);
    return request(
      gateway,
      'subscriptions/listen',
      { notifications: { toolsListChanged: true } },
      {
        token,
        signal: controller.signal,
      },
    );
  };
  try {
    for (let i = 0; i < MAX_STREAMS; i += 1) {
      const res = await open(i % 2 ? gatewayA : gatewayB);
      expect(res.status).toBe(200);
      await sseMessages(res).next(1);
    }
    const over = await open(gatewayA);
    expect(over.status).toBe(429);
    expect((await json(over)).error).toBeDefined();
  } finally {
    for (const controller of controllers) controller.abort();
  }
});

test('closing the response stream cancels the request on the worker running it', async () => {
  const controller = new AbortController();
  const seen = abortSeen('close-me');
  const res = await request(
    gatewayB,
    'tools/call',
    {
      name: 'await_abort',
      arguments: { label: 'close-me' },
      _meta: { progressToken: 'wait' },
    },
    { signal: controller.signal },
  );
  expect(res.status).toBe(200);
  const stream = sseMessages(res);
  const [progress] = await stream.next(1);
  expect(progress.method).toBe('notifications/progress');
  controller.abort();
  // Well within TOOL_TIMEOUT_MS (60 s here), whose expiry would abort it too.
  const outcome = await Promise.race([
    seen.then(() => 'aborted'),
    delay(5_000, undefined, { ref: false }).then(() => 'still running'),
  ]);
  expect(outcome).toBe('aborted');
});

test('a 2025-11-25 session keeps working on the same pods (initialize on one, call on the other)', async () => {
  const sessionId = await initializeSession(gatewayA.url, team);
  const res = await fetch(`${gatewayB.url}/mcp`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${team}`,
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'Mcp-Session-Id': sessionId,
      'MCP-Protocol-Version': '2025-11-25',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 3,
      method: 'tools/call',
      params: {
        name: 'simulate_work',
        arguments: { steps: 2, delayMs: 20 },
        _meta: { progressToken: 7 },
      },
    }),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('mcp-session-id')).toBe(sessionId);
  const stream = sseMessages(res);
  await stream.done;
  const last = stream.messages[stream.messages.length - 1];
  expect(last).toMatchObject({ id: 3, result: { structuredContent: { completedSteps: 2 } } });
  expect(last.result.resultType).toBeUndefined();
  const del = await fetch(`${gatewayA.url}/mcp`, {
    method: 'DELETE',
    headers: {
      Authorization: `Bearer ${team}`,
      'Mcp-Session-Id': sessionId,
      'MCP-Protocol-Version': '2025-11-25',
    },
  });
  expect(del.status).toBe(200);
});

test('a draining pod ends its listen streams gracefully: the empty result, then the end', async () => {
  const gatewayC = await spawnRole('gateway', { ...env, POD_ID: 'gateway-c' });
  const res = await request(
    gatewayC,
    'subscriptions/listen',
    { notifications: { toolsListChanged: true } },
    { id: 77 },
  );
  const stream = sseMessages(res);
  await stream.next(1);
  await gatewayC.kill('SIGTERM');
  await stream.done;
  expect(stream.messages).toEqual([
    expect.objectContaining({ method: 'notifications/subscriptions/acknowledged' }),
    {
      jsonrpc: '2.0',
      id: 77,
      result: {
        resultType: 'complete',
        _meta: {
          [META_SUBSCRIPTION]: 77,
          [META_SERVER_INFO]: { name: 'project-backlog', version: '0.1.0' },
        },
      },
    },
  ]);
});

describe('a client that speaks 2026-07-28 (@modelcontextprotocol/client 2.x)', () => {
  test('discover, list, call with progress, a change through listen, cancel by closing', async () => {
    const connect = async (gateway: SpawnedProcess) => {
      const client = new Client(
        { name: 'sdk2-test', version: '1.0.0' },
        { versionNegotiation: { mode: 'auto' } },
      );
      const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${team}` } },
      });
      await client.connect(transport);
      return client;
    };
    const a = await connect(gatewayA);
    const b = await connect(gatewayB);
    try {
      expect(a.getNegotiatedProtocolVersion()).toBe(VERSION);
      expect(a.getServerVersion()).toMatchObject({ name: 'project-backlog' });
      const { tools } = await b.listTools();
      expect(tools.map((tool) => tool.name)).toContain('simulate_work');
      const progress: number[] = [];
      const result = await a.callTool(
        { name: 'simulate_work', arguments: { steps: 2, delayMs: 20 } },
        { onprogress: (p) => progress.push(p.progress) },
      );
      expect(result.structuredContent).toMatchObject({ completedSteps: 2 });
      expect(progress).toEqual([1, 2]);

      const changed = new Promise<void>((resolve) =>
        a.setNotificationHandler('notifications/tools/list_changed', () => resolve()),
      );
      const subscription = await a.listen({ toolsListChanged: true });
      expect(subscription.honoredFilter).toEqual({ toolsListChanged: true });
      await b.callTool({ name: 'change_tool_list', arguments: {} });
      await changed;
      await subscription.close();

      const seen = abortSeen('sdk2');
      const controller = new AbortController();
      const call = a.callTool(
        { name: 'await_abort', arguments: { label: 'sdk2' } },
        { signal: controller.signal, onprogress: () => controller.abort() },
      );
      await expect(call).rejects.toThrow();
      await seen;
    } finally {
      await a.close();
      await b.close();
    }
  });
});
