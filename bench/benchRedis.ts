/**
 * The Redis under a project run: one redis-server (REDIS_URL) or a Redis Cluster of N masters
 * without replicas (REDIS_CLUSTER_NODES, devSupport/redisCluster.ts). Either way: the variables
 * the gateways and workers get, every server process (their CPU is read per server), and the
 * keys each server holds (how the load spread over the shards).
 */
import Redis from 'ioredis';
import { startRedisCluster } from '../devSupport/redisCluster';
import { adopt, spawnRedis } from './procs';
import type { Pid } from './common';

export interface BenchRedis {
  /** For the table, e.g. 'one Redis', '3-master Cluster'. */
  label: string;
  /** The Redis mode's variables: REDIS_URL, or REDIS_CLUSTER_NODES. */
  env: Record<string, string>;
  /** Every redis-server by name ('redis'; 'shard-1', 'shard-2', ...), for CPU sampling. */
  servers: Record<string, Pid>;
  /** Keys each server holds now (DBSIZE), by the names of `servers`. */
  keysByServer(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

async function dbsize(port: number): Promise<number> {
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    return await client.dbsize();
  } finally {
    client.disconnect();
  }
}

/**
 * One redis-server on a free loopback port (what every other scenario runs on), named `redis`
 * in `servers`; `procName` names its process in failure messages.
 */
export async function startOneRedis(procName = 'redis'): Promise<BenchRedis> {
  const redis = await spawnRedis(procName);
  const port = Number(new URL(redis.url).port);
  return {
    label: 'one Redis',
    env: { REDIS_URL: redis.url },
    servers: { redis: redis.proc },
    keysByServer: async () => ({ redis: await dbsize(port) }),
    stop: async () => {
      await redis.proc.stop('SIGTERM', 5000);
    },
  };
}

/** A Redis Cluster of `masters` masters, no replicas (slots split evenly by redis-cli). */
export async function startClusterRedis(masters: number): Promise<BenchRedis> {
  const cluster = await startRedisCluster({ masters, replicasPerMaster: 0 });
  const names = cluster.ports.map((_, i) => `shard-${i + 1}`);
  // Adopted: reapAll() and the exit hook kill them if the run ends before stop().
  cluster.pids.forEach((pid, i) => adopt(names[i], pid));
  return {
    label: `${masters}-master Cluster`,
    env: { REDIS_CLUSTER_NODES: cluster.nodes },
    servers: Object.fromEntries(cluster.pids.map((pid, i) => [names[i], { pid }])),
    keysByServer: async () =>
      Object.fromEntries(
        await Promise.all(cluster.ports.map(async (port, i) => [names[i], await dbsize(port)])),
      ) as Record<string, number>,
    stop: () => cluster.stop(),
  };
}
