import { engineErrors } from '../../errors';
import type { EventPort } from '../engine';
import type { EngineGate } from '../gate';
import { assertPositiveTtl } from '../limits';
import { unavailable } from './connections';
import type { EventLog } from './eventLog';
import type { RedisKeys } from './keys';
import type { Subscriber } from './pubSub';

/** The Redis engine's event port: each topic's history stream, and this process's subscriber. */
export function redisEventPort(
  log: EventLog,
  subscriber: Subscriber,
  keys: RedisKeys,
  gate: EngineGate,
): EventPort {
  return {
    publish(topic, event, data, options) {
      if (gate.closed) return Promise.reject(engineErrors.unavailable('Engine is closed'));
      const completes = options?.completesRequest;
      const processedKey = completes && keys.processed(completes);
      return log.publish(topic, event, data, processedKey, options?.historyTtlMs, options?.copyTo);
    },

    async capHistoryTtl(topic, ttlMs) {
      if (ttlMs !== undefined) assertPositiveTtl(ttlMs);
      try {
        await log.capTtl(topic, ttlMs);
      } catch (error) {
        throw unavailable('History TTL not set', error);
      }
    },

    async subscribe(topics, listener) {
      gate.assertOpen();
      try {
        return await subscriber.subscribe(topics, listener);
      } catch (error) {
        throw unavailable('Subscription failed', error);
      }
    },

    readHistory: (topic, afterId, limit) => log.readHistory(topic, afterId, limit),
    lastEventId: (topic) => log.lastEventId(topic),
  };
}
