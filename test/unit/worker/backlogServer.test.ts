import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { MemoryDocumentStore } from '../../../shared/engine/memory/documentStore';
import { BacklogStore } from '../../../worker/backlog/store';
import { createBacklogServer } from '../../../worker/server/backlogServer';

/**
 * The backlog server as any MCP client sees it (the SDK's own Client, which checks every
 * structuredContent against the tool's outputSchema), over the SDK's in-memory transport.
 */
describe('createBacklogServer through the SDK Client', () => {
  let client: Client;
  let close: () => Promise<void>;

  beforeEach(async () => {
    const server = createBacklogServer(new BacklogStore(new MemoryDocumentStore()));
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    client = new Client({ name: 'test-client', version: '1.0.0' });
    await client.connect(clientSide);
    close = async () => {
      await client.close();
      await server.close();
    };
  });

  afterEach(async () => {
    await close();
  });

  async function call(name: string, args: Record<string, unknown> = {}) {
    return (await client.callTool({ name, arguments: args })) as CallToolResult;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async function structured(name: string, args: Record<string, unknown> = {}): Promise<any> {
    const result = await call(name, args);
    expect(result.isError).toBeFalsy();
    expect(result.content[0]).toMatchObject({ type: 'text' });
    return result.structuredContent;
  }

  it('lists the tools with input and output schemas and annotations', async () => {
    const { tools } = await client.listTools();
    expect(tools).toHaveLength(10);
    for (const tool of tools) {
      expect(tool.inputSchema.type).toBe('object');
      expect(tool.outputSchema?.type).toBe('object');
      expect(typeof tool.annotations?.readOnlyHint).toBe('boolean');
    }
    const create = tools.find((t) => t.name === 'create_project');
    expect(create?.inputSchema.required).toEqual(['name']);
  });

  it("every result passes the client's outputSchema validation", async () => {
    const project = await structured('create_project', { name: 'Shop', description: 'Web' });
    const actor = await structured('add_actor', { projectId: project.id, name: 'Customer' });
    const story = await structured('add_story_to_actor', { actorId: actor.id, title: 'Pay' });
    const feature = await structured('add_feature_to_story', { storyId: story.id, title: 'Form' });
    const child = await structured('add_child_feature', {
      parentFeatureId: feature.id,
      title: 'A',
    });
    await structured('add_child_feature', { parentFeatureId: child.id, title: 'B' });
    await structured('update_story', { storyId: story.id, status: 'done' });
    const tree = await structured('get_project_tree', { projectId: project.id });
    expect(tree.actors[0].stories[0].features[0].children[0].children[0].title).toBe('B');
    expect((await structured('get_story_tree', { storyId: story.id })).status).toBe('done');
    expect((await structured('list_projects')).projects).toHaveLength(1);
    expect(await structured('simulate_work', { steps: 2, delayMs: 1 })).toEqual({
      steps: 2,
      completedSteps: 2,
      cancelled: false,
    });
  });

  it('reports progress to a client that asks for it', async () => {
    const progress: number[] = [];
    await client.callTool(
      { name: 'simulate_work', arguments: { steps: 3, delayMs: 1 } },
      undefined,
      {
        onprogress: (p) => progress.push(p.progress),
      },
    );
    expect(progress).toEqual([1, 2, 3]);
  });

  it('without a command request id, separate calls create separate entities', async () => {
    const a = await structured('create_project', { name: 'Same' });
    const b = await structured('create_project', { name: 'Same' });
    expect(a.id).not.toBe(b.id);
  });

  it('reports unknown ids and invalid input as isError results', async () => {
    const unknown = await call('get_project_tree', { projectId: 'prj_none' });
    expect(unknown).toMatchObject({
      isError: true,
      content: [{ type: 'text', text: 'Project not found: prj_none' }],
    });
    const invalid = await call('create_project', { name: 42 });
    expect(invalid.isError).toBe(true);
    expect((invalid.content[0] as { text: string }).text).toMatch(/-32602.*name/s);
  });

  it('pages list_projects with a cursor and says whether more remain', async () => {
    for (let i = 0; i < 5; i += 1) await structured('create_project', { name: `P${i}` });
    const first = await structured('list_projects', { limit: 2 });
    expect(first).toMatchObject({ hasMore: true, nextCursor: expect.any(String) });
    expect(first.projects).toHaveLength(2);
    const second = await structured('list_projects', { limit: 2, cursor: first.nextCursor });
    const third = await structured('list_projects', { limit: 2, cursor: second.nextCursor });
    expect(third).toMatchObject({ hasMore: false });
    expect(third).not.toHaveProperty('nextCursor');
    const names = [first, second, third].flatMap((page) =>
      page.projects.map((p: { name: string }) => p.name),
    );
    expect(names.sort()).toEqual(['P0', 'P1', 'P2', 'P3', 'P4']);
    expect((await structured('list_projects')).projects).toHaveLength(5);

    for (const args of [{ limit: 101 }, { limit: 0 }, { cursor: 'not a cursor!' }]) {
      const bad = await call('list_projects', args);
      expect(bad.isError).toBe(true);
      expect((bad.content[0] as { text: string }).text).toMatch(/-32602/);
    }
  });

  it('bounds description lengths (2000 characters)', async () => {
    const long = await call('create_project', { name: 'Long', description: 'x'.repeat(2001) });
    expect(long.isError).toBe(true);
    expect((long.content[0] as { text: string }).text).toMatch(/-32602.*description/s);
    await structured('create_project', { name: 'Fits', description: 'x'.repeat(2000) });
  });
});
