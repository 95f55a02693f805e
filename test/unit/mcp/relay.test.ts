import type { EngineEvent } from '../../../shared/engine/engine';
import { MemoryEngine } from '../../../shared/engine/memory';
import { newRequestStreamId, requestStreamReplies } from '../../../shared/mcpTransports';
import { MCP_EVENTS, RPC_ERRORS } from '../../../shared/protocol';
import { StreamRelay } from '../../../gateway/mcpTransports/relay';

function sink() {
  const messages: string[] = [];
  let done = 0;
  return {
    messages,
    done: () => done,
    sink: {
      message: (id: string, data: string) => messages.push(`${id}:${data}`),
      done: () => {
        done += 1;
      },
    },
  };
}

const event = (id: string, kind: string, data = kind): EngineEvent => ({
  topic: 't',
  id,
  event: kind,
  data,
});

test('request stream ids carry how many replies end them', () => {
  const one = newRequestStreamId(1);
  const three = newRequestStreamId(3);
  expect(one).toMatch(/^[0-9a-f]{16}$/);
  expect(requestStreamReplies(one)).toBe(1);
  expect(requestStreamReplies(three)).toBe(3);
  expect(requestStreamReplies('get')).toBeUndefined();
  expect(requestStreamReplies('sse')).toBeUndefined();
  expect(one).not.toContain('_');
});

test('live events pass in order, once, and the last reply ends the stream', () => {
  const s = sink();
  const relay = new StreamRelay(s.sink, 2);
  relay.listener(event('1-0', MCP_EVENTS.notification, 'p1'));
  relay.listener(event('1-0', MCP_EVENTS.notification, 'p1'));
  relay.listener(event('2-0', MCP_EVENTS.response, 'r1'));
  expect(s.done()).toBe(0);
  relay.listener(event('3-0', MCP_EVENTS.cancelled));
  relay.listener(event('4-0', MCP_EVENTS.notification, 'late'));
  expect(s.messages).toEqual(['1-0:p1', '2-0:r1']);
  expect(s.done()).toBe(1);
});

test('a resume replays only what followed Last-Event-ID, counts earlier replies, then goes live', async () => {
  const engine = new MemoryEngine({ historyMaxLen: 100, historyTtlS: 60 });
  await engine.start();
  const topic = 'mcp:s:stream';
  const first = await engine.publish(topic, MCP_EVENTS.response, 'r1');
  const seen = await engine.publish(topic, MCP_EVENTS.notification, 'p2');
  await engine.publish(topic, MCP_EVENTS.notification, 'p3');
  const s = sink();
  const relay = new StreamRelay(s.sink, 2, seen);
  const subscription = await engine.subscribe([topic], relay.listener);
  await relay.replay(engine, topic);
  expect(s.messages.map((m) => m.split(':')[1])).toEqual(['p3']);
  expect(s.done()).toBe(0);
  await engine.publish(topic, MCP_EVENTS.response, 'r2');
  expect(s.messages.map((m) => m.split(':')[1])).toEqual(['p3', 'r2']);
  expect(s.done()).toBe(1);
  expect(first).not.toBe(seen);
  await subscription.close();
  await engine.close();
});

test('the session ending ends a stream that waits for nothing else', () => {
  const s = sink();
  const relay = new StreamRelay(s.sink, Infinity);
  relay.listener(event('1-0', MCP_EVENTS.notification, 'n'));
  relay.listener(event('2-0', MCP_EVENTS.sessionEnded));
  expect(s.done()).toBe(1);
});

test('a batch gets one final answer per request: a -32012 and a late result of one id are one reply', () => {
  const reply = (id: number, outcome: object) => JSON.stringify({ jsonrpc: '2.0', id, ...outcome });
  const lostError = { error: { code: RPC_ERRORS.commandLost, message: 'lost' } };
  const s = sink();
  const relay = new StreamRelay(s.sink, 3);
  relay.listener(event('1-0', MCP_EVENTS.response, reply(1, lostError)));
  relay.listener(event('2-0', MCP_EVENTS.response, reply(1, { result: {} }))); // late: dropped
  relay.listener(event('3-0', MCP_EVENTS.response, reply(2, { result: {} })));
  relay.listener(event('4-0', MCP_EVENTS.response, reply(2, lostError))); // after a result: dropped
  expect(s.done()).toBe(0);
  relay.listener(event('5-0', MCP_EVENTS.response, reply(3, { result: {} })));
  expect(s.messages.map((m) => m.split(':')[0])).toEqual(['1-0', '3-0', '5-0']);
  expect(s.done()).toBe(1);
});

test('a batch reusing an id (no -32012 involved) still gets every reply', () => {
  const s = sink();
  const relay = new StreamRelay(s.sink, 2);
  relay.listener(event('1-0', MCP_EVENTS.response, '{"jsonrpc":"2.0","id":1,"result":{}}'));
  relay.listener(event('2-0', MCP_EVENTS.response, '{"jsonrpc":"2.0","id":1,"result":{}}'));
  expect(s.messages).toHaveLength(2);
  expect(s.done()).toBe(1);
});
