import { ListenHub, type ListenEntry } from '../../../gateway/mcpTransports/listen';
import { MemoryEngine } from '../../../shared/engine/memory';
import { waitFor } from '../../../devSupport/waitFor';
import {
  CHANGE_EVENT,
  SUBSCRIPTIONS_EVENT,
  changesOf,
  listenAccepts,
  mcpNames,
  type McpChange,
} from '../../../shared/mcpTransports';

describe('listenAccepts', () => {
  test('each list change by its flag; a resource update by its URI', () => {
    const tools = { method: 'notifications/tools/list_changed' };
    const updated = { method: 'notifications/resources/updated', params: { uri: 'file:///a' } };
    expect(listenAccepts({ toolsListChanged: true }, tools)).toBe(true);
    expect(listenAccepts({ promptsListChanged: true }, tools)).toBe(false);
    expect(listenAccepts({ resourceSubscriptions: ['file:///a'] }, updated)).toBe(true);
    expect(listenAccepts({ resourceSubscriptions: ['file:///b'] }, updated)).toBe(false);
    expect(listenAccepts({ toolsListChanged: true }, { method: 'notifications/progress' })).toBe(
      false,
    );
  });
});

describe('ListenHub', () => {
  let engine: MemoryEngine;
  let hub: ListenHub;

  beforeEach(async () => {
    engine = new MemoryEngine({ historyMaxLen: 100, historyTtlS: 60 });
    await engine.start();
    hub = new ListenHub(engine);
  });

  afterEach(async () => {
    await hub.close();
    await engine.close();
  });

  /** Publishes a change (the memory engine hands it to subscribers before resolving). */
  async function change(data: McpChange | string): Promise<void> {
    await engine.publish(
      mcpNames.changesTopic,
      CHANGE_EVENT,
      typeof data === 'string' ? data : JSON.stringify(data),
    );
  }

  test('one subscription hands each change to the entries whose filter takes it, until removed', async () => {
    await hub.ready();
    const tools: McpChange[] = [];
    const prompts: McpChange[] = [];
    const entry = (into: McpChange[], filter: ListenEntry['filter']): ListenEntry => ({
      filter,
      deliver: (c) => void into.push(c),
    });
    const removeTools = hub.add(entry(tools, { toolsListChanged: true }));
    hub.add(entry(prompts, { promptsListChanged: true }));
    expect(hub.size).toBe(2);

    await change({ method: 'notifications/tools/list_changed' });
    await change('not json');
    expect(tools).toEqual([{ method: 'notifications/tools/list_changed' }]);
    expect(prompts).toEqual([]);

    removeTools();
    await change({ method: 'notifications/tools/list_changed' });
    await change({ method: 'notifications/prompts/list_changed' });
    expect(tools).toHaveLength(1);
    expect(prompts).toEqual([{ method: 'notifications/prompts/list_changed' }]);
  });

  test('a listen gets the updates of the URIs it names only, from a batch of changes', async () => {
    await hub.ready();
    const got: McpChange[] = [];
    const remove = hub.add({
      filter: { resourceSubscriptions: ['backlog://stories/s1'], resourcesListChanged: true },
      deliver: (c) => void got.push(c),
    });
    const updated = (uri: string) => ({
      method: 'notifications/resources/updated',
      params: { uri },
    });
    await change(
      JSON.stringify([
        updated('backlog://stories/s1'),
        updated('backlog://projects/p1'),
        { method: 'notifications/resources/list_changed' },
      ]),
    );
    expect(got).toEqual([
      updated('backlog://stories/s1'),
      { method: 'notifications/resources/list_changed' },
    ]);
    remove();
    await change(updated('backlog://stories/s1'));
    expect(got).toHaveLength(2);
  });

  test("a 2025 session's stream gets the updates of its subscribed URIs, read again when they change", async () => {
    await hub.ready();
    const key = mcpNames.subscriptionsKey('s-1');
    await engine.sets.add(key, 'backlog://projects/p1', 60_000, 10);
    const written: { method: string; params?: { uri?: string } }[] = [];
    const detach = await hub.sessions.attach('s-1', (data) => void written.push(JSON.parse(data)));
    const updated = (uri: string) => ({
      method: 'notifications/resources/updated',
      params: { uri },
    });

    await change(
      JSON.stringify([updated('backlog://projects/p1'), updated('backlog://stories/s1')]),
    );
    await change({ method: 'notifications/resources/list_changed' });
    expect(written.map((m) => m.params?.uri ?? m.method)).toEqual([
      'backlog://projects/p1',
      'notifications/resources/list_changed',
    ]);

    // A worker added the story and removed the project, then said so.
    await engine.sets.add(key, 'backlog://stories/s1', 60_000, 10);
    await engine.sets.remove(key, 'backlog://projects/p1');
    await engine.publish(
      mcpNames.changesTopic,
      SUBSCRIPTIONS_EVENT,
      JSON.stringify({ sessionId: 's-1' }),
    );
    written.length = 0;
    await waitFor(
      async () => {
        await change(updated('backlog://stories/s1'));
        return written.length > 0;
      },
      2000,
      'the new subscription read',
    );
    await change(updated('backlog://projects/p1'));
    expect(written.every((m) => m.params?.uri === 'backlog://stories/s1')).toBe(true);

    detach();
    written.length = 0;
    await change(updated('backlog://stories/s1'));
    await change({ method: 'notifications/resources/list_changed' });
    expect(written).toEqual([]);
    expect(hub.sessions.size).toBe(0);
  });

  test('changesOf takes one change or an array, and drops what is not a change', () => {
    expect(changesOf('{"method":"m"}')).toEqual([{ method: 'm' }]);
    expect(changesOf('[{"method":"a"},1,null,{"x":1},{"method":"b"}]')).toEqual([
      { method: 'a' },
      { method: 'b' },
    ]);
    expect(changesOf('nope')).toEqual([]);
  });

  test('a closed hub refuses new listeners (503)', async () => {
    await hub.close();
    await expect(hub.ready()).rejects.toMatchObject({ status: 503 });
  });
});
