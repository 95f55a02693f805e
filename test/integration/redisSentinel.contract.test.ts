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
import { uniquePrefix } from '../../devSupport/redis';
import { type SentinelGroup, startSentinelGroup } from '../../devSupport/sentinel';

/**
 * The engine contract with Redis found through Sentinel (one master, one replica, three
 * sentinels): every client of the engine goes through the sentinels to the master.
 */

let group: SentinelGroup;
/** Deletes each engine's keys afterwards, on the master. */
let admin: Redis;
const prefixes = new WeakMap<Engine, string>();

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

describeEngineContract(
  'redis (sentinel)',
  async () => {
    const prefix = uniquePrefix('sentinel-contract');
    const engine = new RedisEngine({
      target: {
        kind: 'sentinel',
        sentinels: group.sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
        masterName: group.masterName,
      },
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
