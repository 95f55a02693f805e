import { MemoryEngine } from '../../../shared/engine/memory';
import {
  TASKS_EXTENSION,
  TaskStore,
  declaresTasks,
  taskSupportOf,
  type TaskRecord,
} from '../../../shared/mcpTasks';

let engine: MemoryEngine;
let store: TaskStore;

beforeEach(async () => {
  engine = new MemoryEngine({ historyMaxLen: 100, historyTtlS: 3600 });
  await engine.start();
  store = new TaskStore(engine.kv);
});

afterEach(() => engine.close());

const record = (over: Partial<TaskRecord> = {}): TaskRecord => ({
  taskId: 'task-1',
  sub: 'alice',
  streamId: 'stream-1',
  createdAt: new Date().toISOString(),
  ttlMs: 60_000,
  ...over,
});

test('creating a task again (a redelivered command) returns the first record', async () => {
  const first = await store.create(record());
  const again = await store.create(record({ createdAt: '2000-01-01T00:00:00.000Z' }));
  expect(again).toEqual(first);
  expect((await store.detailed(first)).status).toBe('working');
});

test('only the owner sees a task', async () => {
  await store.create(record());
  expect(await store.owned('task-1', 'alice')).toBeDefined();
  expect(await store.owned('task-1', 'mallory')).toBeUndefined();
  expect(await store.owned('task-2', 'alice')).toBeUndefined();
});

test('the first outcome wins: a completion after a cancel changes nothing', async () => {
  const task = await store.create(record());
  const at = new Date().toISOString();
  expect(await store.settle(task, { status: 'cancelled', at })).toBe(true);
  const completed = { status: 'completed' as const, at, result: { content: [] } };
  expect(await store.settle(task, completed)).toBe(false);
  const detailed = await store.detailed(task);
  expect(detailed.status).toBe('cancelled');
  expect(detailed).not.toHaveProperty('result');
});

test('a completed or failed task inlines its result or error, and its last update', async () => {
  const done = await store.create(record());
  const later = new Date(Date.now() + 1000).toISOString();
  await store.settle(done, { status: 'completed', at: later, result: { content: [], x: 1 } });
  expect(await store.detailed(done)).toMatchObject({
    status: 'completed',
    result: { x: 1 },
    lastUpdatedAt: later,
    ttlMs: 60_000,
    pollIntervalMs: 1000,
  });
  const failed = await store.create(record({ taskId: 'task-2' }));
  await store.settle(failed, {
    status: 'failed',
    at: later,
    error: { code: -32603, message: 'x' },
  });
  const detailed = await store.detailed(failed);
  expect(detailed).toMatchObject({ status: 'failed', error: { code: -32603 } });
  expect(detailed).not.toHaveProperty('result');
});

test('a task past its TTL is gone, and takes no outcome', async () => {
  const old = record({ createdAt: new Date(Date.now() - 120_000).toISOString() });
  expect(await store.settle(old, { status: 'cancelled', at: new Date().toISOString() })).toBe(
    false,
  );
  const short = await store.create(record({ taskId: 'short', ttlMs: 20 }));
  await new Promise((resolve) => setTimeout(resolve, 40));
  expect(await store.record(short.taskId)).toBeUndefined();
});

test("task support is read from a tool's _meta; the extension from client capabilities", () => {
  expect(taskSupportOf({ _meta: { [TASKS_EXTENSION]: { taskSupport: 'optional' } } })).toBe(
    'optional',
  );
  expect(taskSupportOf({ _meta: { [TASKS_EXTENSION]: { taskSupport: 'required' } } })).toBe(
    'required',
  );
  expect(taskSupportOf({ _meta: { [TASKS_EXTENSION]: { taskSupport: 'forbidden' } } })).toBe(
    undefined,
  );
  expect(taskSupportOf({})).toBeUndefined();
  expect(declaresTasks({ extensions: { [TASKS_EXTENSION]: {} } })).toBe(true);
  expect(declaresTasks({ extensions: { [TASKS_EXTENSION]: true } })).toBe(false);
  expect(declaresTasks({})).toBe(false);
});
