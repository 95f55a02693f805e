/**
 * Issue 14 item 5: durable tasks (the MCP 2026-07-28 Tasks extension, SEP-2663) across pods.
 * Two gateway pods behind the round-robin proxy (each request lands on the other pod), two
 * workers serving the default backlog server, real Redis. Raw 2026-07-28 requests: the SDK
 * 2.x client (2.4.0) has no tasks API for this revision (it refuses a `resultType: "task"`
 * answer: "Unsupported result type 'task' for tools/call"); a client that does not declare the
 * extension, the SDK's, gets its results at once as before.
 * Processes run the compiled dist/ (make builds it).
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { issueToken } from '../../shared/auth';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/roundRobinProxy';
import type { SpawnedProcess } from '../helpers/processes';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'mcp-tasks-secret-0123456789abcdef0123';
const VERSION = '2026-07-28';
const TASKS = 'io.modelcontextprotocol/tasks';
const owner = issueToken(SECRET, { type: 'team', sub: 'task-owner', ttl: '1h' });
const stranger = issueToken(SECRET, { type: 'team', sub: 'task-stranger', ttl: '1h' });

let cluster: TestCluster;
let proxy: RoundRobinProxy;

beforeAll(async () => {
  cluster = await startCluster('mcp-tasks', {
    gateways: 2,
    workers: 2,
    jwtSecret: SECRET,
    // Debug logs name each command's requestId (a task's id) on the worker that takes it; a
    // dead worker's commands are reclaimed after a second; tasks live ten minutes.
    env: {
      LOG_LEVEL: 'debug',
      CLAIM_IDLE_MS: '1000',
      WORKER_CONCURRENCY: '4',
      MCP_TASK_TTL_S: '600',
    },
  });
  proxy = await startRoundRobinProxy(cluster.gateways.map((g) => g.url));
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await cluster?.stop();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Message = Record<string, any>;

interface Reply {
  status: number;
  body: Message;
}

let nextId = 1;

/** A 2026-07-28 request through the proxy, declaring the Tasks extension unless `tasks` is false. */
async function rpc(
  method: string,
  params: Record<string, unknown>,
  options: { token?: string; tasks?: boolean } = {},
): Promise<Reply> {
  const capabilities = options.tasks === false ? {} : { extensions: { [TASKS]: {} } };
  const body = {
    jsonrpc: '2.0',
    id: nextId++,
    method,
    params: {
      ...params,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': VERSION,
        'io.modelcontextprotocol/clientCapabilities': capabilities,
      },
    },
  };
  const headers: Record<string, string> = {
    Authorization: `Bearer ${options.token ?? owner}`,
    'Content-Type': 'application/json',
    Accept: 'application/json',
    'MCP-Protocol-Version': VERSION,
    'Mcp-Method': method,
  };
  const name = method === 'tools/call' ? params.name : params.taskId;
  if (typeof name === 'string') headers['Mcp-Name'] = name;
  const res = await fetch(`${proxy.url}/mcp`, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Message };
}

async function startTask(steps: number, delayMs: number): Promise<Message> {
  const { status, body } = await rpc('tools/call', {
    name: 'simulate_work',
    arguments: { steps, delayMs },
  });
  expect(status).toBe(200);
  expect(body.result).toMatchObject({ resultType: 'task', status: 'working' });
  return body.result as Message;
}

async function getTask(taskId: string): Promise<Message> {
  const { status, body } = await rpc('tasks/get', { taskId });
  expect(body.error).toBeUndefined();
  expect(status).toBe(200);
  return body.result as Message;
}

async function settled(taskId: string, timeoutMs = 20_000): Promise<Message> {
  let task: Message = {};
  await waitFor(
    async () => {
      task = await getTask(taskId);
      return task.status !== 'working';
    },
    timeoutMs,
    `task ${taskId} ended`,
  );
  return task;
}

/** The pod the proxy sent the last request to. */
function lastTarget(): number {
  return proxy.log[proxy.log.length - 1].target;
}

/** The live worker that took the command of this task (its debug log names the requestId). */
async function workerRunning(taskId: string): Promise<SpawnedProcess> {
  let found: SpawnedProcess | undefined;
  await waitFor(
    () => {
      found = cluster.workers.find((w) => w.child.exitCode === null && w.output().includes(taskId));
      return found !== undefined;
    },
    5000,
    'the worker running the task',
  );
  return found!;
}

test('server/discover advertises the Tasks extension; simulate_work declares task support', async () => {
  const discover = await rpc('server/discover', {});
  expect(discover.body.result.capabilities.extensions).toEqual({ [TASKS]: {} });
  expect(discover.body.result.capabilities.tasks).toBeUndefined();
  const list = await rpc('tools/list', {});
  const tools = list.body.result.tools as Message[];
  const work = tools.find((t) => t.name === 'simulate_work')!;
  expect(work._meta[TASKS]).toEqual({ taskSupport: 'optional' });
  expect(work.execution).toBeUndefined();
  const other = tools.find((t) => t.name === 'list_projects')!;
  expect(other._meta?.[TASKS]).toBeUndefined();
});

test('the SDK 2.x client, which does not declare the extension, gets results at once', async () => {
  const client = new Client(
    { name: 'tasks-test', version: '1.0.0' },
    { versionNegotiation: { mode: { pin: VERSION } } },
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${proxy.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${owner}` } },
    }),
  );
  try {
    expect(client.getServerCapabilities()?.extensions).toEqual({ [TASKS]: {} });
    const result = await client.callTool({
      name: 'simulate_work',
      arguments: { steps: 2, delayMs: 10 },
    });
    expect(result.structuredContent).toEqual({ steps: 2, completedSteps: 2, cancelled: false });
  } finally {
    await client.close();
  }
});

test('a task created on one pod is polled on the other until its result is inlined', async () => {
  const created = await startTask(3, 50);
  const createdOn = lastTarget();
  expect(created.taskId).toEqual(expect.any(String));
  expect(created.ttlMs).toBe(600_000); // MCP_TASK_TTL_S
  expect(created.pollIntervalMs).toBe(1000);
  expect(Date.parse(created.createdAt)).not.toBeNaN();
  expect(created).not.toHaveProperty('result');

  const first = await getTask(created.taskId);
  expect(lastTarget()).not.toBe(createdOn);
  expect(first.resultType).toBe('complete');
  expect(first.taskId).toBe(created.taskId);

  const done = await settled(created.taskId);
  expect(done.status).toBe('completed');
  expect(done.result.structuredContent).toEqual({ steps: 3, completedSteps: 3, cancelled: false });
  expect(done.result.content[0].text).toBe('Completed 3 steps');
  expect(done).not.toHaveProperty('error');
  // Cancelling an ended task is acknowledged and changes nothing.
  const cancel = await rpc('tasks/cancel', { taskId: created.taskId });
  expect(cancel.body.result).toMatchObject({ resultType: 'complete' });
  expect(cancel.body.result).not.toHaveProperty('status');
  expect((await getTask(created.taskId)).status).toBe('completed');
});

test('without the extension a call runs at once and the tasks methods answer -32021', async () => {
  const call = await rpc(
    'tools/call',
    { name: 'simulate_work', arguments: { steps: 1, delayMs: 10 } },
    { tasks: false },
  );
  expect(call.body.result.resultType).toBe('complete');
  expect(call.body.result.structuredContent.completedSteps).toBe(1);
  expect(call.body.result.taskId).toBeUndefined();

  for (const method of ['tasks/get', 'tasks/update', 'tasks/cancel']) {
    const params: Record<string, unknown> = { taskId: 'anything' };
    if (method === 'tasks/update') params.inputResponses = {};
    const reply = await rpc(method, params, { tasks: false });
    expect(reply.status).toBe(400);
    expect(reply.body.error.code).toBe(-32021);
    expect(reply.body.error.data).toEqual({
      requiredCapabilities: { extensions: { [TASKS]: {} } },
    });
  }
});

test('tasks/result and tasks/list are not methods of the extension; bad params are -32602', async () => {
  for (const method of ['tasks/result', 'tasks/list']) {
    const reply = await rpc(method, { taskId: 'x' });
    expect(reply.status).toBe(404);
    expect(reply.body.error.code).toBe(-32601);
  }
  const unknown = await rpc('tasks/get', { taskId: 'no-such-task' });
  expect(unknown.body.error).toMatchObject({ code: -32602, message: 'Unknown task: no-such-task' });
  const noId = await rpc('tasks/get', { taskId: 42 });
  expect(noId.body.error.code).toBe(-32602);
  const created = await startTask(1, 10);
  const badUpdate = await rpc('tasks/update', { taskId: created.taskId, inputResponses: [] });
  expect(badUpdate.body.error.code).toBe(-32602);
  const update = await rpc('tasks/update', { taskId: created.taskId, inputResponses: {} });
  expect(update.body.result).toEqual({ resultType: 'complete', _meta: expect.any(Object) });
});

test('a token sees and cancels only its own tasks', async () => {
  const created = await startTask(20, 1000);
  for (const method of ['tasks/get', 'tasks/cancel']) {
    const reply = await rpc(method, { taskId: created.taskId }, { token: stranger });
    expect(reply.body.error).toMatchObject({ code: -32602 });
  }
  expect((await getTask(created.taskId)).status).toBe('working');
  await rpc('tasks/cancel', { taskId: created.taskId });
  expect((await settled(created.taskId)).status).toBe('cancelled');
});

test('a cancel from the other pod stops the tool where it runs', async () => {
  const created = await startTask(20, 2000); // 40 s if never stopped
  const createdOn = lastTarget();
  const runner = await workerRunning(created.taskId);
  const cancel = await rpc('tasks/cancel', { taskId: created.taskId });
  expect(lastTarget()).not.toBe(createdOn);
  expect(cancel.status).toBe(200);
  expect(cancel.body.result).toMatchObject({ resultType: 'complete' });
  const task = await getTask(created.taskId);
  expect(task.status).toBe('cancelled');
  expect(task).not.toHaveProperty('result');
  // The worker's handler stopped: its command finished long before the 40 s.
  await waitFor(
    () =>
      runner
        .output()
        .split('\n')
        .some((line) => line.includes(created.taskId) && line.includes('command finished')),
    10_000,
    'the command finished on the worker running it',
  );
});

test('a task outlives the gateway that accepted it', async () => {
  const created = await startTask(20, 100);
  const acceptedBy = cluster.gateways[lastTarget()];
  await acceptedBy.kill('SIGKILL');
  const done = await settled(created.taskId);
  expect(done.status).toBe('completed');
  expect(done.result.structuredContent.completedSteps).toBe(20);
});

test('a task survives a SIGKILL of the worker running it: another worker runs it again', async () => {
  const created = await startTask(20, 200); // 4 s
  const runner = await workerRunning(created.taskId);
  const survivor = cluster.workers.find((w) => w !== runner)!;
  expect(survivor.output()).not.toContain(created.taskId);
  await runner.kill('SIGKILL');
  expect((await getTask(created.taskId)).status).toBe('working');
  // Reclaimed after CLAIM_IDLE_MS by the other worker, which runs the tool again from the start
  // (simulate_work records nothing until it ends).
  await waitFor(() => survivor.output().includes(created.taskId), 15_000, 'the reclaim');
  const done = await settled(created.taskId, 30_000);
  expect(done.status).toBe('completed');
  expect(done.result.structuredContent).toEqual({
    steps: 20,
    completedSteps: 20,
    cancelled: false,
  });
  // Polling takes no worker: with none left, any pod still answers from the engine.
  await survivor.kill('SIGKILL');
  expect((await getTask(created.taskId)).status).toBe('completed');
}, 60_000);
