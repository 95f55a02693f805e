import type { Config } from '../config';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { Engine } from './engine';
import { MemoryEngine } from './memory';
import { RedisEngine } from './redis';
import type { RedisTarget } from './redis/redisConnections';

export * from './engine';
export { ZERO_EVENT_ID, compareEventIds, isEventId } from './eventId';

/** The memory engine unless REDIS_URL or REDIS_SENTINELS is set. */
export function createEngine(config: Config, logger: Logger, metrics?: Metrics): Engine {
  const history = {
    historyMaxLen: config.historyMaxLen,
    historyTtlS: config.historyTtlS,
    historyMaxBytes: config.historyMaxBytes,
    eventMaxBytes: config.eventMaxBytes,
  };
  const target: RedisTarget | undefined = config.redisSentinel
    ? { mode: 'sentinel', ...config.redisSentinel }
    : config.redisUrl
      ? { mode: 'standalone', url: config.redisUrl }
      : undefined;
  if (!target) return new MemoryEngine(history);
  return new RedisEngine({
    target,
    prefix: config.redisPrefix,
    ...history,
    logger: logger.child({ component: 'redis-engine' }),
    metrics,
  });
}
