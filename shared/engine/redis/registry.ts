import { TOKEN_TYPES, type TokenType } from '../../types';
import type { ClusterStats, ConnectionRecord } from '../engine';
import type { RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/** The registry keys expire if no pod touches them for this long (every pod gone for good). */
const REGISTRY_TTL_MS = 24 * 60 * 60 * 1000;
/** Ids per touch or sweep script call: keeps each call short and within Lua's unpack limit. */
const IDS_PER_CALL = 1000;

/**
 * Live connections of the whole cluster: a hash of records and a sorted set of last-seen
 * times (Redis clock). Owning pods touch their connections; any pod sweeps the stale ones.
 */
export class ConnectionRegistry {
  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
  ) {}

  async register(record: ConnectionRecord): Promise<void> {
    await this.redis.registerConnection(
      this.keys.connections,
      this.keys.connectionsSeen,
      record.connectionId,
      JSON.stringify(record),
      REGISTRY_TTL_MS,
    );
  }

  async unregister(connectionId: string): Promise<void> {
    await this.redis
      .multi()
      .hdel(this.keys.connections, connectionId)
      .zrem(this.keys.connectionsSeen, connectionId)
      .exec();
  }

  async get(connectionId: string): Promise<ConnectionRecord | undefined> {
    const json = await this.redis.hget(this.keys.connections, connectionId);
    return json === null ? undefined : (JSON.parse(json) as ConnectionRecord);
  }

  /** Returns the ids the registry does not hold. */
  async touch(connectionIds: string[]): Promise<string[]> {
    // Sent together: auto-pipelining puts the calls on the wire in one write.
    const calls: Promise<string[]>[] = [];
    for (let i = 0; i < connectionIds.length; i += IDS_PER_CALL) {
      calls.push(
        this.redis.touchConnections(
          this.keys.connections,
          this.keys.connectionsSeen,
          REGISTRY_TTL_MS,
          ...connectionIds.slice(i, i + IDS_PER_CALL),
        ),
      );
    }
    return (await Promise.all(calls)).flat();
  }

  async sweep(staleAfterMs: number): Promise<string[]> {
    const removed: string[] = [];
    for (;;) {
      const batch = await this.redis.sweepConnections(
        this.keys.connections,
        this.keys.connectionsSeen,
        Math.max(0, Math.floor(staleAfterMs)),
        IDS_PER_CALL,
      );
      removed.push(...batch);
      if (batch.length < IDS_PER_CALL) return removed;
    }
  }

  async stats(): Promise<ClusterStats> {
    const records = await this.redis.hvals(this.keys.connections);
    const connectionsByType = {} as Record<TokenType, number>;
    for (const type of TOKEN_TYPES) connectionsByType[type] = 0;
    let oldest = Infinity;
    let newest = -Infinity;
    for (const json of records) {
      const record = JSON.parse(json) as ConnectionRecord;
      if (record.tokenType in connectionsByType) connectionsByType[record.tokenType] += 1;
      if (record.connectedAt < oldest) oldest = record.connectedAt;
      if (record.connectedAt > newest) newest = record.connectedAt;
    }
    const empty = records.length === 0;
    return {
      totalConnections: records.length,
      connectionsByType,
      oldestConnection: empty ? null : new Date(oldest).toISOString(),
      newestConnection: empty ? null : new Date(newest).toISOString(),
    };
  }
}
