import { Cluster } from 'ioredis';
import type { EngineEvent } from '../../shared/engine/engine';
import { redisKeys } from '../../shared/engine/redis/keys';
import { parseClusterNodes } from '../../shared/engine/redis/redisConnections';
import { uniquePrefix } from '../../devSupport/redis';
import {
  masterPortOf,
  startRedisCluster,
  type ProvidedRedisCluster,
} from '../../devSupport/redisCluster';
import { waitFor } from '../../devSupport/waitFor';
import { startClusterEngine } from '../helpers/clusterEngine';

/**
 * A shard master SIGKILLed under a live subscription (3 masters, 1 replica each): its replica
 * is promoted, and the engine publishes and delivers on that shard again without a restart.
 */

jest.setTimeout(90_000);

let cluster: ProvidedRedisCluster;
let admin: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
  admin = new Cluster(parseClusterNodes(cluster.nodes));
});

afterAll(async () => {
  admin?.disconnect();
  await cluster?.stop();
});

test('a shard master killed: its replica takes over, events on its topics flow again', async () => {
  const prefix = uniquePrefix('cluster-failover');
  const engine = await startClusterEngine(cluster, prefix);
  let reconnects = 0;
  engine.onReconnect(() => (reconnects += 1));
  try {
    const topic = 'failover-topic';
    const received: EngineEvent[] = [];
    const subscription = await engine.subscribe([topic], (event) => received.push(event));
    const before = await engine.publish(topic, 'e', 'before');
    await waitFor(() => received.some((e) => e.id === before), 5_000, 'event before the kill');

    const master = await masterPortOf(admin, redisKeys(prefix, { hashTags: true }).history(topic));
    await cluster.killNode(master);
    // Publishing retries until the replica is promoted (cluster-node-timeout 2 s here).
    let after: string | undefined;
    let lastError = '';
    await waitFor(
      async () => {
        try {
          after = await engine.publish(topic, 'e', 'after');
          return true;
        } catch (error) {
          lastError = String(error);
          return false;
        }
      },
      30_000,
      'publish after the failover',
    ).catch((e) => {
      throw new Error(`${e}: ${lastError}`);
    });
    expect(
      await masterPortOf(admin, redisKeys(prefix, { hashTags: true }).history(topic)),
    ).not.toBe(master);
    // The live event, or (if the subscription moved after it) the catch-up from history.
    await waitFor(() => received.some((e) => e.id === after), 15_000, 'event after the failover');
    // The engine told its listeners (a gateway catches its streams up from history then).
    await waitFor(() => reconnects > 0, 15_000, 'reconnect reported');
    const page = await engine.readHistory(topic, '0-0', 10);
    expect(page.events.map((e) => e.data)).toContain('after');
    await subscription.close();
  } finally {
    await engine.close();
  }
});

test("a result published while its done-key's shard fails over: marked once the replica serves it, never left unmarked", async () => {
  const prefix = uniquePrefix('cluster-done-key');
  const keys = redisKeys(prefix, { hashTags: true });
  const engine = await startClusterEngine(cluster, prefix);
  try {
    // The first masters created each have a replica; the previous test killed one of them.
    const servingSlots = (await admin.cluster('SLOTS')) as unknown as [
      number,
      number,
      [string, number],
    ][];
    const masters = new Set(servingSlots.map((range) => range[2][1]));
    const withReplica = cluster.ports.slice(0, 3).filter((port) => masters.has(port));
    const topic = 'done-key-topic';
    const topicMaster = await masterPortOf(admin, keys.history(topic));
    const doomed = withReplica.find((port) => port !== topicMaster);
    if (doomed === undefined) throw new Error('no master with a replica apart from the topic');
    let requestId = '';
    for (let i = 0; ; i += 1) {
      requestId = `req-${i}`;
      if ((await masterPortOf(admin, keys.processed(requestId))) === doomed) break;
    }

    await cluster.killNode(doomed);
    // The event goes out on the topic's live shard at once; its done-key waits for the promotion.
    // Without the retry the publish fails after ioredis's redirections, and the worker's
    // redelivery would run the command again: a second result.
    await engine.publish(topic, 'tool-result', 'once', { completesRequest: requestId });
    expect(await engine.isProcessed(requestId)).toBe(true);
    const page = await engine.readHistory(topic, '0-0', 10);
    expect(page.events.map((e) => e.data)).toEqual(['once']);
  } finally {
    await engine.close();
  }
});
