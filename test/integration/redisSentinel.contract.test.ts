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
        mode: 'sentinel',
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
