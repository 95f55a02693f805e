import Redis, { Cluster } from 'ioredis';
import type { ConsumeOptions, QueuedCommand } from '../../shared/engine/engine';
import { RedisEngine } from '../../shared/engine/redis';
import { partitionOf } from '../../shared/engine/redis/commandPartitions';
import { redisKeys } from '../../shared/engine/redis/keys';
import { type RedisTarget, parseClusterNodes } from '../../shared/engine/redis/redisConnections';
import { EngineError } from '../../shared/errors';
import { silentLogger } from '../../shared/logger';
import type { CommandEnvelope } from '../../shared/types';
import { provideRedis, uniquePrefix } from '../../devSupport/redis';
import { startRedisCluster } from '../../devSupport/redisCluster';
import { sleep, waitFor } from '../../devSupport/waitFor';

/**
 * COMMAND_PARTITIONS on a real single Redis and on a real 3-master Cluster: tokens spread over
 * the partitions (one shard each on the Cluster), every command consumed once, fairness
 * between partitions, reclaim and dead letters per partition, admission, the shared slots of
 * a consumer, and a worker with fewer partitions draining the others.
 */

jest.setTimeout(60_000);

const PARTITIONS = 3;

interface Setup {
  target: RedisTarget;
  /** A client for assertions (a Cluster client routes each key to its master). */
  admin: Redis;
  /** Every server holding data, for the per-shard checks and the clean-up. */
  dataNodes(): Redis[];
  stop(): Promise<void>;
}

async function singleRedis(): Promise<Setup> {
  const redis = await provideRedis();
  const admin = new Redis(redis.url, { maxRetriesPerRequest: null });
  return {
    target: { kind: 'url', url: redis.url },
    admin,
    dataNodes: () => [admin],
    stop: async () => {
      admin.disconnect();
      await redis.stop();
    },
  };
}

async function redisCluster(): Promise<Setup> {
  const cluster = await startRedisCluster({ masters: 3 });
  const admin = new Cluster(parseClusterNodes(cluster.nodes), { redisOptions: {} });
  return {
    target: { kind: 'cluster', nodes: parseClusterNodes(cluster.nodes) },
    admin: admin as unknown as Redis,
    dataNodes: () => admin.nodes('master'),
    stop: async () => {
      admin.disconnect();
      await cluster.stop();
    },
  };
}

/** `count` token subs whose commands go to `partition` (of PARTITIONS). */
function subsIn(partition: number, count: number, label = 'tok'): string[] {
  const subs: string[] = [];
  for (let n = 0; subs.length < count; n += 1) {
    if (partitionOf(`${label}-${n}`, PARTITIONS) === partition) subs.push(`${label}-${n}`);
  }
  return subs;
}

let requestCounter = 0;
function commandOf(sub: string): CommandEnvelope {
  requestCounter += 1;
  return {
    requestId: `req-${requestCounter}`,
    connectionId: `conn-${sub}`,
    sub,
    tokenType: 'team',
    message: { method: 'tools/list' },
    enqueuedAt: Date.now(),
  };
}

const consumeDefaults: Omit<ConsumeOptions, 'consumerId'> = {
  concurrency: 4,
  claimIdleMs: 200,
  maxDeliveries: 3,
  onDeadLetter: async () => undefined,
};

describe.each([
  ['single redis', singleRedis],
  ['redis cluster', redisCluster],
])('COMMAND_PARTITIONS=3 on %s', (label, setUp) => {
  let setup: Setup;
  const engines: RedisEngine[] = [];
  const prefixes: string[] = [];
  let prefix: string;

  beforeAll(async () => {
    setup = await setUp();
  });

  beforeEach(() => {
    prefix = uniquePrefix(`partitions-${label.replace(/\W+/g, '-')}`);
    prefixes.push(prefix);
  });

  afterEach(async () => {
    await Promise.all(engines.splice(0).map((engine) => engine.close()));
  });

  afterAll(async () => {
    for (const node of setup?.dataNodes() ?? []) {
      for (const used of prefixes) {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', `${used}*`, 'COUNT', 1000);
          cursor = next;
          for (const key of keys) await node.unlink(key);
        } while (cursor !== '0');
      }
    }
    await setup?.stop();
  });

  async function makeEngine(commandPartitions = PARTITIONS): Promise<RedisEngine> {
    const engine = new RedisEngine({
      target: setup.target,
      prefix,
      historyMaxLen: 10,
      historyTtlS: 60,
      logger: silentLogger(),
      commandPartitions,
    });
    engines.push(engine);
    await engine.start();
    return engine;
  }

  const keys = () => redisKeys(prefix, { hashTags: setup.target.kind === 'cluster' });
  const partitionKeys = (i: number) => keys().commandPartition(i);

  test('tokens spread over the partitions and every command is consumed exactly once', async () => {
    const engine = await makeEngine();
    const subs = Array.from({ length: 30 }, (_, i) => `spread-${i}`);
    for (const sub of subs) {
      await engine.enqueueCommands([commandOf(sub), commandOf(sub), commandOf(sub)]);
    }
    const lengths = await Promise.all(
      [0, 1, 2].map((i) => setup.admin.xlen(partitionKeys(i).commands)),
    );
    expect(lengths.every((length) => length > 0)).toBe(true);
    expect(lengths.reduce((a, b) => a + b)).toBe(90);
    expect(await engine.commandBacklog()).toEqual({ waiting: 90, pending: 0, deadLettered: 0 });
    if (setup.target.kind === 'cluster') {
      // Each partition's stream lives on a master of its own.
      const holders = await Promise.all(
        [0, 1, 2].map(async (i) => {
          const stream = partitionKeys(i).commands;
          const nodes = setup.dataNodes();
          const found = await Promise.all(nodes.map(async (node) => await holdsKey(node, stream)));
          expect(found.filter(Boolean)).toHaveLength(1);
          return nodes[found.indexOf(true)].options.port;
        }),
      );
      expect(new Set(holders).size).toBe(3);
    }

    const handled: QueuedCommand[] = [];
    const handler = async (queued: QueuedCommand) => void handled.push(queued);
    engine.consumeCommands(handler, { ...consumeDefaults, consumerId: 'c1' });
    engine.consumeCommands(handler, { ...consumeDefaults, consumerId: 'c2' });
    await waitFor(() => handled.length >= 90, 10_000, 'every command');
    await waitFor(async () => (await engine.commandBacklog()).pending === 0, 5000, 'acks');
    expect(new Set(handled.map((q) => q.command.requestId)).size).toBe(90);
    expect(handled).toHaveLength(90);
    // Delivery ids name their partition beyond partition 0, so they are unique across them.
    expect(new Set(handled.map((q) => q.deliveryId)).size).toBe(90);
    const partitionsSeen = new Set(
      handled.map((q) => (q.deliveryId.includes('/') ? q.deliveryId.split('/')[0] : '0')),
    );
    expect([...partitionsSeen].sort()).toEqual(['0', '1', '2']);
    expect(await engine.commandBacklog()).toEqual({ waiting: 0, pending: 0, deadLettered: 0 });
  });

  test('a flooded partition does not starve another', async () => {
    const engine = await makeEngine();
    const [flooder] = subsIn(0, 1, 'flood');
    const [other] = subsIn(1, 1, 'other');
    const flood = Array.from({ length: 100 }, () => commandOf(flooder));
    for (let i = 0; i < flood.length; i += 10) {
      await engine.enqueueCommands(flood.slice(i, i + 10));
    }
    let floodHandled = 0;
    let floodHandledBeforeOther: number | undefined;
    engine.consumeCommands(
      async ({ command }) => {
        if (command.sub === other) {
          floodHandledBeforeOther = floodHandled;
          return;
        }
        await sleep(10);
        floodHandled += 1;
      },
      { ...consumeDefaults, consumerId: 'c1', concurrency: 2 },
    );
    await waitFor(() => floodHandled >= 5, 10_000, 'the flood being worked on');
    await engine.enqueueCommand(commandOf(other));
    await waitFor(() => floodHandledBeforeOther !== undefined, 10_000, 'the other command');
    expect(floodHandledBeforeOther).toBeLessThan(flood.length);
    await waitFor(() => floodHandled === flood.length, 10_000, 'the flood drained');
  });

  test("a worker with no free slot leaves other partitions' commands to other workers", async () => {
    const engine = await makeEngine();
    const [busy] = subsIn(0, 1, 'busy');
    const [waiting] = subsIn(1, 1, 'waiting');
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const byFull: string[] = [];
    const byFree: string[] = [];
    engine.consumeCommands(
      async ({ command }) => {
        byFull.push(command.sub);
        await released;
      },
      { ...consumeDefaults, consumerId: 'full', concurrency: 1 },
    );
    try {
      await engine.enqueueCommand(commandOf(busy));
      await waitFor(() => byFull.length === 1, 5000, 'the full worker busy');
      engine.consumeCommands(async ({ command }) => void byFree.push(command.sub), {
        ...consumeDefaults,
        consumerId: 'free',
        concurrency: 1,
      });
      await engine.enqueueCommand(commandOf(waiting));
      // Taken by the worker with a free slot, not held by the full one (which would run it
      // only after its long command).
      await waitFor(() => byFree.length === 1, 5000, 'the free worker ran it');
      expect(byFree).toEqual([waiting]);
      expect(byFull).toEqual([busy]);
      expect(await engine.commandBacklog()).toMatchObject({ waiting: 0, pending: 1 });
    } finally {
      // Else closing the engine would wait for the held handler.
      release();
    }
  });

  test("a dead consumer's entries are reclaimed in every partition", async () => {
    const engine = await makeEngine();
    const subs = [0, 1, 2].map((i) => subsIn(i, 1, 'reclaim')[0]);
    for (let i = 0; i < PARTITIONS; i += 1) {
      await setup.admin.xgroup('CREATE', partitionKeys(i).commands, 'workers', '0', 'MKSTREAM');
    }
    for (const sub of subs) await engine.enqueueCommand(commandOf(sub));
    // A worker that read one command from each partition, then died.
    for (let i = 0; i < PARTITIONS; i += 1) {
      const read = await setup.admin.xreadgroup(
        'GROUP',
        'workers',
        'ghost',
        'COUNT',
        10,
        'STREAMS',
        partitionKeys(i).commands,
        '>',
      );
      expect((read as [string, unknown[]][])[0][1]).toHaveLength(1);
    }
    expect(await engine.commandBacklog()).toEqual({ waiting: 0, pending: 3, deadLettered: 0 });

    const handled: QueuedCommand[] = [];
    engine.consumeCommands(async (queued) => void handled.push(queued), {
      ...consumeDefaults,
      consumerId: 'live',
    });
    await waitFor(() => handled.length >= 3, 10_000, 'three reclaimed commands');
    expect(handled.map((q) => q.command.sub).sort()).toEqual([...subs].sort());
    expect(handled.every((q) => q.deliveries === 2)).toBe(true);
    await waitFor(async () => (await engine.commandBacklog()).pending === 0, 5000, 'acks');
    expect(handled).toHaveLength(3);
  });

  test('dead letters go to each partition’s own stream and release the in-flight counts', async () => {
    const engine = await makeEngine();
    const subs = [0, 1, 2].map((i) => subsIn(i, 1, 'dead')[0]);
    const limits = { maxQueued: 100, maxInFlightPerToken: 5, inFlightLeaseMs: 60_000 };
    for (const sub of subs) await engine.enqueueCommand(commandOf(sub), limits);
    const dead: QueuedCommand[] = [];
    engine.consumeCommands(
      async () => {
        throw new Error('always fails');
      },
      {
        ...consumeDefaults,
        consumerId: 'c1',
        claimIdleMs: 100,
        maxDeliveries: 2,
        onDeadLetter: async (queued) => void dead.push(queued),
      },
    );
    await waitFor(() => dead.length >= 3, 15_000, 'three dead letters');
    expect(dead.map((q) => q.command.sub).sort()).toEqual([...subs].sort());
    for (let i = 0; i < PARTITIONS; i += 1) {
      expect(await setup.admin.xlen(partitionKeys(i).deadLetters)).toBe(1);
      expect(await setup.admin.zcard(partitionKeys(i).inFlight(subs[i]))).toBe(0);
    }
    expect(await engine.commandBacklog()).toEqual({ waiting: 0, pending: 0, deadLettered: 3 });
  });

  test('admission: the per-token limit, and each partition takes its share of maxQueued', async () => {
    const engine = await makeEngine();
    // 6 over 3 partitions: 2 each.
    const limits = { maxQueued: 6, maxInFlightPerToken: 1, inFlightLeaseMs: 60_000 };
    const [a, a2, a3] = subsIn(0, 3, 'admit');
    const [b] = subsIn(1, 1, 'admit-b');
    await engine.enqueueCommand(commandOf(a), limits);
    await expect(engine.enqueueCommand(commandOf(a), limits)).rejects.toMatchObject({
      code: 'inflight_limit',
    });
    await engine.enqueueCommand(commandOf(a2), limits);
    const full = engine.enqueueCommand(commandOf(a3), limits);
    await expect(full).rejects.toBeInstanceOf(EngineError);
    await expect(full).rejects.toMatchObject({ code: 'queue_full' });
    // Another partition still has room.
    await engine.enqueueCommand(commandOf(b), limits);
    expect((await engine.commandBacklog()).waiting).toBe(3);
  });

  test("a consumer's concurrency and per-token cap hold over all partitions together", async () => {
    const engine = await makeEngine();
    const subs = [0, 1, 2].flatMap((i) => subsIn(i, 2, 'slots'));
    for (const sub of subs) {
      await engine.enqueueCommands(Array.from({ length: 4 }, () => commandOf(sub)));
    }
    let running = 0;
    let mostRunning = 0;
    const runningByToken = new Map<string, number>();
    let mostOfOneToken = 0;
    let handled = 0;
    engine.consumeCommands(
      async ({ command }) => {
        running += 1;
        const mine = (runningByToken.get(command.sub) ?? 0) + 1;
        runningByToken.set(command.sub, mine);
        mostRunning = Math.max(mostRunning, running);
        mostOfOneToken = Math.max(mostOfOneToken, mine);
        await sleep(15);
        runningByToken.set(command.sub, mine - 1);
        running -= 1;
        handled += 1;
      },
      { ...consumeDefaults, consumerId: 'c1', concurrency: 3, maxPerToken: 1 },
    );
    await waitFor(() => handled === subs.length * 4, 15_000, 'every command');
    expect(mostRunning).toBe(3);
    expect(mostOfOneToken).toBe(1);
  });

  test('a worker with fewer partitions drains those of a larger count', async () => {
    const wide = await makeEngine(PARTITIONS);
    const subs = Array.from({ length: 12 }, (_, i) => `drain-${i}`);
    for (const sub of subs) await wide.enqueueCommand(commandOf(sub));
    expect(new Set(subs.map((sub) => partitionOf(sub, PARTITIONS))).size).toBe(3);
    await wide.close();

    const narrow = await makeEngine(1);
    expect(await narrow.commandBacklog()).toEqual({ waiting: 12, pending: 0, deadLettered: 0 });
    const handled: QueuedCommand[] = [];
    narrow.consumeCommands(async (queued) => void handled.push(queued), {
      ...consumeDefaults,
      consumerId: 'narrow',
    });
    await waitFor(() => handled.length >= 12, 10_000, 'every command, from every partition');
    await waitFor(async () => (await narrow.commandBacklog()).pending === 0, 5000, 'acks');
    expect(handled.map((q) => q.command.sub).sort()).toEqual([...subs].sort());
    expect(await narrow.commandBacklog()).toEqual({ waiting: 0, pending: 0, deadLettered: 0 });
  });
});

test('commandPartitions must be an integer from 1', () => {
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    expect(
      () =>
        new RedisEngine({
          url: 'redis://127.0.0.1:1',
          prefix: 'never-connects:',
          historyMaxLen: 10,
          historyTtlS: 60,
          logger: silentLogger(),
          commandPartitions: bad,
        }),
    ).toThrow(/commandPartitions must be an integer >= 1/);
  }
});

/** Whether this master holds the key (SCAN sees only its own keys). */
async function holdsKey(node: Redis, key: string): Promise<boolean> {
  const [, found] = await node.scan('0', 'MATCH', key, 'COUNT', 100_000);
  return found.includes(key);
}
