import Redis from 'ioredis';
import type { EngineEvent, QueuedCommand } from '../../shared/engine/engine';
import { ZERO_EVENT_ID, compareEventIds } from '../../shared/engine/eventId';
import { RedisEngine, type RedisEngineOptions } from '../../shared/engine/redis';
import { redisKeys } from '../../shared/engine/redis/keys';
import { LostCommandWatch } from '../../shared/engine/redis/lostCommands';
import type { ScriptedRedis } from '../../shared/engine/redis/scripts';
import { EngineError } from '../../shared/errors';
import { silentLogger } from '../../shared/logger';
import { createMetrics } from '../../shared/metrics';
import type { CommandEnvelope } from '../../shared/types';
import {
  provideRedis,
  restartRedis,
  uniquePrefix,
  type ProvidedRedis,
} from '../../devSupport/redis';
import { sleep, waitFor } from '../../devSupport/waitFor';
import { BacklogStore } from '../../worker/backlog/store';

/** What only the Redis engine promises: key layout, batching, trimming, reconnects. */

jest.setTimeout(60_000);

let redis: ProvidedRedis;
/** A plain client to look at what the engine wrote. */
let admin: Redis;
const engines: RedisEngine[] = [];
/** Every prefix used, deleted afterwards (matters when REDIS_URL points at a shared server). */
const prefixesUsed: string[] = [];

beforeAll(async () => {
  redis = await provideRedis();
  admin = new Redis(redis.url, { maxRetriesPerRequest: null });
});

afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.close()));
});

afterAll(async () => {
  for (const prefix of prefixesUsed) {
    const keys = await keysUnder(prefix);
    if (keys.length > 0) await admin.unlink(...keys);
  }
  admin?.disconnect();
  await redis?.stop();
});

async function makeEngine(
  prefix = uniquePrefix('redis'),
  options: Partial<RedisEngineOptions> = {},
): Promise<RedisEngine> {
  prefixesUsed.push(prefix);
  const engine = new RedisEngine({
    url: redis.url,
    prefix,
    historyMaxLen: 10,
    historyTtlS: 60,
    logger: silentLogger(),
    ...options,
  });
  engines.push(engine);
  await engine.start();
  return engine;
}

let requestCounter = 0;
function makeCommand(method = 'tools/list'): CommandEnvelope {
  requestCounter += 1;
  return {
    requestId: `req-${requestCounter}`,
    connectionId: 'conn-1',
    sub: 'alice',
    tokenType: 'team',
    message: { method },
    enqueuedAt: Date.now(),
  };
}

const consumeDefaults = {
  concurrency: 4,
  claimIdleMs: 200,
  maxDeliveries: 3,
  onDeadLetter: async () => undefined,
};

async function commandCalls(name: string): Promise<number> {
  const stats = await admin.info('commandstats');
  const match = new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(stats);
  return match ? Number(match[1]) : 0;
}

async function clientList(): Promise<string> {
  return String(await admin.call('CLIENT', ['LIST']));
}

async function keysUnder(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

/** Publishes until the listener saw one, for checks right after a (re)connect. */
async function publishUntilReceived(
  engine: RedisEngine,
  topic: string,
  received: EngineEvent[],
): Promise<void> {
  await waitFor(
    async () => {
      await engine.publish(topic, 'probe', '{}').catch(() => undefined);
      await sleep(50);
      return received.some((event) => event.event === 'probe');
    },
    20_000,
    `an event on ${topic} to arrive`,
  );
}

describe('RedisEngine', () => {
  describe('keys', () => {
    it('keeps every key and channel under the prefix, each capped, expiring or a known hash', async () => {
      const prefix = uniquePrefix('layout');
      const engine = await makeEngine(prefix, { historyMaxLen: 5 });
      const otherKeysBefore = (await keysUnder('')).filter((key) => !key.startsWith(prefix));

      const received: EngineEvent[] = [];
      const subscription = await engine.subscribe(['conn:a', 'type:team'], (event) =>
        received.push(event),
      );
      const channels = await admin.pubsub('CHANNELS', '*');
      expect(channels.filter((channel) => String(channel).startsWith(prefix)).sort()).toEqual([
        `${prefix}ev:conn:a`,
        `${prefix}ev:type:team`,
      ]);
      for (let i = 0; i < 12; i += 1) await engine.publish('conn:a', 'tool-result', `{"i":${i}}`);
      await engine.publish('type:team', 'mcp-notification', '{}');
      await waitFor(() => received.length === 13);

      const handled: string[] = [];
      const deadLettered: QueuedCommand[] = [];
      const consumer = engine.consumeCommands(
        async ({ command }) => {
          if (command.message.method === 'fail') throw new Error('boom');
          handled.push(command.requestId);
          await engine.markProcessed(command.requestId);
        },
        {
          ...consumeDefaults,
          consumerId: 'w1',
          maxDeliveries: 1,
          onDeadLetter: async (dead) => void deadLettered.push(dead),
        },
      );
      await engine.enqueueCommand(makeCommand());
      await engine.enqueueCommand(makeCommand('fail'));
      await waitFor(() => handled.length === 1 && deadLettered.length === 1);
      await consumer.stop();

      await engine.registerConnection({
        connectionId: 'c1',
        sub: 'alice',
        tokenType: 'team',
        podId: 'pod-1',
        connectedAt: Date.now(),
        transport: 'seed',
        resumable: true,
      });
      await engine.touchConnections(['c1']);
      await engine.store.insert('projects', 'p1', { name: 'one', n: 0 });
      await engine.store.update<{ n: number }>('projects', 'p1', (doc) => ({ ...doc, n: 1 }));
      await subscription.close();

      const keys = await keysUnder(prefix);
      expect(keys.sort()).toEqual(
        [
          `${prefix}h:conn:a`,
          `${prefix}hm:conn:a`,
          `${prefix}h:type:team`,
          `${prefix}hm:type:team`,
          `${prefix}cmd`,
          `${prefix}cmd:dead`,
          `${prefix}done:${handled[0]}`,
          `${prefix}conns`,
          `${prefix}conns:seen`,
          `${prefix}conns:subs`,
          `${prefix}store:projects`,
        ].sort(),
      );
      const cappedStreams = [`${prefix}cmd`, `${prefix}cmd:dead`];
      for (const key of keys) {
        const ttl = await admin.pttl(key);
        if (cappedStreams.includes(key)) {
          expect(await admin.type(key)).toBe('stream');
        } else if (key.startsWith(`${prefix}store:`)) {
          expect(await admin.type(key)).toBe('hash');
        } else {
          expect({ key, expires: ttl > 0 }).toEqual({ key, expires: true });
        }
      }
      // Handled and dead-lettered commands leave the queue stream.
      expect(await admin.xlen(`${prefix}cmd`)).toBe(0);
      expect(await admin.xlen(`${prefix}h:conn:a`)).toBeLessThan(10); // 5, plus < 5 before a trim
      // Nothing was written outside the prefix.
      const otherKeysAfter = (await keysUnder('')).filter((key) => !key.startsWith(prefix));
      expect(otherKeysAfter.sort()).toEqual(otherKeysBefore.sort());
    });

    it('records a dead letter with its original id and delivery count', async () => {
      const prefix = uniquePrefix('dead');
      const engine = await makeEngine(prefix);
      const deadLettered: QueuedCommand[] = [];
      const consumer = engine.consumeCommands(
        async () => {
          throw new Error('always fails');
        },
        {
          ...consumeDefaults,
          consumerId: 'w1',
          claimIdleMs: 50,
          maxDeliveries: 2,
          onDeadLetter: async (dead) => void deadLettered.push(dead),
        },
      );
      const command = makeCommand();
      await engine.enqueueCommand(command);
      await waitFor(() => deadLettered.length === 1);
      await consumer.stop();

      expect(deadLettered[0]).toMatchObject({ command, deliveries: 2 });
      const [[, fields]] = (await admin.xrange(`${prefix}cmd:dead`, '-', '+')) as [
        string,
        string[],
      ][];
      const record = Object.fromEntries(
        fields.flatMap((value, i) => (i % 2 === 0 ? [[value, fields[i + 1]]] : [])),
      );
      expect(record).toMatchObject({
        id: deadLettered[0].deliveryId,
        deliveries: '2',
        consumer: 'w1',
      });
      expect(JSON.parse(record.c)).toEqual(command);
      expect(await engine.commandBacklog()).toEqual({ waiting: 0, pending: 0, deadLettered: 1 });
    });
  });

  describe('subscriptions', () => {
    it('subscribes 5,000 topics with a few SUBSCRIBE commands, and releases them likewise', async () => {
      const prefix = uniquePrefix('batch');
      const engine = await makeEngine(prefix);
      const topics = Array.from({ length: 5000 }, (_, i) => `conn:${i}`);
      const received: EngineEvent[] = [];
      const listener = (event: EngineEvent) => received.push(event);

      const subscribesBefore = await commandCalls('subscribe');
      // One call per connection, as a gateway opening 5,000 sockets at once would make.
      const subscriptions = await Promise.all(
        topics.map((topic) => engine.subscribe([topic], listener)),
      );
      const subscribeCommands = (await commandCalls('subscribe')) - subscribesBefore;
      expect(subscribeCommands).toBeGreaterThanOrEqual(1);
      expect(subscribeCommands).toBeLessThanOrEqual(3);
      const channels = await admin.pubsub('CHANNELS', `${prefix}ev:*`);
      expect(channels).toHaveLength(5000);

      // Every subscription is live once its promise resolved.
      await engine.publish('conn:4999', 'tool-result', '{"last":true}');
      await engine.publish('conn:0', 'tool-result', '{"first":true}');
      await waitFor(() => received.length === 2);
      expect(received.map((event) => event.topic)).toEqual(['conn:4999', 'conn:0']);

      const unsubscribesBefore = await commandCalls('unsubscribe');
      await Promise.all(subscriptions.map((subscription) => subscription.close()));
      await waitFor(async () => (await admin.pubsub('CHANNELS', `${prefix}ev:*`)).length === 0);
      expect((await commandCalls('unsubscribe')) - unsubscribesBefore).toBeLessThanOrEqual(3);
    });

    it('shares one Redis subscription per topic among listeners (ref-counted)', async () => {
      const prefix = uniquePrefix('refcount');
      const engine = await makeEngine(prefix);
      const first: string[] = [];
      const second: string[] = [];
      const a = await engine.subscribe(['type:team'], (event) => first.push(event.data));
      const b = await engine.subscribe(['type:team'], (event) => second.push(event.data));
      expect(await admin.pubsub('NUMSUB', `${prefix}ev:type:team`)).toEqual([
        `${prefix}ev:type:team`,
        1,
      ]);

      await a.close();
      await engine.publish('type:team', 'mcp-notification', '"after a closed"');
      await waitFor(() => second.length === 1);
      expect(first).toEqual([]);
      expect(await admin.pubsub('NUMSUB', `${prefix}ev:type:team`)).toEqual([
        `${prefix}ev:type:team`,
        1,
      ]);

      await b.close();
      await waitFor(async () => (await admin.pubsub('CHANNELS', `${prefix}ev:*`)).length === 0);
    });

    it('keeps each subscribe() apart: one function twice is two listeners, several topics close together', async () => {
      const prefix = uniquePrefix('listeners');
      const engine = await makeEngine(prefix);
      const got: string[] = [];
      const listener = (event: EngineEvent) => got.push(`${event.topic}:${event.data}`);
      const once = await engine.subscribe(['conn:a'], listener);
      const twice = await engine.subscribe(['conn:a'], listener);
      const both = await engine.subscribe(['conn:a', 'conn:b'], listener);

      await engine.publish('conn:a', 'tool-result', '1');
      await engine.publish('conn:b', 'tool-result', '2');
      await waitFor(() => got.length === 4);
      expect(got.sort()).toEqual(['conn:a:1', 'conn:a:1', 'conn:a:1', 'conn:b:2']);

      // Back to a single listener on conn:a, then none: conn:b went with `both`.
      await twice.close();
      await both.close();
      await twice.close(); // idempotent
      got.length = 0;
      await engine.publish('conn:b', 'tool-result', '3');
      await engine.publish('conn:a', 'tool-result', '4');
      await waitFor(() => got.length === 1);
      expect(got).toEqual(['conn:a:4']);
      await waitFor(async () => (await admin.pubsub('CHANNELS', `${prefix}ev:*`)).length === 1);

      await once.close();
      await waitFor(async () => (await admin.pubsub('CHANNELS', `${prefix}ev:*`)).length === 0);
    });

    it('passes data with newlines and unicode through untouched', async () => {
      const engine = await makeEngine();
      const received: EngineEvent[] = [];
      await engine.subscribe(['conn:x'], (event) => received.push(event));
      const data = '{"text":"line1\\nline2","raw":"a\nb","emoji":"😀"}';
      const id = await engine.publish('conn:x', 'tool-result', data);
      await waitFor(() => received.length === 1);
      expect(received[0]).toEqual({ topic: 'conn:x', id, event: 'tool-result', data });
      const page = await engine.readHistory('conn:x', ZERO_EVENT_ID, 10);
      expect(page.events).toEqual([{ topic: 'conn:x', id, event: 'tool-result', data }]);
    });
  });

  describe('history', () => {
    it('trims in steps, recording the newest dropped id, yet reads exactly historyMaxLen', async () => {
      const prefix = uniquePrefix('trim');
      const engine = await makeEngine(prefix, { historyMaxLen: 5 });
      const ids: string[] = [];
      for (let i = 0; i < 12; i += 1) ids.push(await engine.publish('t', 'e', `${i}`));
      // Trimmed back to 5 at the 10th publish (5 + slack 5), then two more appended.
      expect(await admin.xlen(`${prefix}h:t`)).toBe(7);
      const info = (await admin.xinfo('STREAM', `${prefix}h:t`)) as unknown[];
      expect(info[info.indexOf('max-deleted-entry-id') + 1]).toBe(ids[4]);

      // Readers see the newest 5 only; the two extra stored ones count as dropped.
      const fromStart = await engine.readHistory('t', ZERO_EVENT_ID, 100);
      expect(fromStart.truncated).toBe(true);
      expect(fromStart.events.map((event) => event.data)).toEqual(['7', '8', '9', '10', '11']);
      expect(await engine.readHistory('t', ids[2], 100)).toEqual(fromStart);
      expect(await engine.readHistory('t', ids[5], 100)).toEqual(fromStart);
      // Saw the newest dropped event: missed nothing.
      expect(await engine.readHistory('t', ids[6], 100)).toEqual({
        events: fromStart.events,
        truncated: false,
      });
      expect(await engine.readHistory('t', ids[11], 100)).toEqual({ events: [], truncated: false });
      expect(await engine.lastEventId('t')).toBe(ids[11]);
    });

    it('trims a long history at most every 100 publishes, reading exactly the newest', async () => {
      const prefix = uniquePrefix('slack');
      const engine = await makeEngine(prefix, { historyMaxLen: 100 });
      const ids: string[] = [];
      for (let i = 0; i < 250; i += 1) ids.push(await engine.publish('t', 'e', `${i}`));
      // Trimmed to 100 at the 200th publish, 50 appended since.
      expect(await admin.xlen(`${prefix}h:t`)).toBe(150);
      expect((await engine.readHistory('t', ids[148], 1000)).truncated).toBe(true);
      const page = await engine.readHistory('t', ids[149], 1000);
      expect(page.truncated).toBe(false);
      expect(page.events.map((event) => event.id)).toEqual(ids.slice(150));
      expect((await engine.readHistory('t', ids[200], 10)).events.map((e) => e.data)).toEqual(
        Array.from({ length: 10 }, (_, i) => `${201 + i}`),
      );
    });

    it('bounds a stream by bytes: XLEN and MEMORY USAGE stay at historyMaxBytes, the count kept beside it', async () => {
      const prefix = uniquePrefix('bytes');
      const maxBytes = 256 * 1024;
      const engine = await makeEngine(prefix, {
        historyMaxLen: 1000,
        historyMaxBytes: maxBytes,
        eventMaxBytes: 64 * 1024,
      });
      const key = `${prefix}h:t`;
      const meta = `${prefix}hm:t`;
      const data = 'x'.repeat(10_000); // 10,001 bytes with the name
      const ids: string[] = [];
      for (let i = 0; i < 200; i += 1) ids.push(await engine.publish('t', 'e', data)); // 2 MB offered
      const kept = Math.floor(maxBytes / 10_001); // 26
      expect(await admin.xlen(key)).toBe(kept);
      expect(Number(await admin.hget(meta, 'b'))).toBe(kept * 10_001);
      const usage = Number(await admin.call('MEMORY', 'USAGE', key));
      expect(usage).toBeGreaterThan(kept * 10_000);
      expect(usage).toBeLessThan(2 * maxBytes);
      expect(Math.abs((await admin.pttl(meta)) - (await admin.pttl(key)))).toBeLessThan(1000);

      const all = await engine.readHistory('t', ZERO_EVENT_ID, 1000);
      expect(all.truncated).toBe(true);
      expect(all.events.map((e) => e.id)).toEqual(ids.slice(200 - kept));
      expect((await engine.readHistory('t', ids[200 - kept - 2], 10)).truncated).toBe(true);
      expect((await engine.readHistory('t', ids[200 - kept - 1], 10)).truncated).toBe(false);

      // A lost count (a stream written before byte caps) is recounted from the stream once.
      await admin.del(meta);
      await engine.publish('t', 'e', data);
      expect(await admin.xlen(key)).toBe(kept);
      expect(Number(await admin.hget(meta, 'b'))).toBe(kept * 10_001);
    });

    it('keeps no events with historyMaxLen 0, yet knows the last id and who missed what', async () => {
      const prefix = uniquePrefix('nohistory');
      const engine = await makeEngine(prefix, { historyMaxLen: 0 });
      const first = await engine.publish('t', 'e', '1');
      const last = await engine.publish('t', 'e', '2');
      expect(await admin.xlen(`${prefix}h:t`)).toBe(0);
      expect(await engine.lastEventId('t')).toBe(last);
      expect(await engine.readHistory('t', first, 10)).toEqual({ events: [], truncated: true });
      expect(await engine.readHistory('t', last, 10)).toEqual({ events: [], truncated: false });
    });

    it('reports an expired history as lost to readers who had seen some of it', async () => {
      const prefix = uniquePrefix('expired');
      const engine = await makeEngine(prefix);
      const id = await engine.publish('t', 'e', '{}');
      const ttl = await admin.pttl(`${prefix}h:t`);
      expect(ttl).toBeGreaterThan(55_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
      await admin.del(`${prefix}h:t`); // as the TTL would
      expect(await engine.readHistory('t', id, 10)).toEqual({ events: [], truncated: true });
      expect(await engine.readHistory('t', ZERO_EVENT_ID, 10)).toEqual({
        events: [],
        truncated: false,
      });
      expect(await engine.lastEventId('t')).toBe(ZERO_EVENT_ID);
    });

    it('keeps ids increasing across publishers sharing a topic', async () => {
      const prefix = uniquePrefix('order');
      const [a, b] = [await makeEngine(prefix), await makeEngine(prefix)];
      const ids = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).publish('t', 'e', `${i}`)),
      );
      const page = await a.readHistory('t', ZERO_EVENT_ID, 100);
      const readIds = page.events.map((event) => event.id);
      expect([...readIds].sort(compareEventIds)).toEqual(readIds);
      expect(readIds).toEqual([...ids].sort(compareEventIds).slice(-10));
    });
  });

  describe('commands', () => {
    it('reclaims a command left pending by a worker that died, counting the delivery', async () => {
      const prefix = uniquePrefix('reclaim');
      const engine = await makeEngine(prefix);
      const command = makeCommand();
      await engine.enqueueCommand(command);
      // A worker that read the command and died before acking it.
      await admin.xgroup('CREATE', `${prefix}cmd`, 'workers', '0', 'MKSTREAM').catch(() => 0);
      await admin.call('XREADGROUP', [
        'GROUP',
        'workers',
        'ghost',
        'COUNT',
        1,
        'STREAMS',
        `${prefix}cmd`,
        '>',
      ]);
      expect(await engine.commandBacklog()).toEqual({ waiting: 0, pending: 1, deadLettered: 0 });

      const got: QueuedCommand[] = [];
      const consumer = engine.consumeCommands(async (queued) => void got.push(queued), {
        ...consumeDefaults,
        consumerId: 'survivor',
      });
      await waitFor(() => got.length === 1);
      await consumer.stop();
      expect(got[0]).toMatchObject({ command, deliveries: 2 });
      expect(await engine.commandBacklog()).toEqual({ waiting: 0, pending: 0, deadLettered: 0 });
    });

    it('does not let another worker take a command whose handler is merely slow', async () => {
      const prefix = uniquePrefix('slow');
      const [a, b] = [await makeEngine(prefix), await makeEngine(prefix)];
      const calls: string[] = [];
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const options = { ...consumeDefaults, claimIdleMs: 100, concurrency: 1 };
      const slow = a.consumeCommands(
        async () => {
          calls.push('a');
          await released;
        },
        { ...options, consumerId: 'a' },
      );
      await a.enqueueCommand(makeCommand());
      await waitFor(() => calls.length === 1);
      const other = b.consumeCommands(async () => void calls.push('b'), {
        ...options,
        consumerId: 'b',
      });
      await sleep(800); // eight claim periods
      release();
      await slow.stop();
      await other.stop();
      expect(calls).toEqual(['a']);
      expect(await a.commandBacklog()).toEqual({ waiting: 0, pending: 0, deadLettered: 0 });
    });

    it('spreads commands over consumers of several engines, each handled once', async () => {
      const prefix = uniquePrefix('spread');
      const engineList = [await makeEngine(prefix), await makeEngine(prefix)];
      const handledBy = new Map<string, string>();
      const duplicates: string[] = [];
      const consumers = engineList.map((engine, i) =>
        engine.consumeCommands(
          async ({ command }) => {
            if (handledBy.has(command.requestId)) duplicates.push(command.requestId);
            handledBy.set(command.requestId, `w${i}`);
            await sleep(2);
          },
          { ...consumeDefaults, consumerId: `w${i}`, claimIdleMs: 5000 },
        ),
      );
      await Promise.all(
        Array.from({ length: 200 }, (_, i) => engineList[i % 2].enqueueCommand(makeCommand())),
      );
      await waitFor(() => handledBy.size === 200, 20_000);
      await Promise.all(consumers.map((consumer) => consumer.stop()));
      expect(duplicates).toEqual([]);
      expect(new Set(handledBy.values())).toEqual(new Set(['w0', 'w1']));
      expect(await engineList[0].commandBacklog()).toEqual({
        waiting: 0,
        pending: 0,
        deadLettered: 0,
      });
    });

    it('stop() interrupts the blocking read and closes the consumer connection', async () => {
      const prefix = uniquePrefix('stop');
      const engine = await makeEngine(prefix);
      const consumer = engine.consumeCommands(async () => undefined, {
        ...consumeDefaults,
        consumerId: 'w1',
      });
      const consumerName = `${prefix}consumer:w1`;
      await waitFor(async () => (await clientList()).includes(`name=${consumerName}`));
      await consumer.stop();
      expect(await clientList()).not.toContain(`name=${consumerName} `);
      // A command queued after stop stays waiting.
      await engine.enqueueCommand(makeCommand());
      expect(await engine.commandBacklog()).toEqual({ waiting: 1, pending: 0, deadLettered: 0 });
    });
  });

  describe('registry', () => {
    it('sweeps connections of a pod that stopped touching them, across engines', async () => {
      const prefix = uniquePrefix('registry');
      const [podA, podB] = [await makeEngine(prefix), await makeEngine(prefix)];
      const record = (connectionId: string, podId: string, connectedAt: number) => ({
        connectionId,
        sub: 't',
        tokenType: 'team' as const,
        podId,
        connectedAt,
        transport: 'seed' as const,
        resumable: false,
      });
      await podA.registerConnection(record('a1', 'A', 1000));
      await podA.registerConnection(record('a2', 'A', 2000));
      await podB.registerConnection({ ...record('b1', 'B', 3000), tokenType: 'master' });
      expect(await podB.clusterStats()).toEqual({
        totalConnections: 3,
        connectionsByType: { master: 1, team: 2, readonly: 0 },
        connectionsByTransport: { seed: 3, 'streamable-http': 0, 'legacy-sse': 0 },
        resumableConnections: 0,
        oldestConnection: new Date(1000).toISOString(),
        newestConnection: new Date(3000).toISOString(),
      });

      await sleep(300);
      await podB.touchConnections(['b1', 'unknown']);
      // Pod A died: pod B sweeps its connections away, once.
      const window = { openStaleAfterMs: 200, resumeWindowMs: 0 };
      const [swept, sweptAgain] = await Promise.all([
        podB.sweepConnections(window),
        podA.sweepConnections(window),
      ]);
      expect([...swept.lapsed, ...sweptAgain.lapsed].map((r) => r.connectionId).sort()).toEqual([
        'a1',
        'a2',
      ]);
      expect(await podA.getConnection('a1')).toBeUndefined();
      expect(await podA.getConnection('b1')).toEqual({
        ...record('b1', 'B', 3000),
        tokenType: 'master',
      });
      expect(await admin.zrange(`${prefix}conns:seen`, 0, -1)).toEqual(['b1']);
      expect((await podA.clusterStats()).totalConnections).toBe(1);
    });

    it('sweeps large registries in batches', async () => {
      const prefix = uniquePrefix('sweepmany');
      const engine = await makeEngine(prefix);
      const ids = Array.from({ length: 2500 }, (_, i) => `c${i}`);
      await Promise.all(
        ids.map((connectionId) =>
          engine.registerConnection({
            connectionId,
            sub: 't',
            tokenType: 'readonly',
            podId: 'p',
            connectedAt: Date.now(),
            transport: 'seed',
            resumable: true,
          }),
        ),
      );
      await engine.touchConnections(ids);
      await sleep(20);
      const { lapsed, expired } = await engine.sweepConnections({
        openStaleAfterMs: 0,
        resumeWindowMs: 0,
      });
      expect(lapsed.map((r) => r.connectionId).sort()).toEqual([...ids].sort());
      expect(expired.sort()).toEqual([...ids].sort());
      expect(await engine.clusterStats()).toMatchObject({
        totalConnections: 0,
        resumableConnections: 0,
      });
    });
  });

  describe('store', () => {
    it('loses no write when two engines update one document concurrently', async () => {
      const prefix = uniquePrefix('store');
      const [a, b] = [await makeEngine(prefix), await makeEngine(prefix)];
      await a.store.insert('stories', 's1', { title: 'x', count: 0, by: [] as string[] });
      const bump = (engine: RedisEngine, who: string) =>
        engine.store.update<{ count: number; by: string[] }>('stories', 's1', (doc) => ({
          ...doc,
          count: doc.count + 1,
          by: [...doc.by, who],
        }));
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => [bump(a, `a${i}`), bump(b, `b${i}`)]).flat(),
      );
      const doc = await b.store.get<{ count: number; by: string[] }>('stories', 's1');
      expect(doc?.count).toBe(100);
      expect(new Set(doc?.by).size).toBe(100);
      // insert is idempotent: the stored document wins.
      expect(await b.store.insert('stories', 's1', { title: 'y' })).toMatchObject({ count: 100 });
    });
  });

  describe('lifecycle', () => {
    it('rides out a Redis restart: resubscribes, resumes consuming, readiness follows', async () => {
      if (!redis.spawned) return; // REDIS_URL: a shared server is not ours to restart
      const prefix = uniquePrefix('restart');
      const metrics = createMetrics('all');
      const engine = await makeEngine(prefix, { metrics });
      const received: EngineEvent[] = [];
      await engine.subscribe(['conn:r', 'type:team'], (event) => received.push(event));
      const handled: string[] = [];
      const consumer = engine.consumeCommands(
        async ({ command }) => void handled.push(command.requestId),
        {
          ...consumeDefaults,
          consumerId: 'w1',
        },
      );
      await engine.enqueueCommand(makeCommand());
      await waitFor(() => handled.length === 1);
      expect(engine.isReady()).toBe(true);

      await restartRedis(redis, async () => {
        await waitFor(() => !engine.isReady(), 10_000, 'engine to notice Redis is down');
        const failed = await engine.enqueueCommand(makeCommand()).then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(failed).toBeInstanceOf(EngineError);
        expect((failed as EngineError).code).toBe('unavailable');
      });

      await waitFor(() => engine.isReady(), 20_000, 'engine to be ready again');
      await publishUntilReceived(engine, 'conn:r', received);
      const broadcastId = await engine.publish('type:team', 'mcp-notification', '"back"');
      await waitFor(() => received.some((event) => event.id === broadcastId));

      const command = makeCommand();
      await engine.enqueueCommand(command);
      await waitFor(() => handled.includes(command.requestId), 20_000, 'command after restart');
      await consumer.stop();
      expect((await metrics.redisReconnects.get()).values[0].value).toBeGreaterThanOrEqual(2);
    });

    it('reports the commands a restart without persistence lost, once, without their params', async () => {
      if (!redis.spawned) return; // REDIS_URL: a shared server is not ours to restart
      const engine = await makeEngine(uniquePrefix('lost'));
      const reported: CommandEnvelope[][] = [];
      engine.onCommandsLost((commands) => reported.push(commands));
      const waiting = [makeCommand(), makeCommand('tools/call')];
      waiting[1].message.params = { name: 'create_project', arguments: { name: 'x' } };
      await engine.enqueueCommands(waiting);

      await restartRedis(redis, () =>
        waitFor(() => !engine.isReady(), 10_000, 'engine to notice Redis is down'),
      );
      await waitFor(() => reported.length > 0, 20_000, 'the lost commands to be reported');
      expect(reported).toEqual([
        waiting.map((command) => ({ ...command, message: { method: command.message.method } })),
      ]);
      // Queued after the restart: on the server, not lost.
      await engine.enqueueCommand(makeCommand());
      expect(reported).toHaveLength(1);
    });

    it('LostCommandWatch: lets go of finished commands, reports those with no entry and no done-key', async () => {
      const prefix = uniquePrefix('watch');
      prefixesUsed.push(prefix);
      const keys = redisKeys(prefix);
      const watch = new LostCommandWatch(admin as unknown as ScriptedRedis, keys, silentLogger());
      const lost: string[][] = [];
      watch.onLost((commands) => lost.push(commands.map((command) => command.requestId)));
      const [finished, kept, gone] = [makeCommand(), makeCommand(), makeCommand()];
      const entryIds: string[] = [];
      for (const command of [finished, kept, gone]) {
        entryIds.push(
          (await admin.xadd(keys.commandPartition(0).commands, '*', 'r', command.requestId))!,
        );
      }
      watch.remember([finished, kept, gone], {
        stream: keys.commandPartition(0).commands,
        entryIds,
      });
      expect(watch.size).toBe(3);

      // A worker finished one (done-key set, entry acked): the watch lets it go.
      await admin.set(keys.processed(finished.requestId), '1', 'PX', 60_000);
      await admin.xdel(keys.commandPartition(0).commands, entryIds[0]);
      watch.start(20);
      await waitFor(() => watch.size === 2, 5000, 'the finished command to be let go');
      watch.stop();

      // Redis lost one (as a failover to a replica that never got it): reported once.
      await admin.xdel(keys.commandPartition(0).commands, entryIds[2]);
      watch.suspectLoss();
      await watch.check();
      expect(lost).toEqual([[gone.requestId]]);
      expect(watch.lossSuspected).toBe(false);
      await watch.check();
      expect(lost).toHaveLength(1);
      expect(watch.size).toBe(1);
    });

    it('close() is idempotent, quits every connection and refuses new work', async () => {
      const prefix = uniquePrefix('close');
      const engine = await makeEngine(prefix);
      engine.consumeCommands(async () => undefined, { ...consumeDefaults, consumerId: 'w1' });
      await engine.subscribe(['t'], () => undefined);
      await waitFor(
        async () =>
          (await clientList()).split('\n').filter((line) => line.includes(`name=${prefix}`))
            .length === 3,
      );
      await Promise.all([engine.close(), engine.close()]);
      expect(engine.isReady()).toBe(false);
      await waitFor(async () => !(await clientList()).includes(`name=${prefix}`));
      await expect(engine.publish('t', 'e', '{}')).rejects.toMatchObject({ code: 'unavailable' });
      await expect(engine.enqueueCommand(makeCommand())).rejects.toMatchObject({
        code: 'unavailable',
      });
      expect(() =>
        engine.consumeCommands(async () => undefined, { ...consumeDefaults, consumerId: 'w2' }),
      ).toThrow(EngineError);
    });

    it('fails start() with a clear error when Redis does not answer', async () => {
      const engine = new RedisEngine({
        url: 'redis://127.0.0.1:1',
        prefix: uniquePrefix('nowhere'),
        historyMaxLen: 10,
        historyTtlS: 60,
        logger: silentLogger(),
        startTimeoutMs: 300,
      });
      engines.push(engine);
      await expect(engine.start()).rejects.toThrow(/not ready within 300 ms/);
      expect(engine.isReady()).toBe(false);
    });
  });
});

describe('command queue bounds (Redis)', () => {
  it('never trims unacknowledged commands: 100,200 queued commands are all kept', async () => {
    const engine = await makeEngine();
    const total = 100_200;
    for (let sent = 0; sent < total; sent += 2000) {
      await Promise.all(
        Array.from({ length: Math.min(2000, total - sent) }, () =>
          engine.enqueueCommand(makeCommand()),
        ),
      );
    }
    expect(await engine.commandBacklog()).toMatchObject({ waiting: total, pending: 0 });
  });

  it('releases in-flight places on ack and dead letter, leaving no in-flight key behind', async () => {
    const prefix = uniquePrefix('inflight');
    const engine = await makeEngine(prefix);
    const limits = { maxQueued: 0, maxInFlightPerToken: 5, inFlightLeaseMs: 60_000 };
    const ok = Array.from({ length: 3 }, () => makeCommand());
    const doomed = makeCommand('doomed');
    await engine.enqueueCommands(ok, limits);
    await engine.enqueueCommand(doomed, limits);
    expect(await admin.zcard(`${prefix}inflight:alice`)).toBe(4);
    const dead: string[] = [];
    engine.consumeCommands(
      async ({ command }) => {
        if (command.message.method === 'doomed') throw new Error('always fails');
      },
      {
        ...consumeDefaults,
        consumerId: 'c1',
        maxDeliveries: 1,
        onDeadLetter: async ({ command }) => void dead.push(command.requestId),
      },
    );
    await waitFor(() => dead.length === 1, 10_000, 'dead-lettered');
    await waitFor(async () => (await admin.exists(`${prefix}inflight:alice`)) === 0, 5000);
  });

  it('holds backlog quotas when two workers race creates (atomic count in the store)', async () => {
    const prefix = uniquePrefix('quota');
    const [a, b] = [await makeEngine(prefix), await makeEngine(prefix)];
    const limits = { maxProjectsPerToken: 3, maxItemsPerToken: 10 };
    const stores = [new BacklogStore(a.store, { limits }), new BacklogStore(b.store, { limits })];
    const outcomes = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        stores[i % 2].createProject(`race-${i}`, { name: `R${i}` }, 'eve'),
      ),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(3);
    for (const o of outcomes) {
      if (o.status === 'rejected') expect(String(o.reason)).toMatch(/Quota reached/);
    }
    expect((await stores[0].listProjects()).projects).toHaveLength(3);
    // A redelivered create that succeeded is applied once and not counted again.
    const winner = outcomes.findIndex((o) => o.status === 'fulfilled');
    await stores[1].createProject(`race-${winner}`, { name: `R${winner}` }, 'eve');
    expect((await stores[0].listProjects()).projects).toHaveLength(3);
  });
});
