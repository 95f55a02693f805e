/**
 * The worker side of MCP 2026-07-28 requests (worker/mcpTransports/modernRequests.ts) over the
 * memory engine: what it publishes on a request's stream and on the changes topic, with the
 * worker's real input rounds (worker/server/inputRequired.ts).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  ElicitResultSchema,
  McpError,
  SubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { waitFor } from '../../../devSupport/waitFor';
import type { EngineEvent } from '../../../shared/engine/engine';
import { ZERO_EVENT_ID } from '../../../shared/engine/eventId';
import { MemoryEngine } from '../../../shared/engine/memory';
import { silentLogger } from '../../../shared/logger';
import {
  CHANGE_EVENT,
  MODERN_SESSION,
  mcpNames,
  type McpCancel,
} from '../../../shared/mcpTransports';
import { CONTROL_EVENTS, MCP_EVENTS, topics } from '../../../shared/protocol';
import type { McpCommand } from '../../../shared/types';
import { ControlTopicRouter } from '../../../worker/controlTopic';
import {
  ModernRequests,
  honoredFilter,
  isRequestScoped,
  listenFilterOf,
  modernResult,
  type InputRoundFactory,
} from '../../../worker/mcpTransports/modernRequests';
import { InputRequiredRound } from '../../../worker/server/inputRequired';
import { ToolPermissions } from '../../../worker/toolPermissions';

const META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
};
const SERVER_INFO = { name: 'unit-server', version: '9.9.9' };

/** The real input rounds, recording the method of each round made. */
function recordedRounds(): { factory: InputRoundFactory; made: string[] } {
  const made: string[] = [];
  const factory: InputRoundFactory = (options) => {
    made.push(options.method);
    return new InputRequiredRound(options);
  };
  return { factory, made };
}

let engine: MemoryEngine;
let control: ControlTopicRouter;
let modern: ModernRequests;
let rounds: ReturnType<typeof recordedRounds>;
const aborted: string[] = [];
let waitStarted: () => void = () => undefined;

function createServer(): McpServer {
  const server = new McpServer(SERVER_INFO, {
    capabilities: { tools: {}, logging: {} },
    instructions: 'Unit server.',
  });
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }, extra) => {
    await extra.sendNotification({
      method: 'notifications/message',
      params: { level: 'info', data: `echo ${text}` },
    });
    await extra.sendNotification({
      method: 'notifications/message',
      params: { level: 'debug', data: 'detail' },
    });
    return { content: [{ type: 'text', text }] };
  });
  server.registerTool('ask', {}, async (extra) => {
    const answer = await extra.sendRequest(
      {
        method: 'elicitation/create',
        params: {
          message: 'Name?',
          requestedSchema: { type: 'object', properties: { name: { type: 'string' } } },
        },
      },
      ElicitResultSchema,
    );
    return { content: [{ type: 'text', text: `hello ${String(answer.content?.name)}` }] };
  });
  server.registerTool('grow', {}, () => {
    server.registerTool('grown', {}, () => ({ content: [] }));
    return { content: [{ type: 'text', text: 'grown' }] };
  });
  // Subscriptions: accepted for ok:// URIs only (the backlog checks the token may read them).
  server.server.registerCapabilities({ resources: { subscribe: true } });
  server.server.setRequestHandler(SubscribeRequestSchema, ({ params }) => {
    if (!params.uri.startsWith('ok://')) throw new McpError(-32011, 'Permission denied');
    return {};
  });
  server.registerTool('wait', {}, async (extra) => {
    waitStarted();
    await new Promise<void>((resolve) =>
      extra.signal.addEventListener('abort', () => resolve(), { once: true }),
    );
    aborted.push('wait');
    return { content: [] };
  });
  return server;
}

beforeEach(async () => {
  engine = new MemoryEngine({ historyMaxLen: 1000, historyTtlS: 3600 });
  await engine.start();
  control = new ControlTopicRouter(engine);
  rounds = recordedRounds();
  modern = new ModernRequests({
    engine,
    permissions: new ToolPermissions(),
    control,
    createServer,
    logger: silentLogger(),
    secret: 'unit-secret',
    inputRounds: rounds.factory,
  });
  await control.start();
});

afterEach(async () => {
  await modern.close();
  await control.stop();
  await engine.close();
});

let streams = 0;
function command(method: string, params: Record<string, unknown> = {}, id: string | number = 1) {
  streams += 1;
  const streamId = `${String(streams).padStart(16, '0')}`;
  const mcp: McpCommand = {
    requestId: `req-${streams}`,
    sub: 'unit',
    tokenType: 'team',
    message: { method, id, params: { ...params, _meta: { ...META, ...(params._meta as object) } } },
    enqueuedAt: Date.now(),
    mcp: { sessionId: MODERN_SESSION, streamId, era: 'modern' },
  };
  return mcp;
}

/** What the worker published on the command's stream, as [event, message]. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Message = Record<string, any>;

async function published(cmd: McpCommand): Promise<[string, Message][]> {
  const page = await engine.readHistory(
    mcpNames.streamTopic(MODERN_SESSION, cmd.mcp.streamId),
    ZERO_EVENT_ID,
    100,
  );
  return page.events.map((e: EngineEvent) => [e.event, JSON.parse(e.data)]);
}

test('server/discover: every served version, the server capabilities, instructions and identity', async () => {
  const cmd = command('server/discover');
  expect(await modern.dispatch(cmd)).toBe('ok');
  const [[event, message]] = await published(cmd);
  expect(event).toBe(MCP_EVENTS.response);
  expect(message.result).toMatchObject({
    supportedVersions: ['2026-07-28', '2025-11-25', '2025-06-18', '2025-03-26'],
    capabilities: { tools: { listChanged: true }, logging: {} },
    instructions: 'Unit server.',
    resultType: 'complete',
    ttlMs: 60_000,
    cacheScope: 'private',
    _meta: { 'io.modelcontextprotocol/serverInfo': SERVER_INFO },
  });
});

test('a log message goes on the stream only from the level _meta asks for', async () => {
  const quiet = command('tools/call', { name: 'echo', arguments: { text: 'hi' } });
  await modern.dispatch(quiet);
  expect((await published(quiet)).map(([event]) => event)).toEqual([MCP_EVENTS.response]);

  const chatty = command('tools/call', {
    name: 'echo',
    arguments: { text: 'hi' },
    _meta: { 'io.modelcontextprotocol/logLevel': 'info' },
  });
  await modern.dispatch(chatty);
  const events = await published(chatty);
  expect(events.map(([event, m]) => [event, m.method ?? 'reply'])).toEqual([
    [MCP_EVENTS.notification, 'notifications/message'],
    [MCP_EVENTS.response, 'reply'],
  ]);
  expect(events[1][1].result.content).toEqual([{ type: 'text', text: 'hi' }]);
});

test("a server -> client request becomes the round's input_required result; the answered retry completes", async () => {
  const elicits = {
    _meta: { 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } },
  };
  const first = command('tools/call', { name: 'ask', arguments: {}, ...elicits });
  await modern.dispatch(first);
  const [[, reply]] = await published(first);
  expect(reply.result.resultType).toBe('input_required');
  expect(reply.result.inputRequests['elicitation-1']).toMatchObject({
    method: 'elicitation/create',
  });
  expect(reply.result.ttlMs).toBeUndefined();

  const retry = command('tools/call', {
    name: 'ask',
    arguments: {},
    ...elicits,
    inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'Ada' } } },
    requestState: reply.result.requestState,
  });
  await modern.dispatch(retry);
  const [[, done]] = await published(retry);
  expect(done.result).toMatchObject({
    resultType: 'complete',
    content: [{ type: 'text', text: 'hello Ada' }],
  });
  expect(rounds.made).toEqual(['tools/call', 'tools/call']);
});

test('a server request the client has no capability for: the request fails -32021', async () => {
  const cmd = command('tools/call', { name: 'ask', arguments: {} });
  expect(await modern.dispatch(cmd)).toBe('error');
  const [[, reply]] = await published(cmd);
  expect(reply.error).toMatchObject({
    code: -32021,
    data: { requiredCapabilities: { elicitation: {} } },
  });
});

test('a list change the server emits goes to the changes topic, not the request stream', async () => {
  const changes: EngineEvent[] = [];
  const subscription = await engine.subscribe([mcpNames.changesTopic], (e) => changes.push(e));
  const cmd = command('tools/call', { name: 'grow', arguments: {} });
  await modern.dispatch(cmd);
  // Published once the server's task is over (what it emits together goes as one event).
  await waitFor(() => changes.length > 0, 2000, 'the change published');
  await subscription.close();
  expect(changes.map((e) => [e.event, JSON.parse(e.data).method])).toEqual([
    [CHANGE_EVENT, 'notifications/tools/list_changed'],
  ]);
  expect((await published(cmd)).map(([event]) => event)).toEqual([MCP_EVENTS.response]);
});

test('subscriptions/listen: the acknowledgment holds what the server can honor, tagged', async () => {
  const cmd = command(
    'subscriptions/listen',
    { notifications: { toolsListChanged: true, promptsListChanged: true } },
    'sub-9',
  );
  await modern.dispatch(cmd);
  const [[event, ack]] = await published(cmd);
  expect(event).toBe(MCP_EVENTS.response);
  expect(ack).toEqual({
    jsonrpc: '2.0',
    method: 'notifications/subscriptions/acknowledged',
    params: {
      notifications: { toolsListChanged: true },
      _meta: {
        'io.modelcontextprotocol/subscriptionId': 'sub-9',
        'io.modelcontextprotocol/serverInfo': SERVER_INFO,
      },
    },
  });
  const bad = command('subscriptions/listen', { notifications: { toolsListChanged: 'yes' } });
  await modern.dispatch(bad);
  expect((await published(bad))[0][1].error.code).toBe(-32602);
});

test('subscriptions/listen: only the URIs the server accepts for the token are honored, at most 100', async () => {
  const cmd = command('subscriptions/listen', {
    notifications: { resourceSubscriptions: ['ok://a', 'no://b', 'ok://a', 'ok://c'] },
  });
  await modern.dispatch(cmd);
  const [[, ack]] = await published(cmd);
  expect(ack.params.notifications).toEqual({ resourceSubscriptions: ['ok://a', 'ok://c'] });

  const refused = command('subscriptions/listen', {
    notifications: { resourceSubscriptions: ['no://b'] },
  });
  await modern.dispatch(refused);
  expect((await published(refused))[0][1].params.notifications).toEqual({});

  for (const uris of [
    Array.from({ length: 101 }, (_, i) => `ok://${i}`),
    [`ok://${'x'.repeat(3000)}`],
  ]) {
    const over = command('subscriptions/listen', {
      notifications: { resourceSubscriptions: uris },
    });
    await modern.dispatch(over);
    expect((await published(over))[0][1].error.code).toBe(-32602);
  }
});

test("a cancel naming the request's stream stops its handler; only the end is published", async () => {
  const cmd = command('tools/call', { name: 'wait', arguments: {} });
  const started = new Promise<void>((resolve) => (waitStarted = resolve));
  const running = modern.dispatch(cmd);
  await started;
  const cancel: McpCancel = {
    sessionId: MODERN_SESSION,
    requestId: 1,
    streamId: cmd.mcp.streamId,
    reason: 'closed',
  };
  await engine.publish(topics.workers, CONTROL_EVENTS.mcpCancel, JSON.stringify(cancel));
  expect(await running).toBe('cancelled');
  expect(aborted).toContain('wait');
  expect((await published(cmd)).map(([event]) => event)).toEqual([MCP_EVENTS.cancelled]);
});

test('a cancel heard before the request runs drops it when it comes', async () => {
  const cmd = command('tools/call', { name: 'wait', arguments: {} });
  const cancel: McpCancel = { sessionId: MODERN_SESSION, requestId: 1, streamId: cmd.mcp.streamId };
  await engine.publish(topics.workers, CONTROL_EVENTS.mcpCancel, JSON.stringify(cancel));
  expect(await modern.dispatch(cmd)).toBe('cancelled');
  expect((await published(cmd)).map(([event]) => event)).toEqual([MCP_EVENTS.cancelled]);
});

describe('pure parts', () => {
  test('modernResult: resultType, identity, hints kept or added, 2025-only fields dropped', () => {
    const out = modernResult(
      'tools/list',
      {
        tools: [
          { name: 'a', inputSchema: { type: 'object' }, execution: { taskSupport: 'optional' } },
        ],
        ttlMs: 5,
      },
      SERVER_INFO,
    );
    expect(out).toEqual({
      tools: [{ name: 'a', inputSchema: { type: 'object' } }],
      ttlMs: 5,
      cacheScope: 'private',
      resultType: 'complete',
      _meta: { 'io.modelcontextprotocol/serverInfo': SERVER_INFO },
    });
    const call = modernResult('tools/call', { content: [] }, SERVER_INFO);
    expect(call).not.toHaveProperty('ttlMs');
    expect(modernResult('tools/list', { tools: [], ttlMs: -1 }, SERVER_INFO).ttlMs).toBe(60_000);
  });

  test('listenFilterOf and honoredFilter', () => {
    expect(listenFilterOf(undefined)).toBeUndefined();
    expect(listenFilterOf({ resourceSubscriptions: [1] })).toBeUndefined();
    expect(listenFilterOf({ toolsListChanged: true, resourceSubscriptions: ['a'] })).toEqual({
      toolsListChanged: true,
      resourceSubscriptions: ['a'],
    });
    const capabilities = { tools: { listChanged: true }, resources: { subscribe: true } };
    expect(
      honoredFilter(
        { toolsListChanged: true, resourcesListChanged: true, resourceSubscriptions: ['a'] },
        capabilities,
      ),
    ).toEqual({ toolsListChanged: true, resourceSubscriptions: ['a'] });
  });

  test('isRequestScoped: progress always, log messages from the asked level', () => {
    const log = (level: string) => ({
      jsonrpc: '2.0' as const,
      method: 'notifications/message',
      params: { level },
    });
    expect(isRequestScoped({ jsonrpc: '2.0', method: 'notifications/progress' }, null)).toBe(true);
    expect(isRequestScoped(log('error'), null)).toBe(false);
    expect(isRequestScoped(log('error'), 'warning')).toBe(true);
    expect(isRequestScoped(log('info'), 'warning')).toBe(false);
  });
});
