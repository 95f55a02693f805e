/**
 * What the backlog's tools log as they work (issue 14 item 4), as the server sends it, before
 * any transport's level filter: the SDK's Client over the SDK's in-memory transport.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import {
  LoggingMessageNotificationSchema,
  type CallToolResult,
  type LoggingMessageNotification,
} from '@modelcontextprotocol/sdk/types.js';
import { MemoryDocumentStore } from '../../../shared/engine/memory/documentStore';
import { BacklogStore } from '../../../worker/backlog/store';
import type { Project } from '../../../worker/backlog/model';
import {
  INFRASTRUCTURE_FAILURE_META,
  createBacklogServer,
} from '../../../worker/server/backlogServer';

/** A store whose reads of projects fail as an unreachable Redis would. */
class UnreachableReads extends BacklogStore {
  override getProject(): Promise<Project> {
    return Promise.reject(new Error('connect ECONNREFUSED 10.0.0.5:6379'));
  }
}

let client: Client;
let close: () => Promise<void>;
const logs: LoggingMessageNotification['params'][] = [];

async function connect(store: BacklogStore) {
  const server = createBacklogServer(store);
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  client = new Client({ name: 'backlog-logging', version: '1.0.0' });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(n.params);
  });
  await client.connect(clientSide);
  close = async () => {
    await client.close();
    await server.close();
  };
}

afterEach(async () => {
  logs.length = 0;
  await close();
});

/** Calls a tool; the log messages it sent (a handler runs a microtask after its message). */
async function call(name: string, args: Record<string, unknown>) {
  logs.length = 0;
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  await new Promise((resolve) => setImmediate(resolve));
  return { result, sent: logs.map((l) => [l.level, (l.data as { message: string }).message]) };
}

test('writes log an info naming what changed; reads log nothing; failures a warning', async () => {
  await connect(new BacklogStore(new MemoryDocumentStore()));
  expect(client.getServerCapabilities()?.logging).toEqual({});
  const project = await call('create_project', { name: 'Shop' });
  const projectId = (project.result.structuredContent as { id: string }).id;
  expect(project.sent).toEqual([['info', `Created project "Shop" (${projectId})`]]);
  expect(logs[0]).toMatchObject({ logger: 'backlog', data: { tool: 'create_project', projectId } });

  const actor = await call('add_actor', { projectId, name: 'Buyer' });
  const actorId = (actor.result.structuredContent as { id: string }).id;
  expect(actor.sent).toEqual([
    ['info', `Added actor "Buyer" (${actorId}) to project ${projectId}`],
  ]);
  const story = await call('add_story_to_actor', { actorId, title: 'Pay' });
  const storyId = (story.result.structuredContent as { id: string }).id;
  expect(story.sent).toEqual([['info', `Added story "Pay" (${storyId}) to actor ${actorId}`]]);
  const updated = await call('update_story', { storyId, status: 'done', priority: 'high' });
  expect(updated.sent).toEqual([['info', `Updated story ${storyId} (status, priority)`]]);
  expect(logs[0].data).toMatchObject({ fields: ['status', 'priority'] });
  const feature = await call('add_feature_to_story', { storyId, title: 'Form' });
  const featureId = (feature.result.structuredContent as { id: string }).id;
  expect(feature.sent).toEqual([
    ['info', `Added feature "Form" (${featureId}) to story ${storyId}`],
  ]);
  const child = await call('add_child_feature', { parentFeatureId: featureId, title: 'Field' });
  const childId = (child.result.structuredContent as { id: string }).id;
  expect(child.sent).toEqual([
    ['info', `Added feature "Field" (${childId}) under feature ${featureId}`],
  ]);

  expect((await call('list_projects', {})).sent).toEqual([]);
  expect((await call('get_project_tree', { projectId })).sent).toEqual([]);
  expect((await call('get_story_tree', { storyId })).sent).toEqual([]);

  const missing = await call('get_story_tree', { storyId: 'sty_missing' });
  expect(missing.result.isError).toBe(true);
  expect(missing.sent).toEqual([['warning', expect.stringContaining('sty_missing')]]);
  const empty = await call('update_story', { storyId });
  expect(empty.result.isError).toBe(true);
  expect(empty.sent).toEqual([['warning', expect.stringContaining('needs at least one of')]]);
  const badCursor = await call('list_projects', { cursor: '!!' });
  expect(badCursor.sent).toEqual([['warning', expect.stringContaining('Invalid cursor')]]);
});

test('simulate_work logs a debug per step and an info at the end', async () => {
  await connect(new BacklogStore(new MemoryDocumentStore()));
  const work = await call('simulate_work', { steps: 3, delayMs: 1 });
  expect(work.sent).toEqual([
    ['debug', 'Step 1 of 3 done'],
    ['debug', 'Step 2 of 3 done'],
    ['debug', 'Step 3 of 3 done'],
    ['info', 'Completed 3 steps'],
  ]);
});

test("a store failure is an error, without the failure's internals", async () => {
  await connect(new UnreachableReads(new MemoryDocumentStore()));
  const failed = await call('get_project_tree', { projectId: 'prj_any' });
  expect(failed.result.isError).toBe(true);
  expect(failed.result._meta?.[INFRASTRUCTURE_FAILURE_META]).toBe(true);
  expect(failed.sent).toEqual([['error', 'The backlog store failed']]);
  expect(JSON.stringify(logs)).not.toContain('ECONNREFUSED');
});
