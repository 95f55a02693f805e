import { reapAll, spawnRole, type SpawnedProcess } from './processes';
import { provideRedis, uniquePrefix, type ProvidedRedis } from '../../devSupport/redis';

/** A real Redis and gateway/worker processes on it, for multi-process tests. */
export interface TestCluster {
  redis: ProvidedRedis;
  /** The environment every process got (REDIS_URL, a unique REDIS_PREFIX, JWT_SECRET, ...). */
  env: Record<string, string>;
  /** POD_IDs gateway-a, gateway-b, ... */
  gateways: SpawnedProcess[];
  /** POD_IDs worker-1, worker-2, ... */
  workers: SpawnedProcess[];
  /** Kills every process still running and stops a spawned Redis. */
  stop(): Promise<void>;
}

/**
 * Spawns `gateways` gateway and `workers` worker processes sharing one Redis (README, Testing:
 * REDIS_URL or a redis-server of our own) under a REDIS_PREFIX of their own, and waits until
 * every one is ready.
 */
export async function startCluster(
  label: string,
  options: { gateways: number; workers: number; jwtSecret: string; env?: Record<string, string> },
): Promise<TestCluster> {
  const redis = await provideRedis();
  const env = {
    REDIS_URL: redis.url,
    REDIS_PREFIX: uniquePrefix(label),
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
    redis,
    env,
    gateways,
    workers,
    stop: async () => {
      await reapAll();
      await redis.stop();
    },
  };
}
