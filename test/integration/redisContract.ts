import type Redis from 'ioredis';
import type { Engine } from '../../shared/engine/engine';
import { RedisEngine } from '../../shared/engine/redis';
import type { RedisTarget } from '../../shared/engine/redis/redisConnections';
import { silentLogger } from '../../shared/logger';
import {
  CONTRACT_EVENT_MAX_BYTES,
  CONTRACT_HISTORY_MAX_BYTES,
  CONTRACT_HISTORY_MAX_LEN,
  CONTRACT_HISTORY_TTL_S,
  describeEngineContract,
} from '../contract/engineContract';
import { uniquePrefix } from '../../devSupport/redis';

/**
 * The engine contract against a real Redis of any mode: each engine on its own key prefix, its
 * keys deleted afterwards on every server that holds data (`dataNodes`: the one server, the
 * Sentinel master, every Cluster master), one UNLINK per key (a Cluster refuses keys of
 * different slots in one command).
 */
export function describeRedisEngineContract(
  label: string,
  target: () => RedisTarget,
  dataNodes: () => Redis[],
): void {
  const prefixes = new WeakMap<Engine, string>();
  describeEngineContract(
    label,
    async () => {
      const prefix = uniquePrefix(`contract-${label.replace(/\W+/g, '-')}`);
      const engine = new RedisEngine({
        target: target(),
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
      for (const node of dataNodes()) {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          cursor = next;
          for (const key of keys) await node.unlink(key);
        } while (cursor !== '0');
      }
    },
  );
}
