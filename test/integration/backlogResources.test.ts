/**
 * Issue 14, items 1-3: the backlog's resources, prompts and completion as a real MCP client
 * sees them (the SDK's Client, a 2025-11-25 session over Streamable HTTP) through two gateway
 * processes behind a round-robin proxy, two workers and real Redis.
 * Processes run the compiled dist/ (make builds it).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { TextResourceContents } from '@modelcontextprotocol/sdk/types.js';
import { issueToken } from '../../shared/auth';
import { RPC_ERRORS } from '../../shared/protocol';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { callOk, rpcError, streamableTransport } from '../helpers/sdkClient';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/roundRobinProxy';

const SECRET = 'backlog-resources-secret-0123456789abcdef';

let cluster: TestCluster;
let proxy: RoundRobinProxy;
const clients: Client[] = [];

beforeAll(async () => {
  cluster = await startCluster('backlog-resources', { gateways: 2, workers: 2, jwtSecret: SECRET });
  proxy = await startRoundRobinProxy(cluster.gateways.map((g) => g.url));
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await proxy?.close();
  await cluster?.stop();
});

async function connect(token: string): Promise<Client> {
  const transport = streamableTransport(proxy.url, token);
  const client = new Client({ name: 'backlog-resources-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return client;
}

describe('backlog resources, prompts and completion across pods', () => {
  let project: { id: string };
  let actor: { id: string };
  let story: { id: string };

  beforeAll(async () => {
    const writer = await connect(issueToken(SECRET, { type: 'team', sub: 'writer', ttl: '1h' }));
    project = await callOk(writer, 'create_project', { name: 'Orchard', description: 'Fruit' });
    actor = await callOk(writer, 'add_actor', { projectId: project.id, name: 'Picker' });
    story = await callOk(writer, 'add_story_to_actor', { actorId: actor.id, title: 'Log a crate' });
    await callOk(writer, 'add_feature_to_story', { storyId: story.id, title: 'Scan label' });
  }, 30_000);

  it('a readonly token lists, reads, gets a prompt and completes', async () => {
    const client = await connect(
      issueToken(SECRET, { type: 'readonly', sub: 'reader', ttl: '1h' }),
    );
    expect(client.getServerCapabilities()).toMatchObject({
      resources: { listChanged: true, subscribe: true },
      prompts: { listChanged: false },
      completions: {},
    });

    const { resources } = await client.listResources();
    const uris = resources.map((r) => r.uri);
    expect(uris).toEqual(
      expect.arrayContaining([
        `backlog://projects/${project.id}`,
        `backlog://actors/${actor.id}`,
        `backlog://stories/${story.id}`,
      ]),
    );
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates).toHaveLength(4);

    const { contents } = await client.readResource({ uri: `backlog://projects/${project.id}` });
    const [json, markdown] = contents as TextResourceContents[];
    expect(JSON.parse(json!.text)).toMatchObject({ id: project.id, name: 'Orchard' });
    expect(markdown).toMatchObject({ mimeType: 'text/markdown' });
    expect(markdown!.text).toContain('Story **Log a crate**');

    const { prompts } = await client.listPrompts();
    expect(prompts.map((p) => p.name).sort()).toEqual([
      'review_backlog',
      'split_story_into_features',
      'write_user_stories',
    ]);
    const prompt = await client.getPrompt({
      name: 'write_user_stories',
      arguments: { projectId: project.id, actorName: 'Picker', count: '2' },
    });
    const embedded = prompt.messages[0]!.content as {
      type: string;
      resource: TextResourceContents;
    };
    expect(embedded.type).toBe('resource');
    expect(embedded.resource.uri).toBe(`backlog://projects/${project.id}`);
    expect(JSON.parse(embedded.resource.text)).toMatchObject({ id: project.id });

    const byName = await client.complete({
      ref: { type: 'ref/prompt', name: 'review_backlog' },
      argument: { name: 'projectId', value: 'orch' },
    });
    expect(byName.completion).toEqual({ values: [project.id], total: 1, hasMore: false });
    const actorNames = await client.complete({
      ref: { type: 'ref/prompt', name: 'write_user_stories' },
      argument: { name: 'actorName', value: 'p' },
      context: { arguments: { projectId: project.id } },
    });
    expect(actorNames.completion.values).toEqual(['Picker']);
    const storyIds = await client.complete({
      ref: { type: 'ref/resource', uri: 'backlog://stories/{storyId}' },
      argument: { name: 'storyId', value: story.id.slice(0, 10) },
    });
    expect(storyIds.completion.values).toEqual([story.id]);
  });

  it('an unknown URI and an unknown prompt id are -32602 errors, with data.uri', async () => {
    const client = await connect(issueToken(SECRET, { type: 'team', sub: 'team-1', ttl: '1h' }));
    const uri = 'backlog://stories/sty_000000000000000000000000';
    const unknown = await rpcError(client.readResource({ uri }));
    expect(unknown.code).toBe(-32602);
    expect(unknown.data).toEqual({ uri });
    const badPrompt = await rpcError(
      client.getPrompt({ name: 'split_story_into_features', arguments: { storyId: 'sty_nope' } }),
    );
    expect(badPrompt.code).toBe(-32602);
    expect(badPrompt.message).toContain('Story not found: sty_nope');
  });

  it("a token's tool allow-list limits what it may read", async () => {
    const client = await connect(
      issueToken(SECRET, { type: 'team', sub: 'narrow', ttl: '1h', tools: ['get_story_tree'] }),
    );
    await client.readResource({ uri: `backlog://stories/${story.id}` });
    const denied = await rpcError(client.readResource({ uri: `backlog://projects/${project.id}` }));
    expect(denied.code).toBe(RPC_ERRORS.permissionDenied);
    expect(denied.message).toContain('get_project_tree');
  });
});
