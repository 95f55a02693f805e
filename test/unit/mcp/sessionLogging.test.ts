/**
 * Issue 14 item 4 in one process (memory engine, a gateway app and a worker): the backlog's log
 * messages under a 2025 session's `logging/setLevel` (kept in the session record), and what the
 * seed API does with logging (no setLevel, no log messages on its stream).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  EmptyResultSchema,
  LoggingMessageNotificationSchema,
  McpError,
  type JSONRPCNotification,
} from '@modelcontextprotocol/sdk/types.js';
import { randomUUID } from 'node:crypto';
import { waitFor } from '../../../devSupport/waitFor';
import { MemoryEngine } from '../../../shared/engine/memory';
import { mcpNames, type McpSessionRecord } from '../../../shared/mcpTransports';
import { RPC_ERRORS } from '../../../shared/protocol';
import type { ClientMessage } from '../../../shared/types';
import { passesSessionLevel, setLevelRefusal } from '../../../worker/mcpTransports/sessionLogging';
import {
  startGatewayWithWorker,
  type GatewayHarness,
  type GatewayWithWorker,
} from '../../helpers/gatewayHarness';
import { recordCallMessages } from '../../helpers/sdkClient';
import { EventCollector, TEAM, envelope } from '../worker/harness';

let engine: MemoryEngine;
let gateway: GatewayHarness;
let stack: GatewayWithWorker;
const clients: Client[] = [];

beforeAll(async () => {
  stack = await startGatewayWithWorker();
  ({ engine, gateway } = stack);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
});

afterAll(() => stack.close());

/** A session, and the call's messages as the client saw them, in order. */
async function session() {
  const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${gateway.tokens.team}` } },
  });
  const client = new Client({ name: 'session-logging', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return { client, transport, ...recordCallMessages(client) };
}

describe('passesSessionLevel and setLevelRefusal', () => {
  const log = (level: string): JSONRPCNotification => ({
    jsonrpc: '2.0',
    method: 'notifications/message',
    params: { level, data: 'x' },
  });

  it('lets through the level and above, everything without a level, and never blocks progress', () => {
    expect(passesSessionLevel(log('debug'), undefined)).toBe(true);
    expect(passesSessionLevel(log('debug'), 'info')).toBe(false);
    expect(passesSessionLevel(log('info'), 'info')).toBe(true);
    expect(passesSessionLevel(log('emergency'), 'warning')).toBe(true);
    expect(passesSessionLevel(log('loud'), 'debug')).toBe(false);
    const progress = { jsonrpc: '2.0' as const, method: 'notifications/progress' };
    expect(passesSessionLevel(progress, 'emergency')).toBe(true);
  });

  it('refuses a missing or unknown level with -32602', () => {
    expect(setLevelRefusal({ level: 'notice' })).toBeUndefined();
    expect(setLevelRefusal(undefined)?.code).toBe(RPC_ERRORS.invalidParams);
    expect(setLevelRefusal({ level: 'verbose' })).toEqual({
      code: RPC_ERRORS.invalidParams,
      message:
        'Invalid params: level must be one of debug, info, notice, warning, error, critical, alert, emergency',
    });
  });
});

describe('a 2025 session', () => {
  it('advertises logging and, before any setLevel, gets every message: debug per step, info at the end', async () => {
    const { client, seen, logs, call } = await session();
    expect(client.getServerCapabilities()?.logging).toEqual({});
    const result = await call('simulate_work', { steps: 2, delayMs: 5 });
    expect(result.structuredContent).toMatchObject({ completedSteps: 2 });
    expect(seen).toEqual([
      'log:debug',
      'progress:1',
      'log:debug',
      'progress:2',
      'log:info',
      'result',
    ]);
    expect(logs.at(-1)).toEqual({
      level: 'info',
      logger: 'backlog',
      data: { tool: 'simulate_work', message: 'Completed 2 steps', steps: 2, completedSteps: 2 },
    });
  });

  it('a call that logs nothing reads no level: the worker reads the session record at the first message', async () => {
    const { call } = await session();
    const get = jest.spyOn(engine.kv, 'get');
    // The worker's reads of the session record (the gateway's slide its TTL: they pass one).
    const workerReads = () =>
      get.mock.calls.filter(
        ([key, refreshTtlMs]) => key.startsWith('mcp:session:') && refreshTtlMs === undefined,
      ).length;
    try {
      await call('list_projects', {});
      expect(workerReads()).toBe(0);
      // Three log messages, one read.
      await call('simulate_work', { steps: 2, delayMs: 5 });
      expect(workerReads()).toBe(1);
    } finally {
      get.mockRestore();
    }
  });

  it('after setLevel, only messages at or above it; the level is kept in the session record', async () => {
    const { client, transport, seen, logs, call } = await session();
    expect(await client.setLoggingLevel('info')).toEqual({});
    const record = JSON.parse(
      (await engine.kv.get(mcpNames.sessionKey(transport.sessionId!)))!,
    ) as McpSessionRecord;
    expect(record.logLevel).toBe('info');

    await call('simulate_work', { steps: 2, delayMs: 5 });
    expect(seen).toEqual(['progress:1', 'progress:2', 'log:info', 'result']);

    const created = await call('create_project', { name: 'Logged' });
    const projectId = (created.structuredContent as { id: string }).id;
    expect(logs).toEqual([
      {
        level: 'info',
        logger: 'backlog',
        data: {
          tool: 'create_project',
          message: `Created project "Logged" (${projectId})`,
          projectId,
        },
      },
    ]);
    // A read that succeeds logs nothing.
    await call('get_project_tree', { projectId });
    expect(logs).toEqual([]);
    // A failure is a warning.
    const missing = await call('get_project_tree', { projectId: 'prj_missing' });
    expect(missing.isError).toBe(true);
    expect(logs.map((l) => l.level)).toEqual(['warning']);

    await client.setLoggingLevel('error');
    await call('simulate_work', { steps: 1, delayMs: 5 });
    await call('get_project_tree', { projectId: 'prj_missing' });
    expect(seen).toEqual(['result']);
  });

  it('an unknown level is -32602 and changes nothing', async () => {
    const { client, transport, seen, call } = await session();
    await client.setLoggingLevel('warning');
    const err = await client
      .request({ method: 'logging/setLevel', params: { level: 'verbose' } }, EmptyResultSchema)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(RPC_ERRORS.invalidParams);
    const record = JSON.parse(
      (await engine.kv.get(mcpNames.sessionKey(transport.sessionId!)))!,
    ) as McpSessionRecord;
    expect(record.logLevel).toBe('warning');
    await call('simulate_work', { steps: 1, delayMs: 5 });
    expect(seen).toEqual(['progress:1', 'result']);
  });
});

describe('a legacy HTTP+SSE session (/sse)', () => {
  it('applies its setLevel too', async () => {
    const transport = new SSEClientTransport(new URL(`${gateway.url}/sse`), {
      requestInit: { headers: { Authorization: `Bearer ${gateway.tokens.team}` } },
    });
    const client = new Client({ name: 'session-logging-legacy', version: '1.0.0' });
    await client.connect(transport);
    clients.push(client);
    const levels: string[] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
      levels.push(n.params.level);
    });
    await client.setLoggingLevel('info');
    await client.callTool({ name: 'simulate_work', arguments: { steps: 2, delayMs: 5 } });
    // EventSource hands the client a chunk's events at once: a notification's handler may run
    // just after the reply's.
    await waitFor(() => levels.length > 0, 2000, 'the info message');
    expect(levels).toEqual(['info']);
  });
});

describe('the seed API', () => {
  async function seedRequest(
    collector: EventCollector,
    connectionId: string,
    message: ClientMessage,
  ) {
    const command = envelope(connectionId, message, TEAM);
    await engine.enqueueCommand(command);
    await collector.final(command.requestId);
    return collector.of(command.requestId);
  }

  it('refuses logging/setLevel and puts no log messages on its stream', async () => {
    const connectionId = randomUUID();
    const collector = await EventCollector.open(engine, connectionId);
    try {
      const [refused] = await seedRequest(collector, connectionId, {
        method: 'logging/setLevel',
        id: 1,
        params: { level: 'debug' },
      });
      expect(refused.event).toBe('mcp-error');
      expect(refused.data.error.code).toBe(RPC_ERRORS.methodNotFound);
      expect(refused.data.error.message).toContain('logging/setLevel is not available');

      const events = await seedRequest(collector, connectionId, {
        method: 'tools/call',
        params: { name: 'simulate_work', arguments: { steps: 2, delayMs: 5 } },
      });
      // Two progress events and the result: the tool's debug and info messages stay off it.
      expect(events.map((e) => e.event)).toEqual(['tool-progress', 'tool-progress', 'tool-result']);
      expect(JSON.stringify(events)).not.toContain('notifications/message');
    } finally {
      await collector.close();
    }
  });
});
