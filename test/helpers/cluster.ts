import Redis, { Cluster } from 'ioredis';
import { type RedisKeys, redisKeys } from '../../shared/engine/redis/keys';
import { parseClusterNodes } from '../../shared/engine/redis/redisConnections';
import { reapAll, spawnRole, type SpawnedProcess } from './processes';
import { provideRedis, uniquePrefix, type ProvidedRedis } from '../../devSupport/redis';
import { startRedisCluster, type ProvidedRedisCluster } from '../../devSupport/redisCluster';

/** Which Redis the pods share: one server (REDIS_URL) or a 3-master Redis Cluster. */
export type RedisMode = 'single' | 'cluster';

/** Gateway/worker processes on a real Redis, for multi-process tests. */
export interface PodsOnRedis {
  mode: RedisMode;
  /** The environment every process got (REDIS_URL or REDIS_CLUSTER_NODES, a unique REDIS_PREFIX, ...). */
  env: Record<string, string>;
  /** The engine's key names under this REDIS_PREFIX, laid out for the mode (keys.ts). */
  keys: RedisKeys;
  /** POD_IDs gateway-a, gateway-b, ... */
  gateways: SpawnedProcess[];
  /** POD_IDs worker-1, worker-2, ... */
  workers: SpawnedProcess[];
  /** A client for assertions on the keys (the caller disconnects it). */
  admin(): Redis;
  /** Kills every process still running and stops the Redis (or Cluster) started for them. */
  stop(): Promise<void>;
}

/** Pods on one Redis server. */
export interface TestCluster extends PodsOnRedis {
  redis: ProvidedRedis;
}

interface PodOptions {
  gateways: number;
  workers: number;
  jwtSecret: string;
  env?: Record<string, string>;
  /** Cluster mode: replicas per master (fault tests kill masters); none by default. */
  replicasPerMaster?: number;
}

/**
 * Spawns `gateways` gateway and `workers` worker processes sharing one Redis (README, Testing:
 * REDIS_URL or a redis-server of our own) under a REDIS_PREFIX of their own, and waits until
 * every one is ready.
 */
export async function startCluster(label: string, options: PodOptions): Promise<TestCluster> {
  const redis = await provideRedis();
  const pods = await spawnPods(label, options, { REDIS_URL: redis.url }, 'single', () =>
    redis.stop(),
  );
  return { ...pods, redis, admin: () => new Redis(redis.url) };
}

/** The same pods on a 3-master Redis Cluster of their own (REDIS_CLUSTER_NODES). */
export async function startPodsOnRedisCluster(
  label: string,
  options: PodOptions,
): Promise<PodsOnRedis & { redisCluster: ProvidedRedisCluster }> {
  const redisCluster = await startRedisCluster({
    masters: 3,
    replicasPerMaster: options.replicasPerMaster,
  });
  try {
    const pods = await spawnPods(
      label,
      options,
      { REDIS_CLUSTER_NODES: redisCluster.nodes },
      'cluster',
      () => redisCluster.stop(),
    );
    const admin = () => new Cluster(parseClusterNodes(redisCluster.nodes)) as unknown as Redis;
    return { ...pods, redisCluster, admin };
  } catch (error) {
    await reapAll();
    await redisCluster.stop();
    throw error;
  }
}

/** Either mode: what parameterized suites call. */
export function startPods(
  mode: RedisMode,
  label: string,
  options: PodOptions,
): Promise<PodsOnRedis> {
  return mode === 'cluster'
    ? startPodsOnRedisCluster(label, options)
    : startCluster(label, options);
}

async function spawnPods(
  label: string,
  options: PodOptions,
  redisEnv: Record<string, string>,
  mode: RedisMode,
  stopRedis: () => Promise<void>,
): Promise<Omit<PodsOnRedis, 'admin'>> {
  const prefix = uniquePrefix(label);
  const env = {
    ...redisEnv,
    REDIS_PREFIX: prefix,
    JWT_SECRET: options.jwtSecret,
    ...options.env,
  };
  const letters = 'abcdefghij';
  const [gateways, workers] = await Promise.all([
    Promise.all(
      Array.from({ length: options.gateways }, (_, i) =>
        spawnRole('gateway', { ...env, POD_ID: `gateway-${letters[i]}` }),
      ),
    ),
    Promise.all(
      Array.from({ length: options.workers }, (_, i) =>
        spawnRole('worker', { ...env, POD_ID: `worker-${i + 1}` }),
      ),
    ),
  ]);
  return {
    mode,
    env,
    keys: redisKeys(prefix, { hashTags: mode === 'cluster' }),
    gateways,
    workers,
    stop: async () => {
      await reapAll();
      await stopRedis();
    },
  };
}
