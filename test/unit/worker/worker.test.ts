import { RPC_ERRORS } from '../../../shared/protocol';
import { publishSeedCancel } from '../../../shared/engine/cancellations';
import { sleep, waitFor } from '../../../devSupport/waitFor';
import { EventCollector, READONLY, TEAM, WorkerHarness, counterValue, envelope } from './harness';

const ALL_TOOLS = [
  'list_projects',
  'create_project',
  'get_project_tree',
  'add_actor',
  'add_story_to_actor',
  'get_story_tree',
  'update_story',
  'add_feature_to_story',
  'add_child_feature',
  'simulate_work',
];
const READ_ONLY_TOOLS = ['list_projects', 'get_project_tree', 'get_story_tree', 'simulate_work'];
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('worker: commands in, events out (memory engine)', () => {
  let h: WorkerHarness;

  beforeEach(async () => {
    h = await WorkerHarness.start();
  });

  afterEach(async () => {
    await h.stop();
  });

  /** Creates project > actor > story > feature > child > grandchild; returns their ids. */
  async function buildTree() {
    const project = await h.ok('create_project', { name: 'Shop', description: 'Web shop' });
    const actor = await h.ok('add_actor', { projectId: project.id, name: 'Customer' });
    const story = await h.ok('add_story_to_actor', {
      actorId: actor.id,
      title: 'Pay by card',
      priority: 'high',
    });
    const feature = await h.ok('add_feature_to_story', { storyId: story.id, title: 'Card form' });
    const child = await h.ok('add_child_feature', {
      parentFeatureId: feature.id,
      title: 'Validate number',
    });
    const grandchild = await h.ok('add_child_feature', {
      parentFeatureId: child.id,
      title: 'Luhn check',
      status: 'done',
    });
    return { project, actor, story, feature, child, grandchild };
  }

  describe('tools/list', () => {
    it('answers with mcp-response listing every tool with its readOnlyHint', async () => {
      const requestId = await h.send({ method: 'tools/list', id: 7 });
      const seen = await h.events.final(requestId);
      expect(seen.event).toBe('mcp-response');
      expect(seen.data).toMatchObject({
        type: 'mcp-response',
        method: 'tools/list',
        requestId,
        id: 7,
      });
      expect(seen.data.timestamp).toMatch(ISO_TIME);
      const tools = seen.data.result.tools as Array<{
        name: string;
        annotations: { readOnlyHint: boolean };
      }>;
      expect(tools.map((t) => t.name).sort()).toEqual([...ALL_TOOLS].sort());
      for (const tool of tools) {
        expect(tool.annotations.readOnlyHint).toBe(READ_ONLY_TOOLS.includes(tool.name));
      }
    });

    it('shows a readonly token only the read-only tools', async () => {
      const seen = await h.request({ method: 'tools/list' }, READONLY);
      const names = seen.data.result.tools.map((t: { name: string }) => t.name).sort();
      expect(names).toEqual([...READ_ONLY_TOOLS].sort());
    });

    it('shows an allow-listed token only its tools (and readonly still only read-only ones)', async () => {
      const team = await h.request(
        { method: 'tools/list' },
        { type: 'team', tools: ['create_project', 'list_projects', 'nonexistent'] },
      );
      expect(team.data.result.tools.map((t: { name: string }) => t.name).sort()).toEqual([
        'create_project',
        'list_projects',
      ]);
      const readonly = await h.request(
        { method: 'tools/list' },
        { type: 'readonly', tools: ['create_project', 'get_project_tree'] },
      );
      expect(readonly.data.result.tools.map((t: { name: string }) => t.name)).toEqual([
        'get_project_tree',
      ]);
    });
  });

  describe('backlog tools', () => {
    it('create_project returns the project with its id as a tool-result', async () => {
      const requestId = await h.send({
        method: 'tools/call',
        params: { name: 'create_project', arguments: { name: 'Shop' } },
        id: 'c1',
      });
      const seen = await h.events.final(requestId);
      expect(seen.event).toBe('tool-result');
      expect(seen.data).toMatchObject({
        type: 'tool-result',
        method: 'create_project',
        requestId,
        id: 'c1',
      });
      expect(seen.data.timestamp).toMatch(ISO_TIME);
      const { result } = seen.data;
      expect(result.isError).toBeUndefined();
      expect(result.content[0].type).toBe('text');
      expect(result.content[0].text).toContain('Shop');
      expect(result.structuredContent).toMatchObject({ name: 'Shop', description: '', actors: [] });
      expect(result.structuredContent.id).toMatch(/^prj_/);
      expect(result.content[0].text).toContain(result.structuredContent.id);
    });

    it('builds the whole tree and returns it from get_project_tree and get_story_tree', async () => {
      const { project, actor, story, feature, child, grandchild } = await buildTree();
      expect(actor).toMatchObject({ projectId: project.id, name: 'Customer', stories: [] });
      expect(story).toMatchObject({
        projectId: project.id,
        actorId: actor.id,
        title: 'Pay by card',
        status: 'todo',
        priority: 'high',
        features: [],
      });
      expect(feature).toMatchObject({ projectId: project.id, storyId: story.id, children: [] });
      expect(child).toMatchObject({ storyId: story.id, parentFeatureId: feature.id });
      expect(grandchild).toMatchObject({ parentFeatureId: child.id, status: 'done' });

      const tree = await h.ok('get_project_tree', { projectId: project.id });
      expect(tree).toMatchObject({
        id: project.id,
        name: 'Shop',
        actors: [
          {
            id: actor.id,
            stories: [
              {
                id: story.id,
                features: [
                  {
                    id: feature.id,
                    title: 'Card form',
                    children: [
                      {
                        id: child.id,
                        children: [{ id: grandchild.id, title: 'Luhn check', children: [] }],
                      },
                    ],
                  },
                ],
              },
            ],
          },
        ],
      });
      const treeEvent = await h.call('get_project_tree', { projectId: project.id });
      const text: string = treeEvent.data.result.content[0].text;
      expect(text).toContain('Project "Shop"');
      expect(text).toContain('      Feature "Card form"');
      expect(text).toContain('          Feature "Luhn check" [done]');

      const storyTree = await h.ok('get_story_tree', { storyId: story.id });
      expect(storyTree).toMatchObject({ id: story.id, projectId: project.id, actorId: actor.id });
      expect(storyTree.features[0].children[0].children[0].id).toBe(grandchild.id);
    });

    it('update_story changes only the fields given', async () => {
      const { story } = await buildTree();
      const updated = await h.ok('update_story', { storyId: story.id, status: 'in_progress' });
      expect(updated).toMatchObject({
        id: story.id,
        title: 'Pay by card',
        status: 'in_progress',
        priority: 'high',
      });
      const again = await h.ok('update_story', { storyId: story.id, title: 'Pay by any card' });
      expect(again).toMatchObject({ title: 'Pay by any card', status: 'in_progress' });
      expect((await h.ok('get_story_tree', { storyId: story.id })).features).toHaveLength(1);
    });

    it('list_projects summarizes every project', async () => {
      await buildTree();
      await h.ok('create_project', { name: 'Empty' });
      const { projects, hasMore } = await h.ok('list_projects');
      expect(projects).toHaveLength(2);
      expect(hasMore).toBe(false);
      // Pages are in id order: find each by name.
      const byName = (name: string) => projects.find((p: { name: string }) => p.name === name);
      expect(byName('Shop')).toMatchObject({
        name: 'Shop',
        actorCount: 1,
        storyCount: 1,
        featureCount: 3,
      });
      expect(byName('Empty')).toMatchObject({
        name: 'Empty',
        actorCount: 0,
        storyCount: 0,
        featureCount: 0,
      });
    });

    it('other methods answer as mcp-response (ping)', async () => {
      const requestId = await h.send({ method: 'ping', id: 1 });
      const seen = await h.events.final(requestId);
      expect(seen.event).toBe('mcp-response');
      expect(seen.data).toMatchObject({
        type: 'mcp-response',
        method: 'ping',
        requestId,
        id: 1,
        result: {},
      });
    });
  });

  describe('errors', () => {
    it.each([
      ['get_project_tree', { projectId: 'prj_missing' }, 'Project not found: prj_missing'],
      ['add_actor', { projectId: 'prj_missing', name: 'A' }, 'Project not found: prj_missing'],
      [
        'add_story_to_actor',
        { actorId: 'act_missing', title: 'S' },
        'Actor not found: act_missing',
      ],
      ['get_story_tree', { storyId: 'sty_missing' }, 'Story not found: sty_missing'],
      ['update_story', { storyId: 'sty_missing', title: 'T' }, 'Story not found: sty_missing'],
      [
        'add_feature_to_story',
        { storyId: 'sty_missing', title: 'F' },
        'Story not found: sty_missing',
      ],
      [
        'add_child_feature',
        { parentFeatureId: 'fea_missing', title: 'F' },
        'Feature not found: fea_missing',
      ],
    ])('%s with an unknown id: mcp-error -32000 naming the id', async (tool, args, message) => {
      const requestId = await h.send({
        method: 'tools/call',
        params: { name: tool, arguments: args },
        id: 3,
      });
      const seen = await h.events.final(requestId);
      expect(seen.event).toBe('mcp-error');
      expect(seen.data).toMatchObject({
        type: 'mcp-error',
        method: 'tools/call',
        tool,
        requestId,
        id: 3,
        error: { code: RPC_ERRORS.toolError, message },
        result: { isError: true, content: [{ type: 'text', text: message }] },
      });
      expect(seen.data.timestamp).toMatch(ISO_TIME);
    });

    it('an id of the wrong kind is not found either', async () => {
      const { project } = await buildTree();
      const seen = await h.call('get_story_tree', { storyId: project.id });
      expect(seen.data.error.message).toBe(`Story not found: ${project.id}`);
    });

    it('invalid arguments: mcp-error -32602 naming the field', async () => {
      const missing = await h.call('create_project', {});
      expect(missing.event).toBe('mcp-error');
      expect(missing.data.error.code).toBe(-32602);
      expect(missing.data.error.message).toMatch(/Invalid arguments for tool create_project/);
      expect(missing.data.error.message).toMatch(/name/);

      const badEnum = await h.call('add_story_to_actor', {
        actorId: 'x',
        title: 'T',
        status: 'bogus',
      });
      expect(badEnum.data.error.code).toBe(-32602);
      expect(badEnum.data.error.message).toMatch(/status/);

      const blank = await h.call('create_project', { name: '   ' });
      expect(blank.data.error.code).toBe(-32602);

      const noFields = await h.call('update_story', { storyId: 'sty_x' });
      expect(noFields.data.error).toEqual({
        code: -32602,
        message: 'update_story needs at least one of title, description, status, priority',
      });
    });

    it('malformed tools/call params: mcp-error -32602', async () => {
      const noName = await h.request({ method: 'tools/call', params: { arguments: {} } });
      expect(noName.data.error).toEqual({
        code: -32602,
        message: 'tools/call needs params.name, a tool name',
      });
      const badArgs = await h.request({
        method: 'tools/call',
        params: { name: 'create_project', arguments: ['Shop'] },
      });
      expect(badArgs.data.error.code).toBe(-32602);
    });

    it('unknown method and unknown tool: mcp-error -32601', async () => {
      const method = await h.request({ method: 'foo/bar', id: 9 });
      expect(method.event).toBe('mcp-error');
      expect(method.data).toMatchObject({
        type: 'mcp-error',
        method: 'foo/bar',
        id: 9,
        error: { code: -32601, message: 'Method not found: foo/bar' },
      });
      const tool = await h.call('no_such_tool');
      expect(tool.data).toMatchObject({
        method: 'tools/call',
        tool: 'no_such_tool',
        error: { code: -32601, message: 'Tool not found: no_such_tool' },
      });
    });
  });

  describe('permissions', () => {
    it('refuses write tools to a readonly token with -32011, allows read ones', async () => {
      const refused = await h.call('create_project', { name: 'X' }, READONLY);
      expect(refused.event).toBe('mcp-error');
      expect(refused.data.error.code).toBe(RPC_ERRORS.permissionDenied);
      expect(refused.data.error.message).toMatch(/readonly token.*create_project/);
      expect((await h.ok('list_projects')).projects).toHaveLength(0);

      const project = await h.ok('create_project', { name: 'Shop' });
      const read = await h.call('get_project_tree', { projectId: project.id }, READONLY);
      expect(read.event).toBe('tool-result');
      expect((await h.call('list_projects', {}, READONLY)).event).toBe('tool-result');
    });

    it('refuses tools outside the token allow-list', async () => {
      const token = { type: 'team' as const, tools: ['list_projects'] };
      const refused = await h.call('create_project', { name: 'X' }, token);
      expect(refused.data.error).toEqual({
        code: RPC_ERRORS.permissionDenied,
        message: "Permission denied: tool create_project is not in this token's allow-list",
      });
      expect((await h.call('list_projects', {}, token)).event).toBe('tool-result');
    });
  });

  describe('long-running tool', () => {
    it('publishes progress as tool-progress events (tool-result data with metadata.progress) before the result', async () => {
      const requestId = await h.send({
        method: 'tools/call',
        params: { name: 'simulate_work', arguments: { steps: 4, delayMs: 5 } },
        id: 'w',
      });
      const final = await h.events.final(requestId);
      const seen = h.events.of(requestId);
      expect(seen).toHaveLength(5);
      expect(seen[4]).toBe(final);
      expect(final.event).toBe('tool-result');
      expect(final.data.result.structuredContent).toEqual({
        steps: 4,
        completedSteps: 4,
        cancelled: false,
      });
      seen.slice(0, 4).forEach((e, i) => {
        expect(e.event).toBe('tool-progress');
        expect(e.data).toMatchObject({
          type: 'tool-result',
          method: 'simulate_work',
          requestId,
          id: 'w',
          metadata: { progress: { progress: i + 1, total: 4, message: `Step ${i + 1} of 4` } },
        });
        expect(e.data.result).toBeUndefined();
        expect(e.data.timestamp).toMatch(ISO_TIME);
      });
    });

    it('notifications/cancelled with our requestId stops the call: mcp-error -32800', async () => {
      const requestId = await h.send({
        method: 'tools/call',
        params: { name: 'simulate_work', arguments: { steps: 20, delayMs: 200 } },
      });
      await waitFor(() => h.events.of(requestId).length >= 1, 5000, 'first progress');
      const cancelId = await h.send({
        method: 'notifications/cancelled',
        params: { requestId, reason: 'user gave up' },
      });
      const final = await h.events.final(requestId);
      expect(final.event).toBe('mcp-error');
      expect(final.data).toMatchObject({
        method: 'tools/call',
        tool: 'simulate_work',
        requestId,
        error: {
          code: RPC_ERRORS.requestCancelled,
          message: 'Request cancelled: user gave up',
        },
      });
      const progressCount = h.events.of(requestId).length - 1;
      await sleep(100);
      // Nothing after the cancellation, and the notification itself got no event.
      expect(h.events.of(requestId).length - 1).toBe(progressCount);
      expect(progressCount).toBeLessThan(20);
      expect(h.events.of(cancelId)).toHaveLength(0);
      expect(await counterValue(h.metrics, 'commandsCompleted', { outcome: 'cancelled' })).toBe(1);
    });

    it('a cancel from another connection does not stop the call', async () => {
      const requestId = await h.send({
        method: 'tools/call',
        params: { name: 'simulate_work', arguments: { steps: 5, delayMs: 20 } },
      });
      await waitFor(() => h.events.of(requestId).length >= 1, 5000, 'first progress');
      await h.send(
        { method: 'notifications/cancelled', params: { requestId } },
        TEAM,
        'someone-else',
      );
      const final = await h.events.final(requestId);
      expect(final.event).toBe('tool-result');
      expect(final.data.result.structuredContent.completedSteps).toBe(5);
    });

    it('hears cancels published by gateways on the workers control topic', async () => {
      const byRequest = await h.send({
        method: 'tools/call',
        params: { name: 'simulate_work', arguments: { steps: 20, delayMs: 200 } },
      });
      const byClientId = await h.send({
        id: 'client-7',
        method: 'tools/call',
        params: { name: 'simulate_work', arguments: { steps: 20, delayMs: 200 } },
      });
      await waitFor(() => h.events.of(byRequest).length >= 1, 5000, 'first progress');
      await publishSeedCancel(h.engine, { connectionId: h.connectionId, target: byRequest });
      expect((await h.events.final(byRequest)).data.error.code).toBe(RPC_ERRORS.requestCancelled);
      await publishSeedCancel(h.engine, { connectionId: h.connectionId, target: 'client-7' });
      expect((await h.events.final(byClientId)).data.error.code).toBe(RPC_ERRORS.requestCancelled);
    });

    it('a connection-wide cancel (connection gone for good) stops every call of it, only its', async () => {
      const calls = await Promise.all(
        [1, 2].map(() =>
          h.send({
            method: 'tools/call',
            params: { name: 'simulate_work', arguments: { steps: 20, delayMs: 200 } },
          }),
        ),
      );
      const otherEvents = await EventCollector.open(h.engine, 'other-connection');
      const other = await h.send(
        {
          method: 'tools/call',
          params: { name: 'simulate_work', arguments: { steps: 5, delayMs: 20 } },
        },
        TEAM,
        'other-connection',
      );
      await waitFor(() => calls.every((id) => h.events.of(id).length >= 1), 5000, 'progress');
      await publishSeedCancel(h.engine, { connectionId: h.connectionId, reason: 'gone' });
      for (const id of calls) {
        expect((await h.events.final(id)).data.error).toMatchObject({
          code: RPC_ERRORS.requestCancelled,
          message: 'Request cancelled: gone',
        });
      }
      expect((await otherEvents.final(other)).event).toBe('tool-result');
    });
  });

  describe('delivery semantics', () => {
    it('the same command delivered twice runs once and publishes once', async () => {
      const command = envelope(h.connectionId, {
        method: 'tools/call',
        params: { name: 'create_project', arguments: { name: 'Once' } },
      });
      await h.engine.enqueueCommand(command);
      await h.events.final(command.requestId);
      await h.engine.enqueueCommand(command);
      await h.idle();
      await sleep(50);
      expect(h.events.of(command.requestId)).toHaveLength(1);
      expect((await h.ok('list_projects')).projects).toHaveLength(1);
      expect(await counterValue(h.metrics, 'commandsCompleted', { outcome: 'duplicate' })).toBe(1);
    });

    it('a publish failure leaves the command for redelivery; its effect still applies once', async () => {
      const publish = h.engine.publish.bind(h.engine);
      let failures = 0;
      jest.spyOn(h.engine, 'publish').mockImplementation(async (topic, event, data) => {
        if (event === 'tool-result' && failures === 0) {
          failures += 1;
          throw new Error('bus down');
        }
        return publish(topic, event, data);
      });
      const requestId = await h.send({
        method: 'tools/call',
        params: { name: 'create_project', arguments: { name: 'Retried' } },
      });
      const final = await h.events.final(requestId);
      expect(final.event).toBe('tool-result');
      expect(failures).toBe(1);
      await h.idle();
      const { projects } = await h.ok('list_projects');
      expect(projects).toHaveLength(1);
      expect(projects[0].id).toBe(final.data.result.structuredContent.id);
      expect(h.events.finals(requestId)).toHaveLength(1);
    });

    it('a store failure inside a tool is retried, not reported as the tool result', async () => {
      const update = h.engine.store.update.bind(h.engine.store);
      const project = await h.ok('create_project', { name: 'Shop' });
      let failures = 0;
      jest.spyOn(h.engine.store, 'update').mockImplementation((collection, id, fn) => {
        if (failures === 0) {
          failures += 1;
          return Promise.reject(new Error('store unreachable'));
        }
        return update(collection, id, fn);
      });
      const seen = await h.call('add_actor', { projectId: project.id, name: 'Customer' });
      expect(seen.event).toBe('tool-result');
      expect(failures).toBe(1);
      const tree = await h.ok('get_project_tree', { projectId: project.id });
      expect(tree.actors).toHaveLength(1);
    });

    it('a command that keeps failing is dead-lettered with an mcp-error -32603', async () => {
      const publish = h.engine.publish.bind(h.engine);
      jest.spyOn(h.engine, 'publish').mockImplementation(async (topic, event, data) => {
        if (event === 'tool-result') throw new Error('bus down');
        return publish(topic, event, data);
      });
      const requestId = await h.send({
        method: 'tools/call',
        params: { name: 'list_projects', arguments: {} },
        id: 42,
      });
      const final = await h.events.final(requestId);
      expect(final.event).toBe('mcp-error');
      expect(final.data).toMatchObject({
        type: 'mcp-error',
        method: 'tools/call',
        requestId,
        id: 42,
        error: { code: -32603, message: 'Command failed after 3 deliveries' },
      });
      await waitFor(
        async () => (await counterValue(h.metrics, 'commandsDeadLettered')) === 1,
        2000,
        'dead-letter metric',
      );
    });

    it('counts completed commands and their duration', async () => {
      await h.ok('list_projects');
      await h.call('no_such_tool');
      expect(await counterValue(h.metrics, 'commandsCompleted', { outcome: 'ok' })).toBe(1);
      expect(await counterValue(h.metrics, 'commandsCompleted', { outcome: 'error' })).toBe(1);
      const duration = await h.metrics[0].commandDuration.get();
      const count = duration.values.find((v) => v.metricName?.endsWith('_count'));
      expect(count?.value).toBe(2);
    });
  });

  it('stop() waits for the commands in hand and publishes their results', async () => {
    const requestId = await h.send({
      method: 'tools/call',
      params: { name: 'simulate_work', arguments: { steps: 3, delayMs: 20 } },
    });
    await waitFor(() => h.events.of(requestId).length >= 1, 5000, 'first progress');
    await h.workers[0].stop();
    expect(h.workers[0].isStopping()).toBe(true);
    const finals = h.events.finals(requestId);
    expect(finals).toHaveLength(1);
    expect(finals[0].event).toBe('tool-result');
    await h.workers[0].stop(); // idempotent
  });
});

describe('worker: two workers on one engine', () => {
  let h: WorkerHarness;

  beforeEach(async () => {
    h = await WorkerHarness.start({ workers: 2 });
  });

  afterEach(async () => {
    await h.stop();
  });

  it('concurrent update_story of different fields from both workers loses no write', async () => {
    const project = await h.ok('create_project', { name: 'Shop' });
    const actor = await h.ok('add_actor', { projectId: project.id, name: 'Customer' });
    const story = await h.ok('add_story_to_actor', { actorId: actor.id, title: 'Pay' });
    const patches = [
      { title: 'Pay by card' },
      { description: 'Visa and Mastercard' },
      { status: 'in_progress' },
      { priority: 'high' },
    ];
    const requestIds = await Promise.all(
      patches.map((patch) =>
        h.send({
          method: 'tools/call',
          params: { name: 'update_story', arguments: { storyId: story.id, ...patch } },
        }),
      ),
    );
    const finals = await Promise.all(requestIds.map((id) => h.events.final(id)));
    expect(finals.map((f) => f.event)).toEqual(Array(4).fill('tool-result'));
    const result = await h.ok('get_story_tree', { storyId: story.id });
    expect(result).toMatchObject({
      title: 'Pay by card',
      description: 'Visa and Mastercard',
      status: 'in_progress',
      priority: 'high',
    });
    // Both workers took a share of the work.
    for (const m of h.metrics) {
      expect(await counterValue([m], 'commandsCompleted')).toBeGreaterThan(0);
    }
  });

  it('many creates in flight across both workers each apply once', async () => {
    const requestIds = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        h.send({
          method: 'tools/call',
          params: { name: 'create_project', arguments: { name: `P${i}` } },
        }),
      ),
    );
    await Promise.all(requestIds.map((id) => h.events.final(id)));
    const { projects } = await h.ok('list_projects');
    expect(projects).toHaveLength(30);
    expect(new Set(projects.map((p: { name: string }) => p.name)).size).toBe(30);
  });
});

describe('worker: limits on what one token can take', () => {
  let h: WorkerHarness;

  afterEach(async () => {
    await h.stop();
  });

  it('cancels a call running past TOOL_TIMEOUT_MS and says so: mcp-error -32003', async () => {
    h = await WorkerHarness.start({ env: { TOOL_TIMEOUT_MS: '300' } });
    const started = Date.now();
    const requestId = await h.send({
      method: 'tools/call',
      params: { name: 'simulate_work', arguments: { steps: 20, delayMs: 100 } },
    });
    const final = await h.events.final(requestId);
    expect(final.event).toBe('mcp-error');
    expect(final.data.error.code).toBe(RPC_ERRORS.timedOut);
    expect(final.data.error.code).toBe(-32003);
    expect(final.data.error.message).toMatch(/timed out after 300 ms \(TOOL_TIMEOUT_MS\)/);
    expect(Date.now() - started).toBeLessThan(1500);
    // The handler was aborted: no progress after the error.
    const progress = h.events.of(requestId).length - 1;
    await sleep(250);
    expect(h.events.of(requestId).length - 1).toBe(progress);
    expect(progress).toBeLessThan(20);
    expect(await counterValue(h.metrics, 'commandsCompleted', { outcome: 'timeout' })).toBe(1);
  });

  it("simulate_work's limits are a demo's: at most 20 steps of 2000 ms", async () => {
    h = await WorkerHarness.start();
    for (const args of [{ steps: 21 }, { delayMs: 2001 }]) {
      const final = await h.call('simulate_work', args);
      expect(final.event).toBe('mcp-error');
      expect(final.data.error.code).toBe(-32602);
    }
  });

  it("one token's long calls leave slots for another token (WORKER_SLOTS_PER_TOKEN)", async () => {
    h = await WorkerHarness.start({
      env: { WORKER_CONCURRENCY: '4', WORKER_SLOTS_PER_TOKEN: '8' },
    });
    const hostile = { type: 'readonly' as const, sub: 'hostile' };
    const long = await Promise.all(
      Array.from({ length: 6 }, () =>
        h.send(
          {
            method: 'tools/call',
            params: { name: 'simulate_work', arguments: { steps: 20, delayMs: 100 } },
          },
          hostile,
        ),
      ),
    );
    // At most concurrency - 1 = 3 of them run; the rest wait behind, and the other token's
    // call, queued after all six, still gets the free slot.
    await waitFor(() => long.filter((id) => h.events.of(id).length > 0).length === 3, 5000);
    const polite = await h.call('list_projects', {}, { type: 'readonly', sub: 'polite' });
    expect(polite.event).toBe('tool-result');
    expect(long.filter((id) => h.events.finals(id).length > 0)).toEqual([]);
    expect(long.filter((id) => h.events.of(id).length > 0)).toHaveLength(3);
    await publishSeedCancel(h.engine, { connectionId: h.connectionId });
    await Promise.all(long.map((id) => h.events.final(id, 10_000)));
  });

  it('refuses creates past MAX_PROJECTS_PER_TOKEN with a tool error naming the setting', async () => {
    h = await WorkerHarness.start({ env: { MAX_PROJECTS_PER_TOKEN: '1' } });
    await h.ok('create_project', { name: 'First' });
    const refused = await h.call('create_project', { name: 'Second' });
    expect(refused.event).toBe('mcp-error');
    expect(refused.data.error).toEqual({
      code: RPC_ERRORS.toolError,
      message: 'Quota reached: this token may create at most 1 projects (MAX_PROJECTS_PER_TOKEN)',
    });
    // Another token has its own quota.
    const other = await h.call(
      'create_project',
      { name: 'Theirs' },
      { type: 'team', sub: 'other' },
    );
    expect(other.event).toBe('tool-result');
  });
});
