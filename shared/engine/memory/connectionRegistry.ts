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

interface RegistryEntry {
  record: ConnectionRecord;
  /** Last touch (open entries) or when it closed (resumable entries). */
  at: number;
}

/**
 * Open streams with the time each was last touched, and closed resumable ones with the time
 * they closed. Both maps are kept in time order (re-inserted on touch or close), so a sweep only
 * looks at the stale entries at their front. Open streams are counted per token `sub`.
 */
export class ConnectionRegistry implements RegistryPort {
  private readonly open = new Map<string, RegistryEntry>();
  private readonly closed = new Map<string, RegistryEntry>();
  private readonly openBySub = new Map<string, number>();

  /** Lists an open stream; false when its sub is at `maxPerToken` (see RegistryPort). */
  async registerConnection(
    record: ConnectionRecord,
    options: RegisterOptions = {},
  ): Promise<boolean> {
    const id = record.connectionId;
    const wasOpen = this.open.get(id);
    if (!wasOpen) {
      const max = options.maxPerToken;
      if (max !== undefined && (this.openBySub.get(record.sub) ?? 0) >= max) return false;
      this.countSub(record.sub, 1);
    } else if (wasOpen.record.sub !== record.sub) {
      this.countSub(wasOpen.record.sub, -1);
      this.countSub(record.sub, 1);
    }
    this.closed.delete(id);
    this.open.delete(id);
    this.open.set(id, { record: { ...record }, at: Date.now() });
    return true;
  }

  async markConnectionClosed(connectionId: string): Promise<void> {
    const entry = this.open.get(connectionId);
    if (!entry) return;
    this.open.delete(connectionId);
    this.countSub(entry.record.sub, -1);
    if (entry.record.resumable)
      this.closed.set(connectionId, { record: entry.record, at: Date.now() });
  }

  async unregisterConnection(connectionId: string): Promise<void> {
    const entry = this.open.get(connectionId);
    if (entry) {
      this.open.delete(connectionId);
      this.countSub(entry.record.sub, -1);
    }
    this.closed.delete(connectionId);
  }

  async getConnection(connectionId: string): Promise<ConnectionRecord | undefined> {
    const entry = this.open.get(connectionId) ?? this.closed.get(connectionId);
    return entry ? { ...entry.record } : undefined;
  }

  /** Refreshes open entries; other ids (unknown, or lapsed) are not re-created but returned. */
  async touchConnections(connectionIds: string[]): Promise<string[]> {
    const now = Date.now();
    const unknown: string[] = [];
    for (const connectionId of connectionIds) {
      const entry = this.open.get(connectionId);
      if (!entry) {
        unknown.push(connectionId);
        continue;
      }
      this.open.delete(connectionId);
      entry.at = now;
      this.open.set(connectionId, entry);
    }
    return unknown;
  }

  async sweepConnections(options: SweepOptions): Promise<SweepResult> {
    const now = Date.now();
    const lapsed: ConnectionRecord[] = [];
    const openCutoff = now - options.openStaleAfterMs;
    for (const [connectionId, entry] of this.open) {
      if (entry.at >= openCutoff) break;
      this.open.delete(connectionId);
      this.countSub(entry.record.sub, -1);
      lapsed.push({ ...entry.record });
      // Resumable from its last touch: inserted in order among those closed meanwhile.
      if (entry.record.resumable) this.insertClosed(connectionId, entry);
    }
    const expired: string[] = [];
    const closedCutoff = now - options.resumeWindowMs;
    for (const [connectionId, entry] of this.closed) {
      if (entry.at >= closedCutoff) break;
      this.closed.delete(connectionId);
      expired.push(connectionId);
    }
    return { lapsed, expired };
  }

  async clusterStats(): Promise<ClusterStats> {
    const connectionsByType = zeroCounts(TOKEN_TYPES);
    const connectionsByTransport = zeroCounts(STREAM_TRANSPORTS);
    let oldest = Infinity;
    let newest = -Infinity;
    for (const { record } of this.open.values()) {
      connectionsByType[record.tokenType] += 1;
      connectionsByTransport[record.transport] += 1;
      if (record.connectedAt < oldest) oldest = record.connectedAt;
      if (record.connectedAt > newest) newest = record.connectedAt;
    }
    const empty = this.open.size === 0;
    return {
      totalConnections: this.open.size,
      connectionsByType: connectionsByType as Record<TokenType, number>,
      connectionsByTransport: connectionsByTransport as Record<StreamTransport, number>,
      resumableConnections: this.closed.size,
      oldestConnection: empty ? null : new Date(oldest).toISOString(),
      newestConnection: empty ? null : new Date(newest).toISOString(),
    };
  }

  private insertClosed(connectionId: string, entry: RegistryEntry): void {
    const later = [...this.closed].filter(([, other]) => other.at > entry.at);
    for (const [id] of later) this.closed.delete(id);
    this.closed.set(connectionId, entry);
    for (const [id, other] of later) this.closed.set(id, other);
  }

  private countSub(sub: string, delta: number): void {
    const count = (this.openBySub.get(sub) ?? 0) + delta;
    if (count > 0) this.openBySub.set(sub, count);
    else this.openBySub.delete(sub);
  }
}

function zeroCounts(names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = 0;
  return counts;
}
