/**
 * Tasks (the Tasks extension of MCP 2026-07-28) over the memory engine: calls run as tasks on
 * the worker side (worker/mcpTransports/modernRequests.ts), tasks/* answered as a gateway pod
 * answers them (shared/mcpTasks.ts answerTaskRequest); two ModernRequests stand for two
 * workers sharing one engine, as pods share Redis.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { EngineEvent } from '../../../shared/engine/engine';
import { ZERO_EVENT_ID } from '../../../shared/engine/eventId';
import { MemoryEngine } from '../../../shared/engine/memory';
import { silentLogger } from '../../../shared/logger';
import { MODERN_SESSION, mcpNames } from '../../../shared/mcpTransports';
import type { McpCommand } from '../../../shared/types';
import { ControlTopicRouter } from '../../../worker/controlTopic';
import { ModernRequests } from '../../../worker/mcpTransports/modernRequests';
import { TASKS_EXTENSION, TaskStore, answerTaskRequest } from '../../../shared/mcpTasks';
import { ToolPermissions } from '../../../worker/toolPermissions';
import { waitFor } from '../../../devSupport/waitFor';

const WITH_TASKS = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': { extensions: { [TASKS_EXTENSION]: {} } },
};
const WITHOUT_TASKS = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
};

let engine: MemoryEngine;
let controls: ControlTopicRouter[];
let workers: ModernRequests[];
/** How many times each tool's handler started, and how its waits ended. */
let runs: Record<string, number>;
let stopped: string[];

function createServer(withTaskTools: boolean) {
  return () => {
    const server = new McpServer({ name: 'tasks-unit', version: '1.0.0' });
    const task = (support: string) =>
      withTaskTools ? { _meta: { [TASKS_EXTENSION]: { taskSupport: support } } } : {};
    server.registerTool(
      'compute',
      { inputSchema: { n: z.number() }, ...task('optional') },
      ({ n }) => {
        runs.compute = (runs.compute ?? 0) + 1;
        return { content: [{ type: 'text', text: `${n * 2}` }] };
      },
    );
    server.registerTool('wait', { ...task('required') }, async (extra) => {
      runs.wait = (runs.wait ?? 0) + 1;
      await new Promise<void>((resolve) =>
        extra.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      stopped.push('wait');
      return { content: [] };
    });
    return server;
  };
}

async function start(count: number, withTaskTools = true): Promise<void> {
  for (let i = 0; i < count; i += 1) {
    const control = new ControlTopicRouter(engine);
    controls.push(control);
    workers.push(
      new ModernRequests({
        engine,
        permissions: new ToolPermissions(),
        control,
        createServer: createServer(withTaskTools),
        logger: silentLogger(),
        secret: undefined,
      }),
    );
    await control.start();
  }
}

beforeEach(async () => {
  engine = new MemoryEngine({ historyMaxLen: 1000, historyTtlS: 3600 });
  await engine.start();
  controls = [];
  workers = [];
  runs = {};
  stopped = [];
});

afterEach(async () => {
  for (const worker of workers) await worker.close();
  for (const control of controls) await control.stop();
  await engine.close();
});

let streams = 0;
function command(
  method: string,
  params: Record<string, unknown>,
  meta: Record<string, unknown> = WITH_TASKS,
  sub = 'owner',
): McpCommand {
  streams += 1;
  return {
    requestId: `req-${streams}`,
    sub,
    tokenType: 'team',
    message: { method, id: streams, params: { ...params, _meta: meta } },
    enqueuedAt: Date.now(),
    mcp: { sessionId: MODERN_SESSION, streamId: `stream-${streams}`, era: 'modern' },
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Message = Record<string, any>;

async function replies(cmd: McpCommand): Promise<Message[]> {
  const page = await engine.readHistory(
    mcpNames.streamTopic(MODERN_SESSION, cmd.mcp.streamId),
    ZERO_EVENT_ID,
    100,
  );
  return page.events.map((e: EngineEvent) => JSON.parse(e.data) as Message);
}

/** A tasks/* request as any gateway pod answers it. */
function taskRpc(
  method: string,
  params: Record<string, unknown>,
  meta: Record<string, unknown> = WITH_TASKS,
  sub = 'owner',
): Promise<Message> {
  return answerTaskRequest(engine, sub, method, { ...params, _meta: meta });
}

async function ask(worker: ModernRequests, cmd: McpCommand): Promise<Message> {
  await worker.dispatch(cmd);
  const all = await replies(cmd);
  return all[all.length - 1];
}

test('discover lists the extension only when a tool runs as a task', async () => {
  await start(1, false);
  const plain = await ask(workers[0], command('server/discover', {}));
  expect(plain.result.capabilities.extensions).toBeUndefined();
  await start(1, true);
  const tasks = await ask(workers[1], command('server/discover', {}));
  expect(tasks.result.capabilities.extensions).toEqual({ [TASKS_EXTENSION]: {} });
});

test('a task-supporting call answers a task at once, unprocessed; tasks/get inlines its result', async () => {
  await start(1);
  const call = command('tools/call', { name: 'compute', arguments: { n: 21 } });
  expect(await workers[0].dispatch(call)).toBe('ok');
  const [created] = await replies(call);
  expect(created.result).toMatchObject({
    resultType: 'task',
    taskId: call.requestId,
    status: 'working',
    ttlMs: 3_600_000,
    pollIntervalMs: 1000,
  });
  // The CreateTaskResult ended the stream without marking the command processed: a worker
  // dying before the outcome is stored leaves it to be delivered again.
  expect(await engine.isProcessed(call.requestId)).toBe(false);
  const get = await taskRpc('tasks/get', { taskId: call.requestId });
  expect(get.result).toMatchObject({
    resultType: 'complete',
    status: 'completed',
    result: { content: [{ type: 'text', text: '42' }] },
    // The server's identity, stored with the task by the worker that created it.
    _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'tasks-unit', version: '1.0.0' } },
  });
  expect(runs.compute).toBe(1);
});

test('without the extension: an optional tool runs at once, a required one is -32021', async () => {
  await start(1);
  const now = await ask(
    workers[0],
    command('tools/call', { name: 'compute', arguments: { n: 1 } }, WITHOUT_TASKS),
  );
  expect(now.result).toMatchObject({ resultType: 'complete', content: [{ text: '2' }] });
  const refused = await ask(workers[0], command('tools/call', { name: 'wait' }, WITHOUT_TASKS));
  expect(refused.error).toMatchObject({
    code: -32021,
    data: { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } },
  });
  expect(runs.wait).toBeUndefined();
});

test('a redelivered task command runs the tool again only when no outcome was stored', async () => {
  await start(1);
  const call = command('tools/call', { name: 'compute', arguments: { n: 2 } });
  await workers[0].dispatch(call);
  await workers[0].dispatch(call); // delivered again after its outcome was stored
  expect(runs.compute).toBe(1);
  expect(await replies(call)).toHaveLength(2); // the same CreateTaskResult, twice

  // A worker died after creating this one's task, before its outcome: the tool runs here.
  const orphan = command('tools/call', { name: 'compute', arguments: { n: 5 } });
  await new TaskStore(engine.kv).create({
    taskId: orphan.requestId,
    sub: 'owner',
    streamId: orphan.mcp.streamId,
    createdAt: new Date().toISOString(),
    ttlMs: 60_000,
  });
  await workers[0].dispatch(orphan);
  expect(runs.compute).toBe(2);
  const get = await taskRpc('tasks/get', { taskId: orphan.requestId });
  expect(get.result).toMatchObject({ status: 'completed', ttlMs: 60_000 });
});

test('a cancel answered by any pod stops the tool on the worker running it', async () => {
  await start(2);
  const call = command('tools/call', { name: 'wait', arguments: {} });
  const running = workers[0].dispatch(call);
  await waitFor(() => runs.wait === 1, 2000, 'the tool started');
  const cancel = await taskRpc('tasks/cancel', { taskId: call.requestId });
  expect(cancel.result).toMatchObject({ resultType: 'complete' });
  expect(cancel.result.status).toBeUndefined();
  expect(await running).toBe('error');
  expect(stopped).toEqual(['wait']);
  const get = await taskRpc('tasks/get', { taskId: call.requestId });
  expect(get.result.status).toBe('cancelled');
});

test("another token's task is unknown; the tasks methods need the extension", async () => {
  await start(1);
  const call = command('tools/call', { name: 'compute', arguments: { n: 3 } });
  await workers[0].dispatch(call);
  const other = await taskRpc('tasks/get', { taskId: call.requestId }, WITH_TASKS, 'stranger');
  expect(other.error).toMatchObject({ code: -32602, message: `Unknown task: ${call.requestId}` });
  const undeclared = await taskRpc('tasks/get', { taskId: call.requestId }, WITHOUT_TASKS);
  expect(undeclared.error.code).toBe(-32021);
});

test('a dead-lettered task command fails its task', async () => {
  await start(1);
  const call = command('tools/call', { name: 'wait', arguments: {} });
  const running = workers[0].dispatch(call);
  await waitFor(() => runs.wait === 1, 2000, 'the tool started');
  await workers[0].publishDeadLetter(call, 5);
  const get = await taskRpc('tasks/get', { taskId: call.requestId });
  expect(get.result).toMatchObject({ status: 'failed', error: { code: -32603 } });
  await taskRpc('tasks/cancel', { taskId: call.requestId });
  await workers[0].close(); // stops the waiting handler
  await running.catch(() => undefined);
});
