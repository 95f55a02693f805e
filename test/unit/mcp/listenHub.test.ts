import { ListenHub, type ListenEntry } from '../../../gateway/mcpTransports/listen';
import { MemoryEngine } from '../../../shared/engine/memory';
import {
  CHANGE_EVENT,
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

  test('a closed hub refuses new listeners (503)', async () => {
    await hub.close();
    await expect(hub.ready()).rejects.toMatchObject({ status: 503 });
  });
});
