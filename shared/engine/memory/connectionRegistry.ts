import { TOKEN_TYPES, type TokenType } from '../../types';
import type { ClusterStats, ConnectionRecord } from '../engine';

interface RegistryEntry {
  record: ConnectionRecord;
  lastSeenAt: number;
}

/**
 * Live connections with the time each was last touched. The map is kept in last-seen order
 * (re-inserted on touch), so a sweep only looks at the stale entries at its front.
 */
export class ConnectionRegistry {
  private readonly entries = new Map<string, RegistryEntry>();
  private readonly countsByType = zeroCounts();

  /** Adds the connection, or replaces it (a resumed connection may move to another pod). */
  register(record: ConnectionRecord, now: number): void {
    this.remove(record.connectionId);
    this.entries.set(record.connectionId, { record: { ...record }, lastSeenAt: now });
    this.countsByType[record.tokenType] += 1;
  }

  remove(connectionId: string): boolean {
    const entry = this.entries.get(connectionId);
    if (!entry) return false;
    this.entries.delete(connectionId);
    this.countsByType[entry.record.tokenType] -= 1;
    return true;
  }

  get(connectionId: string): ConnectionRecord | undefined {
    const entry = this.entries.get(connectionId);
    return entry ? { ...entry.record } : undefined;
  }

  /** Refreshes known connections; unknown ids are not re-created but returned. */
  touch(connectionIds: string[], now: number): string[] {
    const unknown: string[] = [];
    for (const connectionId of connectionIds) {
      const entry = this.entries.get(connectionId);
      if (!entry) {
        unknown.push(connectionId);
        continue;
      }
      this.entries.delete(connectionId);
      entry.lastSeenAt = now;
      this.entries.set(connectionId, entry);
    }
    return unknown;
  }

  /** Removes entries last seen more than `staleAfterMs` ago and returns their ids. */
  sweep(staleAfterMs: number, now: number): string[] {
    const cutoff = now - staleAfterMs;
    const removed: string[] = [];
    for (const [connectionId, entry] of this.entries) {
      if (entry.lastSeenAt >= cutoff) break;
      this.remove(connectionId);
      removed.push(connectionId);
    }
    return removed;
  }

  stats(): ClusterStats {
    let oldest = Infinity;
    let newest = -Infinity;
    for (const { record } of this.entries.values()) {
      if (record.connectedAt < oldest) oldest = record.connectedAt;
      if (record.connectedAt > newest) newest = record.connectedAt;
    }
    const empty = this.entries.size === 0;
    return {
      totalConnections: this.entries.size,
      connectionsByType: { ...this.countsByType },
      oldestConnection: empty ? null : new Date(oldest).toISOString(),
      newestConnection: empty ? null : new Date(newest).toISOString(),
    };
  }
}

function zeroCounts(): Record<TokenType, number> {
  const counts = {} as Record<TokenType, number>;
  for (const type of TOKEN_TYPES) counts[type] = 0;
  return counts;
}
