import { RedisEngine } from '../../shared/engine/redis';
import { parseClusterNodes } from '../../shared/engine/redis/redisConnections';
import { silentLogger } from '../../shared/logger';
import type { ProvidedRedisCluster } from '../../devSupport/redisCluster';

/** A started Redis engine on a test Cluster (small history: the failover tests publish little). */
export async function startClusterEngine(
  cluster: ProvidedRedisCluster,
  prefix: string,
): Promise<RedisEngine> {
  const engine = new RedisEngine({
    target: { kind: 'cluster', nodes: parseClusterNodes(cluster.nodes) },
    prefix,
    historyMaxLen: 100,
    historyTtlS: 60,
    logger: silentLogger(),
  });
  await engine.start();
  return engine;
}
