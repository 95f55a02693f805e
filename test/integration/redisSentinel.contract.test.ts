import Redis from 'ioredis';
import { RedisEngine } from '../../shared/engine/redis';
import { silentLogger } from '../../shared/logger';
import { describeRedisEngineContract } from './redisContract';
import { uniquePrefix } from '../../devSupport/redis';
import { type SentinelGroup, startSentinelGroup } from '../../devSupport/sentinel';

/**
 * The engine contract with Redis found through Sentinel (one master, one replica, three
 * sentinels): every client of the engine goes through the sentinels to the master.
 */

let group: SentinelGroup;
/** Deletes each engine's keys afterwards, on the master. */
let admin: Redis;

beforeAll(async () => {
  group = await startSentinelGroup();
  admin = new Redis({
    sentinels: group.sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
    name: group.masterName,
    maxRetriesPerRequest: null,
  });
}, 30_000);

afterAll(async () => {
  admin?.disconnect();
  await group?.stop();
});

describeRedisEngineContract(
  'redis (sentinel)',
  () => ({
    kind: 'sentinel',
    sentinels: group.sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
    masterName: group.masterName,
  }),
  () => [admin],
);

describe('with passwords (REDIS_PASSWORD, REDIS_SENTINEL_PASSWORD)', () => {
  let secured: SentinelGroup;
  const engines: RedisEngine[] = [];
  const engineFor = (password?: string, sentinelPassword?: string) => {
    const engine = new RedisEngine({
      target: {
        kind: 'sentinel',
        sentinels: secured.sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
        masterName: secured.masterName,
        password,
        sentinelPassword,
      },
      prefix: uniquePrefix('sentinel-auth'),
      historyMaxLen: 10,
      historyTtlS: 60,
      logger: silentLogger(),
      startTimeoutMs: 1500,
    });
    engines.push(engine);
    return engine;
  };

  beforeAll(async () => {
    secured = await startSentinelGroup({
      masterName: 'secured',
      password: 'data-pass-0123',
      sentinelPassword: 'sentinel-pass-0123',
    });
  }, 30_000);

  afterAll(async () => {
    await Promise.all(engines.map((engine) => engine.close()));
    await secured?.stop();
  });

  test('an engine with both passwords works through the sentinels', async () => {
    const engine = engineFor('data-pass-0123', 'sentinel-pass-0123');
    await engine.start();
    await engine.kv.set('k', 'v', 10_000);
    expect(await engine.kv.get('k')).toBe('v');
  });

  test.each([
    ['the master password', undefined, 'sentinel-pass-0123', /last error: NOAUTH/],
    ['the sentinel password', 'data-pass-0123', undefined, /All sentinels are unreachable.*NOAUTH/],
  ])('without %s it does not start, and says why', async (_what, password, sentinelPw, why) => {
    const engine = engineFor(password, sentinelPw);
    const started = engine.start();
    await expect(started).rejects.toThrow(/Redis not ready within 1500 ms \(last error: /);
    await expect(started).rejects.toThrow(why);
    expect(engine.isReady()).toBe(false);
  });
});
