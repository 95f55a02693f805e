import type { KeyValueStore, SetMode } from '../engine';

interface Entry {
  value: string;
  expiresAt: number;
}

/** Expired keys are pruned by a scan every this many writes (no timers). */
const PRUNE_EVERY_WRITES = 256;

/** The memory engine's KeyValueStore: a map with lazy expiry (Redis: SET PX / GETEX / PEXPIRE). */
export class MemoryKeyValueStore implements KeyValueStore {
  private readonly entries = new Map<string, Entry>();
  private writes = 0;

  constructor(private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.entries.size;
  }

  async set(key: string, value: string, ttlMs: number, mode: SetMode = 'always'): Promise<boolean> {
    assertTtl(ttlMs);
    const now = this.now();
    if (++this.writes % PRUNE_EVERY_WRITES === 0) this.prune(now);
    const exists = this.live(key, now) !== undefined;
    if ((mode === 'ifAbsent' && exists) || (mode === 'ifPresent' && !exists)) return false;
    this.entries.set(key, { value, expiresAt: now + ttlMs });
    return true;
  }

  async get(key: string, refreshTtlMs?: number): Promise<string | undefined> {
    const now = this.now();
    const entry = this.live(key, now);
    if (!entry) return undefined;
    if (refreshTtlMs !== undefined) {
      assertTtl(refreshTtlMs);
      entry.expiresAt = now + refreshTtlMs;
    }
    return entry.value;
  }

  async touch(key: string, ttlMs: number, expected?: string): Promise<boolean> {
    assertTtl(ttlMs);
    const now = this.now();
    const entry = this.live(key, now);
    if (!entry || (expected !== undefined && entry.value !== expected)) return false;
    entry.expiresAt = now + ttlMs;
    return true;
  }

  async delete(key: string, expected?: string): Promise<boolean> {
    const entry = this.live(key, this.now());
    if (!entry || (expected !== undefined && entry.value !== expected)) return false;
    return this.entries.delete(key);
  }

  private live(key: string, now: number): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private prune(now: number): void {
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }
}

function assertTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs < 1) {
    throw new RangeError(`ttlMs must be a positive integer, got ${ttlMs}`);
  }
}
