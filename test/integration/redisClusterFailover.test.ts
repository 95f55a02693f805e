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
