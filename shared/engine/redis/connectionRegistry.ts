import { TOKEN_TYPES, type TokenType } from '../../types';
import {
  STREAM_TRANSPORTS,
  type ClusterStats,
  type ConnectionRecord,
  type RegisterOptions,
  type RegistryPort,
  type StreamTransport,
  type SweepOptions,
  type SweepResult,
} from '../engine';
import type { RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/** The registry keys expire if no pod touches them for this long (every pod gone for good). */
const REGISTRY_TTL_MS = 24 * 60 * 60 * 1000;
/** Ids per touch or sweep script call: keeps each call short and within Lua's unpack limit. */
const IDS_PER_CALL = 1000;

/**
 * Streams of the whole cluster: a hash of records, a sorted set of the open ones by last-seen
 * time (Redis clock), one of the resumable ones by closing time, and open streams per token
 * sub (the cluster-wide MAX_CONNECTIONS_PER_TOKEN). Owning pods touch their open streams; any
 * pod sweeps the stale ones.
 */
export class ConnectionRegistry implements RegistryPort {
  private readonly keyList: string[];

  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
  ) {
    this.keyList = [
      keys.connections,
      keys.connectionsSeen,
      keys.connectionsClosed,
      keys.connectionsBySub,
    ];
  }

  async registerConnection(
    record: ConnectionRecord,
    options: RegisterOptions = {},
  ): Promise<boolean> {
    const listed = await this.redis.registerConnection(
      ...this.keyList,
      record.connectionId,
      JSON.stringify(record),
      REGISTRY_TTL_MS,
      record.sub,
      Math.max(0, Math.floor(options.maxPerToken ?? 0)),
    );
    return listed === 1;
  }

  /** A resumable record stays for the resume window; any other entry goes. */
  markConnectionClosed(connectionId: string): Promise<void> {
    return this.release(connectionId, true);
  }

  unregisterConnection(connectionId: string): Promise<void> {
    return this.release(connectionId, false);
  }

  async getConnection(connectionId: string): Promise<ConnectionRecord | undefined> {
    const json = await this.redis.hget(this.keys.connections, connectionId);
    return json === null ? undefined : (JSON.parse(json) as ConnectionRecord);
  }

  /** Returns the ids the registry does not hold. */
  async touchConnections(connectionIds: string[]): Promise<string[]> {
    // Sent together: auto-pipelining puts the calls on the wire in one write.
    const calls: Promise<string[]>[] = [];
    for (let i = 0; i < connectionIds.length; i += IDS_PER_CALL) {
      calls.push(
        this.redis.touchConnections(
          ...this.keyList,
          REGISTRY_TTL_MS,
          ...connectionIds.slice(i, i + IDS_PER_CALL),
        ),
      );
    }
    return (await Promise.all(calls)).flat();
  }

  async sweepConnections(options: SweepOptions): Promise<SweepResult> {
    const result: SweepResult = { lapsed: [], expired: [] };
    for (;;) {
      const [lapsed, expired] = await this.redis.sweepConnections(
        ...this.keyList,
        Math.max(0, Math.floor(options.openStaleAfterMs)),
        Math.max(0, Math.floor(options.resumeWindowMs)),
        IDS_PER_CALL,
      );
      for (const json of lapsed) result.lapsed.push(JSON.parse(json) as ConnectionRecord);
      result.expired.push(...expired);
      if (lapsed.length < IDS_PER_CALL && expired.length < IDS_PER_CALL) return result;
    }
  }

  async clusterStats(): Promise<ClusterStats> {
    const [records, resumable] = await Promise.all([
      this.redis.hgetall(this.keys.connections),
      this.redis.zrange(this.keys.connectionsClosed, 0, -1),
    ]);
    const closed = new Set(resumable);
    const connectionsByType = zeroCounts(TOKEN_TYPES) as Record<TokenType, number>;
    const connectionsByTransport = zeroCounts(STREAM_TRANSPORTS) as Record<StreamTransport, number>;
    let open = 0;
    let oldest = Infinity;
    let newest = -Infinity;
    for (const [connectionId, json] of Object.entries(records)) {
      if (closed.has(connectionId)) continue;
      const record = JSON.parse(json) as ConnectionRecord;
      open += 1;
      if (record.tokenType in connectionsByType) connectionsByType[record.tokenType] += 1;
      if (record.transport in connectionsByTransport) {
        connectionsByTransport[record.transport] += 1;
      }
      if (record.connectedAt < oldest) oldest = record.connectedAt;
      if (record.connectedAt > newest) newest = record.connectedAt;
    }
    return {
      totalConnections: open,
      connectionsByType,
      connectionsByTransport,
      resumableConnections: closed.size,
      oldestConnection: open === 0 ? null : new Date(oldest).toISOString(),
      newestConnection: open === 0 ? null : new Date(newest).toISOString(),
    };
  }

  private async release(connectionId: string, keepResumable: boolean): Promise<void> {
    await this.redis.releaseConnection(...this.keyList, connectionId, keepResumable ? 1 : 0);
  }
}

function zeroCounts(names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = 0;
  return counts;
}
