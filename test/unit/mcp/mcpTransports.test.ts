/**
 * The MCP standard transports over the memory engine, in one process: a gateway app and a
 * worker sharing a MemoryEngine, driven by the SDK's own clients.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { MemoryEngine } from '../../../shared/engine/memory';
import {
  startGatewayWithWorker,
  type GatewayHarness,
  type GatewayWithWorker,
} from '../../helpers/gatewayHarness';

let engine: MemoryEngine;
let gateway: GatewayHarness;
let stack: GatewayWithWorker;
const clients: Client[] = [];

beforeAll(async () => {
  stack = await startGatewayWithWorker({
    env: { HEARTBEAT_INTERVAL_MS: '200', ALLOWED_ORIGINS: 'http://allowed.example' },
  });
  ({ engine, gateway } = stack);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
});

afterAll(() => stack.close());

function auth(token: string): { Authorization: string } {
  return { Authorization: `Bearer ${token}` };
}

async function streamableClient(
  token = gateway.tokens.team,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), {
    requestInit: { headers: auth(token) },
  });
  const client = new Client({ name: 'unit-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return { client, transport };
}

async function rawPost(
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(`${gateway.url}/mcp`, {
    method: 'POST',
    headers: {
      ...auth(gateway.tokens.team),
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const initialize = (id = 1) => ({
  jsonrpc: '2.0',
  id,
  method: 'initialize',
  params: {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'raw', version: '0' },
  },
});

test('the SDK client initializes, lists tools, calls tools with progress, and ends the session', async () => {
  const { client, transport } = await streamableClient();
  expect(transport.sessionId).toMatch(/^[0-9a-f]{32}$/);
  expect(client.getServerVersion()?.name).toBe('project-backlog');
  const { tools } = await client.listTools();
  expect(tools.map((t) => t.name)).toEqual(
    expect.arrayContaining(['create_project', 'simulate_work']),
  );

  const created = (await client.callTool({
    name: 'create_project',
    arguments: { name: 'unit' },
  })) as CallToolResult;
  expect(created.isError).toBeFalsy();
  expect((created.structuredContent as { name: string }).name).toBe('unit');

  const progress: number[] = [];
  const work = (await client.callTool(
    { name: 'simulate_work', arguments: { steps: 3, delayMs: 10 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  )) as CallToolResult;
  expect(work.structuredContent).toMatchObject({ completedSteps: 3, cancelled: false });
  expect(progress).toEqual([1, 2, 3]);

  const sessionId = transport.sessionId!;
  await transport.terminateSession();
  const after = await rawPost(
    { jsonrpc: '2.0', id: 9, method: 'tools/list' },
    { 'Mcp-Session-Id': sessionId },
  );
  expect(after.status).toBe(404);
});

test('a readonly token sees and may call read-only tools only', async () => {
  const { client } = await streamableClient(gateway.tokens.readonly);
  const { tools } = await client.listTools();
  expect(tools.every((t) => t.annotations?.readOnlyHint === true)).toBe(true);
  await expect(
    client.callTool({ name: 'create_project', arguments: { name: 'nope' } }),
  ).rejects.toThrow(/Permission denied/);
});

test('cancelling a call aborts it on the worker', async () => {
  const { client } = await streamableClient();
  const publish = jest.spyOn(engine, 'publish');
  const controller = new AbortController();
  const started = Date.now();
  const call = client.callTool(
    { name: 'simulate_work', arguments: { steps: 20, delayMs: 250 } },
    undefined,
    { signal: controller.signal, onprogress: () => controller.abort('enough') },
  );
  await expect(call).rejects.toThrow();
  // The worker's call stops (well before its 5 s) and ends its stream without a reply.
  const deadline = Date.now() + 3000;
  const cancelledPublished = () => publish.mock.calls.some(([, event]) => event === 'cancelled');
  while (!cancelledPublished() && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const cancelled = cancelledPublished();
  publish.mockRestore();
  expect(cancelled).toBe(true);
  expect(Date.now() - started).toBeLessThan(4000);
});

test('HTTP-level rules: session header, protocol version, Origin, subject, JSON mode', async () => {
  const init = await rawPost(initialize(), { Accept: 'application/json' });
  expect(init.status).toBe(200);
  expect(init.headers.get('content-type')).toMatch(/application\/json/);
  const sessionId = init.headers.get('mcp-session-id')!;
  expect(JSON.parse(init.text).result.protocolVersion).toBe('2025-06-18');

  const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' };
  expect((await rawPost(list)).status).toBe(400);
  expect((await rawPost(list, { 'Mcp-Session-Id': 'f'.repeat(32) })).status).toBe(404);
  expect(
    (await rawPost(list, { 'Mcp-Session-Id': sessionId, 'MCP-Protocol-Version': '1999-01-01' }))
      .status,
  ).toBe(400);
  expect(
    (await rawPost(list, { 'Mcp-Session-Id': sessionId, Origin: 'http://evil.example' })).status,
  ).toBe(403);
  const other = await rawPost(list, {
    'Mcp-Session-Id': sessionId,
    Authorization: `Bearer ${gateway.token({ type: 'team', sub: 'someone-else' })}`,
  });
  expect(other.status).toBe(404);
  const ok = await rawPost(list, {
    'Mcp-Session-Id': sessionId,
    'MCP-Protocol-Version': '2025-06-18',
    Origin: 'http://allowed.example',
    Accept: 'application/json',
  });
  expect(ok.status).toBe(200);
  expect(JSON.parse(ok.text).result.tools.length).toBeGreaterThan(5);
  const notification = await rawPost(
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { 'Mcp-Session-Id': sessionId },
  );
  expect(notification.status).toBe(202);
  const queryToken = await fetch(`${gateway.url}/mcp?token=${gateway.tokens.team}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(initialize()),
  });
  expect(queryToken.status).toBe(401);
});

test('one GET stream per session: a second gets 409', async () => {
  const init = await rawPost(initialize(), { Accept: 'application/json' });
  const sessionId = init.headers.get('mcp-session-id')!;
  const headers = {
    ...auth(gateway.tokens.team),
    Accept: 'text/event-stream',
    'Mcp-Session-Id': sessionId,
  };
  const first = new AbortController();
  const res1 = await fetch(`${gateway.url}/mcp`, { headers, signal: first.signal });
  expect(res1.status).toBe(200);
  const res2 = await fetch(`${gateway.url}/mcp`, { headers });
  expect(res2.status).toBe(409);
  first.abort();
  await new Promise((r) => setTimeout(r, 100));
  const third = new AbortController();
  const res3 = await fetch(`${gateway.url}/mcp`, { headers, signal: third.signal });
  expect(res3.status).toBe(200);
  third.abort();
});

test('the legacy SSE transport: endpoint event, POST 202, replies on the stream', async () => {
  const transport = new SSEClientTransport(new URL(`${gateway.url}/sse`), {
    requestInit: { headers: auth(gateway.tokens.team) },
  });
  const client = new Client({ name: 'legacy', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  const { tools } = await client.listTools();
  expect(tools.length).toBeGreaterThan(5);
  const progress: number[] = [];
  const work = (await client.callTool(
    { name: 'simulate_work', arguments: { steps: 3, delayMs: 30 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  )) as CallToolResult;
  expect(work.structuredContent).toMatchObject({ completedSteps: 3 });
  // The SDK Client handles a progress notification a microtask late, and EventSource dispatches
  // a chunk's events at once: the last progress may lose the race with the reply (client side).
  expect(progress.slice(0, 2)).toEqual([1, 2]);
});

test("the README's revision table says what the SDK client negotiates over /sse", async () => {
  const transport = new SSEClientTransport(new URL(`${gateway.url}/sse`), {
    requestInit: { headers: auth(gateway.tokens.team) },
  });
  const negotiated = jest.spyOn(transport, 'setProtocolVersion');
  const client = new Client({ name: 'legacy-version', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  expect(negotiated).toHaveBeenCalledWith(LATEST_PROTOCOL_VERSION);
  const readme = readFileSync(path.resolve(__dirname, '../../../README.md'), 'utf8');
  const row = readme.split('\n').find((line) => line.includes('| HTTP+SSE (legacy)'));
  expect(row).toContain(`\`${LATEST_PROTOCOL_VERSION}\``);
});

test('a tools/call whose name is not a string is -32602 Invalid params, with its id', async () => {
  const sessionId = await jsonSession();
  const res = await rawPost(
    { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 123, arguments: {} } },
    { 'Mcp-Session-Id': sessionId, Accept: 'application/json' },
  );
  expect(res.status).toBe(200);
  expect(JSON.parse(res.text)).toMatchObject({ jsonrpc: '2.0', id: 11, error: { code: -32602 } });
});

/** Reads an SSE body until `until(text)` holds or the body ends; returns what it read. */
async function readSse(
  res: Response,
  until: (text: string) => boolean = () => false,
  timeoutMs = 5000,
  /** 'keep': stop reading but keep the stream open (cancelling a body closes its connection). */
  then: 'cancel' | 'keep' = 'cancel',
): Promise<{ text: string; ended: boolean }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`readSse: timed out; read so far:\n${text}`);
    let timer: NodeJS.Timeout | undefined;
    const chunk = await Promise.race([
      reader.read(),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left))),
    ]).finally(() => clearTimeout(timer));
    if (chunk === 'timeout') continue;
    if (chunk.done) return { text, ended: true };
    text += decoder.decode(chunk.value, { stream: true });
    if (until(text)) {
      if (then === 'keep') reader.releaseLock();
      else void reader.cancel().catch(() => undefined);
      return { text, ended: false };
    }
  }
}

async function jsonSession(): Promise<string> {
  const init = await rawPost(
    { ...initialize(), params: { ...initialize().params, protocolVersion: '2025-11-25' } },
    { Accept: 'application/json' },
  );
  expect(init.status).toBe(200);
  return init.headers.get('mcp-session-id')!;
}

test('a request stream cut mid-call resumes with Last-Event-ID: what was missed, then the end', async () => {
  const sessionId = await jsonSession();
  const controller = new AbortController();
  const post = await fetch(`${gateway.url}/mcp`, {
    method: 'POST',
    signal: controller.signal,
    headers: {
      ...auth(gateway.tokens.team),
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'Mcp-Session-Id': sessionId,
      'MCP-Protocol-Version': '2025-11-25',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 'work-1',
      method: 'tools/call',
      params: {
        name: 'simulate_work',
        arguments: { steps: 3, delayMs: 100 },
        _meta: { progressToken: 'tok' },
      },
    }),
  });
  expect(post.headers.get('content-type')).toMatch(/text\/event-stream/);
  // The priming event (an id, empty data) comes first: cut the stream right after it.
  const primed = await readSse(post, (t) => /^id: \S+\ndata: \n\n/m.test(t));
  controller.abort();
  const primingId = /^id: (\S+)/m.exec(primed.text)![1];
  expect(primingId).toMatch(/^[0-9a-f]{16}_0-0$/);

  const resumed = await fetch(`${gateway.url}/mcp`, {
    headers: {
      ...auth(gateway.tokens.team),
      Accept: 'text/event-stream',
      'Mcp-Session-Id': sessionId,
      'Last-Event-ID': primingId,
    },
  });
  expect(resumed.status).toBe(200);
  const { text, ended } = await readSse(resumed);
  expect(ended).toBe(true);
  const datas = [...text.matchAll(/^data: (.+)$/gm)].map((m) => JSON.parse(m[1]));
  expect(datas.filter((d) => d.method === 'notifications/progress')).toHaveLength(3);
  expect(datas.at(-1)).toMatchObject({
    id: 'work-1',
    result: { structuredContent: { completedSteps: 3 } },
  });
  const ids = [...text.matchAll(/^id: (\S+)$/gm)].map((m) => m[1]);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.every((id) => id.startsWith(primingId.split('_')[0] + '_'))).toBe(true);

  // Resuming after the last id: nothing more, the stream is complete.
  const again = await fetch(`${gateway.url}/mcp`, {
    headers: {
      ...auth(gateway.tokens.team),
      Accept: 'text/event-stream',
      'Mcp-Session-Id': sessionId,
      'Last-Event-ID': ids.at(-1)!,
    },
  });
  const rest = await readSse(again);
  expect(rest.ended).toBe(true);
  expect(rest.text).not.toContain('data:');
});

test('a JSON batch gets a JSON array; DELETE closes the session GET stream', async () => {
  const sessionId = await jsonSession();
  const batch = await rawPost(
    [
      { jsonrpc: '2.0', id: 'a', method: 'ping' },
      { jsonrpc: '2.0', id: 'b', method: 'tools/list' },
    ],
    { 'Mcp-Session-Id': sessionId, Accept: 'application/json' },
  );
  expect(batch.status).toBe(200);
  const replies = JSON.parse(batch.text) as { id: string }[];
  expect(replies.map((r) => r.id).sort()).toEqual(['a', 'b']);

  const stream = await fetch(`${gateway.url}/mcp`, {
    headers: {
      ...auth(gateway.tokens.team),
      Accept: 'text/event-stream',
      'Mcp-Session-Id': sessionId,
    },
  });
  expect(stream.status).toBe(200);
  const reading = readSse(stream);
  const del = await fetch(`${gateway.url}/mcp`, {
    method: 'DELETE',
    headers: { ...auth(gateway.tokens.team), 'Mcp-Session-Id': sessionId },
  });
  expect(del.status).toBe(200);
  expect((await reading).ended).toBe(true);
  const after = await fetch(`${gateway.url}/mcp`, {
    headers: {
      ...auth(gateway.tokens.team),
      Accept: 'text/event-stream',
      'Mcp-Session-Id': sessionId,
    },
  });
  expect(after.status).toBe(404);
});

test('a legacy session ends with its SSE socket', async () => {
  const controller = new AbortController();
  const res = await fetch(`${gateway.url}/sse`, {
    headers: auth(gateway.tokens.team),
    signal: controller.signal,
  });
  const { text } = await readSse(res, (t) => t.includes('\n\n'), 5000, 'keep');
  const endpoint = /^event: endpoint\ndata: (\/messages\?sessionId=[0-9a-f]{32})$/m.exec(text)![1];
  const post = () =>
    fetch(`${gateway.url}${endpoint}`, {
      method: 'POST',
      headers: { ...auth(gateway.tokens.team), 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
  expect((await post()).status).toBe(202);
  const other = await fetch(`${gateway.url}${endpoint}`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${gateway.token({ type: 'team', sub: 'intruder' })}`,
      'Content-Type': 'application/json',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  expect(other.status).toBe(404);
  controller.abort();
  const deadline = Date.now() + 2000;
  let status = 202;
  while (status !== 404 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    status = (await post()).status;
  }
  expect(status).toBe(404);
});
