import Redis from 'ioredis';
import type { Engine } from '../../shared/engine/engine';
import { RedisEngine } from '../../shared/engine/redis';
import { silentLogger } from '../../shared/logger';
import {
  CONTRACT_EVENT_MAX_BYTES,
  CONTRACT_HISTORY_MAX_BYTES,
  CONTRACT_HISTORY_MAX_LEN,
  CONTRACT_HISTORY_TTL_S,
  describeEngineContract,
} from '../contract/engineContract';
import { provideRedis, uniquePrefix, type ProvidedRedis } from '../../devSupport/redis';

/** The engine contract against a real Redis: one server for the file, a key prefix per engine. */

let redis: ProvidedRedis;
/** Deletes each engine's keys afterwards (matters when REDIS_URL points at a shared server). */
let admin: Redis;
const prefixes = new WeakMap<Engine, string>();

beforeAll(async () => {
  redis = await provideRedis();
  admin = new Redis(redis.url, { maxRetriesPerRequest: null });
});

afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
});

describeEngineContract(
  'redis',
  async () => {
    const prefix = uniquePrefix('contract');
    const engine = new RedisEngine({
      url: redis.url,
      prefix,
      historyMaxLen: CONTRACT_HISTORY_MAX_LEN,
      historyTtlS: CONTRACT_HISTORY_TTL_S,
      historyMaxBytes: CONTRACT_HISTORY_MAX_BYTES,
      eventMaxBytes: CONTRACT_EVENT_MAX_BYTES,
      logger: silentLogger(),
    });
    prefixes.set(engine, prefix);
    return engine;
  },
  async (engine) => {
    const prefix = prefixes.get(engine);
    if (!prefix) return;
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await admin.unlink(...keys);
    } while (cursor !== '0');
  },
);
