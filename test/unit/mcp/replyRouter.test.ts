import type { EngineEvent } from '../../../shared/engine/engine';
import { MemoryEngine } from '../../../shared/engine/memory';
import { McpReplyRouter } from '../../../gateway/mcpTransports/replyRouter';

test('one subscription serves every request stream: each gets its own events, until closed', async () => {
  const engine = new MemoryEngine({ historyMaxLen: 100, historyTtlS: 60 });
  await engine.start();
  const subscribe = jest.spyOn(engine, 'subscribe');
  const router = new McpReplyRouter(engine, 'pod-1');
  const got = new Map<string, string[]>([
    ['mcp:s:a', []],
    ['mcp:s:b', []],
  ]);
  const listener = (event: EngineEvent) => got.get(event.topic)!.push(event.data);
  const a = await router.route('mcp:s:a', listener);
  const b = await router.route('mcp:s:b', listener);
  expect(subscribe).toHaveBeenCalledTimes(1);
  expect(router.topic).toMatch(/^mcp:replies:pod-1:[0-9a-f]{12}$/);
  // Another process of the same pod id listens elsewhere.
  expect(new McpReplyRouter(engine, 'pod-1').topic).not.toBe(router.topic);

  const copyTo = router.topic;
  await engine.publish('mcp:s:a', 'message', 'a1', { copyTo });
  await engine.publish('mcp:s:b', 'message', 'b1', { copyTo });
  await engine.publish('mcp:s:c', 'message', 'c1', { copyTo }); // no route: dropped
  a.close();
  await engine.publish('mcp:s:a', 'message', 'a2', { copyTo });
  await engine.publish('mcp:s:b', 'message', 'b2', { copyTo });
  expect(got.get('mcp:s:a')).toEqual(['a1']);
  expect(got.get('mcp:s:b')).toEqual(['b1', 'b2']);

  b.close();
  await router.close();
  await expect(router.route('mcp:s:d', listener)).rejects.toMatchObject({ status: 503 });
  await engine.close();
});

test('a failed subscription is asked again by the next stream', async () => {
  const engine = new MemoryEngine({ historyMaxLen: 100, historyTtlS: 60 });
  await engine.start();
  const subscribe = jest.spyOn(engine, 'subscribe').mockRejectedValueOnce(new Error('engine down'));
  const router = new McpReplyRouter(engine, 'pod-1');
  await expect(router.route('mcp:s:a', () => undefined)).rejects.toThrow('engine down');
  const got: string[] = [];
  await router.route('mcp:s:a', (event) => got.push(event.data));
  await engine.publish('mcp:s:a', 'message', 'a1', { copyTo: router.topic });
  expect(got).toEqual(['a1']);
  expect(subscribe).toHaveBeenCalledTimes(2);
  await router.close();
  await engine.close();
});
