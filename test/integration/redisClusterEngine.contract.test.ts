import { Cluster } from 'ioredis';
import { RedisEngine } from '../../shared/engine/redis';
import { parseClusterNodes } from '../../shared/engine/redis/redisConnections';
import { silentLogger } from '../../shared/logger';
import { describeRedisEngineContract } from './redisContract';
import { uniquePrefix } from '../../devSupport/redis';
import { startRedisCluster, type ProvidedRedisCluster } from '../../devSupport/redisCluster';

/**
 * The engine contract against a real 3-master Redis Cluster (REDIS_CLUSTER_NODES mode): every
 * script and pipeline of the engine must keep its keys in one slot, or Redis refuses it with
 * CROSSSLOT and the contract fails.
 */

jest.setTimeout(60_000);

let cluster: ProvidedRedisCluster;
/** Deletes each engine's keys afterwards, on every master. */
let admin: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3 });
  admin = new Cluster(parseClusterNodes(cluster.nodes), { redisOptions: {} });
});

afterAll(async () => {
  admin?.disconnect();
  await cluster?.stop();
});

describeRedisEngineContract(
  'redis cluster',
  () => ({ kind: 'cluster', nodes: parseClusterNodes(cluster.nodes) }),
  () => admin.nodes('master'),
);

test('the cluster spreads topic histories over more than one master', async () => {
  const engine = new RedisEngine({
    target: { kind: 'cluster', nodes: parseClusterNodes(cluster.nodes) },
    prefix: uniquePrefix('cluster-spread'),
    historyMaxLen: 10,
    historyTtlS: 60,
    logger: silentLogger(),
  });
  await engine.start();
  try {
    for (let i = 0; i < 30; i += 1) await engine.publish(`spread-${i}`, 'e', 'd');
    const holding = await Promise.all(
      admin.nodes('master').map(async (master) => (await master.dbsize()) > 0),
    );
    expect(holding.filter(Boolean).length).toBeGreaterThan(1);
  } finally {
    await engine.close();
  }
});

describe('with a password (REDIS_PASSWORD)', () => {
  let secured: ProvidedRedisCluster;
  const engines: RedisEngine[] = [];
  const engineFor = (password?: string) => {
    const engine = new RedisEngine({
      target: { kind: 'cluster', nodes: parseClusterNodes(secured.nodes), password },
      prefix: uniquePrefix('cluster-auth'),
      historyMaxLen: 10,
      historyTtlS: 60,
      logger: silentLogger(),
      startTimeoutMs: 1500,
    });
    engines.push(engine);
    return engine;
  };

  beforeAll(async () => {
    secured = await startRedisCluster({ masters: 3, password: 'cluster-pass-0123' });
  });

  afterAll(async () => {
    await Promise.all(engines.map((engine) => engine.close()));
    await secured?.stop();
  });

  test('an engine with the password works through the cluster', async () => {
    const engine = engineFor('cluster-pass-0123');
    await engine.start();
    for (let i = 0; i < 10; i += 1) await engine.kv.set(`k-${i}`, 'v', 10_000);
    expect(await engine.kv.get('k-9')).toBe('v');
  });

  test('without it the engine does not start, and says why', async () => {
    const engine = engineFor(undefined);
    const started = engine.start();
    await expect(started).rejects.toThrow(/Redis not ready within 1500 ms \(last error: .*NOAUTH/);
    expect(engine.isReady()).toBe(false);
  });
});
