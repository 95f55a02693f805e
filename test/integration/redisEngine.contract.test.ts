import Redis from 'ioredis';
import { describeRedisEngineContract } from './redisContract';
import { provideRedis, type ProvidedRedis } from '../../devSupport/redis';

/** The engine contract against a real Redis: one server for the file, a key prefix per engine. */

let redis: ProvidedRedis;
/** Deletes each engine's keys afterwards (matters when REDIS_URL points at a shared server). */
let admin: Redis;

beforeAll(async () => {
  redis = await provideRedis();
  admin = new Redis(redis.url, { maxRetriesPerRequest: null });
});

afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
});

describeRedisEngineContract(
  'redis',
  () => ({ kind: 'url', url: redis.url }),
  () => [admin],
);
