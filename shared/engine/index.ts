import type { Config } from '../config';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { Engine } from './engine';
import { MemoryEngine } from './memory';
import { RedisEngine } from './redis';

export * from './engine';
export { ZERO_EVENT_ID, compareEventIds, isEventId } from './eventId';

/** The memory engine unless a Redis mode (REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS) is set. */
export function createEngine(config: Config, logger: Logger, metrics?: Metrics): Engine {
  const history = {
    historyMaxLen: config.historyMaxLen,
    historyTtlS: config.historyTtlS,
    historyMaxBytes: config.historyMaxBytes,
    eventMaxBytes: config.eventMaxBytes,
  };
  if (!config.redis) return new MemoryEngine(history);
  return new RedisEngine({
    target: config.redis,
    prefix: config.redisPrefix,
    healthIntervalMs: config.redisHealthIntervalMs,
    commandPartitions: config.commandPartitions,
    ...history,
    logger: logger.child({ component: 'redis-engine' }),
    metrics,
  });
}
