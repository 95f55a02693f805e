import type { EngineEvent } from '../../../shared/engine/engine';
import { MemoryEngine } from '../../../shared/engine/memory';
import {
  MAX_RESOURCE_SUBSCRIPTIONS,
  SUBSCRIPTIONS_EVENT,
  mcpNames,
  type McpSessionRecord,
} from '../../../shared/mcpTransports';
import { RPC_ERRORS } from '../../../shared/protocol';
import type { McpCommand } from '../../../shared/types';
import { SessionSubscriptions } from '../../../worker/mcpTransports/resourceSubscriptions';

/** A 2025 session's subscriptions on the memory engine: bounds, records, the gateways told. */
describe('SessionSubscriptions', () => {
  const SESSION = 'a'.repeat(32);
  let engine: MemoryEngine;
  let subscriptions: SessionSubscriptions;
  let told: EngineEvent[];

  beforeEach(async () => {
    engine = new MemoryEngine({ historyMaxLen: 100, historyTtlS: 60 });
    await engine.start();
    subscriptions = new SessionSubscriptions(engine, 60_000);
    const record: McpSessionRecord = { sub: 'alice', transport: 'streamable-http', createdAt: 1 };
    await engine.kv.set(mcpNames.sessionKey(SESSION), JSON.stringify(record), 60_000);
    told = [];
    await engine.subscribe([mcpNames.changesTopic], (e) => void told.push(e));
  });

  afterEach(() => engine.close());

  function command(method: string, uri: unknown): McpCommand {
    return {
      requestId: `r-${Math.random()}`,
      sub: 'alice',
      tokenType: 'team',
      enqueuedAt: Date.now(),
      message: { jsonrpc: '2.0', id: 1, method, params: { uri } },
      mcp: { sessionId: SESSION, streamId: '0123456789abcdef' },
    } as McpCommand;
  }

  const members = () => engine.sets.members(mcpNames.subscriptionsKey(SESSION));

  test('records a subscription once, flags the session, tells the gateways; unsubscribing removes it', async () => {
    const subscribe = command('resources/subscribe', 'backlog://projects/p1');
    expect(await subscriptions.refusal(subscribe)).toBeUndefined();
    expect(await subscriptions.apply(subscribe)).toBeUndefined();
    expect(await subscriptions.apply(subscribe)).toBeUndefined();
    expect(await members()).toEqual(['backlog://projects/p1']);
    const record = JSON.parse((await engine.kv.get(mcpNames.sessionKey(SESSION)))!);
    expect(record.subscribes).toBe(true);
    // The repeat changed nothing: told once.
    expect(told.map((e) => [e.event, JSON.parse(e.data)])).toEqual([
      [SUBSCRIPTIONS_EVENT, { sessionId: SESSION }],
    ]);

    const unsubscribe = command('resources/unsubscribe', 'backlog://projects/p1');
    expect(await subscriptions.apply(unsubscribe)).toBeUndefined();
    expect(await subscriptions.apply(unsubscribe)).toBeUndefined();
    expect(await members()).toEqual([]);
    expect(told).toHaveLength(2);
  });

  test('refuses a missing or overlong URI, and a subscription past the bound', async () => {
    for (const uri of [undefined, '', 42, `x://${'y'.repeat(3000)}`]) {
      expect(await subscriptions.refusal(command('resources/subscribe', uri))).toMatchObject({
        code: RPC_ERRORS.invalidParams,
      });
    }
    for (let i = 0; i < MAX_RESOURCE_SUBSCRIPTIONS; i++) {
      expect(
        await subscriptions.apply(command('resources/subscribe', `x://r/${i}`)),
      ).toBeUndefined();
    }
    const extra = command('resources/subscribe', 'x://r/extra');
    expect(await subscriptions.refusal(extra)).toMatchObject({ code: RPC_ERRORS.invalidParams });
    expect(await subscriptions.apply(extra)).toMatchObject({ code: RPC_ERRORS.invalidParams });
    // One already held is no new one; unsubscribing is never refused for the bound.
    expect(await subscriptions.refusal(command('resources/subscribe', 'x://r/0'))).toBeUndefined();
    expect(
      await subscriptions.refusal(command('resources/unsubscribe', 'x://r/0')),
    ).toBeUndefined();
    expect(await members()).toHaveLength(MAX_RESOURCE_SUBSCRIPTIONS);
  });
});
