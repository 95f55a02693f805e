import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import {
  McpError,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  type TextResourceContents,
} from '@modelcontextprotocol/sdk/types.js';
import { waitFor } from '../../../devSupport/waitFor';
import { MemoryDocumentStore } from '../../../shared/engine/memory/documentStore';
import { RPC_ERRORS } from '../../../shared/protocol';
import type { Project } from '../../../worker/backlog/model';
import { BacklogStore, type ActorInProject } from '../../../worker/backlog/store';
import { RESOURCE_PAGE_SIZE } from '../../../worker/server/backlogResources';
import { createBacklogServer } from '../../../worker/server/backlogServer';

/**
 * The backlog's resources, prompts and completion as the SDK's own Client sees them, over the
 * SDK's in-memory transport, on the memory engine. A client-side authInfo stands in for the
 * token the worker's transport passes with each command.
 */
describe('backlog resources, prompts and completion through the SDK Client', () => {
  let store: BacklogStore;
  let closers: (() => Promise<void>)[];
  let requestCount = 0;

  beforeEach(() => {
    store = new BacklogStore(new MemoryDocumentStore(), {
      limits: { maxProjectsPerToken: 1000, maxItemsPerToken: 10_000 },
    });
    closers = [];
  });

  afterEach(async () => {
    for (const close of closers) await close();
  });

  async function connect(token?: { type: 'readonly' | 'readwrite'; tools?: string[] }) {
    const server = createBacklogServer(store);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    if (token) {
      const authInfo: AuthInfo = {
        token: '',
        clientId: 'alice',
        scopes: [token.type],
        extra: {
          requestId: 'r',
          tokenType: token.type,
          ...(token.tools ? { tools: token.tools } : {}),
        },
      };
      const send = clientSide.send.bind(clientSide);
      clientSide.send = (message, options) => send(message, { ...options, authInfo });
    }
    await server.connect(serverSide);
    const client = new Client({ name: 'test-client', version: '1.0.0' });
    await client.connect(clientSide);
    closers.push(async () => {
      await client.close();
      await server.close();
    });
    return client;
  }

  const next = () => `req-${(requestCount += 1)}`;

  /** A project with one actor, one story, a feature and a child feature. */
  async function shop(name = 'Shop') {
    const project = await store.createProject(next(), { name, description: 'Web shop' });
    const actor = await store.addActor(next(), project.id, { name: 'Customer' });
    const story = await store.addStory(next(), actor.id, { title: 'Pay by card' });
    const feature = await store.addFeature(next(), story.id, { title: 'Card form' });
    const child = await store.addChildFeature(next(), feature.id, { title: 'Expiry check' });
    return { project, actor, story, feature, child };
  }

  async function rpcError(promise: Promise<unknown>): Promise<McpError> {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(McpError);
    return err as McpError;
  }

  describe('capabilities', () => {
    it('advertises resource subscriptions and list changes; tools and prompts never change', async () => {
      const client = await connect();
      expect(client.getServerCapabilities()).toMatchObject({
        tools: { listChanged: false },
        resources: { listChanged: true, subscribe: true },
        prompts: { listChanged: false },
        completions: {},
      });
    });
  });

  describe('subscriptions', () => {
    it('accepts a subscription to an entity the token may read, refuses the others', async () => {
      const { project, story } = await shop();
      const client = await connect({ type: 'readonly' });
      await expect(
        client.subscribeResource({ uri: `backlog://projects/${project.id}` }),
      ).resolves.toEqual({});
      const unknown = await rpcError(
        client.subscribeResource({ uri: 'backlog://stories/sty_missing' }),
      );
      expect(unknown.code).toBe(RPC_ERRORS.invalidParams);
      expect(unknown.data).toEqual({ uri: 'backlog://stories/sty_missing' });
      const foreign = await rpcError(client.subscribeResource({ uri: 'test://watched-resource' }));
      expect(foreign.code).toBe(RPC_ERRORS.invalidParams);
      const narrow = await connect({ type: 'readonly', tools: ['get_project_tree'] });
      const denied = await rpcError(
        narrow.subscribeResource({ uri: `backlog://stories/${story.id}` }),
      );
      expect(denied.code).toBe(RPC_ERRORS.permissionDenied);
      await expect(
        narrow.unsubscribeResource({ uri: `backlog://stories/${story.id}` }),
      ).resolves.toEqual({});
    });

    it('announces each mutation: the changed entity and every one holding it, and list growth', async () => {
      const client = await connect();
      const updated: string[] = [];
      let listChanges = 0;
      client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
        updated.push(n.params.uri);
      });
      client.setNotificationHandler(ResourceListChangedNotificationSchema, () => {
        listChanges += 1;
      });
      const { project, actor, story, feature, child } = await shop();
      await waitFor(() => listChanges === 5, 2000, 'five list changes (five creations)');
      const uri = (kind: string, id: string) => `backlog://${kind}/${id}`;
      expect(updated).toEqual([
        uri('projects', project.id), // the actor added
        uri('actors', actor.id), // the story added
        uri('projects', project.id),
        uri('stories', story.id), // the feature added
        uri('actors', actor.id),
        uri('projects', project.id),
        uri('features', feature.id), // the child feature added
        uri('stories', story.id),
        uri('actors', actor.id),
        uri('projects', project.id),
      ]);
      updated.length = 0;
      await store.updateStory(next(), story.id, { status: 'done' });
      await waitFor(() => updated.length === 3, 2000, 'the story update announced');
      expect(updated).toEqual([
        uri('stories', story.id),
        uri('actors', actor.id),
        uri('projects', project.id),
      ]);
      expect(listChanges).toBe(5);
      void child;
    });
  });

  describe('resources', () => {
    it('lists the four templates', async () => {
      const client = await connect();
      const { resourceTemplates } = await client.listResourceTemplates();
      expect(resourceTemplates.map((t) => t.uriTemplate)).toEqual([
        'backlog://projects/{projectId}',
        'backlog://actors/{actorId}',
        'backlog://stories/{storyId}',
        'backlog://features/{featureId}',
      ]);
      for (const template of resourceTemplates) expect(template.mimeType).toBe('application/json');
    });

    it('lists each project followed by its tree', async () => {
      const { project, actor, story, feature, child } = await shop();
      const client = await connect();
      const { resources, nextCursor } = await client.listResources();
      expect(nextCursor).toBeUndefined();
      expect(resources.map((r) => r.uri)).toEqual([
        `backlog://projects/${project.id}`,
        `backlog://actors/${actor.id}`,
        `backlog://stories/${story.id}`,
        `backlog://features/${feature.id}`,
        `backlog://features/${child.id}`,
      ]);
      expect(resources[0]).toMatchObject({ name: 'Shop', mimeType: 'application/json' });
    });

    it('pages: every resource once, in order, in pages of at most the page size', async () => {
      // One project larger than a page (cut inside it), and small ones around it.
      const expected: string[] = [];
      const projects: Project[] = [];
      for (const name of ['A', 'B', 'C'])
        projects.push(await store.createProject(next(), { name }));
      projects.sort((a, b) => (a.id < b.id ? -1 : 1));
      const big = projects[1]!;
      const actor = await store.addActor(next(), big.id, { name: 'Many' });
      const storyIds: string[] = [];
      for (let i = 0; i < RESOURCE_PAGE_SIZE + 10; i += 1) {
        storyIds.push((await store.addStory(next(), actor.id, { title: `S${i}` })).id);
      }
      expected.push(`backlog://projects/${projects[0]!.id}`);
      expected.push(`backlog://projects/${big.id}`, `backlog://actors/${actor.id}`);
      expected.push(...storyIds.map((id) => `backlog://stories/${id}`));
      expected.push(`backlog://projects/${projects[2]!.id}`);

      const client = await connect();
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await client.listResources(cursor ? { cursor } : {});
        expect(page.resources.length).toBeLessThanOrEqual(RESOURCE_PAGE_SIZE);
        seen.push(...page.resources.map((r) => r.uri));
        cursor = page.nextCursor;
        pages += 1;
      } while (cursor);
      expect(pages).toBe(2);
      expect(seen).toEqual(expected);
    });

    it('a page that ends with a project resumes at the next project', async () => {
      const projects: Project[] = [];
      for (let i = 0; i < RESOURCE_PAGE_SIZE + 1; i += 1) {
        projects.push(await store.createProject(next(), { name: `P${i}` }));
      }
      const client = await connect();
      const first = await client.listResources();
      expect(first.resources).toHaveLength(RESOURCE_PAGE_SIZE);
      expect(first.nextCursor).toBeDefined();
      const second = await client.listResources({ cursor: first.nextCursor! });
      expect(second.resources).toHaveLength(1);
      expect(second.nextCursor).toBeUndefined();
      const all = [...first.resources, ...second.resources].map((r) => r.uri);
      expect(all).toEqual(
        projects.map((p) => `backlog://projects/${p.id}`).sort((a, b) => (a < b ? -1 : 1)),
      );
    });

    it('rejects a cursor it did not give', async () => {
      const client = await connect();
      const err = await rpcError(client.listResources({ cursor: 'bm90LWEtY3Vyc29y' }));
      expect(err.code).toBe(-32602);
      expect(err.message).toContain('Invalid cursor');
    });

    it('reads each kind as JSON and markdown', async () => {
      const { project, actor, story, feature, child } = await shop();
      const client = await connect();
      const read = async (uri: string) => {
        const { contents } = await client.readResource({ uri });
        expect(contents).toHaveLength(2);
        const [json, markdown] = contents as TextResourceContents[];
        expect(json).toMatchObject({ uri, mimeType: 'application/json' });
        expect(markdown).toMatchObject({ uri, mimeType: 'text/markdown' });
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        return { entity: JSON.parse(json!.text) as any, markdown: markdown!.text };
      };

      const p = await read(`backlog://projects/${project.id}`);
      expect(p.entity).toEqual(await store.getProject(project.id));
      expect(p.markdown).toContain('# Project: Shop');
      expect(p.markdown).toContain('Feature **Expiry check**');

      const a = await read(`backlog://actors/${actor.id}`);
      expect(a.entity).toMatchObject({ id: actor.id, name: 'Customer', projectId: project.id });
      expect(a.entity.stories[0].id).toBe(story.id);

      const s = await read(`backlog://stories/${story.id}`);
      expect(s.entity).toEqual(await store.getStory(story.id));
      expect(s.markdown).toContain('# Story: Pay by card');

      const f = await read(`backlog://features/${feature.id}`);
      expect(f.entity).toMatchObject({ id: feature.id, storyId: story.id, projectId: project.id });
      expect(f.entity.children[0].id).toBe(child.id);

      const c = await read(`backlog://features/${child.id}`);
      expect(c.entity).toMatchObject({ id: child.id, parentFeatureId: feature.id });
      expect(c.markdown).toContain(`parent feature \`${feature.id}\``);
    });

    it.each([
      ['an unknown id', 'backlog://projects/prj_000000000000000000000000'],
      ['an id of another kind', 'backlog://stories/{project}'],
      ['another scheme', 'test://nonexistent-resource-for-conformance-testing'],
      ['an unknown collection', 'backlog://teams/x'],
      ['no URI at all', 'not a uri'],
    ])('reading %s is -32602 with data.uri, never empty contents', async (_what, template) => {
      const { project } = await shop();
      const uri = template.replace('{project}', project.id);
      const client = await connect();
      const err = await rpcError(client.readResource({ uri }));
      expect(err.code).toBe(-32602);
      expect(err.data).toEqual({ uri });
      expect(err.message).toContain('Resource not found');
    });
    it('resources registered beside the backlog stay listed and readable', async () => {
      const { project } = await shop();
      const server = createBacklogServer(store);
      server.registerResource('extra', 'test://extra', { mimeType: 'text/plain' }, (uri) => ({
        contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'extra' }],
      }));
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      await server.connect(serverSide);
      const client = new Client({ name: 'test-client', version: '1.0.0' });
      await client.connect(clientSide);
      closers.push(async () => {
        await client.close();
        await server.close();
      });

      const { resources } = await client.listResources();
      expect(resources[0]).toMatchObject({ uri: 'test://extra', name: 'extra' });
      expect(resources[1]).toMatchObject({ uri: `backlog://projects/${project.id}` });
      const { contents } = await client.readResource({ uri: 'test://extra' });
      expect(contents).toEqual([{ uri: 'test://extra', mimeType: 'text/plain', text: 'extra' }]);
      const err = await rpcError(client.readResource({ uri: 'test://missing' }));
      expect(err.code).toBe(-32602);
      expect(err.data).toEqual({ uri: 'test://missing' });
    });
  });

  describe('prompts', () => {
    it('lists the three prompts with their arguments', async () => {
      const client = await connect();
      const { prompts } = await client.listPrompts();
      const args = Object.fromEntries(
        prompts.map((p) => [p.name, p.arguments?.map((a) => `${a.name}${a.required ? '' : '?'}`)]),
      );
      expect(args).toEqual({
        write_user_stories: ['projectId', 'actorName', 'count?'],
        split_story_into_features: ['storyId'],
        review_backlog: ['projectId'],
      });
    });

    it('write_user_stories embeds the project and the actor (named in any case)', async () => {
      const { project, actor } = await shop();
      const client = await connect();
      const result = await client.getPrompt({
        name: 'write_user_stories',
        arguments: { projectId: project.id, actorName: 'customer', count: '3' },
      });
      const [first, second, last] = result.messages;
      expect(first!.content).toMatchObject({
        type: 'resource',
        resource: { uri: `backlog://projects/${project.id}`, mimeType: 'application/json' },
      });
      const embeddedActor = second!.content as { type: 'resource'; resource: TextResourceContents };
      expect(embeddedActor.resource.uri).toBe(`backlog://actors/${actor.id}`);
      expect(JSON.parse(embeddedActor.resource.text)).toEqual(await store.getActor(actor.id));
      expect(last!.content).toMatchObject({ type: 'text' });
      const text = (last!.content as { text: string }).text;
      expect(text).toContain('Write 3 new user stories');
      expect(text).toContain(actor.id);
    });

    it('split_story_into_features embeds the story', async () => {
      const { story } = await shop();
      const client = await connect();
      const result = await client.getPrompt({
        name: 'split_story_into_features',
        arguments: { storyId: story.id },
      });
      const embedded = result.messages[0]!.content as { resource: TextResourceContents };
      expect(embedded.resource.uri).toBe(`backlog://stories/${story.id}`);
      expect(JSON.parse(embedded.resource.text)).toEqual(await store.getStory(story.id));
      expect((result.messages[1]!.content as { text: string }).text).toContain(
        'add_feature_to_story',
      );
    });

    it('review_backlog embeds the project', async () => {
      const { project } = await shop();
      const client = await connect();
      const result = await client.getPrompt({
        name: 'review_backlog',
        arguments: { projectId: project.id },
      });
      const embedded = result.messages[0]!.content as { resource: TextResourceContents };
      expect(JSON.parse(embedded.resource.text)).toEqual(await store.getProject(project.id));
    });

    it.each([
      ['review_backlog', { projectId: 'prj_nope' }, 'projectId: Project not found: prj_nope'],
      ['split_story_into_features', { storyId: 'sty_nope' }, 'storyId: Story not found: sty_nope'],
      ['write_user_stories', { projectId: 'prj_nope', actorName: 'X' }, 'Project not found'],
      ['write_user_stories', { projectId: '{project}', actorName: 'Admin' }, 'no actor named'],
      [
        'write_user_stories',
        { projectId: '{project}', actorName: 'Customer', count: '0' },
        'count',
      ],
      [
        'write_user_stories',
        { projectId: '{project}', actorName: 'Customer', count: 'x' },
        'count',
      ],
      ['review_backlog', {}, 'Invalid arguments'],
    ])('%s with bad arguments %j is a clear -32602', async (name, args, message) => {
      const { project } = await shop();
      const client = await connect();
      const resolved = Object.fromEntries(
        Object.entries(args).map(([k, v]) => [k, v.replace('{project}', project.id)]),
      );
      const err = await rpcError(client.getPrompt({ name, arguments: resolved }));
      expect(err.code).toBe(-32602);
      expect(err.message).toContain(message);
    });
  });

  describe('completion', () => {
    const promptRef = (name: string) => ({ type: 'ref/prompt' as const, name });
    const templateRef = (uri: string) => ({ type: 'ref/resource' as const, uri });

    it('completes project ids by id prefix and by name prefix (to the id)', async () => {
      const { project: shopProject } = await shop('Shop');
      const { project: shipping } = await shop('shipping');
      const { project: other } = await shop('Warehouse');
      const client = await connect();
      const complete = async (value: string) =>
        (
          await client.complete({
            ref: promptRef('review_backlog'),
            argument: { name: 'projectId', value },
          })
        ).completion;

      const byName = await complete('Sh');
      expect(byName.values.sort()).toEqual([shopProject.id, shipping.id].sort());
      expect(byName).toMatchObject({ total: 2, hasMore: false });
      expect((await complete('shop')).values).toEqual([shopProject.id]);
      expect((await complete('w')).values).toEqual([other.id]);

      const idPrefix = other.id.slice(0, 6);
      expect((await complete(idPrefix)).values).toContain(other.id);
      expect((await complete(other.id)).values).toEqual([other.id]);
      expect((await complete('')).values).toHaveLength(3);
      expect((await complete('zzz')).values).toEqual([]);

      // The same completer serves the project template's variable.
      const viaTemplate = await client.complete({
        ref: templateRef('backlog://projects/{projectId}'),
        argument: { name: 'projectId', value: 'ware' },
      });
      expect(viaTemplate.completion.values).toEqual([other.id]);
    });

    it('at most 100 values, with total and hasMore', async () => {
      for (let i = 0; i < 105; i += 1) await store.createProject(next(), { name: `Bulk ${i}` });
      const client = await connect();
      const { completion } = await client.complete({
        ref: promptRef('review_backlog'),
        argument: { name: 'projectId', value: 'bulk' },
      });
      expect(completion.values).toHaveLength(100);
      expect(completion.hasMore).toBe(true);
      expect(completion.total).toBeGreaterThan(100);
    });

    it('completes actor names within the project given in context', async () => {
      const { project } = await shop();
      await store.addActor(next(), project.id, { name: 'Courier' });
      await store.addActor(next(), project.id, { name: 'Admin' });
      const client = await connect();
      const complete = async (value: string, context?: Record<string, string>) =>
        (
          await client.complete({
            ref: promptRef('write_user_stories'),
            argument: { name: 'actorName', value },
            ...(context ? { context: { arguments: context } } : {}),
          })
        ).completion.values;

      expect((await complete('c', { projectId: project.id })).sort()).toEqual([
        'Courier',
        'Customer',
      ]);
      expect(await complete('Cu', { projectId: project.id })).toEqual(['Customer']);
      expect(await complete('', { projectId: project.id })).toHaveLength(3);
      expect(await complete('c')).toEqual([]);
      expect(await complete('c', { projectId: 'prj_nope' })).toEqual([]);
    });

    it('completes story ids (narrowed to the project in context), actor and feature ids', async () => {
      const one = await shop('One');
      const two = await shop('Two');
      const client = await connect();
      const values = async (
        ref: { type: 'ref/prompt'; name: string } | { type: 'ref/resource'; uri: string },
        name: string,
        value: string,
        context?: Record<string, string>,
      ) =>
        (
          await client.complete({
            ref,
            argument: { name, value },
            ...(context ? { context: { arguments: context } } : {}),
          })
        ).completion.values;

      const stories = await values(promptRef('split_story_into_features'), 'storyId', '');
      expect(stories.sort()).toEqual([one.story.id, two.story.id].sort());
      expect(
        await values(promptRef('split_story_into_features'), 'storyId', one.story.id.slice(0, 8)),
      ).toContain(one.story.id);
      expect(await values(promptRef('split_story_into_features'), 'storyId', 'prj_')).toEqual([]);
      expect(
        await values(templateRef('backlog://stories/{storyId}'), 'storyId', 'sty', {
          projectId: two.project.id,
        }),
      ).toEqual([two.story.id]);

      const actors: ActorInProject[] = [one.actor, two.actor];
      expect(
        (await values(templateRef('backlog://actors/{actorId}'), 'actorId', 'act_')).sort(),
      ).toEqual(actors.map((a) => a.id).sort());
      expect(
        (await values(templateRef('backlog://features/{featureId}'), 'featureId', 'f')).sort(),
      ).toEqual([one.feature.id, one.child.id, two.feature.id, two.child.id].sort());
      expect(
        await values(templateRef('backlog://features/{featureId}'), 'featureId', one.child.id),
      ).toEqual([one.child.id]);
    });
  });

  describe('permissions', () => {
    it('a readonly token lists, reads, gets prompts and completes', async () => {
      const { project, story } = await shop();
      const client = await connect({ type: 'readonly' });
      expect((await client.listResources()).resources.length).toBeGreaterThan(0);
      await client.readResource({ uri: `backlog://stories/${story.id}` });
      await client.getPrompt({ name: 'review_backlog', arguments: { projectId: project.id } });
      const { completion } = await client.complete({
        ref: { type: 'ref/prompt', name: 'review_backlog' },
        argument: { name: 'projectId', value: 'sh' },
      });
      expect(completion.values).toEqual([project.id]);
    });

    it("a token's tool allow-list limits reads to what its read tools read", async () => {
      const { project, story } = await shop();
      const client = await connect({ type: 'readwrite', tools: ['get_story_tree'] });
      await client.readResource({ uri: `backlog://stories/${story.id}` });
      const denied = [
        client.listResources(),
        client.readResource({ uri: `backlog://projects/${project.id}` }),
        client.getPrompt({ name: 'review_backlog', arguments: { projectId: project.id } }),
        client.complete({
          ref: { type: 'ref/prompt', name: 'review_backlog' },
          argument: { name: 'projectId', value: 'sh' },
        }),
      ];
      for (const attempt of denied) {
        const err = await rpcError(attempt);
        expect(err.code).toBe(RPC_ERRORS.permissionDenied);
        expect(err.message).toContain("this token's allow-list");
      }
      await client.getPrompt({
        name: 'split_story_into_features',
        arguments: { storyId: story.id },
      });
    });
  });
});
